use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{SECRET, TestApp, assert_error, jwt, now};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    signup_login_refresh_rotation_and_logout,
    signup_rejects_bad_and_duplicate_input,
    access_tokens_are_checked,
);

async fn signup_login_refresh_rotation_and_logout(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let alice = app.signup("Alice").await;
    assert_eq!(alice.username, "alice", "usernames are stored lower-case");
    let (status, me) = app.get_as("/api/users/me", &alice.access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], alice.id.as_str());

    for login in ["alice", "ALICE", "alice@example.com"] {
        let (status, body) = app
            .post(
                "/api/auth/login",
                None,
                json!({"login": login, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{login}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
    }
    for (login, password) in [
        ("alice", "wrong password"),
        ("nobody", "correct horse battery"),
    ] {
        let response = app
            .post(
                "/api/auth/login",
                None,
                json!({"login": login, "password": password}),
            )
            .await;
        assert_error(&response, 401, "invalid_credentials");
    }

    // Rotation: each refresh token works once.
    let (status, rotated) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, alice.refresh);
    // Replaying the spent token revokes the family, including the token just issued.
    let replay = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_error(&replay, 401, "refresh_token_reused");
    let after_reuse = app
        .post("/api/auth/refresh", None, json!({"refresh_token": second}))
        .await;
    assert_error(&after_reuse, 401, "refresh_token_reused");

    // Logout ends a session; other sessions of the same user live on.
    let login = |_: ()| {
        app.post(
            "/api/auth/login",
            None,
            json!({"login": "alice", "password": "correct horse battery"}),
        )
    };
    let (_, one) = login(()).await;
    let (_, two) = login(()).await;
    let (status, _) = app
        .post(
            "/api/auth/logout",
            None,
            json!({"refresh_token": one["refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let dead = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": one["refresh_token"]}),
        )
        .await;
    assert_error(&dead, 401, "refresh_token_reused");
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": two["refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let unknown = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": "made-up"}),
        )
        .await;
    assert_error(&unknown, 401, "invalid_refresh_token");
}

async fn signup_rejects_bad_and_duplicate_input(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    app.signup("bob").await;
    let signup = |body| app.post("/api/auth/signup", None, body);
    assert_error(
        &signup(
            json!({"username": "BOB", "email": "other@example.com", "password": "long enough!"}),
        )
        .await,
        409,
        "username_taken",
    );
    assert_error(
        &signup(
            json!({"username": "bobby", "email": "Bob@Example.com", "password": "long enough!"}),
        )
        .await,
        409,
        "email_taken",
    );
    for (body, field) in [
        (
            json!({"username": "b", "email": "b@example.com", "password": "long enough!"}),
            "username",
        ),
        (
            json!({"username": "bad name", "email": "b@example.com", "password": "long enough!"}),
            "username",
        ),
        (
            json!({"username": "carol", "email": "not-an-email", "password": "long enough!"}),
            "email",
        ),
        (
            json!({"username": "carol", "email": "c@example.com", "password": "short"}),
            "password",
        ),
    ] {
        let response = signup(body).await;
        assert_error(&response, 422, "validation_failed");
        assert_eq!(response.1["error"]["field"], field);
    }
    assert_error(
        &signup(json!({"username": "carol", "email": "c@example.com", "password": "long enough!", "admin": true})).await,
        422,
        "invalid_body",
    );
    assert_error(
        &signup(json!({"username": "carol"})).await,
        422,
        "invalid_body",
    );

    let raw = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/api/auth/signup"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = crate::support::read(
        raw("application/json", "{\"username\":".into())
            .await
            .unwrap(),
    )
    .await;
    assert_error(&malformed, 400, "invalid_json");
    let not_json = crate::support::read(raw("text/plain", "{}".into()).await.unwrap()).await;
    assert_error(&not_json, 415, "unsupported_media_type");
    let huge = format!("{{\"username\":\"{}\"}}", "x".repeat(100 * 1024));
    let too_large = crate::support::read(raw("application/json", huge).await.unwrap()).await;
    assert_error(&too_large, 413, "payload_too_large");
}

async fn access_tokens_are_checked(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let user = app.signup("dave").await;
    let app = &app;
    let me = |token: String| async move { app.get_as("/api/users/me", &token).await };
    assert_error(&app.get("/api/users/me").await, 401, "unauthorized");
    assert_error(&me("garbage".into()).await, 401, "invalid_token");

    let claims = json!({"sub": user.id, "iat": now(), "exp": now() + 600});
    let valid = jwt(
        SECRET,
        json!({"alg": "HS256", "typ": "JWT"}),
        claims.clone(),
    );
    assert_eq!(
        me(valid.clone()).await.0,
        StatusCode::OK,
        "a correctly signed token works"
    );

    let expired = jwt(
        SECRET,
        json!({"alg": "HS256"}),
        json!({"sub": user.id, "iat": now() - 7200, "exp": now() - 3600}),
    );
    assert_error(&me(expired).await, 401, "token_expired");

    let foreign = jwt(
        "another-secret-another-secret-another",
        json!({"alg": "HS256"}),
        claims.clone(),
    );
    assert_error(&me(foreign).await, 401, "invalid_token");

    // alg=none: a valid header and payload with the signature stripped.
    let unsigned = {
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(claims.clone())
        )
    };
    assert_error(&me(unsigned).await, 401, "invalid_token");

    let tampered = format!("{}x", &valid[..valid.len() - 1]);
    assert_error(&me(tampered).await, 401, "invalid_token");

    let no_bearer = app
        .client
        .get(app.url("/api/users/me"))
        .header("authorization", format!("Basic {valid}"));
    assert_error(
        &crate::support::read(no_bearer.send().await.unwrap()).await,
        401,
        "invalid_token",
    );
}
