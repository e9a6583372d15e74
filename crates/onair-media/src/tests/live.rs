//! The recording kept while live, through the real transcoder: complete across a
//! reconnect, mirrored, and the spool trimmed when the store is elsewhere.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use onair_infra::MediaStore;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::recorded;
use crate::master::publish_when_ready;
use crate::mirror::Mirror;
use crate::transcoder::{InputFormat, Transcoder};
use crate::{RECORDING_PLAYLIST, TranscodeSettings};

const KEY: &str = "live/test";

/// The renditions of a 360p source: the source and half of it (the ladder has no rung
/// below 360p).
const RENDITIONS: [&str; 2] = ["source", "180p"];

/// One publish as the ingest runs it: `seconds` of a 360p test pattern, in real time,
/// as FLV into a transcoder, with the spool kept and the master playlists written.
async fn publish(spool: &Path, store: &MediaStore, seconds: u32, record: bool) {
    let settings = TranscodeSettings {
        playlist_size: 3,
        ..TranscodeSettings::default()
    };
    let mut transcoder =
        Transcoder::spawn(&settings, (spool, InputFormat::Flv), record, Some(360)).unwrap();
    let renditions = transcoder.renditions().to_vec();
    assert_eq!(renditions, RENDITIONS);
    let kept = (spool.to_owned(), renditions.clone());
    let mirror = Mirror::start(store, kept, KEY.into(), record);
    let master = tokio::spawn(publish_when_ready(
        spool.to_owned(),
        (renditions, transcoder.publish().to_owned()),
        record,
        Instant::now(),
        Duration::from_secs(30),
    ));
    let mut encoder = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-f", "flv", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut flv = encoder.stdout.take().unwrap();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = flv.read(&mut buffer).await.unwrap();
        if read == 0 {
            break;
        }
        transcoder.write(&buffer[..read]).await.unwrap();
    }
    let status = transcoder.finish(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    master.await.unwrap();
    mirror.finish().await;
}

/// One publish with the spool as the store (the default); returns the temporary root
/// and the broadcast's spool in it.
async fn publish_to_the_spool_store(seconds: u32, record: bool) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let store = MediaStore::open(None, root.path()).unwrap();
    let spool = root.path().join(KEY);
    publish(&spool, &store, seconds, record).await;
    (root, spool)
}

/// Files in a directory whose names start with `prefix` (`seg_`, `part_`, `init_`).
fn files_named(dir: &Path, prefix: &str) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(prefix) && !name.ends_with(".tmp"))
        .collect()
}

/// Segment files in a directory.
fn segment_files(dir: &Path) -> HashSet<String> {
    files_named(dir, "seg_")
}

#[tokio::test]
async fn the_recording_spans_a_reconnect_and_the_spool_keeps_only_the_live_window() {
    let spool = tempfile::tempdir().unwrap();
    let store = MediaStore::open(Some("memory:///"), spool.path()).unwrap();
    publish(spool.path(), &store, 4, true).await;
    // The publisher comes back within the grace window: same spool, a new ffmpeg.
    publish(spool.path(), &store, 4, true).await;

    for rendition in RENDITIONS {
        let key = format!("{KEY}/{rendition}/{RECORDING_PLAYLIST}");
        let playlist = store.get(&key).await.unwrap().expect("recording mirrored");
        let text = String::from_utf8(playlist.to_vec()).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !text.contains("ENDLIST"));
        let segments = recorded(&playlist);
        // Every segment once, in order: the numbering continues across the resume.
        let names: Vec<&str> = segments.iter().map(|s| s.uri.as_str()).collect();
        let expected: Vec<String> = (0..names.len())
            .map(|n| format!("seg_{n:05}.m4s"))
            .collect();
        assert_eq!(names, expected, "{text}");
        // Each publish brings its own initialization, named in the recording.
        let mut maps: Vec<&str> = segments.iter().filter_map(|s| s.map.as_deref()).collect();
        assert_eq!(maps.len(), segments.len(), "{text}");
        maps.dedup();
        assert_eq!(maps.len(), 2, "{text}");
        let breaks: Vec<usize> = (0..segments.len())
            .filter(|i| segments[*i].discontinuity)
            .collect();
        assert_eq!(breaks.len(), 1, "{text}");
        assert!(breaks[0] > 0);
        let seconds: f64 = segments.iter().map(|s| s.seconds).sum();
        assert!(
            (6.5..=9.5).contains(&seconds),
            "{seconds} s recorded: {text}"
        );
        let files = segments.iter().flat_map(|s| [Some(&s.uri), s.map.as_ref()]);
        for file in files.flatten() {
            let key = format!("{KEY}/{rendition}/{file}");
            assert!(
                store.get(&key).await.unwrap().is_some(),
                "{key} not mirrored"
            );
        }
        // Hygiene: what left the live window (3 segments) was removed once mirrored,
        // and parts once the publish ended.
        let local = segment_files(&spool.path().join(rendition));
        assert!(local.len() <= 4, "{local:?}");
        assert_eq!(
            files_named(&spool.path().join(rendition), "part_"),
            HashSet::new()
        );
        assert!(segments.len() > 6, "{}", segments.len());
    }
    let master = store
        .get(&format!("{KEY}/{RECORDING_PLAYLIST}"))
        .await
        .unwrap();
    let master = String::from_utf8(master.expect("recording master mirrored").to_vec()).unwrap();
    for rendition in RENDITIONS {
        assert!(
            master.contains(&format!("\n{rendition}/{RECORDING_PLAYLIST}\n")),
            "{master}"
        );
    }
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
}

#[tokio::test]
async fn a_spool_that_is_the_store_keeps_the_whole_recording() {
    let (_root, spool) = publish_to_the_spool_store(5, true).await;
    for rendition in RENDITIONS {
        let dir = spool.join(rendition);
        let playlist = std::fs::read(dir.join(RECORDING_PLAYLIST)).unwrap();
        let listed: HashSet<String> = recorded(&playlist).into_iter().map(|s| s.uri).collect();
        assert!(listed.len() >= 4, "{listed:?}");
        assert_eq!(listed, segment_files(&dir));
    }
}

#[tokio::test]
async fn without_recording_ffmpeg_drops_what_left_the_window() {
    let (_root, spool) = publish_to_the_spool_store(6, false).await;
    assert!(!spool.join(RECORDING_PLAYLIST).exists());
    for rendition in RENDITIONS {
        let dir = spool.join(rendition);
        assert!(!dir.join(RECORDING_PLAYLIST).exists());
        // The window of 3, and no parts once the publish ended.
        let local = segment_files(&dir);
        assert!(local.len() <= 3, "{local:?}");
        assert_eq!(files_named(&dir, "part_"), HashSet::new());
    }
}
