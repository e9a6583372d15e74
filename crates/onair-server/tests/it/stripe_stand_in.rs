//! A local stand-in for Stripe's API (Stripe's servers cannot be reached here): it
//! speaks the requests and answers OnAir uses — `POST /v1/payment_intents`
//! (form-encoded, with an Idempotency-Key; a repeated key answers the same PaymentIntent,
//! a repeated key with other parameters is refused as Stripe does) and
//! `GET /v1/payment_intents/{id}` — checks the secret key, and can be made to fail or
//! stall. Webhooks are signed here exactly as Stripe signs them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SECRET_KEY: &str = "sk_test_onair";
pub const WEBHOOK_SECRET: &str = "whsec_onair_test";
pub const PUBLISHABLE_KEY: &str = "pk_test_onair";

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Up = 0,
    /// 503, as Stripe answers when it is unwell.
    Failing = 1,
    /// Answers after 3 s (longer than the tests' Stripe deadline).
    Stalled = 2,
}

#[derive(Default)]
struct Ledger {
    /// Idempotency-Key → (the form it came with, the PaymentIntent it made).
    by_key: HashMap<String, (Vec<(String, String)>, Value)>,
    intents: HashMap<String, Value>,
    /// Every request that reached a handler: (method and path, Idempotency-Key).
    requests: Vec<(String, Option<String>)>,
}

#[derive(Clone)]
struct Shared {
    ledger: Arc<Mutex<Ledger>>,
    mode: Arc<AtomicU8>,
}

pub struct StripeStandIn {
    pub addr: SocketAddr,
    shared: Shared,
}

impl StripeStandIn {
    pub async fn start() -> Self {
        let shared = Shared {
            ledger: Arc::default(),
            mode: Arc::new(AtomicU8::new(Mode::Up as u8)),
        };
        let app = Router::new()
            .route("/v1/payment_intents", post(create))
            .route("/v1/payment_intents/{id}", get(retrieve))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A server's settings pointing at this stand-in, with every Stripe key set.
    pub fn configure(&self, config: &mut onair_server::Config) {
        config.payments.stripe_secret_key = Some(SECRET_KEY.into());
        config.payments.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        config.payments.stripe_publishable_key = Some(PUBLISHABLE_KEY.into());
        config.payments.stripe_api_base = self.url();
        config.payments.stripe_timeout_ms = 1_000;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests received so far: method and path, and Idempotency-Key.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.shared.ledger.lock().unwrap().requests.clone()
    }

    /// How many PaymentIntents were created.
    pub fn intents_created(&self) -> usize {
        self.shared.ledger.lock().unwrap().intents.len()
    }

    /// The form a PaymentIntent was created with.
    pub fn form_of(&self, intent_id: &str) -> Vec<(String, String)> {
        let ledger = self.shared.ledger.lock().unwrap();
        let (form, _) = ledger
            .by_key
            .values()
            .find(|(_, intent)| intent["id"] == intent_id)
            .expect("a PaymentIntent made here");
        form.clone()
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// Answers as the mode says, or checks the secret key; `None` lets the handler answer.
async fn gate(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    match shared.mode.load(Ordering::SeqCst) {
        1 => {
            return Some(stripe_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "unavailable",
            ));
        }
        2 => tokio::time::sleep(Duration::from_secs(3)).await,
        _ => {}
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {SECRET_KEY}"));
    (!authorized).then(|| {
        stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        )
    })
}

async fn create(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared
        .ledger
        .lock()
        .unwrap()
        .requests
        .push(("POST /v1/payment_intents".into(), key.clone()));
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    let form_encoded = headers
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let Some(key) = key.filter(|_| form_encoded) else {
        let why = "expected a form-encoded body with an Idempotency-Key";
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", why);
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut ledger = shared.ledger.lock().unwrap();
    if let Some((first, intent)) = ledger.by_key.get(&key) {
        if *first != form {
            let why = "Keys for idempotent requests can only be used with the same parameters";
            return stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", why);
        }
        return axum::Json(intent.clone()).into_response();
    }
    let (Some(amount), Some(currency)) = (
        field("amount").and_then(|a| a.parse::<i64>().ok()),
        field("currency"),
    ) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "amount and currency are required",
        );
    };
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), Value::String(v.clone())))
        })
        .collect();
    let id = format!("pi_test_{}", ledger.intents.len() + 1);
    let intent = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "status": "requires_payment_method",
        "client_secret": format!("{id}_secret_standin"),
        "metadata": metadata,
    });
    ledger.intents.insert(id, intent.clone());
    ledger.by_key.insert(key, (form, intent.clone()));
    axum::Json(intent).into_response()
}

async fn retrieve(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    shared
        .ledger
        .lock()
        .unwrap()
        .requests
        .push((format!("GET /v1/payment_intents/{id}"), None));
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    match shared.ledger.lock().unwrap().intents.get(&id) {
        Some(intent) => axum::Json(intent.clone()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "No such payment_intent",
        ),
    }
}

/// A `Stripe-Signature` header for `payload` at `timestamp`, signed with `secret`.
pub fn signature(secret: &str, timestamp: i64, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// A Stripe event as Stripe sends it.
pub fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": crate::support::now(),
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object},
    })
    .to_string()
}

/// The PaymentIntent of `tip` (a tip's JSON) as a `payment_intent.*` event carries it.
pub fn intent_object(tip: &Value, status: &str) -> Value {
    let amount = tip["amount"].as_i64().unwrap();
    json!({
        "id": tip["payment_intent_id"],
        "object": "payment_intent",
        "amount": amount,
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "currency": tip["currency"],
        "status": status,
        "metadata": {"tip_id": tip["id"], "channel_id": tip["channel"]["id"]},
    })
}

/// The Charge of `tip` as a `charge.refunded` event carries it, refunded by `refunded` so far.
pub fn refunded_charge(tip: &Value, refunded: i64) -> Value {
    let amount = tip["amount"].as_i64().unwrap();
    json!({
        "id": format!("ch_{}", tip["id"].as_str().unwrap()),
        "object": "charge",
        "payment_intent": tip["payment_intent_id"],
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "currency": tip["currency"],
        "refunded": refunded == amount,
        "metadata": {},
    })
}
