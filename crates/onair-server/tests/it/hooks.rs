//! External media servers' callbacks, in each server's own payload shape.

use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, User, assert_error, read};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    srs_callbacks_drive_the_lifecycle,
    mediamtx_auth_and_run_on_not_ready,
    ant_media_form_webhooks,
    hooks_reject_bad_secrets_keys_and_payloads,
    hooks_are_off_without_a_secret,
);

pub const HOOK_SECRET: &str = "hook-secret-for-tests";

pub async fn key_of(app: &TestApp, user: &User) -> String {
    let (_, body) = app.get_as("/api/me/stream-key", &user.access).await;
    body["stream_key"].as_str().unwrap().to_owned()
}

pub async fn hook_json(
    app: &TestApp,
    event: &str,
    secret: &str,
    body: Value,
) -> (StatusCode, Value) {
    let url = app.url(&format!("/api/hooks/media/{event}?secret={secret}"));
    read(app.client.post(url).json(&body).send().await.unwrap()).await
}

async fn status_of(app: &TestApp, user: &User) -> Option<String> {
    let (_, page) = app
        .get(&format!("/api/users/{}/streams?limit=1", user.id))
        .await;
    page["data"]
        .get(0)
        .map(|s| s["status"].as_str().unwrap().to_owned())
}

pub fn with_hooks(config: &mut onair_server::Config) {
    config.media.hook_secret = Some(HOOK_SECRET.into());
    config.media.rtmp_enabled = false;
}

async fn srs_callbacks_drive_the_lifecycle(db: DbConfig) {
    let app = TestApp::spawn_configured(db, with_hooks).await;
    let creator = app.signup("srs_user").await;
    let key = key_of(&app, &creator).await;
    let on_publish = json!({"server_id": "vid-1", "action": "on_publish", "client_id": "341w361a",
        "ip": "127.0.0.1", "vhost": "__defaultVhost__", "app": "live", "tcUrl": "rtmp://127.0.0.1/live",
        "stream": key, "param": ""});
    let (status, body) = hook_json(&app, "publish", HOOK_SECRET, on_publish.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(status_of(&app, &creator).await.as_deref(), Some("live"));
    // SRS retries callbacks: a repeat is accepted and changes nothing.
    let (status, again) = hook_json(&app, "publish", HOOK_SECRET, on_publish).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["stream_id"], body["stream_id"]);

    let on_unpublish =
        json!({"action": "on_unpublish", "client_id": "341w361a", "app": "live", "stream": key});
    let (status, _) = hook_json(&app, "unpublish", HOOK_SECRET, on_unpublish).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        status_of(&app, &creator).await.as_deref(),
        Some("offline"),
        "waiting for a reconnect"
    );
}

async fn mediamtx_auth_and_run_on_not_ready(db: DbConfig) {
    let app = TestApp::spawn_configured(db, with_hooks).await;
    let creator = app.signup("mtx_user").await;
    let key = key_of(&app, &creator).await;
    let path = format!("live/{key}");
    let read_request = json!({"user": "", "password": "", "ip": "127.0.0.1", "action": "read",
        "path": path, "protocol": "hls", "id": null, "query": ""});
    let (status, _) = hook_json(&app, "publish", HOOK_SECRET, read_request).await;
    assert_eq!(status, StatusCode::OK, "readers are allowed");
    assert_eq!(
        status_of(&app, &creator).await,
        None,
        "reading starts nothing"
    );

    let publish = json!({"user": "", "password": "", "ip": "127.0.0.1", "action": "publish",
        "path": path, "protocol": "rtmp", "id": null, "query": "obs=1"});
    let (status, _) = hook_json(&app, "publish", HOOK_SECRET, publish).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &creator).await.as_deref(), Some("live"));
    let (status, _) = hook_json(&app, "unpublish", HOOK_SECRET, json!({"path": path})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &creator).await.as_deref(), Some("offline"));
}

async fn ant_media_form_webhooks(db: DbConfig) {
    let app = TestApp::spawn_configured(db, with_hooks).await;
    let creator = app.signup("ams_user").await;
    let key = key_of(&app, &creator).await;
    let url = app.url(&format!("/api/hooks/media/publish?secret={HOOK_SECRET}"));
    let form = |action: &str| {
        app.client
            .post(&url)
            .form(&[
                ("action", action),
                ("id", key.as_str()),
                ("streamName", "show"),
                ("category", ""),
            ])
            .send()
    };
    let (status, body) = read(form("liveStreamStarted").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(status_of(&app, &creator).await.as_deref(), Some("live"));
    let (status, _) = read(form("liveStreamEnded").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &creator).await.as_deref(), Some("offline"));
}

async fn hooks_reject_bad_secrets_keys_and_payloads(db: DbConfig) {
    let app = TestApp::spawn_configured(db, with_hooks).await;
    let creator = app.signup("hook_target").await;
    let key = key_of(&app, &creator).await;
    let publish = json!({"action": "on_publish", "app": "live", "stream": key});
    assert_error(
        &hook_json(&app, "publish", "wrong-secret-wrong", publish.clone()).await,
        401,
        "invalid_hook_secret",
    );
    let no_secret = read(
        app.client
            .post(app.url("/api/hooks/media/publish"))
            .json(&publish)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&no_secret, 401, "invalid_hook_secret");
    let by_header = app
        .client
        .post(app.url("/api/hooks/media/publish"))
        .header("x-onair-hook-secret", HOOK_SECRET)
        .json(&json!({"action": "on_publish", "stream": "live_00000000000000000000000000000000_nope"}))
        .send()
        .await
        .unwrap();
    assert_error(&read(by_header).await, 403, "publish_refused");
    assert_error(
        &hook_json(
            &app,
            "publish",
            HOOK_SECRET,
            json!({"action": "on_publish"}),
        )
        .await,
        422,
        "validation_failed",
    );
    assert_error(
        &hook_json(&app, "restart", HOOK_SECRET, publish).await,
        404,
        "route_not_found",
    );
    assert_eq!(status_of(&app, &creator).await, None);
}

async fn hooks_are_off_without_a_secret(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let response = hook_json(
        &app,
        "publish",
        "anything-at-all-here",
        json!({"stream": "x"}),
    )
    .await;
    assert_error(&response, 404, "not_found");
}
