//! Clips of a recording, with a real ffmpeg: the whole segments inside the range copied,
//! only the edges encoded.

use std::path::Path;
use std::process::Stdio;

use super::vod::{input, recording};
use super::{ffprobe, ffprobe_with, recorded};
use crate::{ClipOutput, ClipRange, RECORDING_PLAYLIST, VodError, VodSettings, cut_clip};

/// Cuts `start_secs` + `duration_secs` of the playlist in `source`; the clip and its
/// playlist.
async fn cut(
    source: &Path,
    start_secs: f64,
    duration_secs: f64,
) -> (tempfile::TempDir, ClipOutput, String) {
    let output = tempfile::tempdir().unwrap();
    let range = ClipRange {
        start_secs,
        duration_secs,
    };
    let clip = cut_clip(
        &VodSettings::default(),
        &source.join(RECORDING_PLAYLIST),
        range,
        output.path(),
    )
    .await
    .unwrap();
    let playlist = std::fs::read_to_string(output.path().join("index.m3u8")).unwrap();
    (output, clip, playlist)
}

/// Whether the clip's segment `index` is the recording's segment `name`, byte for byte.
fn copied(output: &Path, index: usize, source: &Path, name: &str) -> bool {
    let written = std::fs::read(output.join(format!("seg_{index:05}.ts"))).unwrap();
    written == std::fs::read(source.join(name)).unwrap()
}

/// The clip's video frames, decoded through its playlist, at 30 per second.
fn decoded_secs(output: &Path) -> f64 {
    let options = ["-select_streams", "v:0", "-count_frames"];
    let options = [&options[..], &["-show_entries", "stream=nb_read_frames"]].concat();
    let frames = ffprobe_with(&output.join("index.m3u8"), &options);
    // Listed once for the program and once for the stream.
    let frames: f64 = frames
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("nb_read_frames="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{frames}"));
    frames / 30.0
}

/// The parts of a cut as what they are: `copy` or `encode`, in order.
fn kinds(output: &Path, source: &Path, playlist: &str) -> Vec<&'static str> {
    let names: Vec<String> = recorded(&std::fs::read(source.join(RECORDING_PLAYLIST)).unwrap())
        .into_iter()
        .map(|s| s.uri)
        .collect();
    let written = recorded(playlist.as_bytes());
    (0..written.len())
        .map(
            |i| match names.iter().any(|n| copied(output, i, source, n)) {
                true => "copy",
                false => "encode",
            },
        )
        .collect()
}

#[tokio::test]
async fn a_start_on_a_boundary_copies_and_a_start_off_one_encodes_the_edges() {
    let source = recording();
    let source = source.path();

    // 2 s to 5 s of 1 s segments: copied only, byte for byte.
    let (output, clip, playlist) = cut(source, 2.0, 3.0).await;
    assert_eq!(kinds(output.path(), source, &playlist), ["copy"; 3]);
    assert!(copied(output.path(), 0, source, "seg_00002.ts"));
    assert!((clip.duration_secs - 3.0).abs() < 0.1, "{clip:?}");

    // 2.5 s to 5.5 s, across the reconnect at 4 s: a head and a tail encoded, a
    // discontinuity at each of their ends (and the reconnect's, kept).
    let (output, clip, playlist) = cut(source, 2.5, 3.0).await;
    assert_eq!(
        kinds(output.path(), source, &playlist),
        ["encode", "copy", "copy", "encode"]
    );
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY").count(),
        3,
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:1\n"), "{playlist}");
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert!((clip.duration_secs - 3.0).abs() < 0.1, "{clip:?}");
    let listed = crate::playlist_duration(&playlist);
    assert!((listed - clip.duration_secs).abs() < 1e-3, "{playlist}");
    let decoded = decoded_secs(output.path());
    assert!((decoded - 3.0).abs() < 0.1, "{decoded} s decoded");
    let streams = ffprobe(&output.path().join("seg_00000.ts"), "stream=codec_name");
    assert!(
        streams.contains("codec_name=h264") && streams.contains("codec_name=aac"),
        "{streams}"
    );
    let thumbnail = ffprobe(&output.path().join("thumbnail.jpg"), "stream=codec_name");
    assert!(thumbnail.contains("codec_name=mjpeg"), "{thumbnail}");
    let files: Vec<_> = std::fs::read_dir(output.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(
        files.len(),
        4 + 2,
        "the segments, the playlist, the thumbnail only"
    );
    assert_eq!(clip.bytes, files.iter().sum::<u64>());

    // Inside one segment: encoded whole.
    let (output, clip, playlist) = cut(source, 5.2, 0.6).await;
    assert_eq!(kinds(output.path(), source, &playlist), ["encode"]);
    assert!(!playlist.contains("DISCONTINUITY"), "{playlist}");
    assert!((clip.duration_secs - 0.6).abs() < 0.1, "{clip:?}");
}

/// A recording cut every second whose keyframes are two seconds apart: every other
/// segment starts without one (what a muxer that cuts anywhere leaves).
fn recording_cut_between_keyframes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "segment"])
        .args(["-segment_time", "1", "-break_non_keyframes", "1"])
        .args(["-segment_list_type", "m3u8", "-segment_list"])
        .arg(dir.path().join(RECORDING_PLAYLIST))
        .arg(dir.path().join("seg_%05d.ts"))
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    dir
}

#[tokio::test]
async fn a_segment_without_a_leading_keyframe_joins_the_encoded_edge() {
    let source = recording_cut_between_keyframes();
    let source = source.path();
    let keyframe = |name: &str| {
        let options = ["-select_streams", "v:0", "-read_intervals", "%+#1"];
        let options = [&options[..], &["-show_entries", "packet=flags"]].concat();
        let probe = ffprobe_with(&source.join(name), &options);
        probe.contains("flags=K")
    };
    assert!(keyframe("seg_00002.ts") && !keyframe("seg_00001.ts"));

    // Segments 1 and 2 are inside; 1 starts without a keyframe, so only 2 is copied.
    let (output, clip, playlist) = cut(source, 0.5, 3.0).await;
    assert_eq!(
        kinds(output.path(), source, &playlist),
        ["encode", "copy", "encode"]
    );
    assert!(copied(output.path(), 1, source, "seg_00002.ts"));
    assert!((clip.duration_secs - 3.0).abs() < 0.1, "{clip:?}");
    let decoded = decoded_secs(output.path());
    assert!((decoded - 3.0).abs() < 0.1, "{decoded} s decoded");
}

#[tokio::test]
async fn clips_are_cut_inside_the_recording_only() {
    let source = recording();
    let output = tempfile::tempdir().unwrap();
    let settings = VodSettings::default();
    for (start_secs, duration_secs) in [
        (6.0, 4.0),
        (-1.0, 2.0),
        (1.0, 0.0),
        (9.0, 1.0),
        (f64::NAN, 1.0),
    ] {
        let range = ClipRange {
            start_secs,
            duration_secs,
        };
        let refused = cut_clip(&settings, &input(&source), range, output.path()).await;
        assert!(
            matches!(refused, Err(VodError::InvalidInput(_))),
            "{range:?}: {refused:?}"
        );
    }
}
