//! Chat limits that bind a user or a client address, not one socket (issue 14).

use onair_store::DbConfig;
use serde_json::json;

use crate::chat::{member_socket, next_of, open, rest, room_of, say, send};
use crate::support::TestApp;

onair_store::backend_tests!(onair_store::testing::with_backend =>
    rate_and_slow_mode_bind_the_user_across_sockets,
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
