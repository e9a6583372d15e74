use onair_store::DbConfig;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{SECRET, TestApp, assert_error, jwt, now, read};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    signup_login_refresh_rotation_and_logout,
    signup_rejects_bad_and_duplicate_input,
    access_tokens_are_checked,
    the_web_ui_keeps_its_refresh_token_in_an_httponly_cookie,
    the_session_cookie_needs_the_web_header_and_this_origin,
    a_login_flood_is_refused_past_the_hashing_slots,
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

/// A session call as the web UI makes it: `x-onair-client: web`, same-origin `Origin`,
/// and the refresh cookie if there is one.
fn web_call(app: &TestApp, path: &str, cookie: Option<&str>) -> RequestBuilder {
    let request = app
        .client
        .post(app.url(path))
        .header("x-onair-client", "web")
        .header("origin", format!("http://{}", app.addr));
    match cookie {
        Some(token) => request.header("cookie", format!("theme=dark; onair_refresh={token}")),
        None => request,
    }
}

async fn send(request: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = read(response).await;
    (status, headers, body)
}

/// The refresh cookie a response sets: its value and its attributes.
fn set_cookie(headers: &HeaderMap) -> (String, Vec<String>) {
    let header = headers
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    let mut parts = header.split(';').map(|p| p.trim().to_owned());
    let pair = parts.next().unwrap();
    let value = pair
        .strip_prefix("onair_refresh=")
        .expect(header)
        .to_owned();
    (value, parts.collect())
}

fn assert_cleared(headers: &HeaderMap) {
    let (value, attributes) = set_cookie(headers);
    assert_eq!(value, "");
    assert!(
        attributes.contains(&"Max-Age=0".to_owned()),
        "{attributes:?}"
    );
}

async fn the_web_ui_keeps_its_refresh_token_in_an_httponly_cookie(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let signup = json!({"username": "webby", "email": "webby@example.com", "password": "correct horse battery"});
    let (status, headers, body) =
        send(web_call(&app, "/api/auth/signup", None).json(&signup)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["access_token"].is_string());
    assert!(
        body.get("refresh_token").is_none(),
        "not in the body: {body}"
    );
    let (first, attributes) = set_cookie(&headers);
    assert!(!first.is_empty());
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/auth",
        "Max-Age=604800",
    ] {
        assert!(
            attributes.contains(&attribute.to_owned()),
            "{attribute}: {attributes:?}"
        );
    }
    assert!(
        !attributes.contains(&"Secure".to_owned()),
        "plain http: {attributes:?}"
    );

    // Behind a TLS-terminating proxy the cookie is Secure.
    let login = json!({"login": "webby", "password": "correct horse battery"});
    let (status, headers, body) = send(
        web_call(&app, "/api/auth/login", None)
            .header("x-forwarded-proto", "https")
            .json(&login),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(set_cookie(&headers).1.contains(&"Secure".to_owned()));

    // A refresh with no body uses the cookie and rotates it.
    let (status, headers, body) = send(web_call(&app, "/api/auth/refresh", Some(&first))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string() && body.get("refresh_token").is_none());
    let (me, _) = app
        .get_as("/api/users/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me, StatusCode::OK);
    let (second, _) = set_cookie(&headers);
    assert!(!second.is_empty() && second != first);

    // A stolen (spent) cookie revokes the login and is cleared, as is the one after it.
    let (status, headers, body) = send(web_call(&app, "/api/auth/refresh", Some(&first))).await;
    assert_error(&(status, body), 401, "refresh_token_reused");
    assert_cleared(&headers);
    let (status, headers, body) = send(web_call(&app, "/api/auth/refresh", Some(&second))).await;
    assert_error(&(status, body), 401, "refresh_token_reused");
    assert_cleared(&headers);

    // Logout revokes the cookie's session and clears it.
    let (_, headers, _) = send(web_call(&app, "/api/auth/login", None).json(&login)).await;
    let (third, _) = set_cookie(&headers);
    let (status, headers, _) = send(web_call(&app, "/api/auth/logout", Some(&third))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_cleared(&headers);
    let (status, _, body) = send(web_call(&app, "/api/auth/refresh", Some(&third))).await;
    assert_error(&(status, body), 401, "refresh_token_reused");
    // Logging out without a cookie has nothing to revoke, and still clears it.
    let (status, headers, _) = send(web_call(&app, "/api/auth/logout", None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_cleared(&headers);
    // Without a cookie there is no session to restore.
    let (status, _, body) = send(web_call(&app, "/api/auth/refresh", None)).await;
    assert_error(&(status, body), 401, "missing_refresh_token");

    // Other clients are unchanged: the token in the body, no cookie.
    let (status, headers, body) =
        send(app.client.post(app.url("/api/auth/login")).json(&login)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("set-cookie").is_none());
    let token = body["refresh_token"]
        .as_str()
        .expect("in the body")
        .to_owned();
    let (status, headers, body) = send(
        app.client
            .post(app.url("/api/auth/refresh"))
            .json(&json!({"refresh_token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("set-cookie").is_none());
    assert!(body["refresh_token"].is_string());
}

async fn the_session_cookie_needs_the_web_header_and_this_origin(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let signup = json!({"username": "guarded", "email": "guarded@example.com", "password": "correct horse battery"});
    let (_, headers, _) = send(web_call(&app, "/api/auth/signup", None).json(&signup)).await;
    let (token, _) = set_cookie(&headers);
    let cookie = format!("onair_refresh={token}");

    // Without the header the cookie is ignored: a form or a simple fetch from another
    // site could send it (were it not SameSite) but never that header.
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let (status, headers, body) = send(
            app.client
                .post(app.url(path))
                .header("cookie", &cookie)
                .header("origin", format!("http://{}", app.addr)),
        )
        .await;
        assert_error(&(status, body), 401, "missing_refresh_token");
        assert!(headers.get("set-cookie").is_none(), "{path}");
    }
    let other_client = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &cookie)
        .header("x-onair-client", "curl");
    let (status, _, body) = send(other_client).await;
    assert_error(&(status, body), 401, "missing_refresh_token");

    // A page of another origin (another site, or a sibling subdomain) is refused.
    for origin in ["https://evil.example", "http://127.0.0.1:1", "null"] {
        for path in ["/api/auth/refresh", "/api/auth/logout", "/api/auth/login"] {
            let (status, _, body) = send(
                app.client
                    .post(app.url(path))
                    .header("x-onair-client", "web")
                    .header("origin", origin)
                    .header("cookie", &cookie),
            )
            .await;
            assert_error(&(status, body), 403, "cross_origin_refused");
        }
    }

    // A proxy that rewrites Host passes the original in X-Forwarded-Host.
    let (status, headers, body) = send(
        app.client
            .post(app.url("/api/auth/refresh"))
            .header("x-onair-client", "web")
            .header("origin", "https://onair.example")
            .header("x-forwarded-host", "onair.example")
            .header("x-forwarded-proto", "https")
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(set_cookie(&headers).1.contains(&"Secure".to_owned()));
    // No Origin (a same-origin GET-style client, or an old browser) with the header is fine.
    let (rotated, _) = set_cookie(&headers);
    let request = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("x-onair-client", "web")
        .header("cookie", format!("onair_refresh={rotated}"));
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A body still needs to be JSON; an empty one means "use the cookie".
    let (status, _, body) = send(
        web_call(&app, "/api/auth/refresh", None)
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_error(&(status, body), 400, "invalid_json");
    let (status, _, body) = send(app.client.post(app.url("/api/auth/logout"))).await;
    assert_error(&(status, body), 401, "missing_refresh_token");
}

async fn a_login_flood_is_refused_past_the_hashing_slots(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |c| c.auth.max_concurrent_hashes = 1).await;
    app.signup("flooded").await;
    let wrong = json!({"login": "flooded", "password": "wrong password!"});
    let logins: Vec<_> = (0..40)
        .map(|_| {
            let request = app.client.post(app.url("/api/auth/login")).json(&wrong);
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (retry_after, read(response).await)
            })
        })
        .collect();
    let (mut refused, mut busy) = (0, 0);
    for login in logins {
        let (retry_after, (status, body)) = login.await.unwrap();
        match status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "service_unavailable");
                assert_eq!(retry_after.unwrap(), "1");
                busy += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    // One hashing, a few waiting for it: the rest are told to come back.
    assert!(refused >= 1 && busy >= 1, "{refused} refused, {busy} busy");
    // The flood over, logins are served again.
    let (status, _) = app.post("/api/auth/login", None, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
