//! The master playlist, written by us rather than ffmpeg: ffmpeg leaves out any rendition
//! whose bitrate it does not know (a copied stream without bitrate metadata, which is
//! what most RTMP publishers send), and players would never see the source quality.
//! Each rendition's BANDWIDTH and AVERAGE-BANDWIDTH are measured from its segments (a
//! live one's first segment), and its RESOLUTION, CODECS and FRAME-RATE read from a
//! segment by ffprobe, so players can label their quality menus, pick by bitrate and
//! skip renditions they cannot decode (RFC 8216 §4.3.4.2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::ffmpeg;
use crate::playlist;
use crate::recording::{LIVE_PLAYLIST, RECORDING_PLAYLIST};
use crate::transcoder::MASTER_PLAYLIST;

/// One rendition as the master playlist describes it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Variant {
    /// Peak and average bits per second.
    bandwidth: u64,
    average_bandwidth: u64,
    resolution: Option<(u32, u32)>,
    /// RFC 6381 codec names; empty when a codec is not one we can name exactly (a wrong
    /// CODECS makes players skip the rendition, a missing one only makes them probe).
    codecs: Vec<String>,
    frame_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbedStream>,
}

#[derive(Debug, Deserialize)]
struct ProbedStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    level: Option<i64>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
}

/// The RFC 6381 name of an H.264 or AAC stream: `avc1.PPCCLL`, `mp4a.40.N`.
fn codec_name(stream: &ProbedStream) -> Option<String> {
    match stream.codec_name.as_deref()? {
        "h264" => {
            let (profile, constraints) = match stream.profile.as_deref()? {
                "Constrained Baseline" => (0x42, 0xE0),
                "Baseline" => (0x42, 0x00),
                "Main" => (0x4D, 0x40),
                "High" => (0x64, 0x00),
                "High 10" => (0x6E, 0x00),
                "High 4:2:2" => (0x7A, 0x00),
                "High 4:4:4 Predictive" => (0xF4, 0x00),
                _ => return None,
            };
            let level = u8::try_from(stream.level?).ok()?;
            Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
        }
        "aac" => Some(match stream.profile.as_deref() {
            Some("HE-AAC") => "mp4a.40.5".into(),
            Some("HE-AACv2") => "mp4a.40.29".into(),
            _ => "mp4a.40.2".into(),
        }),
        "mp3" => Some("mp4a.40.34".into()),
        _ => None,
    }
}

/// `30000/1001` → 29.97; `0/0` (unknown) → None.
fn frame_rate(rate: &str) -> Option<f64> {
    let (num, den) = rate.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

impl Variant {
    fn from_probe((bandwidth, average_bandwidth): (u64, u64), probe: &Probe) -> Self {
        let video = probe
            .streams
            .iter()
            .find(|s| s.codec_type.as_deref() == Some("video"));
        let codecs: Option<Vec<String>> = probe
            .streams
            .iter()
            .filter(|s| matches!(s.codec_type.as_deref(), Some("video" | "audio")))
            .map(codec_name)
            .collect();
        Self {
            bandwidth,
            average_bandwidth,
            resolution: video.and_then(|v| Some((v.width?, v.height?))),
            codecs: codecs.unwrap_or_default(),
            frame_rate: video.and_then(|v| {
                v.avg_frame_rate
                    .as_deref()
                    .and_then(frame_rate)
                    .or_else(|| v.r_frame_rate.as_deref().and_then(frame_rate))
            }),
        }
    }

    fn stream_inf(&self) -> String {
        let mut line = format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            self.bandwidth, self.average_bandwidth
        );
        if let Some((width, height)) = self.resolution {
            line.push_str(&format!(",RESOLUTION={width}x{height}"));
        }
        if !self.codecs.is_empty() {
            line.push_str(&format!(",CODECS=\"{}\"", self.codecs.join(",")));
        }
        if let Some(rate) = self.frame_rate {
            line.push_str(&format!(",FRAME-RATE={rate:.3}"));
        }
        line
    }
}

/// ffprobe's view of a segment's streams; None when it cannot tell (then the variant
/// carries its bandwidth only).
async fn probe(ffprobe: &Path, segment: &Path) -> Option<Probe> {
    let entries =
        "stream=codec_type,codec_name,profile,level,width,height,avg_frame_rate,r_frame_rate";
    ffmpeg::probe(ffprobe, &["-i".as_ref(), segment.as_os_str()], entries)
        .await
        .ok()
}

/// The first segment of a rendition, once it has one: its path and duration in seconds.
async fn first_segment_of(rendition_dir: &Path) -> Option<(PathBuf, f64)> {
    let playlist = tokio::fs::read_to_string(rendition_dir.join(LIVE_PLAYLIST))
        .await
        .ok()?;
    let first = playlist::segments(&playlist).into_iter().next()?;
    Some((rendition_dir.join(first.uri), first.seconds))
}

/// A rendition's variant line: `bandwidths` (peak, average) in bits per second, the
/// rest probed from `segment`.
async fn describe(ffprobe: &Path, segment: &Path, bandwidths: (u64, u64)) -> Variant {
    match probe(ffprobe, segment).await {
        Some(probed) => Variant::from_probe(bandwidths, &probed),
        None => Variant {
            bandwidth: bandwidths.0,
            average_bandwidth: bandwidths.1,
            ..Variant::default()
        },
    }
}

/// Bits per second of `bytes` lasting `seconds`.
fn bits_per_second(bytes: u64, seconds: f64) -> u64 {
    (bytes as f64 * 8.0 / seconds.max(0.1)) as u64
}

/// A live rendition's variant, from its first segment: its bitrate as the average, with
/// 20 % headroom as the peak (one segment is a sample, not the peak), the rest probed.
async fn describe_live(ffprobe: &Path, segment: &Path, seconds: f64) -> Option<Variant> {
    let average = bits_per_second(tokio::fs::metadata(segment).await.ok()?.len(), seconds);
    Some(describe(ffprobe, segment, (average * 6 / 5, average)).await)
}

/// A master playlist over `(variant, media playlist URI)` pairs.
fn render<'a>(variants: impl IntoIterator<Item = (&'a Variant, String)>) -> String {
    let mut master = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (variant, uri) in variants {
        master.push_str(&format!("{}\n{uri}\n", variant.stream_inf()));
    }
    master
}

/// The live renditions' master over their `playlist` (the live or the recording one).
fn render_live(variants: &[Variant], renditions: &[String], playlist: &str) -> String {
    render(
        variants
            .iter()
            .zip(renditions)
            .map(|(variant, rendition)| (variant, format!("{rendition}/{playlist}"))),
    )
}

/// Waits until every rendition (directory names under `output`) has a segment, then
/// writes the master playlist (and the recording's master when `record`) atomically and
/// records the publish → playable time (the review's stream start latency). Gives up
/// after `limit`.
pub(crate) async fn publish_when_ready(
    output: PathBuf,
    renditions: Vec<String>,
    (ffprobe, record): (PathBuf, bool),
    started: Instant,
    limit: Duration,
) {
    let deadline = started + limit;
    while Instant::now() < deadline {
        let mut segments = Vec::with_capacity(renditions.len());
        for rendition in &renditions {
            match first_segment_of(&output.join(rendition)).await {
                Some(segment) => segments.push(segment),
                None => break,
            }
        }
        let described = if segments.len() == renditions.len() {
            let probes = segments
                .iter()
                .map(|(path, seconds)| describe_live(&ffprobe, path, *seconds));
            futures_util::future::join_all(probes)
                .await
                .into_iter()
                .collect::<Option<Vec<_>>>()
        } else {
            None
        };
        if let Some(mut variants) = described {
            // The rungs carry the source's frames; their encoders only guessed its rate
            // from the first quarter second (29.97 for 30 fps), so the source's names all.
            if let Some(rate) = variants.first().and_then(|source| source.frame_rate) {
                variants.iter_mut().for_each(|v| v.frame_rate = Some(rate));
            }
            let mut masters = vec![(MASTER_PLAYLIST, LIVE_PLAYLIST)];
            if record {
                masters.push((RECORDING_PLAYLIST, RECORDING_PLAYLIST));
            }
            for (master, playlist) in masters {
                let contents = render_live(&variants, &renditions, playlist);
                let path = output.join(master);
                if let Err(e) = playlist::write_atomically(&path, &contents).await {
                    tracing::error!(error = %e, master, "cannot write a master playlist");
                    return;
                }
            }
            metrics::histogram!("ingest_first_playlist_seconds")
                .record(started.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(output = %output.display(), "no playable HLS within {limit:?}");
}

/// Writes `dir/master.m3u8` over the VOD renditions `dir/<rendition>/index.m3u8`, each
/// with its measured peak and average bitrates.
pub(crate) async fn write_vod_master(
    ffprobe: &Path,
    dir: &Path,
    renditions: &[String],
) -> std::io::Result<()> {
    let mut variants = Vec::with_capacity(renditions.len());
    for rendition in renditions {
        let rendition_dir = dir.join(rendition);
        let live = tokio::fs::read_to_string(rendition_dir.join(LIVE_PLAYLIST)).await?;
        let segments = playlist::segments(&live);
        let (mut peak, mut total_bytes) = (0u64, 0u64);
        for segment in &segments {
            let bytes = tokio::fs::metadata(rendition_dir.join(&segment.uri))
                .await?
                .len();
            peak = peak.max(bits_per_second(bytes, segment.seconds));
            total_bytes += bytes;
        }
        let seconds = segments.iter().map(|s| s.seconds).sum();
        let average = bits_per_second(total_bytes, seconds);
        let first = segments.first().ok_or(std::io::ErrorKind::InvalidData)?;
        let bandwidths = (peak, average);
        variants.push(describe(ffprobe, &rendition_dir.join(&first.uri), bandwidths).await);
    }
    let master = render(
        variants
            .iter()
            .zip(renditions)
            .map(|(variant, rendition)| (variant, format!("{rendition}/{LIVE_PLAYLIST}"))),
    );
    playlist::write_atomically(&dir.join(MASTER_PLAYLIST), &master).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(kind: &str, codec: &str, profile: &str, level: i64) -> ProbedStream {
        ProbedStream {
            codec_type: Some(kind.into()),
            codec_name: Some(codec.into()),
            profile: Some(profile.into()),
            level: Some(level),
            width: (kind == "video").then_some(1280),
            height: (kind == "video").then_some(720),
            avg_frame_rate: Some("0/0".into()),
            r_frame_rate: Some("30000/1001".into()),
        }
    }

    #[test]
    fn lists_every_rendition_with_what_players_need() {
        let probe = Probe {
            streams: vec![
                stream("video", "h264", "High", 31),
                stream("audio", "aac", "LC", -99),
            ],
        };
        let source = Variant::from_probe((6_000_000, 5_000_000), &probe);
        let bare = Variant {
            bandwidth: 900_000,
            average_bandwidth: 750_000,
            ..Variant::default()
        };
        let renditions = ["source".to_owned(), "360p".to_owned()];
        let master = render_live(&[source, bare], &renditions, LIVE_PLAYLIST);
        assert!(
            master.contains(
                "#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=5000000,\
                 RESOLUTION=1280x720,CODECS=\"avc1.64001F,mp4a.40.2\",FRAME-RATE=29.970\n\
                 source/index.m3u8"
            ),
            "{master}"
        );
        assert!(
            master.contains("BANDWIDTH=900000,AVERAGE-BANDWIDTH=750000\n360p/index.m3u8"),
            "{master}"
        );
    }

    #[test]
    fn names_codecs_exactly_or_not_at_all() {
        let named = |codec, profile, level| codec_name(&stream("video", codec, profile, level));
        assert_eq!(
            named("h264", "Constrained Baseline", 30).as_deref(),
            Some("avc1.42E01E")
        );
        assert_eq!(named("h264", "Main", 40).as_deref(), Some("avc1.4D4028"));
        assert_eq!(named("h264", "Mystery", 40), None);
        assert_eq!(named("hevc", "Main", 93), None);
        let probe = Probe {
            streams: vec![
                stream("video", "hevc", "Main", 93),
                stream("audio", "aac", "LC", 0),
            ],
        };
        assert!(
            Variant::from_probe((1, 1), &probe).codecs.is_empty(),
            "all or none"
        );
        assert_eq!(frame_rate("25/1"), Some(25.0));
        assert_eq!(frame_rate("0/0"), None);
    }
}
