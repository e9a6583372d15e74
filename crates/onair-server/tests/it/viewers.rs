use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, assert_error, eventually, redis_url};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    heartbeats_become_viewer_counts,
    #[redis] heartbeats_become_viewer_counts_through_redis,
    heartbeats_collected_before_a_shutdown_are_persisted,
    the_live_directory_pages_most_watched_first,
);

fn fast_counts(config: &mut onair_server::Config) {
    config.viewers.flush_ms = 50;
    config.viewers.persist_ms = 100;
}

/// Counts go through Redis (ONAIR_TEST_REDIS_URL) instead.
fn fast_counts_on_redis(config: &mut onair_server::Config) {
    fast_counts(config);
    config.redis.url = Some(redis_url());
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
    for viewer in ["anon-viewer-a", "anon-viewer-b"] {
        let (status, _) = app.post(&path, None, json!({"viewer_id": viewer})).await;
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
        for viewer in 0..audience {
            let heartbeat = format!("/api/streams/{id}/heartbeat");
            let viewer_id = format!("viewer-{i}-{viewer}");
            let (status, _) = app
                .post(&heartbeat, None, json!({"viewer_id": viewer_id}))
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
