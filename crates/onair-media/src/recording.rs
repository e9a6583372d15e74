//! The recording of a broadcast as streamed: per rendition, `recording.m3u8`, an EVENT
//! playlist of every segment in order (with the initialization each needs), grown from
//! the live `index.m3u8` (which lists only the live window). Segments are keyed by file
//! name, so the window's overlap between polls and the old window a resumed publish
//! re-lists are never recorded twice; a resume is marked with `#EXT-X-DISCONTINUITY`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::playlist::{self, Segment};

/// A rendition's recording beside its live playlist, and the master over them at the
/// broadcast root.
pub const RECORDING_PLAYLIST: &str = "recording.m3u8";
/// A rendition's live playlist (`segmenter.rs`).
pub const LIVE_PLAYLIST: &str = "index.m3u8";

/// Keeps every rendition's recording up to date with its live playlist.
pub(crate) struct Recorder {
    renditions: Vec<Rendition>,
}

struct Rendition {
    dir: PathBuf,
    segments: Vec<Segment>,
    recorded: HashSet<String>,
    /// This publish resumed a recording: its first new segment follows a break.
    resuming: bool,
}

impl Recorder {
    /// Continues the recordings of `names` already in `spool` (a publisher that came back
    /// within the grace window), or starts empty ones.
    pub(crate) async fn open(spool: &Path, names: &[String]) -> Self {
        let mut renditions = Vec::with_capacity(names.len());
        for name in names {
            let dir = spool.join(name);
            let segments = match tokio::fs::read_to_string(dir.join(RECORDING_PLAYLIST)).await {
                Ok(recording) => playlist::segments(&recording),
                Err(_) => Vec::new(),
            };
            renditions.push(Rendition {
                dir,
                recorded: segments.iter().map(|s| s.uri.clone()).collect(),
                resuming: !segments.is_empty(),
                segments,
            });
        }
        Self { renditions }
    }

    /// Appends the segments listed live since the last call and rewrites the recording
    /// playlists that grew.
    pub(crate) async fn update(&mut self) {
        for rendition in &mut self.renditions {
            let Ok(live) = tokio::fs::read_to_string(rendition.dir.join(LIVE_PLAYLIST)).await
            else {
                continue;
            };
            if !rendition.append(playlist::segments(&live)) {
                continue;
            }
            let path = rendition.dir.join(RECORDING_PLAYLIST);
            let recording = playlist::render_event(&rendition.segments);
            if let Err(error) = playlist::write_atomically(&path, &recording).await {
                // Kept in memory: the next update writes it again.
                tracing::error!(path = %path.display(), %error, "cannot write a recording playlist");
            }
        }
    }
}

impl Rendition {
    /// Records the live window's new segments; true if there were any.
    fn append(&mut self, window: Vec<Segment>) -> bool {
        let before = self.segments.len();
        for mut segment in window {
            let plain_map = segment
                .map
                .as_deref()
                .is_none_or(playlist::is_plain_file_name);
            if !playlist::is_plain_file_name(&segment.uri)
                || !plain_map
                || !self.recorded.insert(segment.uri.clone())
            {
                continue;
            }
            // A discontinuity before the very first segment of a broadcast would follow
            // nothing.
            segment.discontinuity =
                !self.segments.is_empty() && (segment.discontinuity || self.resuming);
            self.resuming = false;
            self.segments.push(segment);
        }
        self.segments.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(first: u32, count: u32, discontinuity_at: Option<u32>) -> Vec<Segment> {
        (first..first + count)
            .map(|n| Segment {
                seconds: 1.0,
                uri: format!("seg_{n:05}.ts"),
                discontinuity: Some(n) == discontinuity_at,
                map: None,
            })
            .collect()
    }

    #[test]
    fn records_each_segment_once_and_marks_a_resume() {
        let mut rendition = Rendition {
            dir: PathBuf::new(),
            segments: Vec::new(),
            recorded: HashSet::new(),
            resuming: false,
        };
        assert!(rendition.append(window(0, 3, Some(0))));
        assert!(rendition.append(window(1, 6, None)));
        assert!(!rendition.append(window(1, 6, None)), "nothing new");
        // A resumed publish re-lists its old window, then continues after a break.
        rendition.resuming = true;
        let mut resumed = window(1, 6, None);
        resumed.extend(window(7, 2, Some(7)));
        assert!(rendition.append(resumed));
        let uris: Vec<&str> = rendition.segments.iter().map(|s| s.uri.as_str()).collect();
        let expected: Vec<String> = (0..9).map(|n| format!("seg_{n:05}.ts")).collect();
        assert_eq!(uris, expected);
        let breaks: Vec<bool> = rendition.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(breaks.iter().filter(|b| **b).count(), 1);
        assert!(breaks[7], "{breaks:?}");
    }
}
