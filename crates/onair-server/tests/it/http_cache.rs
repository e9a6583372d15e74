//! HTTP caching (review M5): public reads carry `Cache-Control` and a strong `ETag`, and
//! an `If-None-Match` naming it (weakly, in a list, or `*`) is answered 304 without a
//! body; a change makes a new tag. Requests with credentials are answered `private,
//! no-store`, errors `no-store`; other methods and streams go through untouched.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::notifications::go_live;
use crate::support::{DEADLINE, TestApp, header, send};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    the_live_list_is_cached_30_s_and_revalidated,
    public_profiles_are_cached_5_min_and_match_weakly,
    credentials_make_answers_private,
    errors_are_not_stored_and_writes_are_untouched,
    event_streams_are_not_buffered,
    a_304_keeps_the_rate_limit_headers,
);

/// A 304 for `tag`: no body, the same validator and caching as the 200.
#[track_caller]
fn assert_not_modified(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    tag: &str,
    cache: &str,
) {
    assert_eq!(*status, StatusCode::NOT_MODIFIED, "{body}");
    assert_eq!(*body, Value::Null);
    assert_eq!(header(headers, "etag"), tag);
    assert_eq!(header(headers, "cache-control"), cache);
    assert!(headers.get("content-type").is_none(), "{headers:?}");
}

fn varies_with_authorization(headers: &HeaderMap) -> bool {
    headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().to_lowercase().contains("authorization"))
}

async fn the_live_list_is_cached_30_s_and_revalidated(db: onair_store::DbConfig) {
    let app = TestApp::spawn(db).await;
    let star = app.signup("cachedstar").await;
    let id = go_live(&app, &star).await;
    let list = || app.client.get(app.url("/api/streams"));

    let (status, headers, body) = send(list()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["title"], "Hello");
    assert_eq!(header(&headers, "cache-control"), "public, max-age=30");
    assert!(varies_with_authorization(&headers), "{headers:?}");
    let tag = header(&headers, "etag").to_owned();
    assert!(
        tag.starts_with('"') && tag.ends_with('"'),
        "a strong tag: {tag}"
    );
    // The same list, the same tag; HEAD says what GET says.
    assert_eq!(header(&send(list()).await.1, "etag"), tag);
    let (status, head, _) = send(app.client.head(app.url("/api/streams"))).await;
    assert_eq!(
        (status, header(&head, "etag")),
        (StatusCode::OK, tag.as_str())
    );

    let revalidated = send(list().header("if-none-match", &tag)).await;
    assert_not_modified(&revalidated, &tag, "public, max-age=30");
    assert!(varies_with_authorization(&revalidated.1));

    // The title changes: a new body, a new tag.
    let (status, _) = app
        .request(
            Method::PATCH,
            &format!("/api/streams/{id}"),
            Some(&star.access),
            Some(json!({"title": "Second"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = send(list().header("if-none-match", &tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["title"], "Second");
    let retitled = header(&headers, "etag").to_owned();
    assert_ne!(retitled, tag);

    // Another broadcast goes live: a new tag again.
    let other = app.signup("otherstar").await;
    go_live(&app, &other).await;
    let (status, headers, body) = send(list().header("if-none-match", &retitled)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_ne!(header(&headers, "etag"), retitled);
}

async fn public_profiles_are_cached_5_min_and_match_weakly(db: onair_store::DbConfig) {
    let app = TestApp::spawn(db).await;
    let user = app.signup("profiled").await;
    const CACHE: &str = "public, max-age=300";
    for path in [
        format!("/api/users/{}", user.id),
        "/api/users/by-username/Profiled".to_owned(),
    ] {
        let get = || app.client.get(app.url(&path));
        let (status, headers, body) = send(get()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["username"], "profiled");
        // Anonymous: nothing about the caller, so the same answer for everyone.
        assert!(body.get("followed_by_you").is_none(), "{body}");
        assert!(body.get("record_broadcasts").is_none(), "{body}");
        assert_eq!(header(&headers, "cache-control"), CACHE);
        assert!(varies_with_authorization(&headers));
        let tag = header(&headers, "etag").to_owned();

        for if_none_match in [
            format!("W/{tag}"),
            format!("\"elsewhere\", {tag}"),
            format!("W/\"x\",W/{tag}"),
            "*".to_owned(),
        ] {
            let answer = send(get().header("if-none-match", &if_none_match)).await;
            assert_not_modified(&answer, &tag, CACHE);
        }
        // Tags it never gave, or the tag unquoted: the full answer.
        for stale in ["\"elsewhere\"", "W/\"x\"", tag.trim_matches('"')] {
            let (status, headers, body) = send(get().header("if-none-match", stale)).await;
            assert_eq!(status, StatusCode::OK, "{stale}");
            assert_eq!(body["username"], "profiled");
            assert_eq!(header(&headers, "etag"), tag);
        }
    }
}

async fn credentials_make_answers_private(db: onair_store::DbConfig) {
    let app = TestApp::spawn(db).await;
    let user = app.signup("privately").await;
    let other = app.signup("watcher").await;
    for path in [
        "/api/users/me".to_owned(),
        "/api/me/notification-settings".to_owned(),
        format!("/api/users/{}", user.id),
        "/api/streams".to_owned(),
    ] {
        let get = || app.client.get(app.url(&path)).bearer_auth(&other.access);
        let (status, headers, _) = send(get()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&headers, "cache-control"),
            "private, no-store",
            "{path}"
        );
        assert!(!varies_with_authorization(&headers), "{path}");
        // Still a validator for the caller's own revalidation.
        let tag = header(&headers, "etag").to_owned();
        let answer = send(get().header("if-none-match", &tag)).await;
        assert_not_modified(&answer, &tag, "private, no-store");
    }
    // What differs with the caller: never in the public answer.
    let (_, seen) = app
        .get_as(&format!("/api/users/{}", user.id), &other.access)
        .await;
    assert_eq!(seen["followed_by_you"], false);
    let (_, headers, own) = send(
        app.client
            .get(app.url("/api/users/me"))
            .bearer_auth(&user.access),
    )
    .await;
    assert!(own["record_broadcasts"].is_boolean(), "{own}");
    assert_eq!(header(&headers, "cache-control"), "private, no-store");
    // The stream key: private, whatever its handler says.
    let (status, headers, _) = send(
        app.client
            .get(app.url("/api/me/stream-key"))
            .bearer_auth(&user.access),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "private, no-store");
}

async fn errors_are_not_stored_and_writes_are_untouched(db: onair_store::DbConfig) {
    let app = TestApp::spawn(db).await;
    let missing = format!("/api/users/{}", Uuid::now_v7());
    for (request, status) in [
        (app.client.get(app.url(&missing)), StatusCode::NOT_FOUND),
        (
            app.client.get(app.url("/api/users/me")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            app.client.get(app.url("/api/streams?limit=1000")),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.client.get(app.url(&missing)).bearer_auth("not-a-token"),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (got, headers, body) = send(request.header("if-none-match", "*")).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(header(&headers, "cache-control"), "no-store", "{body}");
        assert!(headers.get("etag").is_none(), "{headers:?}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // A write's answer is its handler's alone.
    let (status, headers, body) = send(app.client.post(app.url("/api/auth/signup")).json(&json!({
        "username": "writer", "email": "writer@example.com", "password": "correct horse battery"
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(headers.get("etag").is_none(), "{headers:?}");
    assert!(headers.get("cache-control").is_none(), "{headers:?}");
}

async fn event_streams_are_not_buffered(db: onair_store::DbConfig) {
    let app = TestApp::spawn(db).await;
    let user = app.signup("listener").await;
    // An endless body: buffering it would never answer.
    let mut feed = tokio::time::timeout(
        DEADLINE,
        app.client
            .get(app.url("/api/me/notifications/live"))
            .bearer_auth(&user.access)
            .header("if-none-match", "*")
            .send(),
    )
    .await
    .expect("the feed answers at once")
    .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    let headers = feed.headers();
    assert!(header(headers, "content-type").starts_with("text/event-stream"));
    assert_eq!(header(headers, "cache-control"), "private, no-store");
    assert!(headers.get("etag").is_none(), "{headers:?}");
    let first = tokio::time::timeout(DEADLINE, feed.chunk())
        .await
        .expect("the first event")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: unread"));
}

async fn a_304_keeps_the_rate_limit_headers(db: onair_store::DbConfig) {
    let app = TestApp::spawn_configured(db, |c| c.rate_limit.enabled = true).await;
    let list = || app.client.get(app.url("/api/streams"));
    let (_, headers, _) = send(list()).await;
    let tag = header(&headers, "etag").to_owned();
    let (status, headers, _) = send(list().header("if-none-match", &tag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        "\"anonymous\";q=20;w=60"
    );
    assert!(header(&headers, "ratelimit").starts_with("\"anonymous\";r="));
}
