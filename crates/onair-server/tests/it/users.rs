use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    profiles_are_public_and_editable_by_their_owner,
    unknown_and_malformed_user_ids,
);

async fn profiles_are_public_and_editable_by_their_owner(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let erin = app.signup("erin").await;
    let patch = |body| {
        app.request(
            Method::PATCH,
            "/api/users/me",
            Some(&erin.access),
            Some(body),
        )
    };

    let (status, body) = patch(json!({
        "display_name": "  Erin  ",
        "bio": "Speedruns\nevery night",
        "avatar_url": "https://cdn.example/erin.png"
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Erin");

    let (status, profile) = app.get(&format!("/api/users/{}", erin.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["username"], "erin");
    assert_eq!(profile["bio"], "Speedruns\nevery night");
    assert_eq!(profile["avatar_url"], "https://cdn.example/erin.png");
    assert_eq!(profile["follower_count"], 0);
    assert_eq!(profile["is_live"], false);
    assert!(
        profile.get("followed_by_you").is_none(),
        "anonymous callers get no relation"
    );

    // Absent fields stay, null clears.
    let (_, body) = patch(json!({"avatar_url": null})).await;
    assert_eq!(body["avatar_url"], serde_json::Value::Null);
    assert_eq!(body["display_name"], "Erin");

    assert_error(
        &patch(json!({"avatar_url": "javascript:alert(1)"})).await,
        422,
        "validation_failed",
    );
    assert_error(
        &patch(json!({"display_name": ""})).await,
        422,
        "validation_failed",
    );
    assert_error(
        &patch(json!({"username": "mallory"})).await,
        422,
        "invalid_body",
    );
    assert_error(
        &app.request(
            Method::PATCH,
            "/api/users/me",
            None,
            Some(json!({"bio": "x"})),
        )
        .await,
        401,
        "unauthorized",
    );
}

async fn unknown_and_malformed_user_ids(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    for path in ["", "/followers", "/following", "/streams", "/archives"] {
        assert_error(
            &app.get(&format!("/api/users/{unknown}{path}")).await,
            404,
            "not_found",
        );
        assert_error(
            &app.get(&format!("/api/users/not-a-uuid{path}")).await,
            400,
            "invalid_path",
        );
    }
}
