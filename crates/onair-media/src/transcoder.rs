//! ffmpeg as a supervised child: FLV or MPEG-TS in on stdin, adaptive HLS out (the source rendition
//! copied, the ladder's rungs below it encoded from one decode) and a preview image.
//! The process is killed if its owner goes away, its exit is always reaped, and a failure
//! is reported.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;

use crate::ladder;

/// How ffmpeg is run. The master playlist is not ffmpeg's: see `master.rs`.
#[derive(Debug, Clone)]
pub struct TranscodeSettings {
    /// The ffmpeg executable.
    pub ffmpeg: PathBuf,
    /// Encoder threads per ingest (review S5: bounded so one ingest cannot starve others).
    pub threads: u32,
    /// Target HLS segment length.
    pub segment_seconds: u32,
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
    /// SRT's payload: MPEG-TS, as the publisher muxed it.
    MpegTs,
}

impl InputFormat {
    fn demuxer(self) -> &'static str {
        match self {
            Self::Flv => "flv",
            Self::MpegTs => "mpegts",
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

    /// `record`: keep every segment for the recording; otherwise ffmpeg deletes those
    /// that left the live window. `names` are the renditions of `rungs`.
    fn command(
        &self,
        (output, input): (&Path, InputFormat),
        record: bool,
        rungs: &[u32],
        names: &[String],
    ) -> Command {
        let mut command = Command::new(&self.ffmpeg);
        let segment_pattern = output.join("%v").join("seg_%05d.ts");
        let playlist_pattern = output.join("%v").join("index.m3u8");
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
        // Every rendition carries the source's audio, copied: no audio encode at all.
        for _ in names {
            command.args(["-map", "0:v:0", "-map", "0:a:0"]);
        }
        // Rendition 0: the publisher's own encoding, untouched. The rungs share one
        // decode of it; each has a keyframe every segment so it cuts exactly.
        command.args(["-c:v:0", "copy", "-c:a", "copy"]);
        let keyframes = format!("expr:gte(t,n_forced*{})", self.segment_seconds);
        for (index, height) in rungs.iter().enumerate() {
            let (stream, peak) = (index + 1, ladder::max_kbps(*height));
            command
                .args([format!("-c:v:{stream}"), "libx264".into()])
                .args([format!("-b:v:{stream}"), format!("{}k", peak * 8 / 9)])
                .args([format!("-maxrate:v:{stream}"), format!("{peak}k")])
                .args([format!("-bufsize:v:{stream}"), format!("{}k", peak * 2)])
                .args([
                    format!("-filter:v:{stream}"),
                    format!("scale=-2:'min({height},ih)',format=yuv420p"),
                ])
                .args([format!("-force_key_frames:v:{stream}"), keyframes.clone()]);
        }
        let stream_map: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(index, name)| format!("v:{index},a:{index},name:{name}"))
            .collect();
        command
            .args(["-preset", "veryfast", "-tune", "zerolatency", "-sc_threshold", "0"])
            // Every frame keeps the publisher's timestamp: nothing is dropped or repeated
            // to fit the frame rate guessed from the short analysis above.
            .args(["-fps_mode", "passthrough"])
            .arg("-threads")
            .arg(self.threads.to_string())
            .args(["-f", "hls", "-hls_time"])
            .arg(self.segment_seconds.to_string())
            .arg("-hls_list_size")
            .arg(self.playlist_size.to_string())
            // temp_file: playlists and segments appear atomically (renamed when complete),
            // so a player never reads half a file. append_list + discont_start: a
            // reconnecting publisher continues the same playlists after a discontinuity.
            .arg("-hls_flags")
            .arg(format!(
                "independent_segments+temp_file+append_list+discont_start+program_date_time{}",
                if record { "" } else { "+delete_segments" }
            ))
            .arg("-var_stream_map")
            .arg(stream_map.join(" "))
            .arg("-hls_segment_filename")
            .arg(segment_pattern)
            .arg(playlist_pattern)
            // Second output, the preview: the first frame, then one every PREVIEW_SECONDS,
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
}

impl Transcoder {
    /// ffmpeg reading `input` on its stdin and writing HLS under `output`. `record`: the
    /// broadcast is recorded, so every segment is kept (see `command`). `source_height`:
    /// the publisher's picture height, which sets the ladder.
    pub(crate) fn spawn(
        settings: &TranscodeSettings,
        (output, input): (&Path, InputFormat),
        record: bool,
        source_height: Option<u32>,
    ) -> std::io::Result<Self> {
        let rungs = settings.rungs(source_height);
        let renditions = ladder::names(&rungs);
        for rendition in &renditions {
            std::fs::create_dir_all(output.join(rendition))?;
        }
        let mut child = settings
            .command((output, input), record, &rungs, &renditions)
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
        })
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
        self.exit_status()
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
