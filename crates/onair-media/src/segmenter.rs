//! One live rendition as Low-Latency HLS (RFC 8216bis; Apple's LL-HLS), cut by OnAir from
//! the fragmented MP4 (CMAF) ffmpeg streams to it a frame at a time: fragments become a
//! partial segment (~1/3 s) as soon as it is full, and a run of parts from a keyframe a
//! whole segment (the same bytes, one file) the moment the next keyframe arrives, so
//! LL-HLS players fetch parts and regular HLS players the segments, from the same
//! playlist, with no wait for what comes after. Files appear atomically and before
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

/// Closed segments whose parts the playlist lists, besides the open one (RFC 8216bis
/// §4.4.4.9: parts older than three target durations are dropped).
const SEGMENTS_WITH_PARTS: usize = 3;
/// A segment closes at the first keyframe after this share of its target length.
const CLOSE_AT: f64 = 0.9;
/// Without a keyframe a segment is cut anyway at this length (memory and the
/// playlist's target stay bounded), and no longer said to be independent.
pub(crate) const LONGEST_SEGMENT_SECONDS: f64 = 10.0;

/// How a rendition is cut and kept.
#[derive(Debug, Clone)]
pub(crate) struct Cutting {
    pub(crate) segment_seconds: f64,
    pub(crate) part_seconds: f64,
    /// Segments listed in the live playlist.
    pub(crate) playlist_size: usize,
    /// Keep segments that left the live window (the broadcast is recorded).
    pub(crate) keep_segments: bool,
    /// In the names of this publish's initializations and parts (see [`publish_tag`]).
    pub(crate) publish: String,
}

/// A tag for one publish's file names: a name once served is cached as immutable, so a
/// resumed broadcast must not reuse one; the master playlist also tells this publish's
/// initializations from the previous one's by it.
pub(crate) fn publish_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_owned()
}

/// The name of the initialization a publish tagged `publish` writes before segment `msn`.
fn initialization_name(msn: u64, publish: &str) -> String {
    format!("init_{msn:05}_{publish}.mp4")
}

/// Whether `name` is an initialization the publish tagged `publish` wrote.
pub(crate) fn is_initialization_of(name: &str, publish: &str) -> bool {
    name.strip_suffix(".mp4")
        .and_then(|stem| stem.strip_suffix(publish))
        .is_some_and(|stem| stem.starts_with("init_") && stem.ends_with('_'))
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

/// A part being assembled: its fragments' bytes, video length, and whether its first
/// video frame is a keyframe (None until it has video).
#[derive(Default)]
struct Assembling {
    bytes: Vec<u8>,
    seconds: f64,
    independent: Option<bool>,
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
    /// A fragment's `moof` waiting for its `mdat`, with its video (None: audio alone).
    pending: Option<(Vec<u8>, Option<Fragment>)>,
    /// The part being assembled from fragments.
    part: Option<Assembling>,
    /// Part file names: unique to this publish, numbered so the next is known in advance
    /// (the preload hint).
    part_prefix: String,
    init_suffix: String,
    parts_made: u64,
    /// ffmpeg has finished: no part is coming.
    ended: bool,
    /// `#EXT-X-TARGETDURATION` and `PART-TARGET` so far (they never shrink).
    target: u64,
    part_target: f64,
    /// A segment was cut without a keyframe (the publisher sends too few): segments are
    /// no longer all independent.
    keyframes_missing: bool,
    /// Files of segments that left the window, kept while players may still hold a
    /// playlist naming them (one window), oldest first.
    retired: VecDeque<Vec<String>>,
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
        let (cutting_target, cutting_part_target) =
            (cutting.segment_seconds.round() as u64, cutting.part_seconds);
        let part_prefix = format!("part_{next:05}_{}_", cutting.publish);
        let init_suffix = cutting.publish.clone();
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
            part: None,
            part_prefix,
            init_suffix,
            parts_made: 0,
            ended: false,
            target: cutting_target,
            part_target: cutting_part_target,
            keyframes_missing: false,
            retired: VecDeque::new(),
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
                let name = initialization_name(self.next_msn(), &self.init_suffix);
                let mut file = self.file_type.take().map(Vec::from).unwrap_or_default();
                file.extend_from_slice(&bytes);
                playlist::write_atomically(&self.dir.join(&name), &file).await?;
                self.init = Some((name, init));
            }
            b"moof" => {
                let (_, init) = self.init.as_ref().ok_or(std::io::ErrorKind::InvalidData)?;
                self.pending = Some((bytes.to_vec(), Fragment::parse(&bytes, init)));
            }
            b"mdat" => {
                if let Some((mut fragment, video)) = self.pending.take() {
                    fragment.extend_from_slice(&bytes);
                    self.add_fragment(&fragment, video).await?;
                }
            }
            // The random-access index ffmpeg appends at the end (mfra) and padding are
            // not needed.
            _ => {}
        }
        Ok(())
    }

    /// Adds one of ffmpeg's fragments (about a frame: `video` is None for audio alone).
    /// A keyframe ends the part before it, and the segment too once that is long
    /// enough, the moment it arrives; a part ends as soon as it is full.
    async fn add_fragment(&mut self, bytes: &[u8], video: Option<Fragment>) -> std::io::Result<()> {
        let mut listed = false;
        if video.is_some_and(|v| v.independent) {
            listed = self.close_part().await?;
            let due = self.cutting.segment_seconds * CLOSE_AT;
            if self
                .open
                .as_ref()
                .is_some_and(|open| open.segment.seconds >= due)
            {
                self.close_segment().await?;
                listed = true;
            }
        }
        let part = self.part.get_or_insert_with(Assembling::default);
        part.bytes.extend_from_slice(bytes);
        if let Some(video) = video {
            part.seconds += video.seconds;
            part.independent.get_or_insert(video.independent);
            // Full within half a frame: it closes now, not when the next frame comes.
            if part.seconds + video.seconds / 2.0 >= self.cutting.part_seconds {
                listed |= self.close_part().await?;
                // A publisher sending too few keyframes still gets bounded segments.
                let too_long = self.open.as_ref().map(|o| o.segment.seconds);
                if too_long.is_some_and(|seconds| seconds >= LONGEST_SEGMENT_SECONDS) {
                    self.keyframes_missing = true;
                    self.close_segment().await?;
                }
            }
        }
        // One playlist write for whatever this fragment completed.
        if listed {
            self.write_playlist().await?;
        }
        Ok(())
    }

    /// Writes the part being assembled (once it holds video) and adds it to the open
    /// segment, opening one if needed; true if it did (the playlist is the caller's).
    async fn close_part(&mut self) -> std::io::Result<bool> {
        let Some(independent) = self.part.as_ref().and_then(|p| p.independent) else {
            return Ok(false);
        };
        let part = self.part.take().unwrap_or_default();
        let uri = format!("{}{:05}.m4s", self.part_prefix, self.parts_made);
        playlist::write_atomically(&self.dir.join(&uri), &part.bytes).await?;
        self.parts_made += 1;
        let map = self.init.as_ref().map(|(name, _)| name.clone());
        let next_msn = self.next_msn();
        let resuming = std::mem::take(&mut self.resuming);
        let open = self.open.get_or_insert_with(|| Open {
            segment: Segment {
                uri: format!("seg_{next_msn:05}.m4s"),
                seconds: 0.0,
                discontinuity: resuming,
                map,
                // The part is complete: its first frame is about its length older.
                started: Some(
                    Utc::now() - chrono::Duration::milliseconds((part.seconds * 1000.0) as i64),
                ),
                parts: Vec::new(),
            },
            bytes: Vec::new(),
        });
        open.bytes.extend_from_slice(&part.bytes);
        open.segment.seconds += part.seconds;
        open.segment.parts.push(Part {
            uri,
            seconds: part.seconds,
            independent,
        });
        Ok(true)
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
            self.retired.push_back(files);
        }
        while self.retired.len() > self.cutting.playlist_size {
            let files = self.retired.pop_front().unwrap_or_default();
            remove_files(&self.dir, files).await;
        }
        Ok(())
    }

    /// ffmpeg is done: the open segment is closed however short, parts are no longer
    /// listed (nothing more is coming) and their files go.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        self.ended = true;
        self.close_part().await?;
        // Audio flushed after the last frame of video goes with the last segment.
        if let (Some(tail), Some(open)) = (self.part.take(), self.open.as_mut()) {
            open.bytes.extend_from_slice(&tail.bytes);
        }
        self.close_segment().await?;
        let parts: Vec<Part> = self
            .window
            .iter_mut()
            .flat_map(|s| s.parts.drain(..))
            .collect();
        self.write_playlist().await?;
        let mut files: Vec<String> = parts.into_iter().map(|p| p.uri).collect();
        files.extend(self.retired.drain(..).flatten());
        remove_files(&self.dir, files).await;
        Ok(())
    }

    async fn write_playlist(&mut self) -> std::io::Result<()> {
        // Targets only grow (RFC 8216 §6.2.1: a live playlist changes by appending).
        let open = self.open.as_ref().map(|o| &o.segment);
        let segments = self.window.iter().chain(open);
        // RFC 8216 §4.3.3.1: each duration, rounded to the nearest integer, fits it.
        let longest = segments.clone().map(|s| s.seconds.round() as u64).max();
        self.target = self.target.max(longest.unwrap_or(0));
        let longest_part = segments.flat_map(|s| &s.parts).map(|p| p.seconds);
        // Milliseconds, rounded up (past float noise): no part may be longer.
        let longest_part = longest_part.map(|p| (p * 1000.0 - 1e-6).ceil() / 1000.0);
        self.part_target = longest_part.fold(self.part_target, f64::max);
        let text = self.render();
        playlist::write_atomically(&self.dir.join(LIVE_PLAYLIST), &text).await
    }

    fn render(&self) -> String {
        let open = self.open.as_ref().map(|o| &o.segment);
        let segments = self.window.iter().chain(open);
        let (target, part_target) = (self.target, self.part_target);
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
        if !self.keyframes_missing {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
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

/// A Unix socket's path, removed when dropped: once ffmpeg has connected, or with a
/// segmenter that never ran or was stopped.
pub(crate) struct SocketPath(pub(crate) PathBuf);

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Cuts the rendition in `dir` from the one connection ffmpeg makes to `listener` (at
/// `path`), until ffmpeg closes it.
pub(crate) async fn run(listener: UnixListener, path: SocketPath, dir: PathBuf, cutting: Cutting) {
    let accepted = listener.accept().await;
    drop(path);
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
