//! Copying a recording, or the part of a playlist a clip needs, from the object store
//! into a local directory for ffmpeg.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use futures_util::{StreamExt, TryStreamExt};
use onair_infra::MediaStore;
use uuid::Uuid;

use crate::clip::ClipRange;
use crate::playlist::{self, Segment};
use crate::recording::RECORDING_PLAYLIST;
use crate::vod::{VodError, checked_segments, failed};

/// Segments fetched from the object store at once.
const FETCHES: usize = 8;

/// Copies a rendition's recording (`live/<stream_id>/<rendition>/recording.m3u8` and
/// its segments) from the store into `dir`; returns the local playlist.
pub async fn fetch_recording(
    store: &MediaStore,
    stream_id: Uuid,
    rendition: &str,
    dir: &Path,
) -> Result<PathBuf, VodError> {
    if !playlist::is_plain_file_name(rendition) {
        return Err(VodError::InvalidInput(format!(
            "bad rendition {rendition:?}"
        )));
    }
    let key = crate::recording_key(stream_id, rendition);
    Ok(fetch_playlist(store, &key, dir, None).await?.playlist)
}

/// A media playlist copied from the store by [`fetch_playlist`].
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPlaylist {
    /// The local playlist, its segments beside it.
    pub playlist: PathBuf,
    /// Where its first segment starts in the stored playlist, in seconds: a range of
    /// the stored playlist starts this much earlier in the local one.
    pub offset_secs: f64,
}

/// Copies the media playlist at `key` (a recording, or a VOD rendition) and its
/// segments from the store into `dir`, as `recording.m3u8` (each fMP4 segment
/// self-contained, its initialization in front). With `within`, only the
/// segments that overlap that range are copied (a clip of a long broadcast fetches its
/// minute, not the broadcast).
pub async fn fetch_playlist(
    store: &MediaStore,
    key: &str,
    dir: &Path,
    within: Option<ClipRange>,
) -> Result<FetchedPlaylist, VodError> {
    let prefix = key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let get = move |name: String| async move {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match store.get(&key).await {
            Ok(Some(bytes)) => Ok((name, bytes)),
            Ok(None) => Err(VodError::InvalidInput(format!("{key} is missing"))),
            Err(e) => Err(VodError::Store(e.to_string())),
        }
    };
    let (_, bytes) = get(key.rsplit('/').next().unwrap_or(key).to_owned()).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| VodError::InvalidInput("the recording is not a playlist".into()))?;
    let (mut segments, offset_secs) = overlapping(checked_segments(&text)?, within);
    tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    // An fMP4 segment is written whole, its initialization in front, so ffmpeg and
    // ffprobe can read each alone (the concat demuxer opens every file by itself).
    let mut inits: HashMap<String, Bytes> = HashMap::new();
    for map in segments.iter().filter_map(|s| s.map.clone()) {
        if !inits.contains_key(&map) {
            let (name, bytes) = get(map).await?;
            inits.insert(name, bytes);
        }
    }
    let fragmented = !inits.is_empty();
    let init_of: HashMap<String, Bytes> = segments
        .iter_mut()
        .filter_map(|s| Some((s.uri.clone(), inits.get(&s.map.take()?)?.clone())))
        .collect();
    // Owned names: see `MediaStore::upload_dir` on borrowing closures and `Send`.
    let names: Vec<String> = segments.iter().map(|s| s.uri.clone()).collect();
    let init_of = &init_of;
    futures_util::stream::iter(names.into_iter().map(get))
        .buffer_unordered(FETCHES)
        .try_for_each(|(name, bytes)| async move {
            let whole = match init_of.get(&name) {
                Some(init) => [init.as_ref(), bytes.as_ref()].concat().into(),
                None => bytes,
            };
            tokio::fs::write(dir.join(name), whole)
                .await
                .map_err(failed)
        })
        .await?;
    let path = dir.join(RECORDING_PLAYLIST);
    // Whole and in MPEG-TS, as stored; a range or fMP4, as the files written.
    let local = match within.is_none() && !fragmented {
        true => text,
        false => playlist::render_event(&segments),
    };
    tokio::fs::write(&path, local).await.map_err(failed)?;
    Ok(FetchedPlaylist {
        playlist: path,
        offset_secs,
    })
}

/// The segments that overlap `within` (all without it), and where the first starts.
fn overlapping(segments: Vec<Segment>, within: Option<ClipRange>) -> (Vec<Segment>, f64) {
    let Some(range) = within else {
        return (segments, 0.0);
    };
    let end = range.start_secs + range.duration_secs;
    let (mut at, mut offset, mut kept) = (0.0, None, Vec::new());
    for segment in segments {
        let next = at + segment.seconds;
        if next > range.start_secs && at < end {
            offset.get_or_insert(at);
            kept.push(segment);
        }
        at = next;
    }
    (kept, offset.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_keeps_the_segments_that_overlap_it() {
        let segment = |uri: &str| Segment {
            seconds: 2.0,
            uri: uri.into(),
            discontinuity: false,
            map: None,
        };
        let all = || ["a", "b", "c", "d"].map(segment).to_vec();
        let names = |(kept, offset): (Vec<Segment>, f64)| {
            (kept.into_iter().map(|s| s.uri).collect::<Vec<_>>(), offset)
        };
        let range = |start_secs, duration_secs| {
            Some(ClipRange {
                start_secs,
                duration_secs,
            })
        };
        assert_eq!(
            names(overlapping(all(), None)),
            (["a", "b", "c", "d"].map(String::from).to_vec(), 0.0)
        );
        assert_eq!(
            names(overlapping(all(), range(2.5, 2.0))),
            (vec!["b".into(), "c".into()], 2.0)
        );
        assert_eq!(
            names(overlapping(all(), range(2.0, 2.0))),
            (vec!["b".into()], 2.0)
        );
        assert_eq!(
            names(overlapping(all(), range(7.0, 5.0))),
            (vec!["d".into()], 6.0)
        );
    }
}
