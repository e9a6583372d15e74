//! Turning an uploaded picture into the avatar we serve, with ffmpeg (already needed for
//! ingest): decoded only as the format it was declared as, at most `MAX_PIXELS`, then
//! scaled and center-cropped to a square WebP. Re-encoding keeps the pixels only: no
//! metadata, no second frame, nothing a polyglot file hid after the image.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

/// Side of the square avatar, in pixels.
pub const SIDE: u32 = 256;
/// Largest picture decoded (a 6000 × 4000 photo fits): bounds the decoder's memory,
/// which a small compressed file could otherwise blow up.
const MAX_PIXELS: u32 = 25_000_000;
/// Longest an encode may take before it is killed.
const TIME_LIMIT: Duration = Duration::from_secs(10);
/// Encodes at once on this node (each runs one ffmpeg thread); more wait their turn.
const CONCURRENT: usize = 2;

/// A picture format an avatar may be uploaded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Png,
    Jpeg,
    Webp,
}

impl SourceFormat {
    /// The format a `Content-Type` declares, if it is one we take.
    pub fn of_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// ffmpeg's demuxer for one picture of this format: no probing, so no other decoder
    /// ever sees the upload.
    fn demuxer(self) -> &'static str {
        match self {
            Self::Png => "png_pipe",
            Self::Jpeg => "jpeg_pipe",
            Self::Webp => "webp_pipe",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("ffmpeg could not decode the picture")]
    Undecodable,
    #[error("the encode took longer than {TIME_LIMIT:?}")]
    TimedOut,
    #[error("cannot run ffmpeg: {0}")]
    Unavailable(#[from] std::io::Error),
}

pub struct Encoder {
    ffmpeg: PathBuf,
    slots: Semaphore,
}

impl Encoder {
    pub fn new(ffmpeg: PathBuf) -> Self {
        Self {
            ffmpeg,
            slots: Semaphore::new(CONCURRENT),
        }
    }

    /// `picture`, declared as `format`, as a `SIDE`-pixel square WebP (scaled to cover
    /// the square, then cropped around the center).
    pub async fn square_webp(
        &self,
        format: SourceFormat,
        picture: Bytes,
    ) -> Result<Bytes, EncodeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::time::timeout(TIME_LIMIT, self.run(format, picture))
            .await
            .map_err(|_| EncodeError::TimedOut)?
    }

    async fn run(&self, format: SourceFormat, picture: Bytes) -> Result<Bytes, EncodeError> {
        let max_pixels = MAX_PIXELS.to_string();
        let fit =
            format!("scale={SIDE}:{SIDE}:force_original_aspect_ratio=increase,crop={SIDE}:{SIDE}");
        let mut child = Command::new(&self.ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args([
                "-filter_threads",
                "1",
                "-threads",
                "1",
                "-max_pixels",
                &max_pixels,
            ])
            .args(["-f", format.demuxer(), "-i", "pipe:0"])
            .args([
                "-map",
                "0:v:0",
                "-frames:v",
                "1",
                "-map_metadata",
                "-1",
                "-vf",
                &fit,
            ])
            .args(["-threads", "1", "-c:v", "libwebp", "-f", "webp", "pipe:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out encode is dropped: its ffmpeg must not outlive it.
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Fed while ffmpeg runs; it may stop reading early (bad data) and close the pipe.
        let feed = tokio::spawn(async move {
            let _ = stdin.write_all(&picture).await;
        });
        let output = child.wait_with_output().await?;
        feed.abort();
        if !output.status.success() || output.stdout.is_empty() {
            tracing::debug!(
                stderr = %String::from_utf8_lossy(&output.stderr),
                "avatar upload not decodable"
            );
            return Err(EncodeError::Undecodable);
        }
        Ok(Bytes::from(output.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::SourceFormat;

    #[test]
    fn content_types_name_their_format() {
        for (content_type, format) in [
            ("image/png", Some(SourceFormat::Png)),
            ("IMAGE/JPEG", Some(SourceFormat::Jpeg)),
            ("image/webp; q=1", Some(SourceFormat::Webp)),
            ("image/gif", None),
            ("image/svg+xml", None),
            ("application/octet-stream", None),
            ("", None),
        ] {
            assert_eq!(
                SourceFormat::of_content_type(content_type),
                format,
                "{content_type}"
            );
        }
    }
}
