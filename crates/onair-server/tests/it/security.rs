//! The security review's findings: each hole, shown closed over HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::notifications::{audience, browser_key, go_live, quick_jobs, store_of};
use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    invisible_formatting_is_refused_but_emoji_joiners_stay,
    push_endpoints_stay_with_their_subscriber_and_are_capped,
    failed_deliveries_keep_their_urls_secrets_out_of_job_errors,
    sessions_end_at_their_maximum_age_however_often_refreshed,
    metrics_can_have_a_listener_of_their_own,
    security_headers_are_on_errors_and_media_too,
);

async fn invisible_formatting_is_refused_but_emoji_joiners_stay(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let signup = app
        .post(
            "/api/auth/signup",
            None,
            json!({"username": "adm\u{202E}in", "email": "a@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_error(&signup, 422, "validation_failed");
    assert_eq!(signup.1["error"]["field"], "username", "{}", signup.1);
    assert!(
        signup.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invisible formatting"),
        "{}",
        signup.1
    );

    let dev = app.signup("dev").await;
    let patch = |body| {
        app.request(
            Method::PATCH,
            "/api/users/me",
            Some(&dev.access),
            Some(body),
        )
    };
    let refused = patch(json!({"display_name": "Dev\u{200B}"})).await;
    assert_error(&refused, 422, "validation_failed");
    assert_eq!(refused.1["error"]["field"], "display_name");
    let (status, body) = patch(json!({"display_name": "Dev 👩\u{200D}💻"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Dev 👩\u{200D}💻");
}

async fn push_subscribe(app: &TestApp, user: &User, endpoint: &str) -> (StatusCode, Value) {
    let keys = json!({"p256dh": URL_SAFE_NO_PAD.encode(browser_key().1), "auth": "AAAAAAAAAAAAAAAAAAAAAA"});
    let body = json!({"endpoint": endpoint, "keys": keys});
    app.post("/api/me/push-subscriptions", Some(&user.access), body)
        .await
}

async fn push_endpoints_stay_with_their_subscriber_and_are_capped(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.notify.push_subscriptions_per_user = 2;
    })
    .await;
    let victim = app.signup("victim").await;
    let thief = app.signup("thief").await;
    let endpoint = "https://push.example.com/send/victim-browser";

    let (status, first) = push_subscribe(&app, &victim, endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // The same user again: the same subscription, new keys, not counted twice.
    let (status, again) = push_subscribe(&app, &victim, endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], first["id"]);

    let stolen = push_subscribe(&app, &thief, endpoint).await;
    assert_error(&stolen, 409, "push_endpoint_taken");
    let not_theirs = app
        .request(
            Method::DELETE,
            "/api/me/push-subscriptions",
            Some(&thief.access),
            Some(json!({"endpoint": endpoint})),
        )
        .await;
    assert_error(&not_theirs, 404, "not_found");
    let store = store_of(&app).await;
    let id = first["id"].as_str().unwrap().parse().unwrap();
    let kept = store.push_subscription(id).await.unwrap().unwrap();
    assert_eq!(kept.user_id.to_string(), victim.id, "still the victim's");

    // The cap: a second browser fits, a third does not; re-subscribing one at the cap does.
    let second = "https://push.example.com/send/victim-laptop";
    assert_eq!(
        push_subscribe(&app, &victim, second).await.0,
        StatusCode::CREATED
    );
    let third = push_subscribe(&app, &victim, "https://push.example.com/send/third").await;
    assert_error(&third, 409, "limit_reached");
    assert_eq!(
        push_subscribe(&app, &victim, endpoint).await.0,
        StatusCode::CREATED
    );
    // Another user's cap is their own.
    let (status, body) = push_subscribe(&app, &thief, "https://push.example.com/send/own").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn failed_deliveries_keep_their_urls_secrets_out_of_job_errors(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        quick_jobs(config);
        config.jobs.max_attempts = 1;
    })
    .await;
    // A server that hangs up on every request: reqwest's error would name the URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let (star, fans) = audience(&app, 1).await;
    let hook = json!({
        "channel_id": star.id, "event": "stream.online", "secret": "webhook-secret-123",
        "callback_url": format!("http://{addr}/hook/SECRET-PATH?token=SECRET-QUERY"),
    });
    let (status, body) = app.post("/api/webhooks", Some(&fans[0].access), hook).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let endpoint = format!("http://{addr}/push/SECRET-PUSH-PATH?auth=SECRET-PUSH-QUERY");
    let (status, body) = push_subscribe(&app, &fans[0], &endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    go_live(&app, &star).await;
    let store = store_of(&app).await;
    let dead = crate::support::eventually("both deliveries to die", || async {
        let page = store
            .dead_jobs(onair_core::Limit::default(), None)
            .await
            .unwrap();
        (page.items.len() == 2).then_some(page.items)
    })
    .await;
    for job in dead {
        let error = job.last_error.unwrap_or_default();
        assert!(error.contains("127.0.0.1"), "names the host: {error}");
        assert!(!error.contains("SECRET"), "{}: {error}", job.kind);
    }
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.post("/api/auth/refresh", None, json!({"refresh_token": token}))
        .await
}

async fn sessions_end_at_their_maximum_age_however_often_refreshed(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.auth.session_max_age_secs = 1;
    })
    .await;
    let user = app.signup("brief").await;
    let (status, body) = refresh(&app, &user.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, body) = refresh(&app, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "session_expired");

    let login = json!({"login": "brief", "password": "correct horse battery"});
    let (status, body) = app.post("/api/auth/login", None, login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = refresh(&app, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a new login is a new session: {body}"
    );
}

async fn metrics_can_have_a_listener_of_their_own(db: DbConfig) {
    let shared = TestApp::spawn(db.clone()).await;
    let response = shared
        .client
        .get(shared.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "on the main listener by default"
    );
    assert!(shared.metrics.is_none());
    shared.shutdown().await;

    let app = TestApp::spawn_configured(db, |config| {
        config.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_error(&app.get("/metrics").await, 404, "route_not_found");
    let (_, openapi) = app.get("/api/openapi.json").await;
    assert!(
        openapi["paths"].get("/metrics").is_none(),
        "not documented there"
    );
    let metrics = format!("http://{}", app.metrics.expect("a metrics listener"));
    let response = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("db_pool_connections"), "{text}");
    let api = app
        .client
        .get(format!("{metrics}/api/streams"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND, "only /metrics there");
    let healthz = app
        .client
        .get(format!("{metrics}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::NOT_FOUND);
}

async fn security_headers_are_on_errors_and_media_too(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let requests = [
        (Method::GET, "/api/nowhere"),
        (Method::GET, "/api/users/me"),
        (Method::DELETE, "/api/streams"),
        (Method::GET, "/api/users/not-a-uuid"),
        (
            Method::GET,
            "/live/00000000-0000-0000-0000-000000000000/master.m3u8",
        ),
        (
            Method::GET,
            "/vod/00000000-0000-0000-0000-000000000000/1/master.m3u8",
        ),
        (Method::GET, "/healthz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/api/openapi.json"),
    ];
    for (method, path) in requests {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let what = format!("{method} {path} ({})", response.status());
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("strict-origin-when-cross-origin"),
            "{what}"
        );
    }
}

/// An embedded server on a data directory it creates: the directory 0700, the database
/// (with its WAL files) and the generated secret 0600.
#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_database_and_secret_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let app = TestApp::spawn_configured(DbConfig::default(), |config| {
        config.data_dir = config.data_dir.join("fresh/data");
        config.database.url = None;
        config.auth.secret_key = None;
    })
    .await;
    app.signup("writer").await;
    let mode = |name: &str| {
        let path = app.config.data_dir.join(name);
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700, "data dir");
    assert_eq!(mode(".."), 0o700, "a parent it created");
    for file in ["onair.db", "onair.db-wal", "onair.db-shm", "secret_key"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}
