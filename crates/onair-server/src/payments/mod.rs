//! Tips through Stripe: a viewer tips a channel (a PaymentIntent, paid in the browser
//! with Stripe.js), Stripe's signed webhooks settle it, the ledger counts it, the chat
//! announces it, and the creator sees their earnings.

mod events;
mod service;
mod signature;
mod stripe;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_store::{Earnings, Tip, TipDirection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use service::{Payments, PaymentsConfig};

use crate::dto::UserSummaryDto;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser};
use crate::pagination::{PageBody, PageQuery};
use service::TipRequest;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Payments>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(payments_config))
        .routes(routes!(create_tip))
        .routes(routes!(my_earnings))
        .routes(routes!(my_tips))
}

/// Stripe's webhook, beside the media hooks: outside the API's rate limits (Stripe
/// retries and bursts; the signature is the gate).
pub fn hooks_router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Payments>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

#[derive(Serialize, ToSchema)]
pub struct PaymentsConfigDto {
    /// Whether this server takes tips.
    enabled: bool,
    /// For Stripe.js; null when tipping is disabled or the UI has no key.
    publishable_key: Option<String>,
    currencies: Vec<CurrencyDto>,
}

#[derive(Serialize, ToSchema)]
struct CurrencyDto {
    currency: String,
    /// Smallest tip, in minor units.
    min: i64,
    /// Largest tip, in minor units.
    max: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTipRequest {
    /// In minor units of the currency (cents), within its bounds.
    amount: i64,
    /// Lowercase ISO 4217, one of the configured currencies.
    currency: String,
    /// Shown in the channel's chat; the rules of a chat message.
    message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TipDto {
    id: Uuid,
    channel: UserSummaryDto,
    sender: UserSummaryDto,
    amount: i64,
    currency: String,
    message: Option<String>,
    /// `pending`, `succeeded`, `failed`, `partially_refunded` or `refunded`.
    #[schema(example = "pending")]
    status: &'static str,
    refunded_amount: i64,
    payment_intent_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Tip> for TipDto {
    fn from(tip: Tip) -> Self {
        Self {
            id: tip.id,
            channel: tip.channel.into(),
            sender: tip.sender.into(),
            amount: tip.amount,
            currency: tip.currency,
            message: tip.message,
            status: tip.status.as_str(),
            refunded_amount: tip.refunded_amount,
            payment_intent_id: tip.payment_intent_id,
            created_at: tip.created_at.get(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTipDto {
    #[serde(flatten)]
    tip: TipDto,
    /// The PaymentIntent's client secret, for Stripe.js to confirm the payment.
    client_secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct EarningsDto {
    currency: String,
    /// Paid tips, in minor units.
    succeeded: i64,
    /// Refunded since, in minor units.
    refunded: i64,
    /// `succeeded - refunded`.
    net: i64,
    /// How many tips were paid.
    tips: i64,
}

impl From<Earnings> for EarningsDto {
    fn from(e: Earnings) -> Self {
        Self {
            net: e.succeeded - e.refunded,
            currency: e.currency,
            succeeded: e.succeeded,
            refunded: e.refunded,
            tips: e.tips,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EarningsList {
    data: Vec<EarningsDto>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TipsQuery {
    /// `received` (paid tips to your channel) or `sent` (default: `received`).
    direction: Option<Direction>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Direction {
    Received,
    Sent,
}

/// Whether tipping is on, Stripe.js's publishable key, and the currencies taken.
#[utoipa::path(get, path = "/payments/config", tag = "payments",
    responses((status = 200, body = PaymentsConfigDto)))]
async fn payments_config(State(payments): State<Arc<Payments>>) -> Json<PaymentsConfigDto> {
    let enabled = payments.enabled();
    Json(PaymentsConfigDto {
        enabled,
        publishable_key: payments.publishable_key().map(str::to_owned),
        currencies: payments
            .currencies()
            .filter(|_| enabled)
            .map(|c| CurrencyDto {
                currency: c.currency.clone(),
                min: c.min,
                max: c.max,
            })
            .collect(),
    })
}

/// Tip a channel: creates a Stripe PaymentIntent and answers its client secret, for
/// Stripe.js to take the payment. The tip stays `pending` until Stripe confirms it.
/// Send an `Idempotency-Key` (any unique string per tip): a retried request with it
/// answers the same tip (with `Idempotent-Replayed: true`) and never charges twice.
#[utoipa::path(post, path = "/channels/{id}/tips", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel (its owner's user id)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters, unique per tip")),
    request_body = CreateTipRequest,
    responses((status = 201, body = CreatedTipDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`banned`: you are banned from the channel's chat", body = ErrorBody),
        (status = 404, description = "`not_found`: no such channel; `payments_disabled`: this server takes no tips", body = ErrorBody),
        (status = 422, description = "`validation_failed` (`amount`, `currency`, `message` — also while timed out in the chat —, `channel`: yourself); `idempotency_key_reused`; `payment_refused` by Stripe", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: Stripe cannot be reached (see Retry-After)", body = ErrorBody)))]
async fn create_tip(
    State(payments): State<Arc<Payments>>,
    AuthUser(me): AuthUser,
    Path(channel_id): Path<Uuid>,
    headers: HeaderMap,
    Json(request): Json<CreateTipRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|key| {
                    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or(ApiError::InvalidHeader(
                    "Idempotency-Key must be 1–255 visible ASCII characters",
                ))?
                .to_owned(),
        ),
    };
    let created = payments
        .create_tip(
            me,
            TipRequest {
                channel_id,
                amount: request.amount,
                currency: request.currency,
                message: request.message,
                idempotency_key,
            },
        )
        .await?;
    let body = CreatedTipDto {
        tip: created.tip.into(),
        client_secret: created.client_secret,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Your channel's takings per currency: paid, refunded and net, in minor units.
#[utoipa::path(get, path = "/me/earnings", tag = "payments", security(("bearer" = [])),
    responses((status = 200, body = EarningsList), (status = 401, body = ErrorBody)))]
async fn my_earnings(
    State(payments): State<Arc<Payments>>,
    AuthUser(me): AuthUser,
) -> Result<Json<EarningsList>, ApiError> {
    let earnings = payments.store().earnings(me).await?;
    Ok(Json(EarningsList {
        data: earnings.into_iter().map(EarningsDto::from).collect(),
    }))
}

/// Tips your channel received (paid ones, refunded or not) or that you sent, newest first.
#[utoipa::path(get, path = "/me/tips", tag = "payments", security(("bearer" = [])), params(TipsQuery),
    responses((status = 200, body = PageBody<TipDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn my_tips(
    State(payments): State<Arc<Payments>>,
    AuthUser(me): AuthUser,
    Query(query): Query<TipsQuery>,
) -> Result<Json<PageBody<TipDto>>, ApiError> {
    let direction = match query.direction.unwrap_or(Direction::Received) {
        Direction::Received => TipDirection::Received,
        Direction::Sent => TipDirection::Sent,
    };
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let store = payments.store();
    let fetch = async |limit, cursor| store.tips(me, direction, limit, cursor).await;
    payments.cursors().page(&page, fetch, TipDto::from).await
}

/// Stripe's webhook endpoint (`payment_intent.succeeded`, `payment_intent.payment_failed`,
/// `charge.refunded`). The `Stripe-Signature` header is verified before the body is
/// read as JSON; each event is applied once however often Stripe delivers it.
#[utoipa::path(post, path = "/api/hooks/stripe", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    request_body(description = "A Stripe event", content_type = "application/json", content = Object),
    responses((status = 200, description = "Applied, already applied, or not an event tipping acts on"),
        (status = 400, description = "`invalid_signature`: missing, forged or stale (over 5 minutes) signature", body = ErrorBody),
        (status = 404, description = "`payments_disabled`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: signed, but not a Stripe event", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn stripe_webhook(
    State(payments): State<Arc<Payments>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    payments.receive_webhook(signature, &body).await?;
    Ok(StatusCode::OK)
}
