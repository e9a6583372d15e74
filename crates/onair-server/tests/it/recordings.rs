//! Recordings end to end: a real ffmpeg publishes over RTMP; when the broadcast ends its
//! archive plays at once as streamed, a worker turns it into the final VOD, clips are
//! cut from it (and from a live broadcast), and deleting removes the media. On the
//! data directory and on a real S3 server (moto).

use std::time::Duration;

use onair_infra::MediaStore;
use onair_infra::testing::MotoS3;
use onair_server::Config;
use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::media::{broadcast_in, ffprobe, get_bytes, publish, stream_key, use_store};
use crate::support::{TestApp, User, assert_error, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    a_broadcast_replays_at_once_then_becomes_a_vod,
    #[s3] the_recording_pipeline_runs_on_s3,
    clips_are_cut_from_live_broadcasts_and_archives,
    processing_survives_a_killed_ffmpeg_and_gives_up_on_a_corrupt_recording,
);

/// Seconds a test broadcast runs.
const BROADCAST: Duration = Duration::from_secs(15);

/// Ingest and API only: a test starts the worker when it wants the jobs run.
fn without_jobs(config: &mut Config) {
    config.media.reconnect_grace_secs = 1;
    config.jobs.enabled = false;
    config.jobs.backoff_base_ms = 100;
}

/// Publishes for `length` as `user`, then stops; returns the broadcast's id.
async fn broadcast(app: &TestApp, user: &User, length: Duration) -> String {
    let key = stream_key(app, user).await;
    let mut publisher = publish(app, &key);
    let live = broadcast_in(app, user, "live").await;
    tokio::time::sleep(length).await;
    publisher.kill().await.unwrap();
    live["id"].as_str().unwrap().to_owned()
}

/// The user's newest archive once it is listed.
async fn archive_of(app: &TestApp, user: &User) -> Value {
    eventually("the archive of the ended broadcast", || async {
        let (_, page) = app
            .get_as(&format!("/api/users/{}/archives", user.id), &user.access)
            .await;
        page["data"].get(0).cloned()
    })
    .await
}

/// Archive `id` once its status is `status`.
async fn archive_in(app: &TestApp, user: &User, id: &str, status: &str) -> Value {
    eventually(&format!("the archive {status}"), || async {
        let (_, archive) = app
            .get_as(&format!("/api/archives/{id}"), &user.access)
            .await;
        (archive["status"] == status).then_some(archive)
    })
    .await
}

async fn text(app: &TestApp, path: &str) -> (StatusCode, String) {
    let (status, _, body) = get_bytes(app, path).await;
    (status, String::from_utf8(body).unwrap())
}

/// ffprobe's duration of the media at `path` on `app`, read over HTTP (asynchronously:
/// the server answering it runs on this test's runtime).
async fn probed_secs(app: &TestApp, path: &str) -> f64 {
    let output = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(app.url(path))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "a duration for {path}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

async fn a_broadcast_replays_at_once_then_becomes_a_vod(db: DbConfig) {
    let app = TestApp::spawn_configured(db, without_jobs).await;
    replay_then_vod(&app, None).await;
}

async fn the_recording_pipeline_runs_on_s3(db: DbConfig) {
    let moto = MotoS3::start().await;
    let app = TestApp::spawn_configured(db, |config| {
        without_jobs(config);
        use_store(config, moto.url("media"), moto.options());
    })
    .await;
    replay_then_vod(&app, Some(moto.store("media"))).await;
}

async fn replay_then_vod(app: &TestApp, bucket: Option<MediaStore>) {
    let creator = app.signup("recorder").await;
    let stream_id = broadcast(app, &creator, BROADCAST).await;

    // At once: listed, processing, and playing as streamed, closed like a VOD.
    let archive = archive_of(app, &creator).await;
    let id = archive["id"].as_str().unwrap().to_owned();
    assert_eq!(archive["status"], "processing", "{archive}");
    assert_eq!(archive["stream_id"], stream_id.as_str());
    let as_streamed = format!("/live/{stream_id}/recording.m3u8");
    assert_eq!(archive["playlist_url"], as_streamed.as_str());
    let (status, master) = text(app, &as_streamed).await;
    assert_eq!(status, StatusCode::OK);
    assert!(master.contains("source/recording.m3u8"), "{master}");
    let (_, source) = text(app, &format!("/live/{stream_id}/source/recording.m3u8")).await;
    assert!(source.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{source}");
    assert!(source.trim_end().ends_with("#EXT-X-ENDLIST"), "{source}");
    let recorded = onair_media::playlist_duration(&source);
    assert!(recorded > 10.0, "{recorded} s recorded of {BROADCAST:?}");

    // A worker processes it into the final VOD.
    let _worker = app.start_worker();
    let ready = archive_in(app, &creator, &id, "ready").await;
    assert_eq!(ready["progress"], 1.0);
    let vod = ready["playlist_url"].as_str().unwrap();
    assert!(vod.starts_with(&format!("/vod/{id}/")), "{vod}");
    let (status, master) = text(app, vod).await;
    assert_eq!(status, StatusCode::OK);
    let variants: Vec<&str> = master.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert!(variants.len() >= 2, "{master}");
    assert!(master.contains("RESOLUTION="), "{master}");
    let source = format!("{}/source/index.m3u8", vod.rsplit_once('/').unwrap().0);
    let duration = probed_secs(app, &source).await;
    assert!(
        (duration - recorded).abs() < 1.0,
        "VOD {duration} s, recorded {recorded} s"
    );
    let listed = ready["duration_secs"].as_f64().unwrap();
    assert!((listed - duration).abs() < 0.5, "{listed} vs {duration}");
    assert_thumbnail(app, &ready).await;
    // The VOD replaced the recording as streamed.
    eventually("the live spool removed", || async {
        (text(app, &as_streamed).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    if let Some(bucket) = &bucket {
        assert!(
            bucket
                .list(&format!("live/{stream_id}"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!bucket.list(&format!("vod/{id}")).await.unwrap().is_empty());
    }

    // Private: its media plays through the tokenized URL the owner is given (ffprobe
    // follows the playlists, which carry the token), and to nobody without it.
    let path = format!("/api/archives/{id}");
    let private = Some(json!({"visibility": "private"}));
    let (status, hidden) = app
        .request(Method::PATCH, &path, Some(&creator.access), private)
        .await;
    assert_eq!(status, StatusCode::OK, "{hidden}");
    let tokenized = hidden["playlist_url"].as_str().unwrap();
    assert!(
        tokenized.starts_with(&format!("{vod}?token=")),
        "{tokenized}"
    );
    let private_duration = probed_secs(app, tokenized).await;
    assert!(
        (private_duration - duration).abs() < 0.5,
        "{private_duration}"
    );
    assert_eq!(text(app, vod).await.0, StatusCode::NOT_FOUND);
    assert_eq!(text(app, &source).await.0, StatusCode::NOT_FOUND);
    let thumbnail = hidden["thumbnail_url"].as_str().unwrap();
    assert_eq!(get_bytes(app, thumbnail).await.0, StatusCode::OK);

    // Only the owner deletes it: its media answers 404 at once, and every object goes.
    let other = app.signup("someone").await;
    assert_error(&delete(app, &path, &other).await, 404, "not_found");
    assert_eq!(delete(app, &path, &creator).await.0, StatusCode::NO_CONTENT);
    assert_error(&app.get(&path).await, 404, "not_found");
    assert_eq!(text(app, tokenized).await.0, StatusCode::NOT_FOUND);
    eventually("no object left", || async {
        let left = match &bucket {
            Some(bucket) => !bucket.list(&format!("vod/{id}")).await.unwrap().is_empty(),
            None => app.config.media_root().join(format!("vod/{id}")).exists(),
        };
        (!left).then_some(())
    })
    .await;
}

async fn delete(app: &TestApp, path: &str, user: &User) -> (StatusCode, Value) {
    app.request(Method::DELETE, path, Some(&user.access), None)
        .await
}

/// Clip `body` as `user`: the answer's status and body.
async fn clip(app: &TestApp, user: &User, body: Value) -> (StatusCode, Value) {
    app.post("/api/clips", Some(&user.access), body).await
}

/// The `thumbnail_url` of an archive or clip serves a JPEG.
async fn assert_thumbnail(app: &TestApp, media: &Value) {
    let (status, headers, thumbnail) =
        get_bytes(app, media["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/jpeg");
    let probed = ffprobe(&thumbnail, "stream=codec_name", "csv=p=0");
    assert_eq!(String::from_utf8_lossy(&probed).trim(), "mjpeg");
}

/// Clip `id` once ready, with its playlist's length as ffprobe reads it over HTTP.
async fn ready_clip(app: &TestApp, id: &str) -> (Value, f64) {
    let clip = eventually("the clip cut", || async {
        let (_, clip) = app.get(&format!("/api/clips/{id}")).await;
        assert_ne!(clip["status"], "failed", "{clip}");
        (clip["status"] == "ready").then_some(clip)
    })
    .await;
    let playlist = clip["playlist_url"].as_str().unwrap();
    assert_eq!(playlist, format!("/media/clips/{id}/index.m3u8"));
    let (status, headers, body) = get_bytes(app, playlist).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{body}");
    let segment = body.lines().find(|l| l.ends_with(".ts")).unwrap();
    let (status, headers, _) = get_bytes(app, &format!("/media/clips/{id}/{segment}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp2t");
    let (status, _, _) = get_bytes(app, &format!("/media/clips/{id}/..%2Fx.ts")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_thumbnail(app, &clip).await;
    let seconds = probed_secs(app, playlist).await;
    (clip, seconds)
}

async fn clips_are_cut_from_live_broadcasts_and_archives(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 1).await;
    let creator = app.signup("clipped").await;
    let fan = app.signup("clipper").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish(&app, &key);
    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The clip button: the last seconds of the live broadcast.
    let (status, live_clip) = clip(
        &app,
        &fan,
        json!({"stream_id": stream_id, "duration_secs": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{live_clip}");
    assert_eq!(live_clip["status"], "processing");
    let (cut, seconds) = ready_clip(&app, live_clip["id"].as_str().unwrap()).await;
    assert!((seconds - 4.0).abs() < 0.3, "{seconds} s");
    assert_eq!(cut["title"], live["title"]);
    for (body, field) in [
        (
            json!({"stream_id": stream_id, "duration_secs": 61}),
            "duration_secs",
        ),
        (
            json!({"stream_id": stream_id, "duration_secs": 0.5}),
            "duration_secs",
        ),
        (
            json!({"stream_id": stream_id, "start_secs": 1, "duration_secs": 5}),
            "start_secs",
        ),
        (
            json!({"stream_id": stream_id, "archive_id": stream_id, "duration_secs": 5}),
            "archive_id",
        ),
        (json!({"duration_secs": 5}), "archive_id"),
        (
            json!({"stream_id": stream_id, "duration_secs": 5, "title": ""}),
            "title",
        ),
    ] {
        let answer = clip(&app, &fan, body).await;
        assert_error(&answer, 422, "validation_failed");
        assert_eq!(answer.1["error"]["field"], field, "{}", answer.1);
    }
    let anonymous = app
        .post(
            "/api/clips",
            None,
            json!({"stream_id": stream_id, "duration_secs": 5}),
        )
        .await;
    assert_error(&anonymous, 401, "unauthorized");
    let ghost = json!({"stream_id": "01900000-0000-7000-8000-000000000000", "duration_secs": 5});
    assert_error(&clip(&app, &fan, ghost).await, 404, "not_found");

    // A range of the archive, once the broadcast has ended.
    publisher.kill().await.unwrap();
    let archive = archive_of(&app, &creator).await;
    let archive_id = archive["id"].as_str().unwrap();
    let range = json!({"archive_id": archive_id, "start_secs": 1.5, "duration_secs": 3, "title": "That moment"});
    let (status, archived) = clip(&app, &fan, range).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{archived}");
    let (cut, seconds) = ready_clip(&app, archived["id"].as_str().unwrap()).await;
    assert!((seconds - 3.0).abs() < 0.3, "{seconds} s");
    assert_eq!(cut["title"], "That moment");
    assert_eq!(cut["archive_id"], archive_id);
    let beyond = json!({"archive_id": archive_id, "start_secs": 3600, "duration_secs": 3});
    let answer = clip(&app, &fan, beyond).await;
    assert_error(&answer, 422, "validation_failed");
    assert_eq!(answer.1["error"]["field"], "start_secs");

    // The channel lists both; the clipper or the channel's owner deletes, nobody else.
    let (listed, _) = app
        .collect_pages(&format!("/api/users/{}/clips", creator.id), 1)
        .await;
    assert_eq!(listed.len(), 2);
    let path = format!("/api/clips/{}", archived["id"].as_str().unwrap());
    let stranger = app.signup("stranger").await;
    assert_error(&delete(&app, &path, &stranger).await, 403, "forbidden");
    assert_eq!(
        delete(&app, &path, &creator).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(&delete(&app, &path, &fan).await, 404, "not_found");
    let playlist = cut["playlist_url"].as_str().unwrap().to_owned();
    eventually("the clip's playlist removed", || async {
        (get_bytes(&app, &playlist).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    // Every object of the clip: its segments and thumbnail too.
    let objects = app
        .config
        .media_root()
        .join(format!("clips/{}", archived["id"].as_str().unwrap()));
    eventually("no object of the clip left", || async {
        let left = std::fs::read_dir(&objects).map_or(0, |dir| dir.count());
        (left == 0).then_some(())
    })
    .await;
}

async fn processing_survives_a_killed_ffmpeg_and_gives_up_on_a_corrupt_recording(db: DbConfig) {
    let app = TestApp::spawn_configured(db, without_jobs).await;
    let (steady, broken) = (app.signup("steady").await, app.signup("broken").await);
    let length = Duration::from_secs(10);
    let (steady_stream, broken_stream) = tokio::join!(
        broadcast(&app, &steady, length),
        broadcast(&app, &broken, length)
    );
    let (steady_archive, broken_archive) =
        tokio::join!(archive_of(&app, &steady), archive_of(&app, &broken));

    // Corrupt every segment of one recording before any worker runs.
    let spool = app
        .config
        .media_root()
        .join(format!("live/{broken_stream}/source"));
    for entry in std::fs::read_dir(&spool).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "m4s") {
            std::fs::write(&path, b"not a video").unwrap();
        }
    }

    // Kill the first ffmpeg building a VOD (its input is an ffconcat list in the work
    // directory); the job retries and succeeds.
    let _worker = app.start_worker();
    let work = app.config.data_dir.join("work");
    let pattern = format!("ffmpeg.*{}", work.display());
    eventually("an ffmpeg building a VOD, killed", || async {
        let killed = std::process::Command::new("pkill")
            .args(["-9", "-f", &pattern])
            .status()
            .unwrap();
        killed.success().then_some(())
    })
    .await;
    let id = steady_archive["id"].as_str().unwrap();
    let ready = archive_in(&app, &steady, id, "ready").await;
    assert!(ready["playlist_url"].as_str().unwrap().starts_with("/vod/"));
    assert_eq!(ready["stream_id"], steady_stream.as_str());

    // The corrupt one fails with a reason its owner sees, and still plays as streamed.
    let id = broken_archive["id"].as_str().unwrap();
    let failed = archive_in(&app, &broken, id, "failed").await;
    assert!(
        failed["failure_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    let (_, public) = app.get(&format!("/api/archives/{id}")).await;
    assert!(
        public.get("failure_reason").is_none(),
        "the reason is the owner's: {public}"
    );
    let playlist = failed["playlist_url"].as_str().unwrap();
    assert_eq!(playlist, format!("/live/{broken_stream}/recording.m3u8"));
    assert_eq!(text(&app, playlist).await.0, StatusCode::OK);
}
