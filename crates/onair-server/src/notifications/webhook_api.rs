//! Registering, listing and removing webhooks (deliveries are in `webhooks.rs`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_store::{NewWebhook, Webhook, WebhookEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::Notifications;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::AuthUser;
use crate::pagination::{PageBody, PageQuery};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// The channel (user) whose broadcasts to follow.
    channel_id: Uuid,
    /// `stream.online` or `stream.offline`.
    #[schema(schema_with = crate::openapi::webhook_event)]
    event: String,
    /// https URL that receives the POSTs.
    callback_url: String,
    /// 10 to 100 characters; signs every delivery. Never shown again.
    #[schema(min_length = 10, max_length = 100)]
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDto {
    id: Uuid,
    channel_id: Uuid,
    #[schema(schema_with = crate::openapi::webhook_event)]
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
pub(super) async fn create_webhook(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Json(request): Json<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookDto>), ApiError> {
    let event = WebhookEvent::try_from(request.event).map_err(|_| {
        ApiError::InvalidBody("event: must be stream.online or stream.offline".into())
    })?;
    if request.callback_url.len() > 2048 {
        return Err(ApiError::InvalidBody("callback_url: too long".into()));
    }
    let callback = notifications
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
    let limit = notifications.config.webhooks_per_user;
    match notifications
        .webhooks
        .create_webhook(hook, i64::from(limit))
        .await
    {
        Ok(Some(created)) => Ok((StatusCode::CREATED, Json(created.into()))),
        Ok(None) => Err(ApiError::LimitReached("webhooks per user")),
        Err(onair_store::StoreError::NotFound) => Err(ApiError::NotFound("channel")),
        Err(e) => Err(e.into()),
    }
}

/// The caller's webhooks, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<WebhookDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn list_webhooks(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<WebhookDto>>, ApiError> {
    let webhooks = &notifications.webhooks;
    let fetch = async |limit, cursor| webhooks.webhooks(me, limit, cursor).await;
    notifications
        .cursors
        .page(&query, fetch, WebhookDto::from)
        .await
}

/// Remove one of the caller's webhooks (404 for anyone else's).
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_webhook(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if notifications.webhooks.delete_webhook(me, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}
