//! Web Push subscriptions: the VAPID key browsers subscribe with, subscribing and
//! unsubscribing a browser.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use onair_store::NewPushSubscription;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::push::BrowserKeys;
use super::service::Notifications;
use crate::error::{ApiError, ErrorBody, Json};
use crate::identity::AuthUser;

#[derive(Serialize, ToSchema)]
pub struct VapidKeyDto {
    /// Pass as `applicationServerKey` to `pushManager.subscribe`.
    public_key: String,
}

/// The VAPID public key browsers subscribe with.
#[utoipa::path(get, path = "/push/vapid-public-key", tag = "notifications",
    responses((status = 200, body = VapidKeyDto)))]
pub(super) async fn vapid_public_key(
    State(notifications): State<Arc<Notifications>>,
) -> Json<VapidKeyDto> {
    Json(VapidKeyDto {
        public_key: notifications.push.public_key().to_owned(),
    })
}

/// A browser's `PushSubscription.toJSON()` (its `expirationTime` is ignored).
#[derive(Deserialize, ToSchema)]
pub struct SubscribeRequest {
    endpoint: String,
    keys: SubscriptionKeys,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

#[derive(Serialize, ToSchema)]
pub struct PushSubscriptionDto {
    id: Uuid,
    endpoint: String,
}

/// Subscribe this browser to Web Push (go-live notifications). Subscribing an endpoint
/// again replaces its keys; an endpoint another account subscribed is refused.
#[utoipa::path(post, path = "/me/push-subscriptions", tag = "notifications", security(("bearer" = [])),
    request_body = SubscribeRequest,
    responses((status = 201, body = PushSubscriptionDto), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody),
        (status = 409, description = "`push_endpoint_taken`, `limit_reached`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(super) async fn subscribe(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Json(request): Json<SubscribeRequest>,
) -> Result<(StatusCode, Json<PushSubscriptionDto>), ApiError> {
    if request.endpoint.len() > 2048 {
        return Err(ApiError::InvalidBody("endpoint: too long".into()));
    }
    notifications
        .outbound
        .check_target(&request.endpoint)
        .map_err(|e| ApiError::InvalidBody(format!("endpoint: {e}")))?;
    BrowserKeys::parse(&request.keys.p256dh, &request.keys.auth).map_err(ApiError::InvalidBody)?;
    let limit = notifications.config.push_subscriptions_per_user;
    let subscription = NewPushSubscription {
        id: Uuid::now_v7(),
        user_id: me,
        endpoint: request.endpoint,
        p256dh: request.keys.p256dh,
        auth: request.keys.auth,
    };
    let saved = notifications
        .subscriptions
        .add_push_subscription(subscription, i64::from(limit))
        .await?
        .ok_or(ApiError::LimitReached("push subscriptions per user"))?;
    Ok((
        StatusCode::CREATED,
        Json(PushSubscriptionDto {
            id: saved.id,
            endpoint: saved.endpoint,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct UnsubscribeRequest {
    endpoint: String,
}

/// Unsubscribe a browser. 404 if the caller has no such subscription.
#[utoipa::path(delete, path = "/me/push-subscriptions", tag = "notifications", security(("bearer" = [])),
    request_body = UnsubscribeRequest,
    responses((status = 204, description = "Unsubscribed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn unsubscribe(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Json(request): Json<UnsubscribeRequest>,
) -> Result<StatusCode, ApiError> {
    if notifications
        .subscriptions
        .remove_push_subscription(me, &request.endpoint)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("push subscription"))
    }
}
