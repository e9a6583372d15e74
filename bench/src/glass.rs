//! Glass-to-glass latency: how long after a frame is captured the segment (regular HLS)
//! or the part (LL-HLS) holding it can be fetched over HTTP, in one broadcast.
//!
//! The publisher paces its test pattern in real time (`-re`) from the moment it is
//! started, so frame `n` is captured no earlier than `start + n / 30`; taking `start`
//! as the spawn instant counts the publisher's own start-up as latency, which overstates
//! it slightly. The source rendition's playlist is polled every 5 ms; a segment or part
//! is fetchable from the first response that lists it (files are written before the
//! playlist that names them). Its frames' media times come from the playlist's
//! durations, laid end to end from the broadcast's first segment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::media::{Ingest, Platform, percentile};

/// The publisher's frame rate (`media::test_pattern`).
const FPS: f64 = 30.0;
/// Units that start before this much media time are left out: their playlist was
/// already out when polling began.
const WARM_UP_SECS: f64 = 3.0;

/// One segment or part: when it was first listed, and its length.
#[derive(Debug, Clone, Copy)]
struct Unit {
    seen: Instant,
    seconds: f64,
}

/// What the polls saw: segments by media sequence number, parts by their order in the
/// broadcast (their names number them).
#[derive(Default)]
struct Seen {
    segments: HashMap<u64, Unit>,
    parts: HashMap<String, Unit>,
}

impl Seen {
    fn read(&mut self, playlist: &str, now: Instant) {
        let mut msn = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")?.parse().ok())
            .unwrap_or(0u64);
        let mut seconds = None;
        for line in playlist.lines() {
            if let Some(part) = line.strip_prefix("#EXT-X-PART:") {
                let attribute = |name: &str| {
                    let value = part.split(',').find_map(|a| a.strip_prefix(name))?;
                    Some(value.trim_matches('"').to_owned())
                };
                if let (Some(uri), Some(length)) = (attribute("URI="), attribute("DURATION=")) {
                    let seconds = length.parse().unwrap_or(0.0);
                    self.parts.entry(uri).or_insert(Unit { seen: now, seconds });
                }
            } else if let Some(info) = line.strip_prefix("#EXTINF:") {
                seconds = info.split(',').next().and_then(|s| s.parse().ok());
            } else if !line.starts_with('#') && !line.is_empty() {
                let seconds = seconds.take().unwrap_or(0.0);
                self.segments
                    .entry(msn)
                    .or_insert(Unit { seen: now, seconds });
                msn += 1;
            }
        }
    }
}

/// Each frame's capture → fetchable latency over `units` laid end to end from media
/// time 0, for a publisher started at `start`; frames of units that began during the
/// warm-up are left out.
fn frame_latencies(units: impl IntoIterator<Item = Unit>, start: Instant) -> Vec<Duration> {
    let (mut media, mut latencies) = (0.0, Vec::new());
    for unit in units {
        if media >= WARM_UP_SECS {
            let frames = (unit.seconds * FPS).round() as u32;
            for frame in 0..frames {
                let captured = start + Duration::from_secs_f64(media + f64::from(frame) / FPS);
                latencies.push(unit.seen.saturating_duration_since(captured));
            }
        }
        media += unit.seconds;
    }
    latencies.sort();
    latencies
}

/// Publishes for `window` over RTMP, then over SRT, and prints the table.
pub(crate) async fn run(platform: &Platform, window: Duration) -> anyhow::Result<()> {
    println!(
        "Glass-to-glass: frame captured → fetchable over HTTP ({:.0} s of a 720p30 source per ingest, \
         1 s keyframes, 1 s segments, 1/3 s parts; every frame after the first {WARM_UP_SECS:.0} s; \
         SRT with 120 ms latency)\n",
        window.as_secs_f64()
    );
    println!(
        "| ingest | delivery | unit | frames | p50 s | p95 s | max s | p95 < 2 s (LL target) |\n|---|---|---|---:|---:|---:|---:|---|"
    );
    for ingest in [Ingest::Rtmp, Ingest::Srt] {
        measure(platform, ingest, window).await?;
    }
    println!();
    Ok(())
}

/// Publishes over `ingest` for `window` and prints its rows.
async fn measure(platform: &Platform, ingest: Ingest, window: Duration) -> anyhow::Result<()> {
    eprintln!("glass-to-glass over {ingest:?} for {window:?}…");
    let (user, key) = platform.creator(&format!("glass_{ingest:?}")).await?;
    let (mut broadcast, elapsed) = platform
        .go_live_over(ingest, (&user, &key), "1280x720")
        .await?;
    let start = Instant::now() - elapsed;
    let url = format!(
        "{}/live/{}/source/index.m3u8",
        platform.http, broadcast.stream_id
    );
    let mut seen = Seen::default();
    let polling = Instant::now();
    while polling.elapsed() < window {
        let playlist = platform.client.get(&url).send().await?.text().await?;
        seen.read(&playlist, Instant::now());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    broadcast.publisher.kill().await?;

    let mut segments: Vec<(u64, Unit)> = seen.segments.into_iter().collect();
    segments.sort_by_key(|(msn, _)| *msn);
    anyhow::ensure!(
        segments.first().is_some_and(|(msn, _)| *msn == 0),
        "segment 0 not seen"
    );
    let mut parts: Vec<(String, Unit)> = seen.parts.into_iter().collect();
    parts.sort_by(|(a, _), (b, _)| a.cmp(b));
    // Parts are listed for the newest segments only: polling began early enough that
    // the broadcast's first part (numbered 0) was still listed.
    anyhow::ensure!(
        parts
            .first()
            .is_some_and(|(uri, _)| uri.ends_with("_00000.m4s")),
        "the first part was not seen"
    );

    for (delivery, unit, latencies) in [
        (
            "regular HLS",
            "segment",
            frame_latencies(segments.into_iter().map(|(_, u)| u), start),
        ),
        (
            "LL-HLS",
            "part",
            frame_latencies(parts.into_iter().map(|(_, u)| u), start),
        ),
    ] {
        anyhow::ensure!(!latencies.is_empty(), "no {unit} after the warm-up");
        let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
        let p95 = percentile(&latencies, 0.95);
        println!(
            "| {ingest:?} | {delivery} | {unit} | {} | {} | {} | {} | {} |",
            latencies.len(),
            secs(percentile(&latencies, 0.50)),
            secs(p95),
            secs(latencies[latencies.len() - 1]),
            if p95 < Duration::from_secs(2) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wait_for_the_unit_that_holds_them() {
        let start = Instant::now();
        let unit = |seen: f64| Unit {
            seen: start + Duration::from_secs_f64(seen),
            seconds: 1.0,
        };
        // Four one-second units, each listed 0.5 s after its last frame was captured.
        let units = (0..4).map(|n| unit(f64::from(n) + 1.5));
        let latencies = frame_latencies(units, start);
        // Only the fourth unit is past the warm-up: its 30 frames wait 1.5 s down to 0.53 s.
        assert_eq!(latencies.len(), 30);
        assert!((latencies[29].as_secs_f64() - 1.5).abs() < 1e-6);
        assert!((latencies[0].as_secs_f64() - (0.5 + 1.0 / 30.0)).abs() < 1e-6);
    }
}
