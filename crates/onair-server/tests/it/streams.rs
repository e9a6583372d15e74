use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::chat::{next, next_of, open, room_of};
use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    stream_keys_are_private_stable_and_rotatable,
    a_broadcast_goes_live_and_ends,
    only_the_owner_can_edit_a_stream,
    live_list_is_paginated_newest_first,
    pages_watching_a_channel_hear_it_change_in_its_chat,
);

async fn go_live(app: &TestApp, user: &User, title: &str) -> serde_json::Value {
    let (status, stream) = app
        .post(
            "/api/streams/start",
            Some(&user.access),
            json!({"title": title, "category": "Games"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    stream
}

async fn stream_keys_are_private_stable_and_rotatable(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let user = app.signup("keyholder").await;
    let response = app
        .client
        .get(app.url("/api/me/stream-key"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let (status, first) = crate::support::read(response).await;
    assert_eq!(status, StatusCode::OK);
    let key = first["stream_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("live_"));
    assert_eq!(first["rtmp_url"], "rtmp://127.0.0.1:1935/live");
    assert_eq!(
        first["srt_url"],
        format!("srt://127.0.0.1:9000?streamid=publish:{key}").as_str()
    );

    let (_, again) = app.get_as("/api/me/stream-key", &user.access).await;
    assert_eq!(
        again["stream_key"],
        key.as_str(),
        "the same key is shown again"
    );
    let (status, rotated) = app
        .post("/api/me/stream-key/rotate", Some(&user.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["stream_key"], key.as_str());
    let (_, after) = app.get_as("/api/me/stream-key", &user.access).await;
    assert_eq!(after["stream_key"], rotated["stream_key"]);

    assert_error(&app.get("/api/me/stream-key").await, 401, "unauthorized");
    assert_error(
        &app.post("/api/me/stream-key/rotate", None, json!({})).await,
        401,
        "unauthorized",
    );
}

async fn a_broadcast_goes_live_and_ends(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("streamer").await;
    let stream = go_live(&app, &streamer, "  Any% speedrun ").await;
    assert_eq!(stream["status"], "live");
    assert_eq!(stream["title"], "Any% speedrun");
    assert_eq!(stream["owner"]["username"], "streamer");
    // Live through the API alone: no video, so no preview image.
    assert_eq!(stream["preview_url"], serde_json::Value::Null, "{stream}");
    let id = stream["id"].as_str().unwrap().to_owned();

    let (_, live) = app.get("/api/streams").await;
    assert_eq!(live["data"][0]["id"], id.as_str());
    assert_eq!(live["data"][0]["preview_url"], serde_json::Value::Null);
    assert_eq!(live["data"][0]["owner"]["username"], "streamer");
    let (_, profile) = app.get(&format!("/api/users/{}", streamer.id)).await;
    assert_eq!(profile["is_live"], true);
    assert_eq!(profile["live_stream_id"], id.as_str());

    let again = app
        .post(
            "/api/streams/start",
            Some(&streamer.access),
            json!({"title": "again"}),
        )
        .await;
    assert_error(&again, 409, "stream_already_live");

    let (status, ended) = app
        .post("/api/streams/end", Some(&streamer.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["status"], "ended");
    assert!(ended["ended_at"].is_string());
    assert_error(
        &app.post("/api/streams/end", Some(&streamer.access), json!({}))
            .await,
        409,
        "stream_not_live",
    );

    let (_, live) = app.get("/api/streams").await;
    assert_eq!(live["data"].as_array().unwrap().len(), 0);
    let (_, ended_list) = app.get("/api/streams?status=ended").await;
    assert_eq!(ended_list["data"][0]["id"], id.as_str());
    let (_, by_user) = app
        .get(&format!("/api/users/{}/streams", streamer.id))
        .await;
    assert_eq!(by_user["data"][0]["id"], id.as_str());
    let (status, one) = app.get(&format!("/api/streams/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "ended");

    assert_error(
        &app.get("/api/streams?status=paused").await,
        400,
        "invalid_query",
    );
    assert_error(
        &app.get("/api/streams/01900000-0000-7000-8000-000000000000")
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.post("/api/streams/start", None, json!({"title": "x"}))
            .await,
        401,
        "unauthorized",
    );
    assert_error(
        &app.post(
            "/api/streams/start",
            Some(&streamer.access),
            json!({"title": " "}),
        )
        .await,
        422,
        "validation_failed",
    );
    assert_error(
        &app.post("/api/streams/start", Some(&streamer.access), json!({}))
            .await,
        422,
        "invalid_body",
    );
}

async fn only_the_owner_can_edit_a_stream(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("owner").await;
    let other = app.signup("intruder").await;
    let stream = go_live(&app, &owner, "Cooking").await;
    let path = format!("/api/streams/{}", stream["id"].as_str().unwrap());
    let patch = |user: &User, body| {
        let token = user.access.clone();
        let (app, path) = (&app, &path);
        async move {
            app.request(Method::PATCH, path, Some(&token), Some(body))
                .await
        }
    };

    assert_error(
        &patch(&other, json!({"title": "hijacked"})).await,
        403,
        "forbidden",
    );
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(unchanged["title"], "Cooking");

    let (status, body) = patch(&owner, json!({"title": "Baking"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "Baking");
    assert_eq!(body["category"], "Games", "absent fields stay");
    let (_, body) = patch(&owner, json!({"category": null})).await;
    assert_eq!(body["category"], serde_json::Value::Null);

    assert_error(
        &patch(&owner, json!({"title": ""})).await,
        422,
        "validation_failed",
    );
    assert_error(
        &patch(&owner, json!({"status": "ended"})).await,
        422,
        "invalid_body",
    );
    let ghost = "/api/streams/01900000-0000-7000-8000-000000000000";
    assert_error(
        &app.request(
            Method::PATCH,
            ghost,
            Some(&owner.access),
            Some(json!({"title": "x"})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &app.request(Method::PATCH, &path, None, Some(json!({"title": "x"})))
            .await,
        401,
        "unauthorized",
    );
}

async fn live_list_is_paginated_newest_first(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let user = app.signup(&format!("caster{i}")).await;
        ids.push(
            go_live(&app, &user, &format!("show {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (items, pages) = app.collect_pages("/api/streams?status=live", 2).await;
    assert_eq!(pages, 3);
    let listed: Vec<&str> = items.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, expected);
    assert_error(
        &app.get("/api/streams?cursor=djEuMS4y").await,
        400,
        "invalid_cursor",
    );
}

/// A channel page keeps its chat socket open and reads the channel again when the room
/// says it changed, instead of polling the API (anonymous viewers have 20 requests a
/// minute).
async fn pages_watching_a_channel_hear_it_change_in_its_chat(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("announced").await;
    let mut watching = open(&app, &room_of(&creator)).await;
    assert_eq!(next(&mut watching).await["type"], "welcome");

    go_live(&app, &creator, "Hello").await;
    next_of(&mut watching, "channel_changed").await;
    let (status, _) = app
        .post("/api/streams/end", Some(&creator.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    next_of(&mut watching, "channel_changed").await;
}
