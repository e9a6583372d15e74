//! ffmpeg as a supervised child: FLV or MPEG-TS in on stdin; out, each rendition (the
//! source copied, the ladder's rungs below it encoded from one decode) as fragmented MP4
//! over a Unix socket to its segmenter (`segmenter.rs`, which writes the LL-HLS), and a
//! preview image. The process is killed if its owner goes away, its exit is always
//! reaped, and a failure is reported.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ladder;
use crate::segmenter::{self, Cutting, SocketPath};

/// How ffmpeg is run. The master playlist is not ffmpeg's: see `master.rs`.
#[derive(Debug, Clone)]
pub struct TranscodeSettings {
    /// The ffmpeg executable.
    pub ffmpeg: PathBuf,
    /// Encoder threads per ingest (review S5: bounded so one ingest cannot starve others).
    pub threads: u32,
    /// Target HLS segment length.
    pub segment_seconds: u32,
    /// Target LL-HLS partial segment length.
    pub part_millis: u32,
    /// Segments listed in a live playlist.
    pub playlist_size: u32,
    /// Heights encoded below the source (never above it): see `ladder.rs`.
    pub ladder: Vec<u32>,
}

impl Default for TranscodeSettings {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            threads: 2,
            segment_seconds: 1,
            part_millis: 333,
            playlist_size: 6,
            ladder: vec![720, 480, 360],
        }
    }
}

/// What a publisher's stream arrives in, as ffmpeg reads it from its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputFormat {
    /// RTMP's messages as FLV tags, behind the FLV header OnAir writes.
    Flv,
    /// SRT's payload: MPEG-TS, as the publisher muxed it; `adts_audio`: its audio is AAC
    /// in ADTS frames, whose headers MP4 does not take.
    MpegTs { adts_audio: bool },
}

impl InputFormat {
    fn demuxer(self) -> &'static str {
        match self {
            Self::Flv => "flv",
            Self::MpegTs { .. } => "mpegts",
        }
    }
}

/// The playlist players open; rendition playlists are `<name>/index.m3u8`.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// A still of the broadcast for the live lists, beside the master playlist.
pub const PREVIEW_IMAGE: &str = "preview.jpg";
/// How often the preview is replaced, in seconds of video.
pub const PREVIEW_SECONDS: u32 = 10;
/// The preview's width in pixels (its height keeps the aspect ratio).
const PREVIEW_WIDTH: u32 = 320;
/// CMAF as the segmenter takes it: the initialization first with no samples, offsets
/// relative to each fragment, a fragment at every keyframe and every
/// [`FRAGMENT_MICROSECONDS`].
pub(crate) const FRAGMENTED_MP4_FLAGS: &str = "+empty_moov+default_base_moof+frag_keyframe+cmaf";
/// About a frame a fragment: the segmenter learns of each keyframe (which ends a
/// segment) as it arrives, not a part later. Costs ~100 bytes of `moof` a frame.
pub(crate) const FRAGMENT_MICROSECONDS: u32 = 30_000;

impl TranscodeSettings {
    /// ffprobe, installed beside ffmpeg.
    pub fn ffprobe(&self) -> PathBuf {
        ffprobe_beside(&self.ffmpeg)
    }

    /// The rungs to encode below a source `source_height` pixels tall; when the height
    /// is unknown (a codec we do not parse), the smallest rung only, scaled no larger
    /// than the source.
    fn rungs(&self, source_height: Option<u32>) -> Vec<u32> {
        match source_height {
            Some(height) => ladder::rungs(&self.ladder, height),
            None => self.ladder.iter().min().copied().into_iter().collect(),
        }
    }

    /// ffmpeg writing each rendition of `names` (the source, then `rungs`) to the
    /// Unix socket of the same index in `sockets`, and the preview under `output`.
    fn command(
        &self,
        (output, input): (&Path, InputFormat),
        rungs: &[u32],
        sockets: &[PathBuf],
    ) -> Command {
        let mut command = Command::new(&self.ffmpeg);
        command
            // -y: a resumed broadcast's transcoder replaces the preview image the first
            // one left (ffmpeg refuses to overwrite a file output otherwise).
            .args([
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-fflags",
                "+genpts",
            ])
            // The input arrives in real time, so ffmpeg's default 5 s of stream analysis
            // delays the first segment by ~0.6 s; encoders send their audio and video
            // parameters first, and a quarter of a second finds both.
            .args(["-analyzeduration", "250000"])
            .args(["-f", input.demuxer(), "-i", "pipe:0"]);
        let keyframes = format!("expr:gte(t,n_forced*{})", self.segment_seconds);
        let threads = self.threads.to_string();
        let fragment = FRAGMENT_MICROSECONDS.to_string();
        for (index, socket) in sockets.iter().enumerate() {
            // Every rendition carries the source's audio, copied: no audio encode at all.
            command.args(["-map", "0:v:0", "-map", "0:a:0", "-c:a", "copy"]);
            // MP4 holds AAC without the ADTS headers MPEG-TS carries it in (ffmpeg 5.1
            // refuses them rather than converting them itself).
            if input == (InputFormat::MpegTs { adts_audio: true }) {
                command.args(["-bsf:a", "aac_adtstoasc"]);
            }
            match index.checked_sub(1).and_then(|rung| rungs.get(rung)) {
                // The publisher's own encoding, untouched.
                None => {
                    command.args(["-c:v", "copy"]);
                }
                // A rung: one decode of the source is shared by all; a keyframe every
                // segment so each cuts exactly; every frame keeps the publisher's
                // timestamp (nothing dropped or repeated to fit the frame rate guessed
                // from the short analysis above).
                Some(height) => {
                    let peak = ladder::max_kbps(*height);
                    command
                        .args([
                            "-c:v",
                            "libx264",
                            "-preset",
                            "veryfast",
                            "-tune",
                            "zerolatency",
                        ])
                        .args(["-b:v", &format!("{}k", peak * 8 / 9)])
                        .args(["-maxrate", &format!("{peak}k")])
                        .args(["-bufsize", &format!("{}k", peak * 2)])
                        .args([
                            "-filter:v",
                            &format!("scale=-2:'min({height},ih)',format=yuv420p"),
                        ])
                        .args(["-force_key_frames", &keyframes, "-sc_threshold", "0"])
                        .args(["-fps_mode", "passthrough", "-threads", &threads]);
                }
            }
            // Each fragment is written (and flushed to the socket) as soon as it is cut.
            command
                .args(["-f", "mp4", "-movflags", FRAGMENTED_MP4_FLAGS])
                .args(["-frag_duration", &fragment, "-flush_packets", "1"])
                .arg(format!("unix:{}", socket.display()));
        }
        command
            // Last output, the preview: the first frame, then one every PREVIEW_SECONDS,
            // from the decoded source (the rungs decode it anyway). One encoder thread, so
            // each image is written at once instead of when the next arrives;
            // atomic_writing renames it into place, so it is never read half-written.
            .args(["-map", "0:v:0", "-an", "-filter:v"])
            .arg(format!(
                "select='isnan(prev_selected_t)+gte(t-prev_selected_t,{PREVIEW_SECONDS})',scale={PREVIEW_WIDTH}:-2"
            ))
            .args(["-fps_mode", "vfr", "-q:v", "5", "-threads", "1"])
            .args(["-f", "image2", "-update", "1", "-atomic_writing", "1"])
            .arg(output.join(PREVIEW_IMAGE));
        command
    }
}

/// ffprobe, installed beside `ffmpeg` (same prefix and suffix), else from the PATH.
pub(crate) fn ffprobe_beside(ffmpeg: &Path) -> PathBuf {
    match ffmpeg.file_name().and_then(|n| n.to_str()) {
        Some(name) if name.contains("ffmpeg") => {
            ffmpeg.with_file_name(name.replacen("ffmpeg", "ffprobe", 1))
        }
        _ => PathBuf::from("ffprobe"),
    }
}

/// A running ffmpeg. Write FLV to it; drop or [`Transcoder::finish`] to stop.
pub struct Transcoder {
    /// Rendition directory names, in master-playlist order.
    renditions: Vec<String>,
    stdin: Option<ChildStdin>,
    exited: watch::Receiver<Option<ExitStatus>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    /// One per rendition; each ends when ffmpeg closes its socket.
    segmenters: Segmenters,
    /// In this publish's file names.
    publish: String,
}

impl Transcoder {
    /// ffmpeg reading `input` on its stdin and writing LL-HLS under `output`. `record`:
    /// the broadcast is recorded, so every segment is kept. `source_height`:
    /// the publisher's picture height, which sets the ladder.
    pub(crate) fn spawn(
        settings: &TranscodeSettings,
        (output, input): (&Path, InputFormat),
        record: bool,
        source_height: Option<u32>,
    ) -> std::io::Result<Self> {
        let rungs = settings.rungs(source_height);
        let renditions = ladder::names(&rungs);
        let cutting = Cutting {
            segment_seconds: f64::from(settings.segment_seconds),
            part_seconds: f64::from(settings.part_millis) / 1000.0,
            playlist_size: settings.playlist_size as usize,
            keep_segments: record,
            publish: segmenter::publish_tag(),
        };
        let mut segmenters = Segmenters(Vec::with_capacity(renditions.len()));
        let mut sockets = Vec::with_capacity(renditions.len());
        for rendition in &renditions {
            let dir = output.join(rendition);
            std::fs::create_dir_all(&dir)?;
            // Socket paths are limited to ~100 bytes, so not under the media root.
            let socket =
                std::env::temp_dir().join(format!("onair-{}.sock", uuid::Uuid::new_v4().simple()));
            let listener = UnixListener::bind(&socket)?;
            let path = SocketPath(socket.clone());
            let task = segmenter::run(listener, path, dir, cutting.clone());
            segmenters.0.push(tokio::spawn(task));
            sockets.push(socket);
        }
        let mut child = settings
            .command((output, input), &rungs, &sockets)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(target: "onair_media::ffmpeg", "{line}");
                }
            });
        }
        let (exit_tx, exited) = watch::channel(None);
        let (kill, kill_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(supervise(child, exit_tx, kill_rx));
        Ok(Self {
            renditions,
            stdin,
            exited,
            kill: Some(kill),
            segmenters,
            publish: cutting.publish,
        })
    }

    /// The tag in this publish's initialization and part names.
    pub(crate) fn publish(&self) -> &str {
        &self.publish
    }

    /// Rendition directory names, in master-playlist order.
    pub fn renditions(&self) -> &[String] {
        &self.renditions
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// ffmpeg's exit status once it has exited on its own.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exited.borrow()
    }

    /// Closes ffmpeg's input so it flushes the last segment and exits; kills it if it has
    /// not exited within `grace`. Returns its exit status.
    pub async fn finish(mut self, grace: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        let mut exited = self.exited.clone();
        let exited_in_time = tokio::time::timeout(grace, exited.wait_for(Option::is_some))
            .await
            .is_ok();
        if !exited_in_time && let Some(kill) = self.kill.take() {
            let _ = kill.send(());
            let _ = exited.wait_for(Option::is_some).await;
        }
        // ffmpeg is gone, so its sockets are closed: the segmenters write the last
        // segments and playlists (one that never got a connection is stopped).
        let deadline = tokio::time::Instant::now() + grace;
        for segmenter in std::mem::take(&mut self.segmenters.0) {
            let abort = segmenter.abort_handle();
            if tokio::time::timeout_at(deadline, segmenter).await.is_err() {
                abort.abort();
            }
        }
        self.exit_status()
    }
}

/// Segmenter tasks, stopped when dropped (a transcoder that failed to start, or was
/// dropped without `finish`).
struct Segmenters(Vec<JoinHandle<()>>);

impl Drop for Segmenters {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Owns the child: reaps it when it exits, kills it when asked or when the `Transcoder`
/// is dropped (the kill channel closes).
async fn supervise(
    mut child: Child,
    exit: watch::Sender<Option<ExitStatus>>,
    kill: tokio::sync::oneshot::Receiver<()>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = kill => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    if let Ok(status) = status {
        let _ = exit.send(Some(status));
    }
}
