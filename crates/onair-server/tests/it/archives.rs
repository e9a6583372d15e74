//! Archives over HTTP: recorded broadcasts appear when they end, owners set visibility
//! and delete, recordings are served closed once ended and VODs with long caching.

use std::path::Path;

use chrono::Duration;
use onair_store::jobs::kinds;
use onair_store::{DbConfig, ReadyArchive, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::hooks::{HOOK_SECRET, hook_json, key_of, with_hooks};
use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    a_recorded_broadcast_is_an_archive_when_it_ends,
    owners_set_visibility_and_delete_others_cannot,
    recording_is_a_setting_and_the_quota_refuses_it_visibly,
    recordings_close_when_the_broadcast_ends_and_vods_are_served,
);

/// A broadcast of `user` fed by a publisher (an SRS `on_publish`); returns its id.
pub(crate) async fn publish(app: &TestApp, user: &User) -> Uuid {
    let key = key_of(app, user).await;
    let on_publish = json!({"action": "on_publish", "stream": key});
    let (status, body) = hook_json(app, "publish", HOOK_SECRET, on_publish).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["stream_id"].as_str().unwrap().parse().unwrap()
}

/// Ends `user`'s broadcast through the API.
pub(crate) async fn end(app: &TestApp, user: &User) {
    let (status, body) = app
        .post("/api/streams/end", Some(&user.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A recorded broadcast of `user`, ended; returns its archive as the owner sees it.
pub(crate) async fn archived(app: &TestApp, user: &User) -> Value {
    let stream_id = publish(app, user).await;
    end(app, user).await;
    archive_of(app, user, stream_id).await
}

/// The archive of `user`'s broadcast `stream_id`, as its owner sees it.
pub(crate) async fn archive_of(app: &TestApp, user: &User, stream_id: Uuid) -> Value {
    let path = format!("/api/users/{}/archives", user.id);
    let (_, page) = app.get_as(&path, &user.access).await;
    let archive = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["stream_id"] == stream_id.to_string())
        .cloned();
    archive.expect("the broadcast's archive")
}

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    user: Option<&User>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.request(method, path, user.map(|u| u.access.as_str()), body)
        .await
}

async fn a_recorded_broadcast_is_an_archive_when_it_ends(db: DbConfig) {
    // This test plays the processing job itself.
    let app = TestApp::spawn_configured(db, |c| {
        with_hooks(c);
        c.jobs.enabled = false;
    })
    .await;
    let store = onair_store::connect(&app.db).await.unwrap();
    let creator = app.signup("vodmaker").await;
    let viewer = app.signup("viewer").await;

    // Started through the API alone: no video, nothing to archive.
    app.post(
        "/api/streams/start",
        Some(&creator.access),
        json!({"title": "Talk"}),
    )
    .await;
    end(&app, &creator).await;
    let (items, _) = app.collect_pages("/api/archives", 10).await;
    assert!(items.is_empty());

    let stream_id = publish(&app, &creator).await;
    let (_, live) = app.get(&format!("/api/streams/{stream_id}")).await;
    assert_eq!(
        (&live["recording"], &live["recording_refused"]),
        (&json!(true), &Value::Null)
    );
    end(&app, &creator).await;

    let (items, pages) = app.collect_pages("/api/archives", 10).await;
    assert_eq!((items.len(), pages), (1, 1), "listed at once, processing");
    let archive = &items[0];
    let id = archive["id"].as_str().unwrap().to_owned();
    assert_eq!(archive["status"], "processing");
    assert_eq!(archive["progress"], 0.0);
    assert_eq!(archive["visibility"], "public");
    assert_eq!(
        archive["playlist_url"],
        format!("/live/{stream_id}/recording.m3u8")
    );
    assert_eq!(archive["duration_secs"], Value::Null);
    assert_eq!(
        archive["title"], "Talk",
        "titled like the previous broadcast"
    );
    assert_eq!(archive["creator"]["username"], "vodmaker");
    assert!(archive.get("failure_reason").is_none());
    let (items, _) = app
        .collect_pages(&format!("/api/users/{}/archives", creator.id), 10)
        .await;
    assert_eq!(items.len(), 1);

    // The processing job publishes the VOD.
    let jobs = store
        .claim_jobs(
            10,
            Timestamp::from(chrono::Utc::now() + Duration::seconds(30)),
        )
        .await
        .unwrap();
    let job = jobs
        .iter()
        .find(|j| j.kind == kinds::ARCHIVE_PROCESS)
        .expect("one processing job");
    let archive_id: Uuid = id.parse().unwrap();
    let version = Uuid::now_v7();
    let ready = ReadyArchive {
        playlist_path: format!("vod/{archive_id}/{version}/master.m3u8"),
        thumbnail_path: Some(format!("vod/{archive_id}/{version}/thumbnail.jpg")),
        duration_ms: 15_250,
        size_bytes: 1 << 20,
    };
    assert!(
        store
            .archive_ready(job.lease(), archive_id, ready)
            .await
            .unwrap()
    );
    let (status, one) = app
        .get_as(&format!("/api/archives/{id}"), &viewer.access)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(
        (&one["status"], &one["progress"]),
        (&json!("ready"), &json!(1.0))
    );
    assert_eq!(
        one["playlist_url"],
        format!("/vod/{id}/{version}/master.m3u8")
    );
    assert_eq!(
        one["thumbnail_url"],
        format!("/vod/{id}/{version}/thumbnail.jpg")
    );
    assert_eq!(one["duration_secs"], 15.25);

    // A failed one tells its owner why, and nobody else.
    publish(&app, &creator).await;
    end(&app, &creator).await;
    let (items, _) = app.collect_pages("/api/archives", 10).await;
    let failed: Uuid = items[0]["id"].as_str().unwrap().parse().unwrap();
    assert!(store.archive_failed(failed, "corrupt input").await.unwrap());
    let path = format!("/api/archives/{failed}");
    let (_, seen) = app.get_as(&path, &creator.access).await;
    assert_eq!(
        (&seen["status"], &seen["failure_reason"]),
        (&json!("failed"), &json!("corrupt input"))
    );
    let (_, seen) = app.get(&path).await;
    assert!(seen.get("failure_reason").is_none(), "{seen}");
    store.close().await;

    assert_error(
        &app.get(&format!("/api/archives/{}", Uuid::now_v7())).await,
        404,
        "not_found",
    );
    assert_error(&app.get("/api/archives/nope").await, 400, "invalid_path");
    assert_error(
        &app.get("/api/archives?cursor=x").await,
        400,
        "invalid_cursor",
    );
    assert_error(
        &app.get("/api/archives?limit=500").await,
        400,
        "invalid_limit",
    );
    assert_error(
        &app.get_as(&format!("/api/archives/{id}"), "bad").await,
        401,
        "invalid_token",
    );
}

async fn owners_set_visibility_and_delete_others_cannot(db: DbConfig) {
    let app = TestApp::spawn_configured(db, with_hooks).await;
    let creator = app.signup("owner").await;
    let other = app.signup("other").await;
    let archive = archived(&app, &creator).await;
    let path = format!("/api/archives/{}", archive["id"].as_str().unwrap());
    let private = Some(json!({"visibility": "private"}));

    assert_error(
        &send(&app, Method::PATCH, &path, None, private.clone()).await,
        401,
        "unauthorized",
    );
    assert_error(
        &send(&app, Method::PATCH, &path, Some(&other), private.clone()).await,
        403,
        "forbidden",
    );
    assert_error(
        &send(&app, Method::DELETE, &path, Some(&other), None).await,
        403,
        "forbidden",
    );
    let unknown = format!("/api/archives/{}", Uuid::now_v7());
    assert_error(
        &send(
            &app,
            Method::PATCH,
            &unknown,
            Some(&creator),
            private.clone(),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &send(&app, Method::DELETE, &unknown, Some(&creator), None).await,
        404,
        "not_found",
    );
    for bad in [
        json!({"visibility": "secret"}),
        json!({"visibility": 3}),
        json!({"visible": "public"}),
    ] {
        let (status, body) = send(&app, Method::PATCH, &path, Some(&creator), Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    let (status, updated) = send(&app, Method::PATCH, &path, Some(&creator), private).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["visibility"], "private");
    // Private: its owner's alone; to anyone else it does not exist.
    assert_error(&app.get(&path).await, 404, "not_found");
    assert_error(&app.get_as(&path, &other.access).await, 404, "not_found");
    assert_error(
        &send(&app, Method::DELETE, &path, Some(&other), None).await,
        404,
        "not_found",
    );
    assert_eq!(app.get_as(&path, &creator.access).await.0, StatusCode::OK);
    let listed = format!("/api/users/{}/archives", creator.id);
    assert!(app.collect_pages(&listed, 10).await.0.is_empty());
    assert!(app.collect_pages("/api/archives", 10).await.0.is_empty());
    let (_, own) = app.get_as(&listed, &creator.access).await;
    assert_eq!(own["data"].as_array().unwrap().len(), 1, "{own}");

    // Unlisted: found by link, not listed.
    let unlisted = Some(json!({"visibility": "unlisted"}));
    send(&app, Method::PATCH, &path, Some(&creator), unlisted).await;
    assert_eq!(app.get(&path).await.0, StatusCode::OK);
    assert!(app.collect_pages("/api/archives", 10).await.0.is_empty());

    let (status, _) = send(&app, Method::DELETE, &path, Some(&creator), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(&app.get_as(&path, &creator.access).await, 404, "not_found");
    assert_error(
        &send(&app, Method::DELETE, &path, Some(&creator), None).await,
        404,
        "not_found",
    );
}

async fn recording_is_a_setting_and_the_quota_refuses_it_visibly(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |c| {
        with_hooks(c);
        c.media.storage_quota_bytes = Some(0);
    })
    .await;
    let creator = app.signup("quota").await;
    let (_, me) = app.get_as("/api/users/me", &creator.access).await;
    assert_eq!(me["record_broadcasts"], true);
    let (_, public) = app.get(&format!("/api/users/{}", creator.id)).await;
    assert!(public.get("record_broadcasts").is_none(), "{public}");

    let stream_id = publish(&app, &creator).await;
    let (_, stream) = app.get(&format!("/api/streams/{stream_id}")).await;
    assert_eq!(stream["recording"], false);
    assert_eq!(stream["recording_refused"], "storage_quota_exceeded");
    end(&app, &creator).await;

    let off = Some(json!({"record_broadcasts": false}));
    let (status, me) = send(&app, Method::PATCH, "/api/users/me", Some(&creator), off).await;
    assert_eq!(
        (status, &me["record_broadcasts"]),
        (StatusCode::OK, &json!(false))
    );
    let stream_id = publish(&app, &creator).await;
    let (_, stream) = app.get(&format!("/api/streams/{stream_id}")).await;
    assert_eq!(
        (&stream["recording"], &stream["recording_refused"]),
        (&json!(false), &Value::Null)
    );
    end(&app, &creator).await;
    assert!(app.collect_pages("/api/archives", 10).await.0.is_empty());

    let bad = Some(json!({"record_broadcasts": "yes"}));
    let (status, body) = send(&app, Method::PATCH, "/api/users/me", Some(&creator), bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Writes `body` at object key `key` of the file object store at `root`.
pub(crate) fn put(root: &Path, key: &str, body: &[u8]) {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// GET `path`: status, content type, cache control, body.
pub(crate) async fn fetch(app: &TestApp, path: &str) -> (StatusCode, String, String, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let header = |name| {
        let value = response.headers().get(name);
        value.map_or(String::new(), |v| v.to_str().unwrap().to_owned())
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    (
        response.status(),
        content_type,
        cache,
        response.text().await.unwrap(),
    )
}

/// An app with media hooks whose object store is a directory the test writes in; its
/// job runners run when `jobs`.
pub(crate) async fn with_media_dir(db: DbConfig, jobs: bool) -> (tempfile::TempDir, TestApp) {
    let media = tempfile::tempdir().unwrap();
    let url = format!("file://{}", media.path().display());
    let app = TestApp::spawn_configured(db, |c| {
        with_hooks(c);
        c.media.object_store_url = Some(url);
        c.jobs.enabled = jobs;
    })
    .await;
    (media, app)
}

async fn recordings_close_when_the_broadcast_ends_and_vods_are_served(db: DbConfig) {
    let (media, app) = with_media_dir(db, true).await;
    let creator = app.signup("recorder").await;
    let stream_id = publish(&app, &creator).await;
    let event = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1.000,\nseg_00000.ts\n";
    put(
        media.path(),
        &format!("live/{stream_id}/source/recording.m3u8"),
        event.as_bytes(),
    );
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsource/recording.m3u8\n";
    put(
        media.path(),
        &format!("live/{stream_id}/recording.m3u8"),
        master.as_bytes(),
    );

    let recording = format!("/live/{stream_id}/source/recording.m3u8");
    let (status, content_type, cache, body) = fetch(&app, &recording).await;
    assert_eq!(
        (status, content_type.as_str(), cache.as_str()),
        (StatusCode::OK, "application/vnd.apple.mpegurl", "no-cache")
    );
    assert_eq!(body, event, "open while live");
    end(&app, &creator).await;
    let (_, _, _, body) = fetch(&app, &recording).await;
    assert_eq!(
        body,
        "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1.000,\nseg_00000.ts\n#EXT-X-ENDLIST\n"
    );
    let (_, _, _, body) = fetch(&app, &format!("/live/{stream_id}/recording.m3u8")).await;
    assert_eq!(body, master, "a master playlist has no end");

    let archive = archive_of(&app, &creator, stream_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = Uuid::now_v7();
    let vod = format!("vod/{archive}/{version}");
    for (file, body) in [
        ("master.m3u8", "#EXTM3U\n"),
        ("thumbnail.jpg", "\u{ff}jpeg"),
        ("720p/index.m3u8", "#EXTM3U\n#EXT-X-ENDLIST\n"),
        ("720p/seg_00000.ts", "ts"),
        ("720p/seg_00000.m4s", "m4s"),
    ] {
        put(media.path(), &format!("{vod}/{file}"), body.as_bytes());
    }
    let immutable = "public, max-age=31536000, immutable";
    for (file, expected_type, expected_cache) in [
        (
            "master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=86400",
        ),
        ("thumbnail.jpg", "image/jpeg", immutable),
        (
            "720p/index.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=86400",
        ),
        ("720p/seg_00000.ts", "video/mp2t", immutable),
        ("720p/seg_00000.m4s", "video/iso.segment", immutable),
    ] {
        let (status, content_type, cache, _) = fetch(&app, &format!("/{vod}/{file}")).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert_eq!(
            (content_type.as_str(), cache.as_str()),
            (expected_type, expected_cache),
            "{file}"
        );
    }
    for missing in [
        format!("/{vod}/index.m3u8"),
        format!("/{vod}/seg_00000.ts"),
        format!("/{vod}/720p/thumbnail.jpg"),
        format!("/{vod}/720p/.hidden.ts"),
        format!("/{vod}/720p/seg.exe"),
        format!("/vod/{archive}/{}/master.m3u8", Uuid::now_v7()),
    ] {
        let (status, _, _, body) = fetch(&app, &missing).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
    }
    let (status, _, _, _) = fetch(&app, &format!("/vod/{archive}/latest/master.m3u8")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
