use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::notifications::go_live;
use crate::support::{TestApp, assert_error, eventually, redis_url};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    heartbeats_become_viewer_counts,
    #[redis] heartbeats_become_viewer_counts_through_redis,
    heartbeats_collected_before_a_shutdown_are_persisted,
    the_live_directory_pages_most_watched_first,
    viewer_tokens_count_once_and_only_on_their_stream,
    expired_viewer_tokens_are_refused,
    minting_viewer_tokens_is_limited_per_address,
);

fn fast_counts(config: &mut onair_server::Config) {
    config.viewers.flush_ms = 50;
    config.viewers.persist_ms = 100;
    // The live list shows counts as fresh as its cache.
    config.cache.live_list_ttl_secs = 1;
}

/// Counts go through Redis (ONAIR_TEST_REDIS_URL) instead.
fn fast_counts_on_redis(config: &mut onair_server::Config) {
    fast_counts(config);
    config.redis.url = Some(redis_url());
}

/// A new caster's live broadcast.
async fn live_stream(app: &TestApp, caster: &str) -> String {
    go_live(app, &app.signup(caster).await).await
}

/// A new anonymous identity for `stream_id` (`POST …/viewer-token`).
async fn viewer_token(app: &TestApp, stream_id: &str) -> String {
    let (status, body) = app
        .post(
            &format!("/api/streams/{stream_id}/viewer-token"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["viewer_token"].as_str().unwrap().to_owned()
}

async fn viewer_counts_are_aggregated(app: TestApp) {
    let caster = app.signup("watched").await;
    let viewer = app.signup("watcher").await;
    let (_, stream) = app
        .post(
            "/api/streams/start",
            Some(&caster.access),
            json!({"title": "Popular"}),
        )
        .await;
    let stream_id = stream["id"].as_str().unwrap();
    let path = format!("/api/streams/{stream_id}/heartbeat");
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(viewer_token(&app, stream_id).await);
    }
    for token in tokens.iter().chain(&tokens[..1]) {
        let (status, body) = app.post(&path, None, json!({"viewer_token": token})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, _) = app.post(&path, Some(&viewer.access), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let stream_path = format!("/api/streams/{}", stream["id"].as_str().unwrap());
    let current = eventually("the viewer count to reach 4", || async {
        let (_, current) = app.get(&stream_path).await;
        (current["viewer_count"] == 4).then_some(current)
    })
    .await;
    assert_eq!(current["unique_viewer_count"], 4);
    assert_eq!(current["peak_viewer_count"], 4);
    let (_, live) = app.get("/api/streams").await;
    assert_eq!(
        live["data"][0]["viewer_count"], 4,
        "the live list shows the count"
    );

    assert_error(
        &app.post(&path, None, json!({})).await,
        422,
        "validation_failed",
    );
    let old = app
        .post(&path, None, json!({"viewer_id": "anon-viewer-1"}))
        .await;
    assert_error(&old, 422, "validation_failed");
    let message = old.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("viewer-token"),
        "says what to send: {message}"
    );
    assert_error(
        &app.post(&path, None, json!({"viewer_token": tokens[0], "extra": 1}))
            .await,
        422,
        "invalid_body",
    );
    let ghost = "/api/streams/01900000-0000-7000-8000-000000000000/viewer-token";
    assert_error(&app.post(ghost, None, json!({})).await, 404, "not_found");
    app.post("/api/streams/end", Some(&caster.access), json!({}))
        .await;
    let (_, ended) = app.get(&stream_path).await;
    assert_eq!(ended["viewer_count"], 0);
    assert_eq!(ended["peak_viewer_count"], 4, "the peak is kept");
}

async fn heartbeats_become_viewer_counts(db: DbConfig) {
    viewer_counts_are_aggregated(TestApp::spawn_configured(db, fast_counts).await).await;
}

async fn heartbeats_become_viewer_counts_through_redis(db: DbConfig) {
    viewer_counts_are_aggregated(TestApp::spawn_configured(db, fast_counts_on_redis).await).await;
}

async fn heartbeats_collected_before_a_shutdown_are_persisted(db: DbConfig) {
    // Intervals far longer than the test: only the shutdown's last flush can store them.
    let slow = |config: &mut onair_server::Config| {
        config.viewers.flush_ms = 3_600_000;
        config.viewers.persist_ms = 3_600_000;
    };
    let app = TestApp::spawn_configured(db.clone(), slow).await;
    let caster = app.signup("leaving").await;
    let (_, stream) = app
        .post(
            "/api/streams/start",
            Some(&caster.access),
            json!({"title": "Last"}),
        )
        .await;
    let id: uuid::Uuid = stream["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/streams/{id}/heartbeat");
    for _ in 0..2 {
        let token = viewer_token(&app, &id.to_string()).await;
        let (status, _) = app.post(&path, None, json!({"viewer_token": token})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    app.shutdown().await;
    let store = onair_store::connect(&db).await.unwrap();
    let stored = store.stream(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.viewer_count, stored.unique_viewer_count),
        (2, 2),
        "the shutdown flushed and persisted the counts"
    );
    store.close().await;
}

/// The home page's list: `?sort=viewers` ranks live broadcasts by their heartbeats'
/// count, across pages.
async fn the_live_directory_pages_most_watched_first(db: DbConfig) {
    let app = TestApp::spawn_configured(db, fast_counts).await;
    let audiences: [i64; 5] = [2, 0, 5, 1, 3];
    let mut expected = Vec::new();
    for (i, audience) in audiences.into_iter().enumerate() {
        let caster = app.signup(&format!("ranked{i}")).await;
        let (_, stream) = app
            .post(
                "/api/streams/start",
                Some(&caster.access),
                json!({"title": "show"}),
            )
            .await;
        let id = stream["id"].as_str().unwrap().to_owned();
        for _ in 0..audience {
            let heartbeat = format!("/api/streams/{id}/heartbeat");
            let token = viewer_token(&app, &id).await;
            let (status, _) = app
                .post(&heartbeat, None, json!({"viewer_token": token}))
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        expected.push((audience, id));
    }
    expected.sort_by(|a, b| b.cmp(a));
    let counted = eventually("every viewer count to be flushed", || async {
        let (items, pages) = app.collect_pages("/api/streams?sort=viewers", 2).await;
        let listed: Vec<(i64, String)> = items
            .iter()
            .map(|s| {
                (
                    s["viewer_count"].as_i64().unwrap(),
                    s["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (listed.iter().map(|(n, _)| n).sum::<i64>() == 11).then_some((listed, pages))
    })
    .await;
    assert_eq!(
        counted,
        (expected, 3),
        "most watched first, over three pages"
    );

    assert_error(
        &app.get("/api/streams?sort=loudest").await,
        400,
        "invalid_query",
    );
    let (_, by_time) = app.get("/api/streams?limit=1").await;
    let cursor = by_time["pagination"]["next_cursor"].as_str().unwrap();
    assert_error(
        &app.get(&format!("/api/streams?sort=viewers&cursor={cursor}"))
            .await,
        400,
        "invalid_cursor",
    );
}

/// Issue 14: a client cannot choose its identities. Ids it makes up are refused; a token
/// counts once however often it beats, and only on the broadcast it was issued for.
async fn viewer_tokens_count_once_and_only_on_their_stream(db: DbConfig) {
    let app = TestApp::spawn_configured(db, fast_counts).await;
    let (a, b) = (
        &live_stream(&app, "token_a").await,
        &live_stream(&app, "token_b").await,
    );
    let beat = |stream: &str, body: serde_json::Value| {
        let path = format!("/api/streams/{stream}/heartbeat");
        let app = &app;
        async move { app.post(&path, None, body).await }
    };
    for i in 0..20 {
        let made_up = json!({"viewer_id": format!("random-viewer-{i:04}")});
        assert_error(&beat(a, made_up).await, 422, "validation_failed");
    }
    let token = viewer_token(&app, a).await;
    for _ in 0..5 {
        let (status, body) = beat(a, json!({"viewer_token": token})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_error(
        &beat(b, json!({"viewer_token": token})).await,
        422,
        "invalid_viewer_token",
    );
    // Any changed byte breaks the signature: the viewer id inside, or the tag at the end.
    for at in [40, token.len() - 1] {
        let mut tampered = token.clone().into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_error(
            &beat(a, json!({"viewer_token": tampered})).await,
            422,
            "invalid_viewer_token",
        );
    }
    for garbage in ["", "not-a-token", &token[..40]] {
        assert_error(
            &beat(a, json!({"viewer_token": garbage})).await,
            422,
            "invalid_viewer_token",
        );
    }

    let counted = |stream: String| {
        let app = &app;
        async move {
            let (_, s) = app.get(&format!("/api/streams/{stream}")).await;
            (s["viewer_count"].clone(), s["unique_viewer_count"].clone())
        }
    };
    eventually("the token's viewer to be counted", || async {
        (counted(a.clone()).await == (json!(1), json!(1))).then_some(())
    })
    .await;
    // Several flushes and persists later, still one viewer on A and none on B.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(counted(a.clone()).await, (json!(1), json!(1)));
    assert_eq!(counted(b.clone()).await, (json!(0), json!(0)));
}

async fn expired_viewer_tokens_are_refused(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        fast_counts(config);
        config.viewers.token_ttl_secs = 1;
    })
    .await;
    let id = &live_stream(&app, "expiring").await;
    let (status, minted) = app
        .post(&format!("/api/streams/{id}/viewer-token"), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    assert_eq!(minted["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let path = format!("/api/streams/{id}/heartbeat");
    assert_error(
        &app.post(&path, None, json!({"viewer_token": minted["viewer_token"]}))
            .await,
        422,
        "invalid_viewer_token",
    );
    // The player's answer to that code: a new token, counted.
    let renewed = viewer_token(&app, id).await;
    let (status, body) = app
        .post(&path, None, json!({"viewer_token": renewed}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// Minting counts against the per-address heartbeat quota: one address gets at most that
/// many identities a minute.
async fn minting_viewer_tokens_is_limited_per_address(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.rate_limit.enabled = true;
        config.rate_limit.heartbeat_per_minute = 3.try_into().unwrap();
    })
    .await;
    let id = &live_stream(&app, "minted").await;
    for _ in 0..3 {
        viewer_token(&app, id).await;
    }
    assert_error(
        &app.post(&format!("/api/streams/{id}/viewer-token"), None, json!({}))
            .await,
        429,
        "rate_limited",
    );
}
