//! A clip: a range of a recording as one MP4 (`+faststart`, so it plays while it
//! downloads) and a thumbnail.
//!
//! The clip is re-encoded, not stream-copied: a copy can only start at a keyframe, up
//! to a publisher's whole keyframe interval (often 2–4 s) before the asked start, and
//! the MP4 edit list that would hide the lead-in is honored unevenly by players. A clip
//! is at most a minute, so encoding it (libx264 at the configured preset and threads)
//! is cheap and makes both ends frame-accurate.

use std::path::Path;

use crate::ffmpeg;
use crate::vod::{Recording, VodError, VodSettings, duration, thumbnail};

/// The clip's file in the output directory.
const CLIP_VIDEO: &str = "clip.mp4";
/// The clip's still, beside it.
const CLIP_THUMBNAIL: &str = "thumbnail.jpg";
/// Rounding in a recording's listed duration that a range may overrun.
const SLACK_SECONDS: f64 = 0.05;

/// Seconds of a recording, from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRange {
    pub start_secs: f64,
    pub duration_secs: f64,
}

/// What [`cut_clip`] wrote: `clip.mp4` and `thumbnail.jpg`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipOutput {
    /// Measured on the written clip.
    pub duration_secs: f64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// Cuts `range` of the local recording playlist `input` into `output`. InvalidInput
/// when the range is not inside the recording.
pub async fn cut_clip(
    settings: &VodSettings,
    input: &Path,
    range: ClipRange,
    output: &Path,
) -> Result<ClipOutput, VodError> {
    let recording = Recording::open(input, output).await?;
    let ClipRange {
        start_secs: start,
        duration_secs: length,
    } = range;
    let inside = start.is_finite()
        && length.is_finite()
        && start >= 0.0
        && length > 0.0
        && start + length <= recording.seconds + SLACK_SECONDS;
    if !inside {
        return Err(VodError::InvalidInput(format!(
            "the range {start}s + {length}s is outside the recording (0 to {:.3}s)",
            recording.seconds
        )));
    }
    let video = output.join(CLIP_VIDEO);
    let mut command = ffmpeg::ffmpeg(&settings.ffmpeg, settings.nice);
    command
        .args(["-threads", &settings.threads.to_string()])
        // Before the input: seek there, then decode from the keyframe before and drop
        // the frames up to `start` (the cut is frame-accurate because it is encoded).
        .arg("-ss")
        .arg(format!("{start:.3}"))
        .args(recording.input())
        .arg("-t")
        .arg(format!("{length:.3}"))
        .args(["-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264"])
        .args([
            "-preset",
            &settings.preset,
            "-crf",
            "21",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-threads",
            &settings.threads.to_string(),
        ])
        .args(["-movflags", "+faststart"])
        .arg(&video);
    ffmpeg::run(command, length, &mut |_| {})
        .await
        .map_err(VodError::Failed)?;
    drop(recording);

    let duration_secs = duration(&settings.ffprobe(), &video).await?;
    let still = output.join(CLIP_THUMBNAIL);
    thumbnail(settings, &video, duration_secs * 0.1, &still).await?;
    let mut bytes = 0;
    for file in [&video, &still] {
        bytes += tokio::fs::metadata(file)
            .await
            .map_err(|e| VodError::Failed(e.to_string()))?
            .len();
    }
    Ok(ClipOutput {
        duration_secs,
        bytes,
    })
}
