//! A clip: a range of a recording as its own HLS VOD playlist and a thumbnail, made by a
//! smart cut — the recording's whole segments inside the range are copied byte for byte
//! and only the edges are encoded.
//!
//! ffmpeg's HLS muxer cuts a copied video stream at keyframes only, so a recording's
//! segments start with one; each segment to copy is still checked (its first video
//! packet's flags), and one that does not joins the encoded edge. The head, from the
//! asked start to the first segment boundary at or after it, is encoded (libx264 at the
//! configured preset, threads and nice; AAC; MPEG-TS) unless the start is on a boundary
//! (within about a frame). So is the tail, from the last boundary to the asked end,
//! unless the end is on one: a copy could stop at any packet, but it stops in decode
//! order, and with B-frames (a publisher's x264 uses them) that drops frames shown
//! before the end or keeps a reference frame shown after it; encoding the tail costs
//! less than one segment and makes the end frame-accurate. A range inside one segment is
//! encoded as one part. A clip of a minute thus encodes about two segments' worth instead
//! of the minute (bench/RESULTS.md, archive processing).
//!
//! HLS over MPEG-TS rather than one MP4: a TS segment carries its SPS/PPS in band, so the
//! encoded edges and the copied segments — two encoders, different parameter sets — play
//! in sequence across an `#EXT-X-DISCONTINUITY`, where an MP4 has one `avcC` per track.

use std::ops::Range;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use crate::ffmpeg;
use crate::mirror::files;
use crate::playlist::{self, Segment};
use crate::vod::{Recording, VodError, VodSettings, duration, failed, local_segments, thumbnail};

/// The clip's playlist in the output directory, its segments beside it.
const CLIP_PLAYLIST: &str = "index.m3u8";
/// The clip's still, beside it.
const CLIP_THUMBNAIL: &str = "thumbnail.jpg";
/// Rounding in a recording's listed duration that a range may overrun.
const SLACK_SECONDS: f64 = 0.05;
/// An end of the range this close to a segment boundary (about a frame) is on it.
const ON_BOUNDARY_SECONDS: f64 = 0.05;
/// Segments checked for a leading keyframe at once (each check is one short ffprobe).
const PROBES: usize = 4;

/// Seconds of a recording, from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRange {
    pub start_secs: f64,
    pub duration_secs: f64,
}

/// What [`cut_clip`] wrote: `index.m3u8`, its segments and `thumbnail.jpg`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipOutput {
    /// The sum of the parts: encoded ones as measured, copied ones as listed.
    pub duration_secs: f64,
    /// Bytes written in all.
    pub bytes: u64,
}

/// A part of the clip, in playlist order.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Seconds of the recording to encode.
    Encode { start: f64, end: f64 },
    /// A segment of the recording (its index) to copy.
    Copy(usize),
}

/// Where each segment starts, and the end of the last: `segments.len() + 1` boundaries.
fn boundaries(segments: &[Segment]) -> Vec<f64> {
    let mut at = 0.0;
    let mut bounds = vec![at];
    for segment in segments {
        at += segment.seconds;
        bounds.push(at);
    }
    bounds
}

/// The segments wholly inside `start..end` (empty when none is).
fn whole_segments(bounds: &[f64], start: f64, end: f64) -> Range<usize> {
    let first = bounds
        .iter()
        .position(|b| *b >= start - ON_BOUNDARY_SECONDS);
    let last = bounds.iter().rposition(|b| *b <= end + ON_BOUNDARY_SECONDS);
    match (first, last) {
        (Some(first), Some(last)) if first < last => first..last,
        _ => 0..0,
    }
}

/// The clip of `start..end` with the segments `copied` copied: an encoded head and
/// tail around them where the range does not end on their boundaries.
fn parts(bounds: &[f64], copied: Range<usize>, start: f64, end: f64) -> Vec<Part> {
    if copied.is_empty() {
        return vec![Part::Encode { start, end }];
    }
    let (from, to) = (bounds[copied.start], bounds[copied.end]);
    let head = (from - start > ON_BOUNDARY_SECONDS).then_some(Part::Encode { start, end: from });
    let tail = (end - to > ON_BOUNDARY_SECONDS).then_some(Part::Encode { start: to, end });
    head.into_iter()
        .chain(copied.map(Part::Copy))
        .chain(tail)
        .collect()
}

#[derive(Debug, Deserialize)]
struct Packets {
    #[serde(default)]
    packets: Vec<Packet>,
}

#[derive(Debug, Deserialize)]
struct Packet {
    flags: Option<String>,
}

/// Whether the first video packet of the media file `segment` is a keyframe.
async fn starts_with_keyframe(ffprobe: &Path, segment: PathBuf) -> Result<bool, VodError> {
    let input = ["-select_streams", "v:0", "-read_intervals", "%+#1", "-i"].map(AsRef::as_ref);
    let input: Vec<_> = input.into_iter().chain([segment.as_os_str()]).collect();
    let probe: Packets = ffmpeg::probe(ffprobe, &input, "packet=flags")
        .await
        .map_err(VodError::InvalidInput)?;
    let first = probe.packets.first().and_then(|p| p.flags.as_deref());
    Ok(first.is_some_and(|flags| flags.starts_with('K')))
}

/// Of the segments `candidates` (files in `dir`), the run to copy: from the first that
/// starts with a keyframe up to the next that does not.
async fn copyable(
    ffprobe: &Path,
    dir: &Path,
    segments: &[Segment],
    candidates: Range<usize>,
) -> Result<Range<usize>, VodError> {
    let keyframes: Vec<bool> = futures_util::stream::iter(candidates.clone())
        .map(|i| starts_with_keyframe(ffprobe, dir.join(&segments[i].uri)))
        .buffered(PROBES)
        .try_collect()
        .await?;
    let skipped = keyframes.iter().take_while(|k| !**k).count();
    let run = keyframes[skipped..].iter().take_while(|k| **k).count();
    let start = candidates.start + skipped;
    Ok(start..start + run)
}

/// The segment at or before `index` that decoding can start from: the nearest that
/// starts with a keyframe, within `index`'s run (a discontinuity starts another
/// stream, which earlier segments cannot help decode).
async fn decodable_from(
    ffprobe: &Path,
    dir: &Path,
    segments: &[Segment],
    mut index: usize,
) -> Result<usize, VodError> {
    while index > 0
        && !segments[index].discontinuity
        && !starts_with_keyframe(ffprobe, dir.join(&segments[index].uri)).await?
    {
        index -= 1;
    }
    Ok(index)
}

/// Encodes `start..end` of `segments` (files in `dir`, laid end to end) into the
/// MPEG-TS file `path`; returns its measured length.
async fn encode(
    settings: &VodSettings,
    dir: &Path,
    segments: &[Segment],
    start: f64,
    end: f64,
    path: &Path,
) -> Result<f64, VodError> {
    let ffprobe = settings.ffprobe();
    let bounds = boundaries(segments);
    // Only the segments that overlap the part are listed, from where decoding can start.
    let first = bounds[1..].iter().position(|b| *b > start).unwrap_or(0);
    let first = decodable_from(&ffprobe, dir, segments, first).await?;
    let last = bounds.iter().rposition(|b| *b < end).map_or(0, |i| i + 1);
    let list = path.with_file_name(".part.ffconcat");
    let input = Recording::of(dir, &segments[first..last.max(first + 1)], list).await?;
    let threads = settings.threads.to_string();
    let mut command = ffmpeg::ffmpeg(&settings.ffmpeg, settings.nice);
    command
        .args(["-threads", &threads])
        .args(input.input())
        // After the input: decode from the listed start and drop the frames up to
        // `start`. A seek in the input would land in the segment holding `start`,
        // which need not hold the keyframe its frames depend on.
        .arg("-ss")
        .arg(format!("{:.6}", start - bounds[first]))
        .arg("-t")
        .arg(format!("{:.6}", end - start))
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
            "-c:a", "aac", "-b:a", "128k", "-threads", &threads, "-f", "mpegts",
        ])
        .arg(path);
    ffmpeg::run(command, end - start, &mut |_| {})
        .await
        .map_err(failed)?;
    drop(input);
    duration(&ffprobe, path).await
}

/// Copies the segment `from` (`seconds` long) into the clip as the MPEG-TS file `to`: a
/// TS segment as it is, an fMP4 one (a live recording's, made whole by the fetch)
/// repackaged with its timestamps kept, so copied segments still follow each other.
async fn copy_segment(
    settings: &VodSettings,
    from: &Path,
    seconds: f64,
    to: &Path,
) -> Result<(), VodError> {
    if from.extension().is_some_and(|e| e == "ts") {
        return tokio::fs::copy(from, to).await.map(drop).map_err(failed);
    }
    let mut command = ffmpeg::ffmpeg(&settings.ffmpeg, settings.nice);
    command
        .arg("-i")
        .arg(from)
        .args(["-map", "0", "-c", "copy", "-copyts", "-f", "mpegts"])
        .arg(to);
    ffmpeg::run(command, seconds, &mut |_| {})
        .await
        .map_err(failed)
}

/// Cuts `range` of the local recording playlist `input` into `output` (see
/// [`ClipOutput`]). InvalidInput when the range is not inside the recording.
pub async fn cut_clip(
    settings: &VodSettings,
    input: &Path,
    range: ClipRange,
    output: &Path,
) -> Result<ClipOutput, VodError> {
    let (dir, segments) = local_segments(input).await?;
    let bounds = boundaries(&segments);
    let recorded = bounds[bounds.len() - 1];
    let ClipRange {
        start_secs: start,
        duration_secs: length,
    } = range;
    let inside = start.is_finite()
        && length.is_finite()
        && start >= 0.0
        && length > 0.0
        && start + length <= recorded + SLACK_SECONDS;
    if !inside {
        return Err(VodError::InvalidInput(format!(
            "the range {start}s + {length}s is outside the recording (0 to {recorded:.3}s)"
        )));
    }
    let end = (start + length).min(recorded);
    let ffprobe = settings.ffprobe();
    let candidates = whole_segments(&bounds, start, end);
    let copied = copyable(&ffprobe, &dir, &segments, candidates).await?;
    tokio::fs::create_dir_all(output).await.map_err(failed)?;

    let mut written: Vec<Segment> = Vec::new();
    let mut encoded = false;
    for (index, part) in parts(&bounds, copied, start, end).into_iter().enumerate() {
        let uri = format!("seg_{index:05}.ts");
        let path = output.join(&uri);
        let (seconds, discontinuity) = match part {
            Part::Encode { start, end } => {
                let seconds = encode(settings, &dir, &segments, start, end, &path).await?;
                (seconds, true)
            }
            Part::Copy(i) => {
                let segment = &segments[i];
                copy_segment(settings, &dir.join(&segment.uri), segment.seconds, &path).await?;
                (segment.seconds, segment.discontinuity || encoded)
            }
        };
        // Across an encoded part's ends the parameter sets and timestamps change.
        encoded = matches!(part, Part::Encode { .. });
        written.push(Segment {
            seconds,
            uri,
            discontinuity: discontinuity && index > 0,
            map: None,
        });
    }
    let playlist = output.join(CLIP_PLAYLIST);
    let text = playlist::render_vod(&written);
    tokio::fs::write(&playlist, text).await.map_err(failed)?;

    let duration_secs = written.iter().map(|s| s.seconds).sum::<f64>();
    let still = output.join(CLIP_THUMBNAIL);
    thumbnail(settings, &playlist, duration_secs * 0.1, &still).await?;
    let bytes = files(output).await.iter().map(|(_, m)| m.len()).sum();
    tracing::info!(output = %output.display(), duration_secs, parts = written.len(), "clip cut");
    Ok(ClipOutput {
        duration_secs,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_edges_off_a_boundary_are_encoded() {
        let bounds = [0.0, 2.0, 4.0, 6.0, 8.0];
        let encode = |start, end| Part::Encode { start, end };
        let plan = |start: f64, end: f64| {
            let copied = whole_segments(&bounds, start, end);
            parts(&bounds, copied, start, end)
        };
        // On boundaries (within a frame): copies only.
        assert_eq!(plan(2.0, 6.0), [Part::Copy(1), Part::Copy(2)]);
        assert_eq!(plan(1.98, 4.03), [Part::Copy(1)]);
        // Off them: a head, a tail, or both.
        assert_eq!(
            plan(1.5, 6.0),
            [encode(1.5, 2.0), Part::Copy(1), Part::Copy(2)]
        );
        assert_eq!(plan(2.0, 5.0), [Part::Copy(1), encode(4.0, 5.0)]);
        assert_eq!(
            plan(0.5, 7.5),
            [
                encode(0.5, 2.0),
                Part::Copy(1),
                Part::Copy(2),
                encode(6.0, 7.5)
            ]
        );
        // No whole segment inside: one encoded part.
        assert_eq!(plan(2.5, 3.5), [encode(2.5, 3.5)]);
        assert_eq!(plan(1.5, 3.5), [encode(1.5, 3.5)]);
        // The copied run shrunk by the keyframe checks.
        assert_eq!(
            parts(&bounds, 2..3, 0.0, 8.0),
            [encode(0.0, 4.0), Part::Copy(2), encode(6.0, 8.0)]
        );
    }
}
