//! Limits on chat and live feeds that bind a user or a client address, not one socket
//! (issue 14).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::chat::{Socket, member_socket, next_of, open, rest, room_of, say, send};
use crate::support::{DEADLINE, TestApp, assert_error, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    rate_and_slow_mode_bind_the_user_across_sockets,
    chat_sockets_per_client_address_are_capped,
    notifications_live_feeds_per_client_address_are_capped,
    chat_sockets_close_when_their_token_expires_unless_renewed,
    notifications_live_feeds_end_when_their_token_expires,
);

async fn rate_and_slow_mode_bind_the_user_across_sockets(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.chat.rate_burst = 2;
        config.chat.rate_period_ms = 60_000;
    })
    .await;
    let owner = app.signup("multi_owner").await;
    let chatter = app.signup("multi_socket").await;
    let mut first = member_socket(&app, &owner, &chatter).await;
    let mut second = member_socket(&app, &owner, &chatter).await;
    // The rate: a burst of two, whichever socket sends.
    say(&mut first, "one").await;
    next_of(&mut first, "message").await;
    say(&mut second, "two").await;
    next_of(&mut second, "message").await;
    say(&mut first, "three").await;
    assert_eq!(next_of(&mut first, "error").await["code"], "rate_limited");

    // Slow mode: one message a minute per user, whichever socket or login sends it.
    let other = app.signup("slow_chatter").await;
    let (status, _) = rest(
        &app,
        reqwest::Method::PUT,
        &format!("/api/channels/{}/chat/settings", owner.id),
        &owner,
        Some(json!({"slow_mode_secs": 60, "followers_only_minutes": null})),
    )
    .await;
    assert_eq!(status, 204);
    let mut a = member_socket(&app, &owner, &other).await;
    let mut b = member_socket(&app, &owner, &other).await;
    say(&mut a, "first").await;
    next_of(&mut a, "message").await;
    say(&mut b, "from the other socket").await;
    assert_eq!(next_of(&mut b, "error").await["code"], "slow_mode");
    // A socket that logs in again, and an anonymous one that logs in, are the same user.
    for mut socket in [b, open(&app, &room_of(&owner)).await] {
        send(&mut socket, json!({"type": "auth", "token": other.access})).await;
        next_of(&mut socket, "authenticated").await;
        say(&mut socket, "after logging in again").await;
        let refused = next_of(&mut socket, "error").await;
        assert_eq!(refused["code"], "slow_mode", "{refused}");
        assert!(refused["retry_after_ms"].as_u64().unwrap() > 50_000);
    }
}

/// A chat socket from `forwarded_for` through a trusted proxy (the test client itself),
/// or straight from the test client; its refusal's status and error code.
async fn connect_from(
    app: &TestApp,
    path: &str,
    forwarded_for: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let mut request = format!("ws://{}{path}", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(client) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
    }
    match connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("chat socket failed: {e}"),
    }
}

async fn chat_sockets_per_client_address_are_capped(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.chat.max_connections_per_ip = 2;
        config.http.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
    })
    .await;
    let streamer = app.signup("crowded").await;
    let room = room_of(&streamer);
    let client = Some("203.0.113.7");
    let first = connect_from(&app, &room, client).await.unwrap();
    let _second = connect_from(&app, &room, client).await.unwrap();
    let (status, body) = connect_from(&app, &room, client).await.err().unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    // Another address behind the same proxy has its own slots; a /64 is one client.
    let _other = connect_from(&app, &room, Some("203.0.113.8"))
        .await
        .unwrap();
    let _v6 = connect_from(&app, &room, Some("2001:db8::1"))
        .await
        .unwrap();
    let _v6b = connect_from(&app, &room, Some("2001:db8::2"))
        .await
        .unwrap();
    assert!(
        connect_from(&app, &room, Some("2001:db8::3"))
            .await
            .is_err()
    );
    // A socket that ends gives its slot back.
    drop(first);
    eventually("the client's slot to be freed", || async {
        connect_from(&app, &room, client).await.ok()
    })
    .await;
}

/// A live notification feed opened with `token`.
async fn live_feed(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/me/notifications/live"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn notifications_live_feeds_per_client_address_are_capped(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.notify.max_feeds_per_ip = 1).await;
    let fan = app.signup("many_tabs").await;
    let other = app.signup("other_tab").await;
    let feed = |token| live_feed(&app, token);
    let open = feed(&fan.access).await;
    assert_eq!(open.status(), StatusCode::OK);
    // The cap is the address's, whoever is logged in.
    let refused = crate::support::read(feed(&other.access).await).await;
    assert_error(&refused, 503, "too_many_connections");
    drop(open);
    eventually("the address's slot to be freed", || async {
        let again = feed(&fan.access).await;
        (again.status() == StatusCode::OK).then_some(())
    })
    .await;
}

/// Access tokens live this long in the expiry tests.
const TTL: Duration = Duration::from_secs(3);

/// Reads `socket` until its close frame: the close code and when it came.
async fn closed(socket: &mut Socket) -> (u16, Instant) {
    loop {
        let message = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("a close before the deadline");
        if let Some(Ok(Message::Close(frame))) = message {
            return (frame.map_or(1005, |f| f.code.into()), Instant::now());
        }
        assert!(message.is_some(), "the socket ended without a close frame");
    }
}

async fn chat_sockets_close_when_their_token_expires_unless_renewed(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.auth.access_token_ttl_secs = TTL.as_secs();
    })
    .await;
    let owner = app.signup("expiring_room").await;
    let viewer = app.signup("expiring").await;
    let issued = Instant::now();
    let mut stale = member_socket(&app, &owner, &viewer).await;
    let mut renewed = open(&app, &room_of(&owner)).await;
    send(
        &mut renewed,
        json!({"type": "auth", "token": viewer.access}),
    )
    .await;
    next_of(&mut renewed, "authenticated").await;
    tokio::time::sleep(TTL / 2).await;
    let (status, session) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": viewer.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let fresh = session["access_token"].as_str().unwrap();
    send(&mut renewed, json!({"type": "auth", "token": fresh})).await;
    next_of(&mut renewed, "authenticated").await;

    let (code, at) = closed(&mut stale).await;
    assert_eq!(code, 4001);
    // Whole seconds in the token, so up to one early.
    assert!(
        at - issued >= TTL - Duration::from_secs(1),
        "{:?}",
        at - issued
    );
    // The socket that logged in again is still open, until its fresh token expires.
    send(&mut renewed, json!({"type": "ping"})).await;
    next_of(&mut renewed, "pong").await;
    let (code, _) = closed(&mut renewed).await;
    assert_eq!(code, 4001);
    // An anonymous socket has no token to expire.
    let mut anonymous = open(&app, &room_of(&owner)).await;
    next_of(&mut anonymous, "welcome").await;
    tokio::time::sleep(TTL).await;
    send(&mut anonymous, json!({"type": "ping"})).await;
    next_of(&mut anonymous, "pong").await;
}

async fn notifications_live_feeds_end_when_their_token_expires(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.auth.access_token_ttl_secs = TTL.as_secs();
    })
    .await;
    let fan = app.signup("expiring_feed").await;
    let started = Instant::now();
    let feed = live_feed(&app, &fan.access).await;
    assert_eq!(feed.status(), StatusCode::OK);
    let body = tokio::time::timeout(DEADLINE, feed.text())
        .await
        .expect("the feed ends with its token")
        .unwrap();
    assert!(body.starts_with("event: unread"), "{body}");
    assert!(started.elapsed() >= TTL - Duration::from_secs(1));
    // The expired token opens no new feed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused = app.get_as("/api/me/notifications/live", &fan.access).await;
    assert_error(&refused, 401, "token_expired");
}
