//! A broadcast's recording into its final VOD: the source rendition copied (cut into
//! VOD segments) and lower renditions encoded, a master playlist like the live one, a
//! thumbnail and the exact duration. Runs as a job, never inside a request.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ffmpeg;
use crate::ladder;
use crate::master;
use crate::mirror::files;
use crate::playlist::{self, Segment};
use crate::recording::LIVE_PLAYLIST;
use crate::transcoder::ffprobe_beside;

/// The VOD's still, beside its master playlist.
const THUMBNAIL: &str = "thumbnail.jpg";
/// The thumbnail's width in pixels (its height keeps the aspect ratio).
const THUMBNAIL_WIDTH: u32 = 640;

/// How VODs and clips are encoded (review S5: bounded threads and preset, low priority).
#[derive(Debug, Clone)]
pub struct VodSettings {
    /// The ffmpeg executable (ffprobe is taken from beside it).
    pub ffmpeg: PathBuf,
    /// Decoder and encoder threads per job.
    pub threads: u32,
    /// libx264 `-preset` of the encoded renditions and clips.
    pub preset: String,
    /// VOD segment length.
    pub segment_seconds: u32,
    /// Heights of the encoded renditions; only those below the source are made.
    pub ladder: Vec<u32>,
    /// Run ffmpeg under `nice -n <level>` (when `nice` is installed), so processing
    /// yields the CPU to ingest and the API. None: normal priority.
    pub nice: Option<i32>,
}

impl Default for VodSettings {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            threads: 2,
            preset: "veryfast".into(),
            segment_seconds: 4,
            ladder: vec![720, 480, 360],
            nice: Some(10),
        }
    }
}

impl VodSettings {
    pub(crate) fn ffprobe(&self) -> PathBuf {
        ffprobe_beside(&self.ffmpeg)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VodError {
    /// The recording is missing, empty or unreadable, or the request does not fit it:
    /// retrying cannot help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// ffmpeg failed or was killed, or local I/O failed: worth a retry.
    #[error("processing failed: {0}")]
    Failed(String),
    /// The object store failed: worth a retry.
    #[error("object store: {0}")]
    Store(String),
}

pub(crate) fn failed(error: impl std::fmt::Display) -> VodError {
    VodError::Failed(error.to_string())
}

/// What [`build_vod`] wrote: `master.m3u8`, `<rendition>/index.m3u8` and segments, and
/// `thumbnail.jpg`.
#[derive(Debug, Clone, PartialEq)]
pub struct VodOutput {
    /// Measured on the written source rendition.
    pub duration_secs: f64,
    /// Rendition directories, in master-playlist order (`source` first, then `<h>p`).
    pub renditions: Vec<String>,
    /// Bytes written in all.
    pub bytes: u64,
}

/// A recording's segments: at least one, each a file beside the playlist.
pub(crate) fn checked_segments(recording: &str) -> Result<Vec<Segment>, VodError> {
    let segments = playlist::segments(recording);
    if segments.is_empty() {
        return Err(VodError::InvalidInput(
            "the recording has no segment".into(),
        ));
    }
    let files = segments
        .iter()
        .flat_map(|s| std::iter::once(&s.uri).chain(&s.map));
    match files
        .into_iter()
        .find(|uri| !playlist::is_plain_file_name(uri))
    {
        Some(bad) => Err(VodError::InvalidInput(format!("bad segment {bad:?}"))),
        None => Ok(segments),
    }
}

/// The segments of the local playlist `playlist` (see [`checked_segments`]) and the
/// directory they are in; InvalidInput when it cannot be read.
pub(crate) async fn local_segments(playlist: &Path) -> Result<(PathBuf, Vec<Segment>), VodError> {
    let missing = |e: std::io::Error| {
        VodError::InvalidInput(format!("cannot read {}: {e}", playlist.display()))
    };
    let text = tokio::fs::read_to_string(playlist).await.map_err(missing)?;
    let segments = checked_segments(&text)?;
    let dir = tokio::fs::canonicalize(playlist)
        .await
        .map_err(missing)?
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    Ok((dir, segments))
}

/// A recording playlist as one ffmpeg input: an ffconcat list of its segments, which
/// the concat demuxer lays end to end — bridging the timestamp jump at a discontinuity,
/// which the HLS demuxer does not. The list is removed when this is dropped.
pub(crate) struct Recording {
    list: PathBuf,
    /// The sum of the segments' durations.
    pub(crate) seconds: f64,
}

impl Recording {
    /// Reads `playlist` and writes its list as `<scratch>/.recording.ffconcat`.
    pub(crate) async fn open(playlist: &Path, scratch: &Path) -> Result<Self, VodError> {
        let (dir, segments) = local_segments(playlist).await?;
        tokio::fs::create_dir_all(scratch).await.map_err(failed)?;
        Self::of(&dir, &segments, scratch.join(".recording.ffconcat")).await
    }

    /// `segments`, files in `dir`, as one input listed in the file `list`.
    pub(crate) async fn of(
        dir: &Path,
        segments: &[Segment],
        list: PathBuf,
    ) -> Result<Self, VodError> {
        let mut text = String::from("ffconcat version 1.0\n");
        for segment in segments {
            let path = dir.join(&segment.uri);
            let quoted = path.to_string_lossy().replace('\'', r"'\''");
            text.push_str(&format!(
                "file '{quoted}'\nduration {:.6}\n",
                segment.seconds
            ));
        }
        tokio::fs::write(&list, text).await.map_err(failed)?;
        Ok(Self {
            list,
            seconds: segments.iter().map(|s| s.seconds).sum(),
        })
    }

    /// ffmpeg's (and ffprobe's) input options for it.
    pub(crate) fn input(&self) -> Vec<&OsStr> {
        let options = ["-f", "concat", "-safe", "0", "-i"].map(OsStr::new);
        options.into_iter().chain([self.list.as_os_str()]).collect()
    }

    /// Its first video stream's height and whether it has audio; InvalidInput when
    /// ffprobe cannot read it (a corrupt recording).
    async fn streams(&self, ffprobe: &Path) -> Result<(u32, bool), VodError> {
        let probe: Probe = ffmpeg::probe(ffprobe, &self.input(), "stream=codec_type,height")
            .await
            .map_err(VodError::InvalidInput)?;
        let of_kind = |kind: &'static str| {
            let streams = probe.streams.iter();
            streams.filter(move |s| s.codec_type.as_deref() == Some(kind))
        };
        let height = of_kind("video").find_map(|s| s.height).filter(|h| *h > 0);
        let height =
            height.ok_or_else(|| VodError::InvalidInput("no video in the recording".into()))?;
        Ok((height, of_kind("audio").next().is_some()))
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.list);
    }
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbedStream>,
    format: Option<ProbedFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbedStream {
    codec_type: Option<String>,
    height: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ProbedFormat {
    duration: Option<String>,
}

/// A media file's duration in seconds, as ffprobe measures it.
pub(crate) async fn duration(ffprobe: &Path, media: &Path) -> Result<f64, VodError> {
    let probe: Probe = ffmpeg::probe(
        ffprobe,
        &["-i".as_ref(), media.as_os_str()],
        "format=duration",
    )
    .await
    .map_err(failed)?;
    probe
        .format
        .and_then(|f| f.duration?.parse().ok())
        .ok_or_else(|| failed(format!("no duration for {}", media.display())))
}

/// A JPEG `THUMBNAIL_WIDTH` wide of the frame `at` seconds into `media`.
pub(crate) async fn thumbnail(
    settings: &VodSettings,
    media: &Path,
    at: f64,
    output: &Path,
) -> Result<(), VodError> {
    let mut command = ffmpeg::ffmpeg(&settings.ffmpeg, settings.nice);
    command
        .arg("-ss")
        .arg(format!("{at:.3}"))
        .arg("-i")
        .arg(media)
        .args(["-frames:v", "1", "-q:v", "3", "-threads", "1", "-filter:v"])
        .arg(format!("scale={THUMBNAIL_WIDTH}:-2"))
        .arg(output);
    ffmpeg::run(command, 0.0, &mut |_| {}).await.map_err(failed)
}

/// ffmpeg's arguments after the input: the source copied, then each rung encoded,
/// every rendition cut into `segment_seconds` VOD segments under `output/<name>/`.
fn ladder_args(settings: &VodSettings, rungs: &[u32], audio: bool, output: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    for _ in 0..=rungs.len() {
        push(&["-map", "0:v:0"]);
        if audio {
            push(&["-map", "0:a:0"]);
        }
    }
    // The audio is resampled to its timestamps and encoded again: the recording's segments
    // overlap by a few ticks at their boundaries, and Chromium refuses to play audio whose
    // timestamps go back ("Parsed buffers not in DTS sequence").
    push(&[
        "-c:v:0",
        "copy",
        "-af",
        "aresample=async=1",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ]);
    for (index, height) in rungs.iter().enumerate() {
        let stream = index + 1;
        let max_kbps = ladder::max_kbps(*height);
        let keyframes = format!("expr:gte(t,n_forced*{})", settings.segment_seconds);
        push(&[
            &format!("-c:v:{stream}"),
            "libx264",
            &format!("-preset:v:{stream}"),
            &settings.preset,
            &format!("-crf:v:{stream}"),
            "23",
            &format!("-maxrate:v:{stream}"),
            &format!("{max_kbps}k"),
            &format!("-bufsize:v:{stream}"),
            &format!("{}k", max_kbps * 2),
            &format!("-filter:v:{stream}"),
            &format!("scale=-2:{height},format=yuv420p"),
            // A keyframe at every segment boundary, so segments cut exactly.
            &format!("-force_key_frames:v:{stream}"),
            &keyframes,
        ]);
    }
    let stream_map: Vec<String> = ladder::names(rungs)
        .iter()
        .enumerate()
        .map(|(i, name)| match audio {
            true => format!("v:{i},a:{i},name:{name}"),
            false => format!("v:{i},name:{name}"),
        })
        .collect();
    push(&["-threads", &settings.threads.to_string(), "-f", "hls"]);
    push(&[
        "-hls_time",
        &settings.segment_seconds.to_string(),
        "-hls_playlist_type",
        "vod",
    ]);
    push(&[
        "-hls_flags",
        "independent_segments",
        "-var_stream_map",
        &stream_map.join(" "),
    ]);
    args.push("-hls_segment_filename".into());
    args.push(output.join("%v").join("seg_%05d.ts").into());
    args.push(output.join("%v").join(LIVE_PLAYLIST).into());
    args
}

/// Builds the VOD of the local recording playlist `input` into `output` (see
/// [`VodOutput`]), reporting progress 0..1. The ffmpeg child is killed if the future is
/// dropped.
pub async fn build_vod(
    settings: &VodSettings,
    input: &Path,
    output: &Path,
    progress: &mut (dyn FnMut(f64) + Send),
) -> Result<VodOutput, VodError> {
    let ffprobe = settings.ffprobe();
    let recording = Recording::open(input, output).await?;
    let (height, audio) = recording.streams(&ffprobe).await?;
    let rungs = ladder::rungs(&settings.ladder, height);
    let mut command = ffmpeg::ffmpeg(&settings.ffmpeg, settings.nice);
    command
        .args(["-threads", &settings.threads.to_string()])
        .args(recording.input())
        .args(ladder_args(settings, &rungs, audio, output));
    let renditions = ladder::names(&rungs);
    for rendition in &renditions {
        tokio::fs::create_dir_all(output.join(rendition))
            .await
            .map_err(failed)?;
    }
    ffmpeg::run(command, recording.seconds, progress)
        .await
        .map_err(failed)?;
    drop(recording);

    master::write_vod_master(output, &renditions)
        .await
        .map_err(failed)?;
    let source = output.join(ladder::SOURCE).join(LIVE_PLAYLIST);
    let duration_secs = duration(&ffprobe, &source).await?;
    thumbnail(
        settings,
        &source,
        duration_secs * 0.1,
        &output.join(THUMBNAIL),
    )
    .await?;
    progress(1.0);
    let bytes = files(output).await.iter().map(|(_, m)| m.len()).sum();
    tracing::info!(output = %output.display(), duration_secs, ?renditions, bytes, "VOD built");
    Ok(VodOutput {
        duration_secs,
        renditions,
        bytes,
    })
}
