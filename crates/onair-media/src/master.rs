//! The master playlist, written by us rather than ffmpeg: ffmpeg leaves out any rendition
//! whose bitrate it does not know (a copied stream without bitrate metadata, which is
//! what most RTMP publishers send), and players would never see the source quality.
//! Each rendition's BANDWIDTH and AVERAGE-BANDWIDTH are measured from its segments (a
//! live one's first segment), and its RESOLUTION, CODECS and FRAME-RATE read from a
//! segment (`fmp4.rs` for live CMAF, `mpegts.rs` for VOD; in process: no ffprobe between
//! a publisher and a playable stream), so players can label their quality menus, pick by bitrate and skip
//! renditions they cannot decode (RFC 8216 §4.3.4.2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::contents::Contents;
use crate::playlist;
use crate::recording::{LIVE_PLAYLIST, RECORDING_PLAYLIST};
use crate::transcoder::MASTER_PLAYLIST;
use crate::{fmp4, mpegts, segmenter};

/// How often a starting broadcast's renditions are checked for their first segment.
const READY_POLL: Duration = Duration::from_millis(10);

/// One rendition as the master playlist describes it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Variant {
    /// Peak and average bits per second.
    bandwidth: u64,
    average_bandwidth: u64,
    contents: Contents,
}

impl Variant {
    fn stream_inf(&self) -> String {
        let mut line = format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            self.bandwidth, self.average_bandwidth
        );
        let contents = &self.contents;
        if let Some((width, height)) = contents.resolution {
            line.push_str(&format!(",RESOLUTION={width}x{height}"));
        }
        if !contents.codecs.is_empty() {
            line.push_str(&format!(",CODECS=\"{}\"", contents.codecs.join(",")));
        }
        if let Some(rate) = contents.frame_rate {
            line.push_str(&format!(",FRAME-RATE={rate:.3}"));
        }
        line
    }
}

/// The first segment `publish` made in a rendition, once there is one (a resumed
/// broadcast's playlist starts with the previous publish's, which may differ).
async fn first_segment_of(rendition_dir: &Path, publish: &str) -> Option<FirstSegment> {
    let playlist = tokio::fs::read_to_string(rendition_dir.join(LIVE_PLAYLIST))
        .await
        .ok()?;
    let first = playlist::segments(&playlist).into_iter().find(|segment| {
        (segment.map.as_deref()).is_some_and(|map| segmenter::is_initialization_of(map, publish))
    })?;
    Some(FirstSegment {
        path: rendition_dir.join(first.uri),
        init: first.map.map(|map| rendition_dir.join(map)),
        seconds: first.seconds,
    })
}

struct FirstSegment {
    path: PathBuf,
    /// Its initialization, for fMP4.
    init: Option<PathBuf>,
    seconds: f64,
}

/// Bits per second of `bytes` lasting `seconds`.
fn bits_per_second(bytes: u64, seconds: f64) -> u64 {
    (bytes as f64 * 8.0 / seconds.max(0.1)) as u64
}

/// A live rendition's variant, from its first segment: its bitrate as the average, with
/// 20 % headroom as the peak (one segment is a sample, not the peak).
async fn describe_live(segment: &FirstSegment) -> Option<Variant> {
    let bytes = tokio::fs::read(&segment.path).await.ok()?;
    let average = bits_per_second(bytes.len() as u64, segment.seconds);
    let contents = match &segment.init {
        Some(init) => fmp4::contents(&tokio::fs::read(init).await.ok()?, &bytes),
        None => mpegts::contents(&bytes),
    };
    Some(Variant {
        bandwidth: average * 6 / 5,
        average_bandwidth: average,
        contents,
    })
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

/// Waits until every rendition (directory names under `output`) has a segment of this
/// `publish` (the tag in its file names), then writes the master playlist (and the
/// recording's master when `record`) atomically and records the publish → playable time
/// (the review's stream start latency). Gives up after `limit`.
pub(crate) async fn publish_when_ready(
    output: PathBuf,
    (renditions, publish): (Vec<String>, String),
    record: bool,
    started: Instant,
    limit: Duration,
) {
    let deadline = started + limit;
    while Instant::now() < deadline {
        let mut segments = Vec::with_capacity(renditions.len());
        for rendition in &renditions {
            match first_segment_of(&output.join(rendition), &publish).await {
                Some(segment) => segments.push(segment),
                None => break,
            }
        }
        let described = if segments.len() == renditions.len() {
            let mut variants = Vec::with_capacity(segments.len());
            for segment in &segments {
                variants.extend(describe_live(segment).await);
            }
            (variants.len() == segments.len()).then_some(variants)
        } else {
            None
        };
        if let Some(mut variants) = described {
            // The rungs carry the source's frames; their encoders only guessed its rate
            // from the first quarter second (29.97 for 30 fps), so the source's names all.
            let source_rate = variants
                .first()
                .and_then(|source| source.contents.frame_rate);
            if let Some(rate) = source_rate {
                variants
                    .iter_mut()
                    .for_each(|v| v.contents.frame_rate = Some(rate));
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
        tokio::time::sleep(READY_POLL).await;
    }
    tracing::warn!(output = %output.display(), "no playable HLS within {limit:?}");
}

/// Writes `dir/master.m3u8` over the VOD renditions `dir/<rendition>/index.m3u8`, each
/// with its measured peak and average bitrates.
pub(crate) async fn write_vod_master(dir: &Path, renditions: &[String]) -> std::io::Result<()> {
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
        let first = tokio::fs::read(rendition_dir.join(&first.uri)).await?;
        variants.push(Variant {
            bandwidth: peak,
            average_bandwidth: average,
            contents: mpegts::contents(&first),
        });
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

    #[tokio::test]
    async fn a_resumed_broadcast_is_described_by_its_new_publish() {
        let dir = tempfile::tempdir().unwrap();
        let previous =
            "#EXTM3U\n#EXT-X-MAP:URI=\"init_00000_aaaaaa.mp4\"\n#EXTINF:1.000,\nseg_00000.m4s\n";
        std::fs::write(dir.path().join(LIVE_PLAYLIST), previous).unwrap();
        assert!(first_segment_of(dir.path(), "bbbbbb").await.is_none());

        let resumed = format!(
            "{previous}#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_00001_bbbbbb.mp4\"\n#EXTINF:1.000,\nseg_00001.m4s\n"
        );
        std::fs::write(dir.path().join(LIVE_PLAYLIST), resumed).unwrap();
        let first = first_segment_of(dir.path(), "bbbbbb").await.unwrap();
        assert_eq!(first.path, dir.path().join("seg_00001.m4s"));
        assert_eq!(first.init, Some(dir.path().join("init_00001_bbbbbb.mp4")));
    }

    #[test]
    fn lists_every_rendition_with_what_players_need() {
        let source = Variant {
            bandwidth: 6_000_000,
            average_bandwidth: 5_000_000,
            contents: Contents {
                resolution: Some((1280, 720)),
                codecs: vec!["avc1.64001F".into(), "mp4a.40.2".into()],
                frame_rate: Some(30_000.0 / 1001.0),
            },
        };
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
}
