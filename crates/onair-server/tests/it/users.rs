use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    profiles_are_public_and_editable_by_their_owner,
    unknown_and_malformed_user_ids,
    profiles_are_found_by_username_in_any_case,
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

async fn profiles_are_found_by_username_in_any_case(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let gus = app.signup("gus_42").await;
    let fan = app.signup("gus_fan").await;
    app.request(
        Method::POST,
        &format!("/api/users/{}/follow", gus.id),
        Some(&fan.access),
        None,
    )
    .await;
    let (_, by_id) = app.get(&format!("/api/users/{}", gus.id)).await;
    for name in ["gus_42", "GUS_42", "Gus_42"] {
        let (status, profile) = app.get(&format!("/api/users/by-username/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{profile}");
        assert_eq!(profile, by_id, "the same body as by id");
    }
    let (_, seen_by_fan) = app
        .get_as("/api/users/by-username/gus_42", &fan.access)
        .await;
    assert_eq!(seen_by_fan["followed_by_you"], true);
    assert_eq!(seen_by_fan["follower_count"], 1);

    for unknown in ["nobody_here", "no", "not%20a%20name", &"x".repeat(40)] {
        assert_error(
            &app.get(&format!("/api/users/by-username/{unknown}")).await,
            404,
            "not_found",
        );
    }
}
