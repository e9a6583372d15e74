//! VODs of a recording, and fetching one, with a real ffmpeg.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onair_infra::MediaStore;
use uuid::Uuid;

use super::{ffprobe, record_test_pattern, recorded};
use crate::{
    ClipRange, RECORDING_PLAYLIST, VodError, VodSettings, build_vod, cut_clip, fetch_recording,
    playlist_duration,
};

/// An 8 s recording with a reconnect in the middle, in a temporary directory.
pub(super) fn recording() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    record_test_pattern(dir.path(), 4);
    record_test_pattern(dir.path(), 4);
    let playlist = std::fs::read(dir.path().join(RECORDING_PLAYLIST)).unwrap();
    assert!(recorded(&playlist).iter().any(|s| s.discontinuity));
    dir
}

/// The audio packets' decoding timestamps in ffprobe's `packet=codec_type,dts` listing.
fn audio_dts(packets: &str) -> Vec<i64> {
    let mut audio = false;
    let mut dts = Vec::new();
    for line in packets.lines() {
        if let Some(kind) = line.strip_prefix("codec_type=") {
            audio = kind == "audio";
        } else if let Some(value) = line.strip_prefix("dts=").filter(|_| audio) {
            dts.extend(value.parse::<i64>().ok());
        }
    }
    dts
}

pub(super) fn input(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join(RECORDING_PLAYLIST)
}

#[tokio::test]
async fn a_recording_becomes_a_vod_ladder() {
    let source = recording();
    let output = tempfile::tempdir().unwrap();
    let listed = playlist_duration(&std::fs::read_to_string(input(&source)).unwrap());
    let reported = Arc::new(Mutex::new(Vec::new()));
    let mut progress = {
        let reported = Arc::clone(&reported);
        move |p: f64| reported.lock().unwrap().push(p)
    };
    let vod = build_vod(
        &VodSettings::default(),
        &input(&source),
        output.path(),
        &mut progress,
    )
    .await
    .unwrap();

    assert!(
        (vod.duration_secs - listed).abs() < 0.5,
        "{vod:?} vs {listed}"
    );
    assert!((vod.duration_secs - 8.0).abs() < 0.5, "{vod:?}");
    // The source is 360p, at the smallest rung: half of it is encoded.
    assert_eq!(vod.renditions, ["source", "180p"]);
    let master = std::fs::read_to_string(output.path().join("master.m3u8")).unwrap();
    for (rendition, resolution) in [("source", "640x360"), ("180p", "320x180")] {
        assert!(
            master.contains(&format!("RESOLUTION={resolution},CODECS=\"avc1.")),
            "{master}"
        );
        assert!(
            master.contains(&format!("\n{rendition}/index.m3u8\n")),
            "{master}"
        );
        let playlist =
            std::fs::read_to_string(output.path().join(rendition).join("index.m3u8")).unwrap();
        assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
        assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
        assert!(
            (playlist_duration(&playlist) - listed).abs() < 0.5,
            "{playlist}"
        );
        // Browsers refuse audio whose timestamps go back (at the recording's joins).
        let packets = ffprobe(
            &output.path().join(rendition).join("index.m3u8"),
            "packet=codec_type,dts",
        );
        let audio = audio_dts(&packets);
        assert!(audio.len() > 100, "{packets}");
        assert!(audio.windows(2).all(|w| w[0] < w[1]), "{audio:?}");
    }
    let thumbnail = ffprobe(
        &output.path().join("thumbnail.jpg"),
        "stream=codec_name,width",
    );
    assert!(
        thumbnail.contains("codec_name=mjpeg") && thumbnail.contains("width=640"),
        "{thumbnail}"
    );
    assert!(!output.path().join(".recording.ffconcat").exists());
    assert!(vod.bytes > 0);
    let reported = reported.lock().unwrap();
    assert!(reported.windows(2).all(|w| w[0] <= w[1]), "{reported:?}");
    assert_eq!(reported.last(), Some(&1.0));
}

#[tokio::test]
async fn a_missing_empty_or_corrupt_recording_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let settings = VodSettings::default();
    let build = |input: &'static str| {
        let (input, output) = (dir.path().join(input), dir.path().join("out"));
        let settings = settings.clone();
        async move { build_vod(&settings, &input, &output, &mut |_| {}).await }
    };
    assert!(matches!(
        build("none.m3u8").await,
        Err(VodError::InvalidInput(_))
    ));
    std::fs::write(dir.path().join("empty.m3u8"), "#EXTM3U\n").unwrap();
    assert!(matches!(
        build("empty.m3u8").await,
        Err(VodError::InvalidInput(_))
    ));
    std::fs::write(dir.path().join("garbage.ts"), vec![7u8; 4096]).unwrap();
    std::fs::write(
        dir.path().join("corrupt.m3u8"),
        "#EXTM3U\n#EXTINF:1.0,\ngarbage.ts\n",
    )
    .unwrap();
    let corrupt = build("corrupt.m3u8").await;
    assert!(
        matches!(corrupt, Err(VodError::InvalidInput(_))),
        "{corrupt:?}"
    );
    std::fs::write(
        dir.path().join("escape.m3u8"),
        "#EXTM3U\n#EXTINF:1.0,\n../x.ts\n",
    )
    .unwrap();
    assert!(matches!(
        build("escape.m3u8").await,
        Err(VodError::InvalidInput(_))
    ));
}

/// Ids of running ffmpeg processes whose command line names `dir` (this test's own).
fn ffmpeg_processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let command = std::fs::read(entry.path().join("cmdline")).ok()?;
            let command = String::from_utf8_lossy(&command);
            let program = command.split('\0').next()?;
            (program.ends_with("ffmpeg") && command.contains(&dir))
                .then(|| entry.file_name().into_string().ok())?
        })
        .collect()
}

#[tokio::test]
async fn a_killed_build_fails_and_the_next_one_succeeds() {
    let source = recording();
    let settings = VodSettings::default();

    // Killed from outside (a crash, the OOM killer): Failed, worth a retry.
    let killed = tempfile::tempdir().unwrap();
    let killer = {
        let dir = killed.path().to_owned();
        tokio::spawn(async move {
            loop {
                if let Some(pid) = ffmpeg_processes_in(&dir).first() {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", pid])
                        .status();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let result = build_vod(&settings, &input(&source), killed.path(), &mut |_| {}).await;
    killer.await.unwrap();
    assert!(matches!(result, Err(VodError::Failed(_))), "{result:?}");

    // The job is cancelled (its future dropped): ffmpeg goes with it.
    let dropped = tempfile::tempdir().unwrap();
    let (path, mut ignore) = (input(&source), |_| {});
    let mut build = Box::pin(build_vod(&settings, &path, dropped.path(), &mut ignore));
    tokio::select! {
        _ = &mut build => panic!("finished before it was dropped"),
        () = async {
            while ffmpeg_processes_in(dropped.path()).is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } => {}
    }
    drop(build);
    let mut left = ffmpeg_processes_in(dropped.path());
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = ffmpeg_processes_in(dropped.path());
    }
    assert!(left.is_empty(), "ffmpeg outlived its job: {left:?}");
    // Killed, not finished: it never closed its playlist.
    let partial = std::fs::read_to_string(dropped.path().join("source/index.m3u8"));
    assert!(!partial.unwrap_or_default().contains("#EXT-X-ENDLIST"));

    let retried = tempfile::tempdir().unwrap();
    let vod = build_vod(&settings, &input(&source), retried.path(), &mut |_| {}).await;
    assert!(vod.is_ok(), "{vod:?}");
}

#[tokio::test]
async fn a_recording_is_fetched_from_the_store() {
    let source = recording();
    let stream_id = Uuid::now_v7();
    let store = MediaStore::open(Some("memory:///"), source.path()).unwrap();
    let prefix = format!("live/{stream_id}/source");
    for entry in std::fs::read_dir(source.path()).unwrap() {
        let entry = entry.unwrap();
        let key = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        store
            .put(&key, std::fs::read(entry.path()).unwrap().into())
            .await
            .unwrap();
    }
    let local = tempfile::tempdir().unwrap();
    let fetched = fetch_recording(&store, stream_id, "source", local.path())
        .await
        .unwrap();
    assert_eq!(fetched, local.path().join(RECORDING_PLAYLIST));
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(input(&source)).unwrap()
    );
    for segment in recorded(&std::fs::read(&fetched).unwrap()) {
        assert_eq!(
            std::fs::read(local.path().join(&segment.uri)).unwrap(),
            std::fs::read(source.path().join(&segment.uri)).unwrap()
        );
    }

    let elsewhere = tempfile::tempdir().unwrap();
    let missing = fetch_recording(&store, Uuid::now_v7(), "source", elsewhere.path()).await;
    assert!(
        matches!(missing, Err(VodError::InvalidInput(_))),
        "{missing:?}"
    );
    store
        .delete(&format!("{prefix}/seg_00003.ts"))
        .await
        .unwrap();
    let incomplete = fetch_recording(&store, stream_id, "source", elsewhere.path()).await;
    assert!(
        matches!(incomplete, Err(VodError::InvalidInput(_))),
        "{incomplete:?}"
    );
    let bad = fetch_recording(&store, stream_id, "../x", elsewhere.path()).await;
    assert!(matches!(bad, Err(VodError::InvalidInput(_))), "{bad:?}");
}

/// Jobs run these on tokio's worker threads.
#[test]
fn the_futures_can_be_spawned() {
    fn spawnable<T: Send + 'static>(_: T) {}
    let settings = VodSettings::default();
    let store = MediaStore::open(Some("memory:///"), Path::new("/nonexistent")).unwrap();
    spawnable(async move {
        let (input, output) = (Path::new("in.m3u8"), Path::new("out"));
        let mut progress = |_| {};
        let _ = build_vod(&settings, input, output, &mut progress).await;
        let range = ClipRange {
            start_secs: 0.0,
            duration_secs: 1.0,
        };
        let _ = cut_clip(&settings, input, range, output).await;
        let _ = fetch_recording(&store, Uuid::nil(), "source", output).await;
    });
}
