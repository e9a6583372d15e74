//! The master playlist, written by us rather than ffmpeg: ffmpeg leaves out any rendition
//! whose bitrate it does not know (a copied stream without bitrate metadata, which is
//! what most RTMP publishers send), and players would never see the source quality.
//! Each rendition's BANDWIDTH is measured from its first segment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::transcoder::{MASTER_PLAYLIST, RENDITIONS};

/// The first segment a rendition playlist lists: (duration in seconds, file name).
fn first_segment(playlist: &str) -> Option<(f64, &str)> {
    let mut lines = playlist.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("#EXTINF:") {
            let seconds: f64 = info.split(',').next()?.trim().parse().ok()?;
            let uri = lines
                .by_ref()
                .find(|l| !l.starts_with('#') && !l.trim().is_empty())?;
            return Some((seconds, uri.trim()));
        }
    }
    None
}

/// Peak bits per second of a rendition, from its first segment, or None if it has none.
async fn measured_bandwidth(rendition_dir: &Path) -> Option<u64> {
    let playlist = tokio::fs::read_to_string(rendition_dir.join("index.m3u8"))
        .await
        .ok()?;
    let (seconds, uri) = first_segment(&playlist)?;
    let bytes = tokio::fs::metadata(rendition_dir.join(uri))
        .await
        .ok()?
        .len();
    // 20 % headroom: the first segment is a sample, not the peak.
    Some((bytes as f64 * 8.0 / seconds.max(0.1) * 1.2) as u64)
}

fn render(bandwidths: &[u64]) -> String {
    let mut master = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (rendition, bandwidth) in RENDITIONS.iter().zip(bandwidths) {
        master.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}\n{rendition}/index.m3u8\n"
        ));
    }
    master
}

/// Waits until every rendition has a segment, then writes the master playlist
/// atomically and records the publish → playable time (the review's stream start
/// latency). Gives up after `limit`.
pub(crate) async fn publish_when_ready(output: PathBuf, started: Instant, limit: Duration) {
    let deadline = started + limit;
    while Instant::now() < deadline {
        let mut bandwidths = Vec::with_capacity(RENDITIONS.len());
        for rendition in RENDITIONS {
            match measured_bandwidth(&output.join(rendition)).await {
                Some(bandwidth) => bandwidths.push(bandwidth),
                None => break,
            }
        }
        if bandwidths.len() == RENDITIONS.len() {
            let temporary = output.join(format!("{MASTER_PLAYLIST}.tmp"));
            let written = tokio::fs::write(&temporary, render(&bandwidths)).await;
            if let Err(e) =
                written.and(tokio::fs::rename(&temporary, output.join(MASTER_PLAYLIST)).await)
            {
                tracing::error!(error = %e, "cannot write the master playlist");
                return;
            }
            metrics::histogram!("ingest_first_playlist_seconds")
                .record(started.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(output = %output.display(), "no playable HLS within {limit:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_segment() {
        let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.000000,\n#EXT-X-PROGRAM-DATE-TIME:x\nseg_00003.ts\n";
        assert_eq!(first_segment(playlist), Some((1.0, "seg_00003.ts")));
        assert_eq!(first_segment("#EXTM3U\n"), None);
    }

    #[test]
    fn lists_every_rendition() {
        let master = render(&[6_000_000, 900_000]);
        assert!(master.contains("BANDWIDTH=6000000\nsource/index.m3u8"));
        assert!(master.contains("BANDWIDTH=900000\n360p/index.m3u8"));
    }
}
