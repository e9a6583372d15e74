//! Tests with a real ffmpeg: the live LL-HLS segmenter, the recording a live ingest
//! keeps, and the VODs and clips made of a recording.

mod clip;
mod live;
mod segmenter;
mod vod;

use std::path::Path;
use std::process::Stdio;

use crate::playlist::{self, Segment};

/// Writes a `seconds`-long recording of a 640x360 test pattern with a tone to
/// `dir/recording.m3u8` (1 s segments), appended after a discontinuity when the playlist
/// exists — what a reconnect within the grace window leaves.
pub(crate) fn record_test_pattern(dir: &Path, seconds: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-c:a",
            "aac",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "0",
        ])
        .args([
            "-hls_flags",
            "append_list+discont_start+independent_segments",
        ])
        .arg("-hls_segment_filename")
        .arg(dir.join("seg_%05d.ts"))
        .arg(dir.join(crate::RECORDING_PLAYLIST))
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

/// The segments of a recording playlist.
pub(crate) fn recorded(playlist: &[u8]) -> Vec<Segment> {
    playlist::segments(std::str::from_utf8(playlist).unwrap())
}

/// ffprobe's `entries` of a media file, as `key=value` lines.
pub(crate) fn ffprobe(path: &Path, entries: &str) -> String {
    ffprobe_with(path, &["-show_entries", entries])
}

/// ffprobe's answer to `options` (`-show_entries`, stream selection…) about a media file,
/// as `key=value` lines.
pub(crate) fn ffprobe_with(path: &Path, options: &[&str]) -> String {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "default=noprint_wrappers=1"])
        .args(options)
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}
