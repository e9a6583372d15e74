//! The payments service: tips are created as Stripe PaymentIntents, and their state
//! follows Stripe's signed webhooks only (never the client's word).

use std::sync::Arc;
use std::time::Duration;

use onair_core::{ChatText, ValidationError};
use onair_infra::{BreakerSettings, CircuitBreaker};
use onair_store::{EventOutcome, NewTip, StoreError, Tip, TipInsert, TipStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::events::{self, Parsed};
use super::signature;
use super::stripe::{NewPaymentIntent, Stripe, StripeError};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::pagination::Cursors;

/// The `[payments]` settings. Tipping is on when Stripe's secret key and webhook secret
/// are both set.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    pub stripe_secret_key: Option<String>,
    pub stripe_webhook_secret: Option<String>,
    /// For Stripe.js in the browser; without it the UI offers no tip form.
    pub stripe_publishable_key: Option<String>,
    pub stripe_api_base: String,
    /// Deadline of each call to Stripe.
    pub stripe_timeout_ms: u64,
    /// How far a webhook's signed timestamp may be from our clock.
    pub webhook_tolerance_secs: u64,
    /// Accepted currencies with their bounds in minor units: `usd:100-50000,…`.
    #[serde(deserialize_with = "crate::settings::comma_list")]
    pub currencies: Vec<CurrencyBounds>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_publishable_key: None,
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_timeout_ms: 8_000,
            webhook_tolerance_secs: 300,
            currencies: ["usd", "eur", "gbp", "cad", "aud"]
                .into_iter()
                .map(|currency| CurrencyBounds {
                    currency: currency.into(),
                    min: 100,
                    max: 50_000,
                })
                .chain([CurrencyBounds {
                    currency: "jpy".into(),
                    min: 100,
                    max: 50_000,
                }])
                .collect(),
        }
    }
}

/// A currency tips may be sent in, and the smallest and largest tip (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CurrencyBounds {
    /// ISO 4217, lowercase, as Stripe writes it.
    pub currency: String,
    pub min: i64,
    pub max: i64,
}

impl std::str::FromStr for CurrencyBounds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("{s:?}: expected currency:min-max, e.g. usd:100-50000");
        let (currency, range) = s.split_once(':').ok_or_else(invalid)?;
        let (min, max) = range.split_once('-').ok_or_else(invalid)?;
        let (min, max) = (
            min.trim().parse().map_err(|_| invalid())?,
            max.trim().parse().map_err(|_| invalid())?,
        );
        let currency = currency.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid());
        }
        if !(0 < min && min <= max) {
            return Err(format!("{s:?}: needs 0 < min <= max"));
        }
        Ok(Self { currency, min, max })
    }
}

impl TryFrom<String> for CurrencyBounds {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<CurrencyBounds> for String {
    fn from(bounds: CurrencyBounds) -> Self {
        format!("{}:{}-{}", bounds.currency, bounds.min, bounds.max)
    }
}

/// What a viewer asks to tip.
pub struct TipRequest {
    pub channel_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub message: Option<String>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// A tip created (or found again by a retried request), with what Stripe.js needs.
pub struct CreatedTip {
    pub tip: Tip,
    pub client_secret: String,
    /// A retried request: this is the tip the first one created.
    pub replayed: bool,
}

/// Without an Idempotency-Key, the same tip asked again within this window is taken for
/// a retry (a double click, a resent request) rather than a second tip.
const IMPLICIT_RETRY_WINDOW_SECS: i64 = 300;

pub struct Payments {
    store: Arc<dyn TipStore>,
    chat: Arc<Chat>,
    cursors: Arc<Cursors>,
    /// `None`: tipping is disabled.
    stripe: Option<Stripe>,
    webhook_secret: String,
    publishable_key: Option<String>,
    /// In the configured order (the UI offers the first one first).
    currencies: Vec<CurrencyBounds>,
    tolerance: Duration,
}

impl Payments {
    pub fn new(
        config: &PaymentsConfig,
        breaker: BreakerSettings,
        store: Arc<dyn TipStore>,
        (chat, cursors): (Arc<Chat>, Arc<Cursors>),
    ) -> Self {
        let stripe = match (&config.stripe_secret_key, &config.stripe_webhook_secret) {
            (Some(key), Some(_)) => Some(Stripe::new(
                &config.stripe_api_base,
                key.clone(),
                Duration::from_millis(config.stripe_timeout_ms),
                CircuitBreaker::new("stripe", "api", breaker),
            )),
            _ => None,
        };
        Self {
            store,
            chat,
            cursors,
            stripe,
            webhook_secret: config.stripe_webhook_secret.clone().unwrap_or_default(),
            publishable_key: config.stripe_publishable_key.clone(),
            currencies: config.currencies.clone(),
            tolerance: Duration::from_secs(config.webhook_tolerance_secs),
        }
    }

    pub fn enabled(&self) -> bool {
        self.stripe.is_some()
    }

    pub fn publishable_key(&self) -> Option<&str> {
        self.publishable_key.as_deref().filter(|_| self.enabled())
    }

    pub fn currencies(&self) -> impl Iterator<Item = &CurrencyBounds> {
        self.currencies.iter()
    }

    fn stripe(&self) -> Result<&Stripe, ApiError> {
        self.stripe.as_ref().ok_or(ApiError::PaymentsDisabled)
    }

    pub fn store(&self) -> &dyn TipStore {
        &*self.store
    }

    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    /// Creates a tip and its PaymentIntent, or resumes the one a retried request made.
    pub async fn create_tip(&self, me: Uuid, request: TipRequest) -> Result<CreatedTip, ApiError> {
        let stripe = self.stripe()?;
        let message = self.check(me, &request)?;
        // Fail fast, before any lookup or write, while Stripe is known to be down.
        if let Some(open) = stripe.refusing() {
            return Err(unavailable(StripeError::Open(open)));
        }
        self.chat
            .check_tipper(request.channel_id, me, message.is_some())
            .await?;
        let digest = request_digest(&request, message.as_deref());
        let idempotency_key = match &request.idempotency_key {
            Some(key) => format!("client:{key}"),
            None => {
                let window = chrono::Utc::now().timestamp() / IMPLICIT_RETRY_WINDOW_SECS;
                format!("implicit:{digest}:{window}")
            }
        };
        let new = NewTip {
            id: Uuid::now_v7(),
            sender_id: me,
            channel_id: request.channel_id,
            amount: request.amount,
            currency: request.currency.clone(),
            message,
            idempotency_key,
            request_digest: digest.clone(),
        };
        let (tip, replayed) = match self.store.insert_tip(new).await {
            Ok(TipInsert::Inserted(tip)) => (tip, false),
            Ok(TipInsert::Existing(tip)) if tip.request_digest == digest => (tip, true),
            Ok(TipInsert::Existing(_)) => return Err(ApiError::IdempotencyKeyReused),
            Err(StoreError::NotFound) => return Err(ApiError::NotFound("channel")),
            Err(e) => return Err(e.into()),
        };
        let intent = match &tip.payment_intent_id {
            Some(id) => stripe.retrieve_payment_intent(id).await,
            None => {
                let intent = NewPaymentIntent {
                    amount: tip.amount,
                    currency: &tip.currency,
                    description: format!("Tip to {} on OnAir", tip.channel.username),
                    metadata: [
                        ("tip_id", tip.id.to_string()),
                        ("channel_id", tip.channel.id.to_string()),
                        ("sender_id", me.to_string()),
                    ],
                };
                // Keyed by the tip: every retry of this tip asks for the same payment.
                stripe
                    .create_payment_intent(&intent, &format!("onair-tip-{}", tip.id))
                    .await
            }
        }
        .map_err(unavailable)?;
        if tip.payment_intent_id.is_none() {
            self.store.set_payment_intent(tip.id, &intent.id).await?;
        }
        let tip = Tip {
            payment_intent_id: Some(intent.id),
            ..tip
        };
        metrics::counter!("tips_created_total", "replayed" => if replayed { "true" } else { "false" })
            .increment(1);
        Ok(CreatedTip {
            tip,
            client_secret: intent.client_secret,
            replayed,
        })
    }

    /// The request's rules: a currency we take, an amount within its bounds, a message
    /// like a chat message, someone else's channel. Returns the cleaned message.
    fn check(&self, me: Uuid, request: &TipRequest) -> Result<Option<String>, ApiError> {
        let bounds = self
            .currencies
            .iter()
            .find(|c| c.currency == request.currency);
        let bounds = bounds.ok_or_else(|| {
            let known: Vec<&str> = self
                .currencies
                .iter()
                .map(|c| c.currency.as_str())
                .collect();
            ValidationError::new("currency", format!("must be one of {}", known.join(", ")))
        })?;
        if !(bounds.min..=bounds.max).contains(&request.amount) {
            let reason = format!(
                "must be {} to {} (minor units of {})",
                bounds.min, bounds.max, bounds.currency
            );
            return Err(ValidationError::new("amount", reason).into());
        }
        if request.channel_id == me {
            return Err(ValidationError::new("channel", "you cannot tip yourself").into());
        }
        let message = match request.message.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                ChatText::parse(text)
                    .map_err(|e| ValidationError::new("message", e.reason))?
                    .as_str()
                    .to_owned(),
            ),
        };
        Ok(message)
    }

    /// A webhook from Stripe: its signature is checked before anything is parsed, then
    /// the event is applied once. Events we do not act on are acknowledged.
    pub async fn receive_webhook(
        &self,
        signature_header: Option<&str>,
        payload: &[u8],
    ) -> Result<(), ApiError> {
        self.stripe()?;
        let now = chrono::Utc::now().timestamp();
        signature::verify(
            &self.webhook_secret,
            signature_header,
            payload,
            now,
            self.tolerance,
        )
        .map_err(|e| {
            metrics::counter!("stripe_webhooks_total", "outcome" => "bad_signature").increment(1);
            ApiError::InvalidSignature(e.to_string())
        })?;
        let event = match events::parse(payload)? {
            Parsed::Payment(event) => event,
            Parsed::Ignored(kind) => {
                tracing::debug!(kind, "Stripe event not handled");
                metrics::counter!("stripe_webhooks_total", "outcome" => "ignored").increment(1);
                return Ok(());
            }
        };
        let outcome = self.store.apply_payment_event(&event).await?;
        let label = match &outcome {
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::UnknownTip => "unknown_tip",
            EventOutcome::Applied { .. } => "applied",
        };
        metrics::counter!("stripe_webhooks_total", "outcome" => label).increment(1);
        tracing::info!(event = %event.event_id, kind = %event.event_type, outcome = label, "Stripe event");
        if let EventOutcome::Applied {
            tip,
            paid_now: true,
        } = outcome
        {
            self.chat.announce_tip(&tip).await;
        }
        Ok(())
    }
}

/// What a request asks for, so a retry can be told from a different request reusing
/// its key.
fn request_digest(request: &TipRequest, message: Option<&str>) -> String {
    let mut hash = Sha256::new();
    for part in [
        request.channel_id.to_string().as_str(),
        &request.amount.to_string(),
        &request.currency,
        message.unwrap_or(""),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// Stripe could not take the payment now: 503 (with when to retry), or 422 when Stripe
/// refused the request itself.
fn unavailable(error: StripeError) -> ApiError {
    match error {
        StripeError::Open(open) => ApiError::UnavailableFor(open.retry_after.as_secs().max(1)),
        StripeError::Refused { message, param } => {
            tracing::info!(%message, ?param, "Stripe refused a payment");
            ApiError::PaymentRefused(message)
        }
        StripeError::Credentials(status) => {
            tracing::error!(%status, "Stripe refused our secret key: check STRIPE_SECRET_KEY");
            ApiError::Unavailable
        }
        StripeError::Unreachable(reason) => {
            tracing::warn!(%reason, "Stripe unreachable");
            ApiError::Unavailable
        }
    }
}
