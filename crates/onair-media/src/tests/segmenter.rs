//! The LL-HLS segmenter on ffmpeg's real fragmented MP4: parts, segments, resumes and
//! publishers without keyframes.

use std::path::Path;

use bytes::{Bytes, BytesMut};

use crate::fmp4::{self, Kind};
use crate::playlist;
use crate::recording::LIVE_PLAYLIST;
use crate::segmenter::{Cutting, LONGEST_SEGMENT_SECONDS, Rendition, publish_tag};

/// `seconds` of a 30 fps test pattern with a keyframe a second, as the transcoder's
/// fragmented MP4, split into boxes.
fn boxes(seconds: u32) -> Vec<(Kind, Bytes)> {
    boxes_with_keyframes(seconds, 30)
}

/// The same with a keyframe every `gop` frames.
fn boxes_with_keyframes(seconds: u32, gop: u32) -> Vec<(Kind, Bytes)> {
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .args(["testsrc=size=320x180:rate=30", "-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string(), "-g", &gop.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .args([
            "-f",
            "mp4",
            "-movflags",
            crate::transcoder::FRAGMENTED_MP4_FLAGS,
        ])
        .args([
            "-frag_duration",
            &crate::transcoder::FRAGMENT_MICROSECONDS.to_string(),
        ])
        .arg("pipe:1")
        .output()
        .unwrap();
    let mut buffer = BytesMut::from(&output.stdout[..]);
    std::iter::from_fn(|| fmp4::take_box(&mut buffer).unwrap()).collect()
}

fn cutting() -> Cutting {
    Cutting {
        segment_seconds: 1.0,
        part_seconds: 0.333,
        playlist_size: 3,
        keep_segments: true,
        publish: publish_tag(),
    }
}

async fn publish(dir: &Path, boxes: &[(Kind, Bytes)]) -> Vec<String> {
    let mut rendition = Rendition::open(dir.to_owned(), cutting()).await;
    let mut playlists = Vec::new();
    for (kind, bytes) in boxes {
        rendition.push(*kind, bytes.clone()).await.unwrap();
        playlists.push(std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).unwrap_or_default());
    }
    rendition.finish().await.unwrap();
    playlists.push(std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).unwrap());
    playlists
}

#[tokio::test]
async fn cuts_parts_and_segments_and_continues_after_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let boxes = boxes(5);
    let playlists = publish(dir.path(), &boxes).await;
    // While live: parts of the newest three segments and the open one, the next hinted.
    let live = &playlists[playlists.len() - 3];
    assert!(
        live.contains("#EXT-X-PART-INF:PART-TARGET=0.334\n"),
        "{live}"
    );
    assert!(
        live.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002"),
        "{live}"
    );
    assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{live}");
    assert!(
        live.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part_00000_"),
        "{live}"
    );
    assert!(live.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{live}");
    let edge = playlist::LiveEdge::of(live);
    assert_eq!((edge.open_segment, edge.growing()), (4, true), "{live}");
    assert_eq!(live.matches(",INDEPENDENT=YES").count(), 4, "{live}");
    // Every fragment is in a part and a segment, once, in order: the segments hold
    // all of ffmpeg's fragments, byte for byte.
    let fragments: Vec<u8> = boxes
        .iter()
        .filter(|(kind, _)| kind == b"moof" || kind == b"mdat")
        .flat_map(|(_, bytes)| bytes.to_vec())
        .collect();
    let segments: Vec<u8> = (0..5)
        .flat_map(|n| std::fs::read(dir.path().join(format!("seg_{n:05}.m4s"))).unwrap())
        .collect();
    assert_eq!(segments.len(), fragments.len());
    assert!(segments == fragments);

    // Ended: every segment whole, no parts listed or left, nothing hinted.
    let ended = playlists.last().unwrap();
    assert!(
        !ended.contains("#EXT-X-PART:") && !ended.contains("PRELOAD-HINT"),
        "{ended}"
    );
    let segments = playlist::segments(ended);
    assert_eq!(segments.len(), 3);
    assert_eq!(segments[2].uri, "seg_00004.m4s");
    let left = std::fs::read_dir(dir.path()).unwrap();
    assert!(
        !left
            .map(|e| e.unwrap().file_name())
            .any(|n| n.to_string_lossy().starts_with("part_"))
    );
    // Recording: what left the window is kept.
    assert!(dir.path().join("seg_00000.m4s").exists());

    // The publisher comes back: the numbering goes on, after a break, with its own
    // initialization and part names.
    let resumed = publish(dir.path(), &boxes).await;
    // The first playlist listing the resumed publish's first segment whole.
    let resumed = resumed
        .iter()
        .find(|p| p.contains("\nseg_00005.m4s\n"))
        .unwrap();
    let segments = playlist::segments(resumed);
    let first_new = segments.iter().position(|s| {
        s.map
            .as_deref()
            .is_some_and(|m| m.starts_with("init_00005_"))
    });
    let first_new = first_new.expect(resumed);
    assert!(segments[first_new].discontinuity, "{resumed}");
    let first_map = segments[0].map.clone().unwrap();
    assert!(first_map.starts_with("init_00000_"), "{resumed}");
    assert!(
        segments[..first_new]
            .iter()
            .all(|s| s.map == Some(first_map.clone()))
    );
    let new_map = segments[first_new].map.clone().unwrap();
    assert!(dir.path().join(&new_map).exists());
    // Parts of the new publish have names of their own.
    let suffix = &new_map["init_00005_".len()..new_map.len() - ".mp4".len()];
    let first_part = format!("URI=\"part_00005_{suffix}_00000.m4s\"");
    assert!(resumed.contains(&first_part), "{first_part} in {resumed}");
}

#[tokio::test]
async fn a_publisher_without_keyframes_still_gets_bounded_segments() {
    let dir = tempfile::tempdir().unwrap();
    let playlists = publish(dir.path(), &boxes_with_keyframes(13, 1000)).await;
    let live = &playlists[playlists.len() - 3];
    let segments = playlist::segments(live);
    assert!(
        (segments[0].seconds - LONGEST_SEGMENT_SECONDS).abs() < 0.1,
        "{live}"
    );
    assert!(live.contains("#EXT-X-TARGETDURATION:10\n"), "{live}");
    assert!(!live.contains("#EXT-X-INDEPENDENT-SEGMENTS"), "{live}");
}

#[tokio::test]
async fn a_fragment_before_its_initialization_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let boxes = boxes(1);
    let mut rendition = Rendition::open(dir.path().to_owned(), cutting()).await;
    let (kind, moof) = boxes.iter().find(|(kind, _)| kind == b"moof").unwrap();
    assert!(rendition.push(*kind, moof.clone()).await.is_err());
    let junk_moov = Bytes::from_static(b"\0\0\0\x08moov");
    assert!(rendition.push(*b"moov", junk_moov).await.is_err());
}
