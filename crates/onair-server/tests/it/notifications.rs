//! Go-live notifications end to end: the inbox, realtime feed, mutes, cooldown, Web Push
//! to a local push service, signed webhooks to a local receiver, and a worker dying in
//! the middle of a fan-out.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use onair_server::Config;
use onair_store::DbConfig;
use onair_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::support::{DEADLINE, Receiver, TestApp, User, assert_error, eventually, redis_url};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    going_live_fills_followers_inboxes_and_live_feeds,
    going_live_again_within_the_cooldown_notifies_once,
    the_go_live_request_does_not_wait_for_the_fan_out,
    notification_endpoints_refuse_bad_requests,
    live_feeds_beyond_the_node_cap_get_503,
    webhooks_per_user_are_capped,
    web_push_reaches_subscribers_encrypted_and_signed,
    a_push_batch_leaves_slow_services_to_retries_within_its_lease,
    webhooks_are_signed_retried_and_disabled_after_repeated_failures,
    a_worker_dying_mid_fan_out_leaves_every_follower_exactly_one_notification,
    #[redis] the_live_feed_spans_nodes_through_redis,
);

pub(crate) fn quick_jobs(config: &mut Config) {
    config.jobs.poll_ms = 50;
    config.jobs.backoff_base_ms = 50;
    config.jobs.backoff_max_secs = 1;
    config.notify.outbound_allow_private = true;
    config.notify.outbound_ports = Vec::new();
    config.notify.batch_size = 2;
}

async fn follow(app: &TestApp, fan: &User, star: &User) {
    let (status, body) = app
        .post(
            &format!("/api/users/{}/follow", star.id),
            Some(&fan.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// A creator "star" followed by `n` users "fan0"….
pub(crate) async fn audience(app: &TestApp, n: usize) -> (User, Vec<User>) {
    let star = app.signup("star").await;
    let mut fans = Vec::new();
    for i in 0..n {
        let fan = app.signup(&format!("fan{i}")).await;
        follow(app, &fan, &star).await;
        fans.push(fan);
    }
    (star, fans)
}

pub(crate) async fn go_live(app: &TestApp, star: &User) -> String {
    let (status, body) = app
        .post(
            "/api/streams/start",
            Some(&star.access),
            json!({"title": "Hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn end(app: &TestApp, star: &User) {
    let (status, body) = app
        .post("/api/streams/end", Some(&star.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

pub(crate) async fn store_of(app: &TestApp) -> Arc<dyn Store> {
    onair_store::connect(&app.db).await.unwrap()
}

/// Waits until the queue holds nothing but dead letters.
async fn drained(store: &Arc<dyn Store>) {
    eventually("the job queue to drain", || async {
        let stats = store.job_stats().await.unwrap();
        stats.iter().all(|s| s.state == "dead").then_some(())
    })
    .await;
}

async fn inbox(app: &TestApp, user: &User) -> Vec<Value> {
    let (status, body) = app.get_as("/api/me/notifications", &user.access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Reads a server-sent event stream until `needle` shows up.
async fn read_until(feed: &mut reqwest::Response, seen: &mut String, needle: &str) {
    tokio::time::timeout(DEADLINE, async {
        while !seen.contains(needle) {
            let chunk = feed.chunk().await.unwrap().expect("the feed stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in the feed: {seen}"));
}

async fn going_live_fills_followers_inboxes_and_live_feeds(db: DbConfig) {
    let app = TestApp::spawn_configured(db, quick_jobs).await;
    let star = app.signup("star").await;
    let fans = [
        app.signup("fan0").await,
        app.signup("fan1").await,
        app.signup("fan2").await,
    ];
    let bystander = app.signup("bystander").await;
    for fan in &fans {
        follow(&app, fan, &star).await;
    }
    let muted = app
        .request(
            Method::PUT,
            &format!("/api/users/{}/mute", star.id),
            Some(&fans[2].access),
            None,
        )
        .await;
    assert_eq!(muted.0, StatusCode::NO_CONTENT);
    let (_, state) = app
        .get_as(&format!("/api/users/{}/mute", star.id), &fans[2].access)
        .await;
    assert_eq!(state["muted"], true);

    // fan0 has the site open: an EventSource with the token in the query.
    let mut feed = app
        .client
        .get(app.url(&format!(
            "/api/me/notifications/live?access_token={}",
            fans[0].access
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "event: unread").await;
    assert!(seen.contains(r#"{"unread":0}"#), "{seen}");

    let stream_id = go_live(&app, &star).await;
    read_until(&mut feed, &mut seen, "event: notification").await;
    read_until(&mut feed, &mut seen, &stream_id).await;

    for fan in &fans[..2] {
        let items = eventually("the fan-out", || async {
            let items = inbox(&app, fan).await;
            (!items.is_empty()).then_some(items)
        })
        .await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["stream_id"], stream_id.as_str());
        assert_eq!(items[0]["creator"]["username"], "star");
        assert_eq!(items[0]["stream_status"], "live");
        assert_eq!(items[0]["read_at"], Value::Null);
    }
    drained(&store_of(&app).await).await;
    assert!(inbox(&app, &fans[2]).await.is_empty(), "muted");
    assert!(inbox(&app, &bystander).await.is_empty(), "not a follower");

    let unread = app
        .get_as("/api/me/notifications/unread-count", &fans[0].access)
        .await;
    assert_eq!(unread.1["unread"], 1);
    let read_path = format!("/api/me/notifications/{stream_id}/read");
    let marked = app.post(&read_path, Some(&fans[0].access), json!({})).await;
    assert_eq!(marked.0, StatusCode::NO_CONTENT);
    let unread = app
        .get_as("/api/me/notifications/unread-count", &fans[0].access)
        .await;
    assert_eq!(unread.1["unread"], 0);
    let not_theirs = app
        .post(&read_path, Some(&bystander.access), json!({}))
        .await;
    assert_error(&not_theirs, 404, "not_found");
    let all = app
        .post(
            "/api/me/notifications/read-all",
            Some(&fans[1].access),
            json!({}),
        )
        .await;
    assert_eq!(all.1["marked"], 1);
}

async fn going_live_again_within_the_cooldown_notifies_once(db: DbConfig) {
    let app = TestApp::spawn_configured(db, quick_jobs).await;
    let store = store_of(&app).await;
    let star = app.signup("star").await;
    let fan = app.signup("fan").await;
    follow(&app, &fan, &star).await;
    go_live(&app, &star).await;
    drained(&store).await;
    end(&app, &star).await;
    go_live(&app, &star).await;
    drained(&store).await;
    assert_eq!(inbox(&app, &fan).await.len(), 1);
}

async fn the_go_live_request_does_not_wait_for_the_fan_out(db: DbConfig) {
    // Paced to a row a second, 10 followers take 9 s to notify: the request that went
    // live has answered long before, with seconds to spare on a busy machine.
    fn paced(config: &mut Config) {
        quick_jobs(config);
        config.notify.batch_size = 1;
        config.notify.rows_per_second = 1;
    }
    let app = TestApp::spawn_configured(db, paced).await;
    let (star, fans) = audience(&app, 10).await;
    go_live(&app, &star).await;
    assert!(count_notified(&app, &fans).await < fans.len());
    eventually("the whole fan-out", || async {
        (count_notified(&app, &fans).await == fans.len()).then_some(())
    })
    .await;
}

async fn notification_endpoints_refuse_bad_requests(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let me = app.signup("myself").await;
    assert_error(&app.get("/api/me/notifications").await, 401, "unauthorized");
    assert_error(
        &app.get("/api/me/notifications/live?access_token=forged")
            .await,
        401,
        "invalid_token",
    );
    assert_error(
        &app.get_as("/api/me/notifications?cursor=nonsense", &me.access)
            .await,
        400,
        "invalid_cursor",
    );
    let mute_self = app
        .request(
            Method::PUT,
            &format!("/api/users/{}/mute", me.id),
            Some(&me.access),
            None,
        )
        .await;
    assert_error(&mute_self, 422, "invalid_body");
    let unknown = uuid::Uuid::now_v7();
    let mute_unknown = app
        .request(
            Method::PUT,
            &format!("/api/users/{unknown}/mute"),
            Some(&me.access),
            None,
        )
        .await;
    assert_error(&mute_unknown, 404, "not_found");
    let settings = app
        .request(
            Method::PATCH,
            "/api/me/notification-settings",
            Some(&me.access),
            Some(json!({"push_enabled": "yes"})),
        )
        .await;
    assert_eq!(settings.0.as_u16(), 422, "{}", settings.1);
    let settings = app
        .request(
            Method::PATCH,
            "/api/me/notification-settings",
            Some(&me.access),
            Some(json!({"push_enabled": false})),
        )
        .await;
    assert_eq!(settings.1["push_enabled"], false);

    // Outbound targets must be public https (this server does not allow private).
    let keys = json!({"p256dh": URL_SAFE_NO_PAD.encode(browser_key().1), "auth": "AAAAAAAAAAAAAAAAAAAAAA"});
    for (endpoint, keys) in [
        ("http://push.example.com/x", keys.clone()),
        ("https://127.0.0.1/x", keys.clone()),
        (
            "https://push.example.com/x",
            json!({"p256dh": "bm90IGEga2V5", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}),
        ),
        (
            "https://push.example.com/x",
            json!({"p256dh": keys["p256dh"], "auth": "c2hvcnQ"}),
        ),
    ] {
        let refused = app
            .post(
                "/api/me/push-subscriptions",
                Some(&me.access),
                json!({"endpoint": endpoint, "keys": keys}),
            )
            .await;
        assert_error(&refused, 422, "invalid_body");
    }
    let gone = app
        .request(
            Method::DELETE,
            "/api/me/push-subscriptions",
            Some(&me.access),
            Some(json!({"endpoint": "https://push.example.com/none"})),
        )
        .await;
    assert_error(&gone, 404, "not_found");

    let hook = |event: &str, url: &str, secret: &str, channel: &str| json!({"channel_id": channel, "event": event, "callback_url": url, "secret": secret});
    for body in [
        hook(
            "stream.sideways",
            "https://hooks.example.com/",
            "long enough secret",
            &me.id,
        ),
        hook(
            "stream.online",
            "http://hooks.example.com/",
            "long enough secret",
            &me.id,
        ),
        hook(
            "stream.online",
            "https://10.0.0.1/",
            "long enough secret",
            &me.id,
        ),
        hook(
            "stream.online",
            "https://hooks.example.com/",
            "short",
            &me.id,
        ),
    ] {
        let refused = app.post("/api/webhooks", Some(&me.access), body).await;
        assert_error(&refused, 422, "invalid_body");
    }
    let no_channel = app
        .post(
            "/api/webhooks",
            Some(&me.access),
            hook(
                "stream.online",
                "https://hooks.example.com/",
                "long enough secret",
                &unknown.to_string(),
            ),
        )
        .await;
    assert_error(&no_channel, 404, "not_found");
    let created = app
        .post(
            "/api/webhooks",
            Some(&me.access),
            hook(
                "stream.online",
                "https://hooks.example.com/",
                "long enough secret",
                &me.id,
            ),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert!(
        created.1.get("secret").is_none(),
        "the secret is never shown again"
    );
    let other = app.signup("other").await;
    let id = created.1["id"].as_str().unwrap();
    let foreign = app
        .request(
            Method::DELETE,
            &format!("/api/webhooks/{id}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_error(&foreign, 404, "not_found");
    let listed = app.get_as("/api/webhooks", &other.access).await;
    assert!(listed.1["data"].as_array().unwrap().is_empty());
}

async fn live_feeds_beyond_the_node_cap_get_503(db: DbConfig) {
    fn one_feed(config: &mut Config) {
        config.notify.max_feeds = 1;
    }
    let app = TestApp::spawn_configured(db, one_feed).await;
    let fan = app.signup("watcher").await;
    let feed = |app: &TestApp| {
        app.client
            .get(app.url("/api/me/notifications/live"))
            .bearer_auth(&fan.access)
            .send()
    };
    let open = feed(&app).await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let refused = crate::support::read(feed(&app).await.unwrap()).await;
    assert_error(&refused, 503, "too_many_connections");
    drop(open);
    eventually("the slot to be freed", || async {
        let again = feed(&app).await.unwrap();
        (again.status() == StatusCode::OK).then_some(())
    })
    .await;
}

async fn webhooks_per_user_are_capped(db: DbConfig) {
    fn one_each(config: &mut Config) {
        config.notify.webhooks_per_user = 1;
    }
    let app = TestApp::spawn_configured(db, one_each).await;
    let dev = app.signup("developer").await;
    let body = json!({"channel_id": dev.id, "event": "stream.online",
        "callback_url": "https://hooks.example.com/", "secret": "long enough secret"});
    let first = app
        .post("/api/webhooks", Some(&dev.access), body.clone())
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let second = app.post("/api/webhooks", Some(&dev.access), body).await;
    assert_error(&second, 409, "limit_reached");
}

/// A browser's push keys: (private key, public key as SEC1 uncompressed bytes).
pub(crate) fn browser_key() -> (p256::SecretKey, Vec<u8>) {
    let secret = loop {
        if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break key;
        }
    };
    let public = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    (secret, public)
}

fn push_service(path: &str, n: usize) -> u16 {
    match (path, n) {
        ("/push/gone", _) => 410,
        ("/push/flaky", 0) => 500,
        _ => 201,
    }
}

/// Subscribes `fan`'s browser (fresh keys) to push at `endpoint`: its private key, auth
/// secret and the subscription's id.
async fn subscribe(
    app: &TestApp,
    fan: &User,
    endpoint: String,
) -> (p256::SecretKey, [u8; 16], uuid::Uuid) {
    let (secret, public) = browser_key();
    let auth: [u8; 16] = rand::random();
    let (status, body) = app
        .post(
            "/api/me/push-subscriptions",
            Some(&fan.access),
            json!({
                "endpoint": endpoint,
                "expirationTime": null,
                "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public), "auth": URL_SAFE_NO_PAD.encode(auth)},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (secret, auth, body["id"].as_str().unwrap().parse().unwrap())
}

async fn web_push_reaches_subscribers_encrypted_and_signed(db: DbConfig) {
    let app = TestApp::spawn_configured(db, quick_jobs).await;
    let service = Receiver::start(push_service).await;
    let store = store_of(&app).await;
    let star = app.signup("star").await;
    let (_, vapid) = app.get("/api/push/vapid-public-key").await;
    let vapid = URL_SAFE_NO_PAD
        .decode(vapid["public_key"].as_str().unwrap())
        .unwrap();

    let mut browsers = Vec::new();
    for (name, path) in [
        ("fine", "/push/ok"),
        ("gone", "/push/gone"),
        ("flaky", "/push/flaky"),
        ("quiet", "/push/quiet"),
    ] {
        let fan = app.signup(name).await;
        follow(&app, &fan, &star).await;
        let (secret, auth, id) = subscribe(&app, &fan, service.url(path)).await;
        browsers.push((fan, secret, auth, id));
    }
    // "quiet" turned push off: inbox only.
    let off = app
        .request(
            Method::PATCH,
            "/api/me/notification-settings",
            Some(&browsers[3].0.access),
            Some(json!({"push_enabled": false})),
        )
        .await;
    assert_eq!(off.0, StatusCode::OK);

    let stream_id = go_live(&app, &star).await;
    let pushed = service.wait_for("/push/ok", 1).await;
    let (_, secret, auth, _) = &browsers[0];
    let push = &pushed[0];
    assert_eq!(push.headers["content-encoding"], "aes128gcm");
    assert!(push.headers.contains_key("ttl"));
    let mut auth_secret = web_push_native::Auth::default();
    auth_secret.copy_from_slice(auth);
    let plain = web_push_native::decrypt(push.body.clone(), secret, &auth_secret)
        .expect("the payload decrypts with the browser's keys");
    let message: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(message["title"], "star is live");
    assert_eq!(message["stream_id"], stream_id.as_str());
    assert_eq!(message["tag"], format!("live-{stream_id}"));
    assert_eq!(message["url"], "/c/star", "a click opens the channel page");

    // VAPID (RFC 8292): a JWT for this push service's origin, signed with our key.
    let authorization = push.headers["authorization"].to_str().unwrap();
    let token = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split(',').next())
        .expect("vapid authorization");
    // The advertised key is an uncompressed point: 0x04, x, y.
    assert_eq!((vapid.len(), vapid[0]), (65, 4));
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&vapid[1..33]),
        &URL_SAFE_NO_PAD.encode(&vapid[33..]),
    )
    .unwrap();
    // `aud` is the push service's origin, port included.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[format!("http://{}", service.addr)]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("signed with the advertised VAPID key, for this push service");
    assert!(claims.claims["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        authorization.rsplit_once(", k=").map(|(_, k)| k),
        Some(URL_SAFE_NO_PAD.encode(&vapid).as_str()),
        "the header names the key"
    );

    // 410: the subscription is removed. 500: retried alone until delivered.
    service.wait_for("/push/gone", 1).await;
    service.wait_for("/push/flaky", 2).await;
    drained(&store).await;
    assert!(
        store
            .push_subscription(browsers[1].3)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .push_subscription(browsers[2].3)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        service.requests("/push/quiet").is_empty(),
        "push turned off"
    );
    assert_eq!(service.requests("/push/ok").len(), 1);
}

fn slow_first_push(path: &str, n: usize) -> Duration {
    if path == "/push/slow" && n == 0 {
        Duration::from_secs(20)
    } else {
        Duration::ZERO
    }
}

async fn a_push_batch_leaves_slow_services_to_retries_within_its_lease(db: DbConfig) {
    // A 6 s lease gives a batch 3 s of sending (3 s to spare before the lease runs out,
    // on a busy machine too); the slow service's first push would take 20 s, within the
    // client's timeout. Running on past its lease, the batch would be claimed and sent
    // again.
    fn short_lease(config: &mut Config) {
        quick_jobs(config);
        config.jobs.lease_secs = 6;
        config.notify.outbound_timeout_ms = 30_000;
    }
    let app = TestApp::spawn_configured(db, short_lease).await;
    let service = Receiver::start_slow(push_service, slow_first_push).await;
    let store = store_of(&app).await;
    let star = app.signup("star").await;
    for (name, path) in [("fine", "/push/ok"), ("slow", "/push/slow")] {
        let fan = app.signup(name).await;
        follow(&app, &fan, &star).await;
        subscribe(&app, &fan, service.url(path)).await;
    }
    go_live(&app, &star).await;
    // The push cut off at the batch's budget, then its retry.
    service.wait_for("/push/slow", 2).await;
    drained(&store).await;
    assert_eq!(service.requests("/push/ok").len(), 1, "the batch ran once");
}

fn webhook_receiver(path: &str, _: usize) -> u16 {
    if path == "/hook/fail" { 500 } else { 204 }
}

async fn webhooks_are_signed_retried_and_disabled_after_repeated_failures(db: DbConfig) {
    fn config(config: &mut Config) {
        quick_jobs(config);
        config.jobs.max_attempts = 2;
        config.notify.webhook_disable_after = 3;
    }
    let app = TestApp::spawn_configured(db, config).await;
    let receiver = Receiver::start(webhook_receiver).await;
    let store = store_of(&app).await;
    let star = app.signup("star").await;
    let dev = app.signup("dev").await;
    let mut hooks = Vec::new();
    for (event, path) in [
        ("stream.online", "/hook/ok"),
        ("stream.offline", "/hook/ok"),
        ("stream.online", "/hook/fail"),
    ] {
        let (status, body) = app
            .post(
                "/api/webhooks",
                Some(&dev.access),
                json!({"channel_id": star.id, "event": event, "callback_url": receiver.url(path), "secret": "webhook-secret-123"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        hooks.push(body["id"].as_str().unwrap().to_owned());
    }

    let stream_id = go_live(&app, &star).await;
    let delivered = receiver.wait_for("/hook/ok", 1).await;
    let online = &delivered[0];
    let header = |name: &str| online.headers[name].to_str().unwrap().to_owned();
    let (id, timestamp) = (
        header("onair-message-id"),
        header("onair-message-timestamp"),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"webhook-secret-123").unwrap();
    mac.update(id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(&online.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header("onair-message-signature"),
        format!("sha256={expected}")
    );
    assert_eq!(header("onair-subscription-type"), "stream.online");
    let body: Value = serde_json::from_slice(&online.body).unwrap();
    assert_eq!(body["subscription"]["id"], hooks[0].as_str());
    assert_eq!(body["event"]["id"], stream_id.as_str());
    assert_eq!(body["event"]["broadcaster_user_login"], "star");
    assert_eq!(body["event"]["type"], "live");

    // The failing callback is tried max_attempts times with the same message id,
    // then the delivery is a dead letter.
    let failed = receiver.wait_for("/hook/fail", 2).await;
    assert_eq!(
        failed[0].headers["onair-message-id"],
        failed[1].headers["onair-message-id"]
    );
    drained(&store).await;
    let dead = store
        .dead_jobs(onair_core::Limit::default(), None)
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].kind, "webhook_delivery");

    end(&app, &star).await;
    let offline = receiver.wait_for("/hook/ok", 2).await;
    let body: Value = serde_json::from_slice(&offline[1].body).unwrap();
    assert_eq!(body["subscription"]["type"], "stream.offline");

    // Third failure in a row: disabled, and no more deliveries.
    go_live(&app, &star).await;
    receiver.wait_for("/hook/fail", 3).await;
    drained(&store).await;
    assert_eq!(receiver.requests("/hook/fail").len(), 3);
    let (_, listed) = app.get_as("/api/webhooks", &dev.access).await;
    let failing = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == hooks[2].as_str())
        .unwrap()
        .clone();
    assert_eq!(failing["enabled"], false, "{failing}");
    assert_eq!(failing["failures"], 3);
}

async fn a_worker_dying_mid_fan_out_leaves_every_follower_exactly_one_notification(db: DbConfig) {
    // Worker node A fans out slowly (a row a second: 9 s for all, a margin for a busy
    // machine) and dies with its runtime after its first batch; worker node B, on the
    // same database, takes the job over once A's lease runs out and finishes it. `app`
    // itself serves HTTP only.
    fn slow(config: &mut Config) {
        quick_jobs(config);
        config.notify.batch_size = 1;
        config.notify.rows_per_second = 1;
        config.jobs.lease_secs = 2;
    }
    fn http_only(config: &mut Config) {
        config.jobs.enabled = false;
    }
    let app = TestApp::spawn_configured(db, http_only).await;
    let store = store_of(&app).await;
    let (star, fans) = audience(&app, 10).await;
    // A runs on a runtime of its own, shut down to kill it mid-job.
    let db = app.db.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let node_a = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let a = runtime.block_on(TestApp::spawn_configured(db, slow));
        ready_tx.send(()).unwrap();
        let _ = kill_rx.recv();
        runtime.shutdown_background();
        drop(a);
    });
    tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();
    go_live(&app, &star).await;
    eventually("A's first batch", || async {
        (count_notified(&app, &fans).await >= 1).then_some(())
    })
    .await;
    kill_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || node_a.join().unwrap())
        .await
        .unwrap();
    let before = count_notified(&app, &fans).await;
    assert!(before < fans.len(), "A died before finishing ({before})");

    let node_b = TestApp::spawn_configured(app.db.clone(), quick_jobs).await;
    eventually("B to finish the fan-out", || async {
        (count_notified(&app, &fans).await == fans.len()).then_some(())
    })
    .await;
    drained(&store).await;
    for fan in &fans {
        assert_eq!(
            inbox(&app, fan).await.len(),
            1,
            "exactly one for {}",
            fan.username
        );
    }
    node_b.shutdown().await;
}

async fn count_notified(app: &TestApp, fans: &[User]) -> usize {
    let mut notified = 0;
    for fan in fans {
        notified += usize::from(!inbox(app, fan).await.is_empty());
    }
    notified
}

async fn the_live_feed_spans_nodes_through_redis(db: DbConfig) {
    // Node A runs the workers; the fan's browser is connected to node B, which runs none.
    fn worker_node(config: &mut Config) {
        quick_jobs(config);
        config.redis.url = Some(redis_url());
    }
    let node_a = TestApp::spawn_configured(db, worker_node).await;
    let node_b = TestApp::spawn_configured(node_a.db.clone(), |config| {
        config.redis.url = Some(redis_url());
        config.jobs.enabled = false;
    })
    .await;
    let star = node_a.signup("star").await;
    let fan = node_a.signup("fan").await;
    follow(&node_a, &fan, &star).await;
    let mut feed = node_b
        .client
        .get(node_b.url("/api/me/notifications/live"))
        .bearer_auth(&fan.access)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "event: unread").await;
    let stream_id = go_live(&node_a, &star).await;
    read_until(&mut feed, &mut seen, "event: notification").await;
    read_until(&mut feed, &mut seen, &stream_id).await;
    drop(feed);
    node_b.shutdown().await;
}
