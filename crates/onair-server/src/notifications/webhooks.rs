//! Outbound webhooks, in the manner of Twitch EventSub: a user registers a callback for
//! `stream.online` or `stream.offline` of a channel; each event is delivered as a job
//! (enqueued with the change itself), retried with the queue's backoff, and a webhook
//! that keeps failing is disabled.
//!
//! Every delivery is signed. Headers:
//! - `OnAir-Message-Id`: the same for every retry of one delivery (drop duplicates);
//! - `OnAir-Message-Timestamp`: when this attempt was sent, RFC 3339 (drop old ones);
//! - `OnAir-Message-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the webhook's
//!   secret, over the id, the timestamp and the raw body, concatenated;
//! - `OnAir-Subscription-Type`: the event.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use onair_store::jobs::{ClaimedJob, WebhookJob};
use onair_store::{NewWebhook, Store, StreamView, Webhook, WebhookEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::outbound::Outbound;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};
use crate::pagination::{PageBody, PageQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
}

/// `sha256=<hex>` over `message_id || timestamp || body`.
pub fn signature(secret: &str, message_id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message_id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub struct WebhookHandler {
    pub store: Arc<dyn Store>,
    pub outbound: Outbound,
    /// Failed deliveries in a row that disable a webhook.
    pub disable_after: i32,
}

#[async_trait]
impl JobHandler for WebhookHandler {
    async fn run(&self, job: &ClaimedJob, _: &LeaseClock) -> Result<(), JobFailure> {
        let delivery: WebhookJob =
            serde_json::from_str(&job.payload).map_err(JobFailure::payload)?;
        let (Some(hook), Some(stream)) = (
            self.store.webhook(delivery.webhook_id).await?,
            self.store.stream(delivery.stream_id).await?,
        ) else {
            return Ok(());
        };
        if hook.disabled_at.is_some() {
            return Ok(());
        }
        let body = serde_json::to_vec(&payload(&hook, &stream, delivery.occurred_at))
            .expect("webhook bodies serialize");
        let message_id = job.id.to_string();
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let sent = self
            .outbound
            .client()
            .post(&hook.callback_url)
            .header("content-type", "application/json")
            .header("onair-message-id", &message_id)
            .header("onair-message-timestamp", &timestamp)
            .header(
                "onair-message-signature",
                signature(&hook.secret, &message_id, &timestamp, &body),
            )
            .header("onair-subscription-type", hook.event.as_str())
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("callback answered {}", response.status())),
            Err(e) => Some(format!("callback unreachable: {e}")),
        };
        let outcome = if failure.is_some() {
            "failed"
        } else {
            "delivered"
        };
        metrics::counter!("onair_webhook_deliveries_total", "outcome" => outcome).increment(1);
        let disabled = self
            .store
            .record_webhook_delivery(hook.id, failure.is_none(), self.disable_after)
            .await?;
        match failure {
            None => Ok(()),
            Some(error) if disabled => {
                tracing::warn!(webhook = %hook.id, %error, "webhook disabled after repeated failures");
                Ok(())
            }
            Some(error) => Err(JobFailure::Retry(error)),
        }
    }
}

fn payload(hook: &Webhook, stream: &StreamView, at: DateTime<Utc>) -> serde_json::Value {
    let owner = &stream.owner;
    let name = owner.display_name.as_deref().unwrap_or(&owner.username);
    let event = match hook.event {
        WebhookEvent::StreamOnline => json!({
            "id": stream.id,
            "broadcaster_user_id": owner.id,
            "broadcaster_user_login": owner.username,
            "broadcaster_user_name": name,
            "type": "live",
            "title": stream.title,
            "category": stream.category,
            "started_at": at,
        }),
        WebhookEvent::StreamOffline => json!({
            "id": stream.id,
            "broadcaster_user_id": owner.id,
            "broadcaster_user_login": owner.username,
            "broadcaster_user_name": name,
            "ended_at": at,
        }),
    };
    json!({
        "subscription": {
            "id": hook.id,
            "type": hook.event.as_str(),
            "channel_id": hook.channel_id,
            "created_at": hook.created_at.get(),
        },
        "event": event,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// The channel (user) whose broadcasts to follow.
    channel_id: Uuid,
    /// `stream.online` or `stream.offline`.
    event: String,
    /// https URL that receives the POSTs.
    callback_url: String,
    /// 10 to 100 characters; signs every delivery. Never shown again.
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDto {
    id: Uuid,
    channel_id: Uuid,
    event: String,
    callback_url: String,
    /// False once repeated failures disabled it.
    enabled: bool,
    /// Failed deliveries in a row.
    failures: i32,
    created_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookDto {
    fn from(hook: Webhook) -> Self {
        Self {
            id: hook.id,
            channel_id: hook.channel_id,
            event: hook.event.as_str().to_owned(),
            callback_url: hook.callback_url,
            enabled: hook.disabled_at.is_none(),
            failures: hook.failures,
            created_at: hook.created_at.get(),
        }
    }
}

/// Register a webhook for a channel's `stream.online` or `stream.offline`.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookDto), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`limit_reached`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Json(request): Json<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookDto>), ApiError> {
    let event = WebhookEvent::try_from(request.event).map_err(|_| {
        ApiError::InvalidBody("event: must be stream.online or stream.offline".into())
    })?;
    if request.callback_url.len() > 2048 {
        return Err(ApiError::InvalidBody("callback_url: too long".into()));
    }
    let callback = state
        .notifications
        .outbound
        .check_target(&request.callback_url)
        .map_err(|e| ApiError::InvalidBody(format!("callback_url: {e}")))?;
    let secret_len = request.secret.chars().count();
    if !(10..=100).contains(&secret_len) || request.secret.chars().any(char::is_control) {
        return Err(ApiError::InvalidBody(
            "secret: must be 10 to 100 printable characters".into(),
        ));
    }
    let hook = NewWebhook {
        id: Uuid::now_v7(),
        owner_id: me,
        channel_id: request.channel_id,
        event,
        callback_url: callback.to_string(),
        secret: request.secret,
    };
    let limit = state.notifications.config.webhooks_per_user;
    match state.store.create_webhook(hook, i64::from(limit)).await {
        Ok(Some(created)) => Ok((StatusCode::CREATED, Json(created.into()))),
        Ok(None) => Err(ApiError::LimitReached("webhooks per user")),
        Err(onair_store::StoreError::NotFound) => Err(ApiError::NotFound("channel")),
        Err(e) => Err(e.into()),
    }
}

/// The caller's webhooks, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<WebhookDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<WebhookDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.webhooks(me, limit, cursor).await?;
    Ok(Json(PageBody::from_page(&state, page, WebhookDto::from)))
}

/// Remove one of the caller's webhooks (404 for anyone else's).
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_webhook(me, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}
