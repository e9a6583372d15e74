//! The inbox: a user's go-live notifications, read state, the live feed (server-sent
//! events), push on/off, and muting a creator.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::service::{NotificationDto, Notifications};
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AuthUser, ExpiringAuthUser};
use crate::pagination::{PageBody, PageQuery};
use crate::rate_limit::ClientIp;

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/me/notifications", tag = "notifications", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<NotificationDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn inbox(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<NotificationDto>>, ApiError> {
    let inbox = &notifications.inbox;
    let fetch = async |limit, cursor| inbox.notifications(me, limit, cursor).await;
    notifications
        .cursors
        .page(&query, fetch, NotificationDto::from)
        .await
}

#[derive(Serialize, ToSchema)]
pub struct UnreadDto {
    unread: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/me/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadDto), (status = 401, body = ErrorBody)))]
pub(super) async fn unread_count(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
) -> Result<Json<UnreadDto>, ApiError> {
    let unread = notifications.inbox.unread_notifications(me).await?;
    Ok(Json(UnreadDto { unread }))
}

/// Mark one notification read (idempotent).
#[utoipa::path(post, path = "/me/notifications/{stream_id}/read", tag = "notifications", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)),
    responses((status = 204, description = "Read"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn mark_read(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Path(stream_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if notifications
        .inbox
        .mark_notification_read(me, stream_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("notification"))
    }
}

#[derive(Serialize, ToSchema)]
pub struct MarkedDto {
    /// How many were unread.
    marked: u64,
}

/// Mark every notification read.
#[utoipa::path(post, path = "/me/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = MarkedDto), (status = 401, body = ErrorBody)))]
pub(super) async fn mark_all_read(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
) -> Result<Json<MarkedDto>, ApiError> {
    let marked = notifications.inbox.mark_all_notifications_read(me).await?;
    Ok(Json(MarkedDto { marked }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// For `EventSource`, which cannot send headers. Never logged.
    access_token: Option<String>,
}

/// Server-sent events: `unread` (the count, on connect) then a `notification` event per
/// new notification, while connected. Authenticate with the Authorization header or
/// `?access_token=`; the stream ends when the token expires (reconnect with a fresh one).
#[utoipa::path(get, path = "/me/notifications/live", tag = "notifications", params(FeedQuery),
    responses((status = 200, description = "Server-sent events", body = String, content_type = "text/event-stream"),
        (status = 401, body = ErrorBody),
        (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
pub(super) async fn live_feed(
    State(notifications): State<Arc<Notifications>>,
    header: Result<ExpiringAuthUser, ApiError>,
    Query(query): Query<FeedQuery>,
    ClientIp(client): ClientIp,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (me, expires_in) = match (header, &query.access_token) {
        (Ok(auth), _) => (auth.user, auth.expires_in),
        (Err(ApiError::Unauthorized), Some(token)) => {
            notifications.access_tokens.verify_expiring(token)?
        }
        (Err(e), _) => return Err(e),
    };
    // Each feed holds a connection open: bounded per node and per client address, like
    // chat sockets (review S1, issue 14).
    let client_slot = notifications.feeds_per_client.acquire(client)?;
    let slot = Arc::clone(&notifications.feeds)
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyConnections)?;
    let slot = (slot, client_slot);
    let listener = notifications.notifier.listen(me).await;
    let unread = notifications.inbox.unread_notifications(me).await?;
    let first = Event::default()
        .event("unread")
        .data(format!("{{\"unread\":{unread}}}"));
    // The slot lives as long as the listener: both end with the connection.
    let feed = futures_util::stream::unfold((listener, slot), |(mut listener, slot)| async move {
        let event = listener.events.recv().await?;
        let event = Event::default().event("notification").data(&*event);
        Some((Ok(event), (listener, slot)))
    });
    // The feed ends with its token (access tokens cannot be revoked one by one: their
    // short life bounds a logged-out session's feed); the client reconnects with a fresh one.
    let events = futures_util::stream::once(async { Ok(first) })
        .chain(feed)
        .take_until(tokio::time::sleep(expires_in));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Web Push for go-live notifications (the inbox always gets them).
    push_enabled: bool,
}

/// The caller's notification settings.
#[utoipa::path(get, path = "/me/notification-settings", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody)))]
pub(super) async fn get_settings(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
) -> Result<Json<NotificationSettings>, ApiError> {
    let push_enabled = notifications.inbox.push_enabled(me).await?;
    Ok(Json(NotificationSettings { push_enabled }))
}

/// Change the caller's notification settings.
#[utoipa::path(patch, path = "/me/notification-settings", tag = "notifications", security(("bearer" = [])),
    request_body = NotificationSettings,
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(super) async fn update_settings(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Json(settings): Json<NotificationSettings>,
) -> Result<Json<NotificationSettings>, ApiError> {
    notifications
        .inbox
        .set_push_enabled(me, settings.push_enabled)
        .await?;
    Ok(Json(settings))
}

#[derive(Serialize, ToSchema)]
pub struct MutedDto {
    muted: bool,
}

/// Whether the caller muted this creator's go-live notifications.
#[utoipa::path(get, path = "/users/{id}/mute", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MutedDto), (status = 401, body = ErrorBody)))]
pub(super) async fn is_muted(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<MutedDto>, ApiError> {
    let muted = notifications.inbox.is_muted(me, id).await?;
    Ok(Json(MutedDto { muted }))
}

/// Mute a creator's go-live notifications (idempotent; the follow stays).
#[utoipa::path(put, path = "/users/{id}/mute", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Muted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "`invalid_body`: yourself", body = ErrorBody)))]
pub(super) async fn mute(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if me == id {
        return Err(ApiError::InvalidBody("you cannot mute yourself".into()));
    }
    match notifications.inbox.set_muted(me, id, true).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(onair_store::StoreError::NotFound) => Err(ApiError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

/// Unmute a creator (idempotent).
#[utoipa::path(delete, path = "/users/{id}/mute", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Not muted"), (status = 401, body = ErrorBody)))]
pub(super) async fn unmute(
    State(notifications): State<Arc<Notifications>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    notifications.inbox.set_muted(me, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
