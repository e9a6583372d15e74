use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, assert_error, each_backend_configured};

fn fast_counts(config: &mut onair_server::Config) {
    config.viewers.flush_ms = 50;
    config.viewers.persist_ms = 100;
}

/// With Redis configured (ONAIR_TEST_REDIS_URL), counts go through Redis instead.
fn fast_counts_on_redis(config: &mut onair_server::Config) {
    fast_counts(config);
    config.redis.url = std::env::var("ONAIR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
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
    let path = format!("/api/streams/{}/heartbeat", stream["id"].as_str().unwrap());

    for id in [
        "anon-viewer-1",
        "anon-viewer-2",
        "anon-viewer-3",
        "anon-viewer-1",
    ] {
        let (status, body) = app.post(&path, None, json!({"viewer_id": id})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, _) = app.post(&path, Some(&viewer.access), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let stream_path = format!("/api/streams/{}", stream["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, current) = app.get(&stream_path).await;
        if current["viewer_count"] == 4 {
            assert_eq!(current["unique_viewer_count"], 4);
            assert_eq!(current["peak_viewer_count"], 4);
            let (_, live) = app.get("/api/streams").await;
            assert_eq!(
                live["data"][0]["viewer_count"], 4,
                "the live list shows the count"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "viewer count never reached 4: {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_error(
        &app.post(&path, None, json!({})).await,
        422,
        "validation_failed",
    );
    assert_error(
        &app.post(&path, None, json!({"viewer_id": "short"})).await,
        422,
        "validation_failed",
    );
    assert_error(
        &app.post(
            &path,
            None,
            json!({"viewer_id": "anon-viewer-1", "extra": 1}),
        )
        .await,
        422,
        "invalid_body",
    );
    let ghost = "/api/streams/01900000-0000-7000-8000-000000000000/heartbeat";
    assert_error(
        &app.post(ghost, None, json!({"viewer_id": "anon-viewer-1"}))
            .await,
        404,
        "not_found",
    );
    app.post("/api/streams/end", Some(&caster.access), json!({}))
        .await;
    let (_, ended) = app.get(&stream_path).await;
    assert_eq!(ended["viewer_count"], 0);
    assert_eq!(ended["peak_viewer_count"], 4, "the peak is kept");
}

#[tokio::test]
async fn heartbeats_become_viewer_counts() {
    each_backend_configured(fast_counts, viewer_counts_are_aggregated).await;
}

#[tokio::test]
async fn heartbeats_become_viewer_counts_through_redis() {
    if std::env::var("ONAIR_TEST_REDIS_URL").is_err() {
        eprintln!("skipped: ONAIR_TEST_REDIS_URL is not set");
        return;
    }
    each_backend_configured(fast_counts_on_redis, viewer_counts_are_aggregated).await;
}

#[tokio::test]
async fn heartbeats_collected_before_a_shutdown_are_persisted() {
    // Intervals far longer than the test: only the shutdown's last flush can store them.
    let slow = |config: &mut onair_server::Config| {
        config.viewers.flush_ms = 3_600_000;
        config.viewers.persist_ms = 3_600_000;
    };
    each_backend_configured(slow, |app| async move {
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
        for viewer in ["anon-viewer-a", "anon-viewer-b"] {
            let (status, _) = app.post(&path, None, json!({"viewer_id": viewer})).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        let db = app.db.clone();
        app.shutdown().await;
        let store = onair_store::connect(&db).await.unwrap();
        let stored = store.stream(id).await.unwrap().unwrap();
        assert_eq!(
            (stored.viewer_count, stored.unique_viewer_count),
            (2, 2),
            "the shutdown flushed and persisted the counts"
        );
        store.close().await;
    })
    .await;
}
