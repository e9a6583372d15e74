//! Tips through Stripe, against a local stand-in for Stripe's API: the PaymentIntent
//! request (form, key, Idempotency-Key), verified webhooks applied exactly once in any
//! order, the ledger and earnings, the chat announcement, the breaker with Stripe down
//! or stalled, and every bad request.

use std::time::{Duration, Instant};

use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{next_of, open, room_of};
use crate::stripe_stand_in::{
    Mode, StripeStandIn, WEBHOOK_SECRET, event, intent_object, refunded_charge, signature,
};
use crate::support::{TestApp, User, assert_error, eventually, now, send};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    a_paid_tip_reaches_the_ledger_the_earnings_and_the_chat,
    a_retried_request_never_creates_a_second_payment,
    webhooks_are_verified_and_applied_exactly_once_in_any_order,
    bad_tips_get_clear_errors,
    stripe_down_or_stalled_opens_the_breaker_and_tipping_recovers,
    without_keys_tipping_is_off,
);

async fn spawn(db: DbConfig, stripe: &StripeStandIn) -> TestApp {
    TestApp::spawn_configured(db, |config| {
        stripe.configure(config);
        config.breaker.failure_threshold = 2;
        // Long enough for the open-breaker checks to run inside it on a busy machine.
        config.breaker.cool_down_ms = 3_000;
    })
    .await
}

/// `from` tips `to`'s channel; the raw answer.
async fn tip(
    app: &TestApp,
    from: &User,
    to: &str,
    body: Value,
    key: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(app.url(&format!("/api/channels/{to}/tips")))
        .bearer_auth(&from.access)
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    send(request).await
}

/// A tip that Stripe accepted: the tip's JSON.
async fn pending_tip(app: &TestApp, from: &User, to: &User, amount: i64, key: &str) -> Value {
    let body = json!({"amount": amount, "currency": "usd", "message": "great stream"});
    let (status, _, tip) = tip(app, from, &to.id, body, Some(key)).await;
    assert_eq!(status, StatusCode::CREATED, "{tip}");
    tip
}

/// Delivers a webhook signed at `at` (unix seconds) with `secret`.
async fn deliver_signed(
    app: &TestApp,
    payload: &str,
    secret: &str,
    at: i64,
) -> (StatusCode, Value) {
    let request = app
        .client
        .post(app.url("/api/hooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", signature(secret, at, payload))
        .body(payload.to_owned());
    let (status, _, body) = send(request).await;
    (status, body)
}

async fn deliver(app: &TestApp, payload: &str) {
    let (status, body) = deliver_signed(app, payload, WEBHOOK_SECRET, now()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Stripe delivers event `id` of `kind` about `object`, signed now.
async fn stripe_sends(app: &TestApp, id: &str, kind: &str, object: Value) {
    deliver(app, &event(id, kind, object)).await;
}

async fn succeed(app: &TestApp, id: &str, tip: &Value) {
    let intent = intent_object(tip, "succeeded");
    stripe_sends(app, id, "payment_intent.succeeded", intent).await;
}

async fn fail(app: &TestApp, id: &str, tip: &Value) {
    let intent = intent_object(tip, "requires_payment_method");
    stripe_sends(app, id, "payment_intent.payment_failed", intent).await;
}

/// Stripe refunded `total` of `tip` so far.
async fn refund(app: &TestApp, id: &str, tip: &Value, total: i64) {
    stripe_sends(app, id, "charge.refunded", refunded_charge(tip, total)).await;
}

async fn assert_usd_earnings(app: &TestApp, user: &User, succeeded: i64, refunded: i64, tips: i64) {
    let net = succeeded - refunded;
    let expected = json!([{"currency": "usd", "succeeded": succeeded, "refunded": refunded, "net": net, "tips": tips}]);
    assert_eq!(earnings(app, user).await, expected);
}

async fn earnings(app: &TestApp, user: &User) -> Value {
    let (status, body) = app.get_as("/api/me/earnings", &user.access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn tip_status(app: &TestApp, sender: &User, id: &Value) -> Value {
    let (status, body) = app
        .get_as("/api/me/tips?direction=sent", &sender.access)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tips = body["data"].as_array().unwrap();
    let tip = tips
        .iter()
        .find(|t| t["id"] == *id)
        .expect("the tip is listed");
    tip["status"].clone()
}

async fn a_paid_tip_reaches_the_ledger_the_earnings_and_the_chat(db: DbConfig) {
    let stripe = StripeStandIn::start().await;
    let app = spawn(db, &stripe).await;
    let creator = app.signup("tipped").await;
    let fan = app.signup("generous").await;
    let mut chat = open(&app, &room_of(&creator)).await;

    let (status, body) = app.get("/api/payments/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["enabled"], true);
    assert_eq!(body["publishable_key"], "pk_test_onair");
    assert!(
        body["currencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["currency"] == "usd")
    );

    let tip = pending_tip(&app, &fan, &creator, 500, "tip-1").await;
    assert_eq!(tip["status"], "pending");
    assert_eq!(tip["amount"], 500);
    assert_eq!(tip["channel"]["id"], creator.id.as_str());
    assert_eq!(tip["sender"]["username"], fan.username.as_str());
    let intent = tip["payment_intent_id"].as_str().unwrap();
    assert_eq!(tip["client_secret"], format!("{intent}_secret_standin"));
    // What Stripe was asked, form-encoded, keyed by the tip.
    let form = stripe.form_of(intent);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("amount"), Some("500"));
    assert_eq!(field("currency"), Some("usd"));
    assert_eq!(field("automatic_payment_methods[enabled]"), Some("true"));
    assert_eq!(field("metadata[tip_id]"), tip["id"].as_str());
    assert_eq!(field("metadata[channel_id]"), Some(creator.id.as_str()));
    let key = format!("onair-tip-{}", tip["id"].as_str().unwrap());
    assert_eq!(stripe.requests()[0].1.as_deref(), Some(key.as_str()));

    // The client's word changes nothing: pending until Stripe says so.
    assert_eq!(earnings(&app, &creator).await, json!([]));
    let (_, received) = app.get_as("/api/me/tips", &creator.access).await;
    assert_eq!(received["data"], json!([]));

    let paid = event(
        "evt_paid",
        "payment_intent.succeeded",
        intent_object(&tip, "succeeded"),
    );
    deliver(&app, &paid).await;
    let frame = next_of(&mut chat, "tip").await;
    assert_eq!(frame["id"], tip["id"]);
    assert_eq!(frame["amount"], 500);
    assert_eq!(frame["currency"], "usd");
    assert_eq!(frame["message"], "great stream");
    assert_eq!(frame["user"]["username"], fan.username.as_str());
    assert_usd_earnings(&app, &creator, 500, 0, 1).await;
    let (_, received) = app
        .get_as("/api/me/tips?direction=received", &creator.access)
        .await;
    assert_eq!(received["data"][0]["id"], tip["id"]);
    assert_eq!(received["data"][0]["status"], "succeeded");
    assert_eq!(tip_status(&app, &fan, &tip["id"]).await, "succeeded");
    // Latecomers see it in the room's history.
    let mut late = open(&app, &room_of(&creator)).await;
    assert_eq!(next_of(&mut late, "tip").await["id"], tip["id"]);
    // The tipper earned nothing.
    assert_eq!(earnings(&app, &fan).await, json!([]));
}

async fn a_retried_request_never_creates_a_second_payment(db: DbConfig) {
    let stripe = StripeStandIn::start().await;
    let app = spawn(db, &stripe).await;
    let creator = app.signup("retried").await;
    let fan = app.signup("clicker").await;
    let first = pending_tip(&app, &fan, &creator, 700, "same-key").await;
    let body = json!({"amount": 700, "currency": "usd", "message": "great stream"});
    let (status, headers, again) =
        tip(&app, &fan, &creator.id, body.clone(), Some("same-key")).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["client_secret"], first["client_secret"]);
    assert_eq!(stripe.intents_created(), 1);
    // Another request under the same key is refused, not charged.
    let other = json!({"amount": 900, "currency": "usd"});
    let (status, _, refused) = tip(&app, &fan, &creator.id, other, Some("same-key")).await;
    assert_error(&(status, refused), 422, "idempotency_key_reused");
    // Without a key, the same request resent at once is the same tip too…
    let (_, _, implicit) = tip(&app, &fan, &creator.id, body.clone(), None).await;
    let (_, _, resent) = tip(&app, &fan, &creator.id, body, None).await;
    assert_eq!(implicit["id"], resent["id"]);
    assert_ne!(implicit["id"], first["id"], "…and not one made under a key");
    assert_eq!(stripe.intents_created(), 2);
    // …while another key is another tip.
    pending_tip(&app, &fan, &creator, 700, "other-key").await;
    assert_eq!(stripe.intents_created(), 3);
}

async fn webhooks_are_verified_and_applied_exactly_once_in_any_order(db: DbConfig) {
    let stripe = StripeStandIn::start().await;
    let app = spawn(db, &stripe).await;
    let creator = app.signup("ledgered").await;
    let fan = app.signup("refundee").await;
    let tip = pending_tip(&app, &fan, &creator, 500, "a").await;
    let paid = event(
        "evt_a_paid",
        "payment_intent.succeeded",
        intent_object(&tip, "succeeded"),
    );

    // Forged, stale, from the future, unsigned: 400 and nothing applied.
    let forged = deliver_signed(&app, &paid, "whsec_forged", now()).await;
    assert_error(&forged, 400, "invalid_signature");
    let stale = deliver_signed(&app, &paid, WEBHOOK_SECRET, now() - 301).await;
    assert_error(&stale, 400, "invalid_signature");
    let future = deliver_signed(&app, &paid, WEBHOOK_SECRET, now() + 301).await;
    assert_error(&future, 400, "invalid_signature");
    let unsigned = app
        .post(
            "/api/hooks/stripe",
            None,
            serde_json::from_str(&paid).unwrap(),
        )
        .await;
    assert_error(&unsigned, 400, "invalid_signature");
    assert_eq!(tip_status(&app, &fan, &tip["id"]).await, "pending");

    // Applied once however often it comes (a replay of the same delivery included).
    let signed_at = now();
    for _ in 0..3 {
        let (status, _) = deliver_signed(&app, &paid, WEBHOOK_SECRET, signed_at).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Stripe may also send another event of the same success.
    succeed(&app, "evt_a_paid_again", &tip).await;
    assert_usd_earnings(&app, &creator, 500, 0, 1).await;

    // A failure after the success does not undo it.
    fail(&app, "evt_a_failed", &tip).await;
    assert_eq!(tip_status(&app, &fan, &tip["id"]).await, "succeeded");
    assert_usd_earnings(&app, &creator, 500, 0, 1).await;

    // Refunds: cumulative amounts, each applied once.
    refund(&app, "evt_a_refund_1", &tip, 200).await;
    refund(&app, "evt_a_refund_1", &tip, 200).await;
    assert_eq!(
        tip_status(&app, &fan, &tip["id"]).await,
        "partially_refunded"
    );
    refund(&app, "evt_a_refund_2", &tip, 500).await;
    assert_eq!(tip_status(&app, &fan, &tip["id"]).await, "refunded");
    assert_usd_earnings(&app, &creator, 500, 500, 1).await;

    // Out of order: the refund overtakes the success, which then changes nothing.
    let early = pending_tip(&app, &fan, &creator, 300, "b").await;
    refund(&app, "evt_b_refund", &early, 300).await;
    succeed(&app, "evt_b_paid", &early).await;
    assert_eq!(tip_status(&app, &fan, &early["id"]).await, "refunded");
    assert_usd_earnings(&app, &creator, 800, 800, 2).await;

    // A failed payment, then another card that works.
    let retried = pending_tip(&app, &fan, &creator, 400, "c").await;
    fail(&app, "evt_c_failed", &retried).await;
    assert_eq!(tip_status(&app, &fan, &retried["id"]).await, "failed");
    succeed(&app, "evt_c_paid", &retried).await;
    assert_eq!(tip_status(&app, &fan, &retried["id"]).await, "succeeded");

    // Events about payments that are not tips, and event types we do not act on.
    let mut stranger = intent_object(&retried, "succeeded");
    stranger["id"] = json!("pi_someone_else");
    stranger["metadata"] = json!({});
    stripe_sends(&app, "evt_other", "payment_intent.succeeded", stranger).await;
    stripe_sends(
        &app,
        "evt_customer",
        "customer.created",
        json!({"id": "cus_1"}),
    )
    .await;
    // Signed but not an event: refused, nothing applied.
    let (status, body) = deliver_signed(&app, "{\"id\": 5}", WEBHOOK_SECRET, now()).await;
    assert_error(&(status, body), 422, "invalid_body");
    let (_, received) = app
        .get_as("/api/me/tips?direction=received&limit=2", &creator.access)
        .await;
    assert_eq!(received["data"].as_array().unwrap().len(), 2);
    assert_eq!(received["pagination"]["has_more"], true);
    let next = received["pagination"]["next_cursor"].as_str().unwrap();
    let path = format!("/api/me/tips?direction=received&limit=2&cursor={next}");
    let (_, rest) = app.get_as(&path, &creator.access).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
}

async fn bad_tips_get_clear_errors(db: DbConfig) {
    let stripe = StripeStandIn::start().await;
    let app = spawn(db, &stripe).await;
    let creator = app.signup("strict").await;
    let fan = app.signup("sloppy").await;
    let channel = format!("/api/channels/{}/tips", creator.id);
    let good = json!({"amount": 500, "currency": "usd"});

    assert_error(
        &app.post(&channel, None, good.clone()).await,
        401,
        "unauthorized",
    );
    for (body, field) in [
        (json!({"amount": 0, "currency": "usd"}), "amount"),
        (json!({"amount": -100, "currency": "usd"}), "amount"),
        (json!({"amount": 99, "currency": "usd"}), "amount"),
        (json!({"amount": 50_001, "currency": "usd"}), "amount"),
        (json!({"amount": 500, "currency": "xyz"}), "currency"),
        (json!({"amount": 500, "currency": "USD"}), "currency"),
        (
            json!({"amount": 500, "currency": "usd", "message": "x".repeat(501)}),
            "message",
        ),
        (
            json!({"amount": 500, "currency": "usd", "message": "hi\u{200B}there"}),
            "message",
        ),
    ] {
        let answer = app.post(&channel, Some(&fan.access), body.clone()).await;
        assert_error(&answer, 422, "validation_failed");
        assert_eq!(answer.1["error"]["field"], field, "{body}");
    }
    let own = format!("/api/channels/{}/tips", fan.id);
    let yourself = app.post(&own, Some(&fan.access), good.clone()).await;
    assert_error(&yourself, 422, "validation_failed");
    assert_eq!(yourself.1["error"]["field"], "channel");
    let nobody = format!("/api/channels/{}/tips", uuid::Uuid::now_v7());
    assert_error(
        &app.post(&nobody, Some(&fan.access), good.clone()).await,
        404,
        "not_found",
    );
    let typed = json!({"amount": "5.00", "currency": "usd"});
    assert_error(
        &app.post(&channel, Some(&fan.access), typed).await,
        422,
        "invalid_body",
    );
    let fraction = json!({"amount": 5.5, "currency": "usd"});
    assert_error(
        &app.post(&channel, Some(&fan.access), fraction).await,
        422,
        "invalid_body",
    );
    let (status, _, body) = tip(
        &app,
        &fan,
        &creator.id,
        good.clone(),
        Some("bad key with spaces"),
    )
    .await;
    assert_error(&(status, body), 400, "invalid_header");
    // The chat's rules hold for what a tip would say there.
    let bans = format!("/api/channels/{}/bans", creator.id);
    let muted = app.signup("muted").await;
    let timeout = json!({"user_id": muted.id, "duration_secs": 600});
    assert_eq!(
        app.post(&bans, Some(&creator.access), timeout).await.0,
        StatusCode::NO_CONTENT
    );
    let with_message = json!({"amount": 500, "currency": "usd", "message": "unmute me"});
    let answer = app.post(&channel, Some(&muted.access), with_message).await;
    assert_error(&answer, 422, "validation_failed");
    assert_eq!(answer.1["error"]["field"], "message");
    let troll = app.signup("troll").await;
    let ban = json!({"user_id": troll.id});
    assert_eq!(
        app.post(&bans, Some(&creator.access), ban).await.0,
        StatusCode::NO_CONTENT
    );
    let answer = app.post(&channel, Some(&troll.access), good.clone()).await;
    assert_error(&answer, 403, "banned");
    assert_eq!(stripe.intents_created(), 0, "nothing reached Stripe");
    // A timed-out viewer may still tip without a message.
    let (status, _, _) = tip(&app, &muted, &creator.id, good.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let bad_direction = app
        .get_as("/api/me/tips?direction=sideways", &fan.access)
        .await;
    assert_error(&bad_direction, 400, "invalid_query");
}

async fn stripe_down_or_stalled_opens_the_breaker_and_tipping_recovers(db: DbConfig) {
    let stripe = StripeStandIn::start().await;
    let app = spawn(db, &stripe).await;
    let creator = app.signup("unlucky").await;
    let fan = app.signup("patient").await;
    let body = json!({"amount": 500, "currency": "usd"});
    for mode in [Mode::Failing, Mode::Stalled] {
        stripe.set_mode(mode);
        // Failures in a row (two requests, or one request's retries) open the breaker.
        for attempt in 0..2 {
            let key = format!("{mode:?}-{attempt}");
            let (status, headers, answer) =
                tip(&app, &fan, &creator.id, body.clone(), Some(&key)).await;
            assert_error(&(status, answer), 503, "service_unavailable");
            assert!(headers.contains_key("retry-after"));
        }
        let reached = stripe.requests().len();
        // Open: refused at once, without a call to Stripe.
        let mut took = Vec::new();
        for attempt in 0..9 {
            let started = Instant::now();
            let key = format!("{mode:?}-open-{attempt}");
            let (status, headers, answer) =
                tip(&app, &fan, &creator.id, body.clone(), Some(&key)).await;
            took.push(started.elapsed());
            assert_error(&(status, answer), 503, "service_unavailable");
            // Until the cool-down ends.
            let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=3).contains(&retry_after), "{retry_after}");
        }
        took.sort();
        assert!(
            took[4] < Duration::from_millis(100),
            "{mode:?}: median {:?}",
            took[4]
        );
        assert_eq!(
            stripe.requests().len(),
            reached,
            "{mode:?}: nothing sent while open"
        );
        // The rest of the site does not wait on Stripe.
        assert_eq!(app.get("/api/streams").await.0, StatusCode::OK);
        // Stripe is back: after the cool-down a probe goes through and closes the breaker.
        stripe.set_mode(Mode::Up);
        let recovered = eventually("tipping recovers", || async {
            let key = format!("{mode:?}-recovered");
            let (status, _, tip) = tip(&app, &fan, &creator.id, body.clone(), Some(&key)).await;
            (status == StatusCode::CREATED).then_some(tip)
        })
        .await;
        assert_eq!(recovered["status"], "pending");
    }
}

async fn without_keys_tipping_is_off(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("keyless").await;
    let fan = app.signup("wouldtip").await;
    let (status, body) = app.get("/api/payments/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"enabled": false, "publishable_key": null, "currencies": []})
    );
    let channel = format!("/api/channels/{}/tips", creator.id);
    let answer = app
        .post(
            &channel,
            Some(&fan.access),
            json!({"amount": 500, "currency": "usd"}),
        )
        .await;
    assert_error(&answer, 404, "payments_disabled");
    let payload = event("evt_x", "payment_intent.succeeded", json!({}));
    let hook = deliver_signed(&app, &payload, WEBHOOK_SECRET, now()).await;
    assert_error(&hook, 404, "payments_disabled");
    // Lists still answer (empty): a creator's dashboard works on any server.
    assert_eq!(earnings(&app, &creator).await, json!([]));
}
