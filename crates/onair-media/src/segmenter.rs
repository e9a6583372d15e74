//! One live rendition as Low-Latency HLS (RFC 8216bis; Apple's LL-HLS), cut by OnAir from
//! the fragmented MP4 (CMAF) ffmpeg streams to it: every fragment (~1/3 s) becomes a
//! partial segment the moment it arrives, and a run of them starting at a keyframe a
//! whole segment (the same bytes, one file), so LL-HLS players fetch parts and regular
//! HLS players the segments, from the same playlist. Files appear atomically and before
//! the playlist that names them. A publisher that comes back continues the playlist
//! after a discontinuity, with its own initialization.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;

use crate::fmp4::{self, Fragment, Init, Kind};
use crate::playlist;
use crate::recording::LIVE_PLAYLIST;

/// Segments whose parts the playlist lists, counting back from the newest (RFC 8216bis
/// §4.4.4.9: parts older than three target durations are dropped).
const SEGMENTS_WITH_PARTS: usize = 3;
/// A segment closes at the first keyframe part after this share of its target length.
const CLOSE_AT: f64 = 0.9;

/// How a rendition is cut and kept.
#[derive(Debug, Clone)]
pub(crate) struct Cutting {
    pub(crate) segment_seconds: f64,
    pub(crate) part_seconds: f64,
    /// Segments listed in the live playlist.
    pub(crate) playlist_size: usize,
    /// Keep segments that left the live window (the broadcast is recorded).
    pub(crate) keep_segments: bool,
}

#[derive(Debug, Clone)]
struct Part {
    uri: String,
    seconds: f64,
    independent: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    uri: String,
    seconds: f64,
    discontinuity: bool,
    map: Option<String>,
    /// When its first frame was (about) captured: `#EXT-X-PROGRAM-DATE-TIME`, which
    /// players use to measure their distance from live. Unknown for an earlier publish's.
    started: Option<DateTime<Utc>>,
    /// Listed for the newest segments only; their files stay as long as the segment is
    /// listed, for players a little behind. Empty for an earlier publish's segments.
    parts: Vec<Part>,
}

/// The segment being cut: its parts so far and their bytes.
struct Open {
    segment: Segment,
    bytes: Vec<u8>,
}

pub(crate) struct Rendition {
    dir: PathBuf,
    cutting: Cutting,
    /// The listed segments, oldest first; the first is `media_sequence`.
    window: VecDeque<Segment>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    open: Option<Open>,
    /// The next publish's first segment follows a break.
    resuming: bool,
    /// The initialization in effect: its file name and what it says.
    init: Option<(String, Init)>,
    /// `ftyp` waiting for its `moov`.
    file_type: Option<Bytes>,
    /// A fragment's `moof` (and anything before it) waiting for its `mdat`.
    pending: Option<(Vec<u8>, Fragment)>,
    /// Part file names: unique to this publish, numbered so the next is known in advance
    /// (the preload hint).
    part_prefix: String,
    parts_made: u64,
    /// ffmpeg has finished: no part is coming.
    ended: bool,
}

impl Rendition {
    /// The rendition in `dir`, continuing the live playlist a previous publish of the
    /// broadcast left there.
    pub(crate) async fn open(dir: PathBuf, cutting: Cutting) -> Self {
        let previous = tokio::fs::read_to_string(dir.join(LIVE_PLAYLIST))
            .await
            .unwrap_or_default();
        let window: VecDeque<Segment> = playlist::segments(&previous)
            .into_iter()
            .map(|s| Segment {
                uri: s.uri,
                seconds: s.seconds,
                discontinuity: s.discontinuity,
                map: s.map,
                started: None,
                parts: Vec::new(),
            })
            .collect();
        let media_sequence = playlist::media_sequence(&previous);
        let next = media_sequence + window.len() as u64;
        Self {
            dir,
            cutting,
            resuming: !window.is_empty(),
            window,
            media_sequence,
            discontinuity_sequence: playlist::discontinuity_sequence(&previous),
            open: None,
            init: None,
            file_type: None,
            pending: None,
            part_prefix: format!("part_{next:05}_"),
            parts_made: 0,
            ended: false,
        }
    }

    fn next_msn(&self) -> u64 {
        self.media_sequence + self.window.len() as u64 + u64::from(self.open.is_some())
    }

    /// Takes the next top-level box of ffmpeg's output.
    pub(crate) async fn push(&mut self, kind: Kind, bytes: Bytes) -> std::io::Result<()> {
        match &kind {
            b"ftyp" => self.file_type = Some(bytes),
            b"moov" => {
                let init = Init::parse(&bytes).ok_or(std::io::ErrorKind::InvalidData)?;
                let name = format!("init_{:05}.mp4", self.next_msn());
                let mut file = self.file_type.take().map(Vec::from).unwrap_or_default();
                file.extend_from_slice(&bytes);
                playlist::write_atomically(&self.dir.join(&name), &file).await?;
                self.init = Some((name, init));
            }
            b"moof" => {
                let (_, init) = self.init.as_ref().ok_or(std::io::ErrorKind::InvalidData)?;
                // A fragment without video (audio flushed after the video ended) times
                // no part: it is left out.
                self.pending = Fragment::parse(&bytes, init).map(|f| (bytes.to_vec(), f));
            }
            b"mdat" => {
                if let Some((mut part, fragment)) = self.pending.take() {
                    part.extend_from_slice(&bytes);
                    self.add_part(part, fragment).await?;
                }
            }
            // The random-access index ffmpeg appends at the end (mfra) and padding are
            // not needed.
            _ => {}
        }
        Ok(())
    }

    async fn add_part(&mut self, bytes: Vec<u8>, fragment: Fragment) -> std::io::Result<()> {
        let closes = self.open.as_ref().is_some_and(|open| {
            fragment.independent && open.segment.seconds >= self.cutting.segment_seconds * CLOSE_AT
        });
        if closes {
            self.close_segment().await?;
        }
        let uri = format!("{}{:05}.m4s", self.part_prefix, self.parts_made);
        playlist::write_atomically(&self.dir.join(&uri), &bytes).await?;
        self.parts_made += 1;
        let map = self.init.as_ref().map(|(name, _)| name.clone());
        let next_msn = self.next_msn();
        let resuming = std::mem::take(&mut self.resuming);
        // The part just arrived: its first frame is about its length older.
        let started =
            Utc::now() - chrono::Duration::milliseconds((fragment.seconds * 1000.0) as i64);
        let open = self.open.get_or_insert_with(|| Open {
            segment: Segment {
                uri: format!("seg_{next_msn:05}.m4s"),
                seconds: 0.0,
                discontinuity: resuming,
                map,
                started: Some(started),
                parts: Vec::new(),
            },
            bytes: Vec::new(),
        });
        open.bytes.extend_from_slice(&bytes);
        open.segment.seconds += fragment.seconds;
        open.segment.parts.push(Part {
            uri,
            seconds: fragment.seconds,
            independent: fragment.independent,
        });
        self.write_playlist().await
    }

    /// Writes the open segment's file and lists it; drops what left the window.
    async fn close_segment(&mut self) -> std::io::Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        playlist::write_atomically(&self.dir.join(&open.segment.uri), &open.bytes).await?;
        self.window.push_back(open.segment);
        while self.window.len() > self.cutting.playlist_size {
            let Some(gone) = self.window.pop_front() else {
                break;
            };
            self.media_sequence += 1;
            self.discontinuity_sequence += u64::from(gone.discontinuity);
            let mut files: Vec<String> = gone.parts.into_iter().map(|p| p.uri).collect();
            if !self.cutting.keep_segments {
                files.push(gone.uri);
            }
            remove_files(&self.dir, files).await;
        }
        Ok(())
    }

    /// ffmpeg is done: the open segment is closed however short, parts are no longer
    /// listed (nothing more is coming) and their files go.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        self.ended = true;
        self.close_segment().await?;
        let parts: Vec<Part> = self
            .window
            .iter_mut()
            .flat_map(|s| s.parts.drain(..))
            .collect();
        self.write_playlist().await?;
        remove_files(&self.dir, parts.into_iter().map(|p| p.uri).collect()).await;
        Ok(())
    }

    async fn write_playlist(&self) -> std::io::Result<()> {
        let text = self.render();
        playlist::write_atomically(&self.dir.join(LIVE_PLAYLIST), &text).await
    }

    fn render(&self) -> String {
        let open = self.open.as_ref().map(|o| &o.segment);
        let segments = self.window.iter().chain(open);
        let longest = segments.clone().map(|s| s.seconds).fold(0.0, f64::max);
        let target = longest.max(self.cutting.segment_seconds).ceil() as u64;
        let longest_part = segments
            .clone()
            .flat_map(|s| &s.parts)
            .map(|p| p.seconds)
            .fold(self.cutting.part_seconds, f64::max);
        // Milliseconds, rounded up: no part may be longer than the target.
        let part_target = (longest_part * 1000.0).ceil() / 1000.0;
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={part_target:.3}\n\
             #EXT-X-MEDIA-SEQUENCE:{}\n",
            3.0 * part_target,
            self.media_sequence
        );
        if self.discontinuity_sequence > 0 {
            out.push_str(&format!(
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
                self.discontinuity_sequence
            ));
        }
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut map = None;
        let listed_from = self.window.len().saturating_sub(SEGMENTS_WITH_PARTS);
        for (index, segment) in segments.enumerate() {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if segment.map.is_some() && segment.map != map {
                map.clone_from(&segment.map);
                out.push_str(&playlist::map_tag(map.as_deref().unwrap_or_default()));
            }
            if let Some(started) = segment.started {
                let time = started.to_rfc3339_opts(SecondsFormat::Millis, true);
                out.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:{time}\n"));
            }
            if index >= listed_from {
                for part in &segment.parts {
                    out.push_str(&format!(
                        "#EXT-X-PART:DURATION={:.5},URI=\"{}\"{}\n",
                        part.seconds,
                        part.uri,
                        if part.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if index < self.window.len() {
                out.push_str(&format!(
                    "#EXTINF:{:.5},\n{}\n",
                    segment.seconds, segment.uri
                ));
            }
        }
        if !self.ended {
            out.push_str(&format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{:05}.m4s\"\n",
                self.part_prefix, self.parts_made
            ));
        }
        out
    }
}

/// Cuts the rendition in `dir` from the one connection ffmpeg makes to `listener`,
/// until ffmpeg closes it.
pub(crate) async fn run(
    listener: UnixListener,
    socket_path: PathBuf,
    dir: PathBuf,
    cutting: Cutting,
) {
    let accepted = listener.accept().await;
    // Connected (or failed): the path is no longer needed.
    let _ = tokio::fs::remove_file(&socket_path).await;
    let Ok((mut socket, _)) = accepted else {
        return;
    };
    let mut rendition = Rendition::open(dir, cutting).await;
    let mut buffer = BytesMut::with_capacity(256 * 1024);
    let failure = 'reading: loop {
        match socket.read_buf(&mut buffer).await {
            Ok(0) => break None,
            Ok(_) => {}
            Err(error) => break Some(error.to_string()),
        }
        loop {
            match fmp4::take_box(&mut buffer) {
                Ok(None) => break,
                Ok(Some((kind, bytes))) => {
                    if let Err(error) = rendition.push(kind, bytes).await {
                        break 'reading Some(error.to_string());
                    }
                }
                Err(error) => break 'reading Some(error.to_string()),
            }
        }
    };
    if let Some(error) = failure {
        // Closing the socket makes ffmpeg fail, which ends the publish as a transcoder
        // failure: never a playlist that silently stopped.
        tracing::error!(dir = %rendition.dir.display(), %error, "cannot cut the live rendition");
        drop(socket);
    }
    if let Err(error) = rendition.finish().await {
        tracing::error!(dir = %rendition.dir.display(), %error, "cannot close the live playlist");
    }
}

async fn remove_files(dir: &Path, names: Vec<String>) {
    for name in names {
        if let Err(error) = tokio::fs::remove_file(dir.join(&name)).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = name, %error, "cannot remove a live media file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a 30 fps test pattern with a keyframe a second, as the transcoder's
    /// fragmented MP4, split into boxes.
    fn boxes(seconds: u32) -> Vec<(Kind, Bytes)> {
        let output = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .args(["testsrc=size=320x180:rate=30", "-f", "lavfi", "-i", "sine"])
            .args([
                "-t",
                &seconds.to_string(),
                "-c:v",
                "libx264",
                "-g",
                "30",
                "-c:a",
                "aac",
            ])
            .args([
                "-f",
                "mp4",
                "-movflags",
                crate::transcoder::FRAGMENTED_MP4_FLAGS,
            ])
            .args(["-frag_duration", "333333", "pipe:1"])
            .output()
            .unwrap();
        let mut buffer = BytesMut::from(&output.stdout[..]);
        std::iter::from_fn(|| fmp4::take_box(&mut buffer).unwrap()).collect()
    }

    fn cutting() -> Cutting {
        Cutting {
            segment_seconds: 1.0,
            part_seconds: 0.333,
            playlist_size: 3,
            keep_segments: true,
        }
    }

    async fn publish(dir: &Path, boxes: &[(Kind, Bytes)]) -> Vec<String> {
        let mut rendition = Rendition::open(dir.to_owned(), cutting()).await;
        let mut playlists = Vec::new();
        for (kind, bytes) in boxes {
            rendition.push(*kind, bytes.clone()).await.unwrap();
            playlists.push(std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).unwrap_or_default());
        }
        rendition.finish().await.unwrap();
        playlists.push(std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).unwrap());
        playlists
    }

    #[tokio::test]
    async fn cuts_parts_and_segments_and_continues_after_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let boxes = boxes(5);
        let playlists = publish(dir.path(), &boxes).await;
        // While live: parts of the newest three segments and the open one, the next hinted.
        let live = &playlists[playlists.len() - 3];
        assert!(
            live.contains("#EXT-X-PART-INF:PART-TARGET=0.334\n"),
            "{live}"
        );
        assert!(
            live.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002"),
            "{live}"
        );
        assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{live}");
        assert!(
            live.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part_00000_"),
            "{live}"
        );
        assert!(live.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{live}");
        let edge = playlist::LiveEdge::of(live);
        assert_eq!((edge.open_segment, edge.growing), (4, true), "{live}");
        assert_eq!(live.matches(",INDEPENDENT=YES").count(), 4, "{live}");
        // A segment is its parts (ffmpeg's fragments), byte for byte.
        let fragments: Vec<&[u8]> = boxes
            .iter()
            .filter(|(kind, _)| kind == b"moof" || kind == b"mdat")
            .map(|(_, bytes)| &bytes[..])
            .collect();
        let seg_2 = fragments[6 * 2..9 * 2].concat();
        assert_eq!(
            std::fs::read(dir.path().join("seg_00002.m4s")).unwrap(),
            seg_2
        );

        // Ended: every segment whole, no parts listed or left, nothing hinted.
        let ended = playlists.last().unwrap();
        assert!(
            !ended.contains("#EXT-X-PART:") && !ended.contains("PRELOAD-HINT"),
            "{ended}"
        );
        let segments = playlist::segments(ended);
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[2].uri, "seg_00004.m4s");
        let left = std::fs::read_dir(dir.path()).unwrap();
        assert!(
            !left
                .map(|e| e.unwrap().file_name())
                .any(|n| n.to_string_lossy().starts_with("part_"))
        );
        // Recording: what left the window is kept.
        assert!(dir.path().join("seg_00000.m4s").exists());

        // The publisher comes back: the numbering goes on, after a break, with its own
        // initialization and part names.
        let resumed = publish(dir.path(), &boxes).await;
        // The first playlist listing the resumed publish's first segment whole.
        let resumed = resumed
            .iter()
            .find(|p| p.contains("\nseg_00005.m4s\n"))
            .unwrap();
        let segments = playlist::segments(resumed);
        let first_new = segments
            .iter()
            .position(|s| s.map.as_deref() == Some("init_00005.mp4"));
        let first_new = first_new.expect(resumed);
        assert!(segments[first_new].discontinuity, "{resumed}");
        assert!(
            segments[..first_new]
                .iter()
                .all(|s| s.map.as_deref() == Some("init_00000.mp4"))
        );
        assert!(
            resumed.contains("URI=\"part_00005_00000.m4s\""),
            "{resumed}"
        );
        assert!(dir.path().join("init_00005.mp4").exists());
    }

    #[tokio::test]
    async fn a_fragment_before_its_initialization_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let boxes = boxes(1);
        let mut rendition = Rendition::open(dir.path().to_owned(), cutting()).await;
        let (kind, moof) = boxes.iter().find(|(kind, _)| kind == b"moof").unwrap();
        assert!(rendition.push(*kind, moof.clone()).await.is_err());
        let junk_moov = Bytes::from_static(b"\0\0\0\x08moov");
        assert!(rendition.push(*b"moov", junk_moov).await.is_err());
    }
}
