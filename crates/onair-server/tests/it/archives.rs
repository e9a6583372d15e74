use onair_store::DbConfig;
use onair_store::{ArchiveStatus, NewArchive, Timestamp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    archives_are_listed_once_ready,
);

async fn archives_are_listed_once_ready(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("vodmaker").await;
    let (_, stream) = app
        .post(
            "/api/streams/start",
            Some(&creator.access),
            json!({"title": "Marathon"}),
        )
        .await;
    app.post("/api/streams/end", Some(&creator.access), json!({}))
        .await;
    let stream_id: Uuid = stream["id"].as_str().unwrap().parse().unwrap();

    // The archive pipeline writes rows straight to the store.
    let store = onair_store::connect(&app.db).await.unwrap();
    let mut ready = Vec::new();
    for (i, status) in [
        ArchiveStatus::Ready,
        ArchiveStatus::Processing,
        ArchiveStatus::Ready,
        ArchiveStatus::Ready,
    ]
    .into_iter()
    .enumerate()
    {
        let archive = store
            .insert_archive(NewArchive {
                id: Uuid::now_v7(),
                stream_id,
                status,
                duration_ms: 1_000 * i as i64,
                playlist_path: Some(format!("archives/{i}/index.m3u8")),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        if status == ArchiveStatus::Ready {
            ready.push(archive.id.to_string());
        }
    }
    store.close().await;

    let (items, pages) = app.collect_pages("/api/archives", 2).await;
    assert_eq!(pages, 2);
    let listed: Vec<&str> = items.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = ready.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, expected, "ready archives only, newest first");
    assert_eq!(items[0]["title"], "Marathon");
    assert_eq!(items[0]["owner"]["username"], "vodmaker");

    let (items, _) = app
        .collect_pages(&format!("/api/users/{}/archives", creator.id), 10)
        .await;
    assert_eq!(items.len(), 3);
    let (status, one) = app.get(&format!("/api/archives/{}", ready[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "ready");
    assert_eq!(one["stream_id"], stream_id.to_string());

    assert_error(
        &app.get("/api/archives/01900000-0000-7000-8000-000000000000")
            .await,
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
}
