//! Node roles: each node serves only the routes and runs only the loops of its roles
//! (`onair serve --role …`), sharing one database; probes and metrics on every node.

use onair_server::Role;
use onair_store::DbConfig;
use reqwest::StatusCode;

use crate::chat::{next_of, open, room_of};
use crate::support::{TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    each_node_serves_only_its_roles,
);

async fn node(db: &DbConfig, roles: &[Role]) -> TestApp {
    TestApp::spawn_configured(db.clone(), |config| config.roles = roles.to_vec()).await
}

async fn each_node_serves_only_its_roles(db: DbConfig) {
    let api = node(&db, &[Role::Api]).await;
    let chat = node(&db, &[Role::Chat]).await;
    let ingest = node(&db, &[Role::Ingest]).await;
    let worker = node(&db, &[Role::Worker]).await;
    let creator = api.signup("roleplay").await;

    // The API node: the API, the UI and the document; no chat sockets, no RTMP.
    assert_eq!(api.get("/api/streams").await.0, StatusCode::OK);
    assert_eq!(api.get("/api/openapi.json").await.0, StatusCode::OK);
    assert_error(&api.get(&room_of(&creator)).await, 404, "route_not_found");
    assert!(api.rtmp.is_none());

    // The chat node: sockets only (a room of a user the API node created).
    let mut socket = open(&chat, &room_of(&creator)).await;
    assert_eq!(
        next_of(&mut socket, "welcome").await["room"],
        creator.id.as_str()
    );
    assert_error(&chat.get("/api/streams").await, 404, "route_not_found");
    assert_error(&chat.get("/").await, 404, "route_not_found");
    assert!(chat.rtmp.is_none());

    // The ingest node: RTMP; the worker: jobs. Neither serves the API.
    assert!(ingest.rtmp.is_some());
    assert!(worker.rtmp.is_none());
    for node in [&ingest, &worker] {
        assert_error(&node.get("/api/streams").await, 404, "route_not_found");
    }

    // Every node: probes and metrics.
    for node in [&api, &chat, &ingest, &worker] {
        assert_eq!(node.get("/healthz").await.0, StatusCode::OK);
        assert_eq!(node.get("/readyz").await.0, StatusCode::OK);
        assert_eq!(node.get("/metrics").await.0, StatusCode::OK);
    }
}
