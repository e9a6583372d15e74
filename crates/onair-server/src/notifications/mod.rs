//! Go-live notifications (review C1). Going live enqueues one job in the same
//! transaction; a worker fans it out to the followers' inboxes in set-based batches
//! (`INSERT … SELECT` from follows, a keyset range at a time), paced by a rate limit,
//! announcing each batch to connected users and queueing Web Push for subscribers.
//! The request that went live never waits for any of it.

mod outbound;
mod push;
mod realtime;
mod webhooks;

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use onair_infra::{RedisPool, SharedRateLimit};
use onair_store::jobs::{ClaimedJob, GoLiveJob, kinds};
use onair_store::{Notification, Store, StreamView};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use self::outbound::Outbound;
pub use self::push::VapidKeyError;
use self::push::{PushBatchHandler, PushRetryHandler, WebPush};
use self::realtime::Notifier;
use self::webhooks::WebhookHandler;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::jobs::{JobFailure, JobHandler, JobHandlers, LeaseClock};
use crate::pagination::{PageBody, PageQuery};
use crate::state::AppState;
use crate::users::UserSummaryDto;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbox))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(live_feed))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(is_muted, mute, unmute))
        .merge(push::router())
        .merge(webhooks::router())
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Followers per fan-out statement.
    pub batch_size: u32,
    /// Followers per fan-out part: a larger audience is split into parts that run as
    /// separate jobs, in parallel on any worker.
    pub part_size: u32,
    /// A creator going live again within this does not notify again.
    pub cooldown: Duration,
    /// Notification rows per second written at most, across all fan-outs: by every node
    /// together with Redis, by this process without.
    pub rows_per_second: NonZeroU32,
    /// Fan-out parts this process runs at once (more wait for their turn).
    pub parallel_parts: usize,
    /// Live feeds (SSE connections) this node holds; more are answered 503.
    pub max_feeds: usize,
    /// Deadline of each outbound call (webhooks, push services).
    pub outbound_timeout: Duration,
    /// Lets webhooks and push endpoints target private addresses (tests, intranets).
    pub allow_private_targets: bool,
    pub webhook_disable_after: i32,
    pub webhooks_per_user: u32,
    /// When a failed push is first retried.
    pub push_retry_after: Duration,
    /// VAPID `sub` claim: how push services reach the operator.
    pub vapid_contact: String,
    pub vapid_private_key: Option<String>,
}

/// The Redis key of the fan-out rate limit all nodes share.
const RATE_KEY: &str = "onair:notify:rate";

pub struct Notifications {
    config: NotifyConfig,
    notifier: Arc<Notifier>,
    push: Arc<WebPush>,
    outbound: Outbound,
    /// Paces this node's fan-outs; with Redis, `shared_rate` paces every node's together
    /// and this one takes over only while Redis cannot be reached.
    rate: DefaultDirectRateLimiter,
    shared_rate: Option<SharedRateLimit>,
    parts: tokio::sync::Semaphore,
    feeds: Arc<tokio::sync::Semaphore>,
    /// Wakes this node's job runners when work was queued here.
    wake: Arc<Notify>,
}

impl Notifications {
    pub fn new(
        config: NotifyConfig,
        root_secret: &[u8],
        redis: Option<(&str, RedisPool)>,
    ) -> Result<Arc<Self>, crate::StartupError> {
        let outbound = Outbound::new(config.outbound_timeout, config.allow_private_targets);
        let push = WebPush::new(
            root_secret,
            config.vapid_private_key.as_deref(),
            config.vapid_contact.clone(),
            outbound.clone(),
        )?;
        let shared_rate = redis
            .as_ref()
            .map(|(_, pool)| SharedRateLimit::new(pool.clone(), RATE_KEY, config.rows_per_second));
        Ok(Arc::new(Self {
            rate: RateLimiter::direct(Quota::per_second(config.rows_per_second)),
            shared_rate,
            parts: tokio::sync::Semaphore::new(config.parallel_parts.max(1)),
            feeds: Arc::new(tokio::sync::Semaphore::new(config.max_feeds)),
            notifier: Notifier::new(redis)?,
            push: Arc::new(push),
            outbound,
            config,
            wake: Arc::new(Notify::new()),
        }))
    }

    /// Waits until `rows` more inbox rows may be written: across the cluster when Redis
    /// is configured, on this node otherwise.
    async fn pace(&self, rows: NonZeroU32) {
        if let Some(shared) = &self.shared_rate {
            match shared.take(rows.get()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "shared fan-out rate limit unavailable: pacing this node alone");
                }
            }
        }
        let _ = self.rate.until_n_ready(rows).await;
    }

    /// Wakes this node's job runners (something was just enqueued).
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The handlers of every notification job kind.
    pub fn handlers(self: &Arc<Self>, store: &Arc<dyn Store>) -> JobHandlers {
        let mut handlers = JobHandlers::default();
        handlers.register(
            kinds::GO_LIVE,
            Arc::new(GoLiveHandler {
                store: Arc::clone(store),
                notifications: Arc::clone(self),
            }),
        );
        handlers.register(
            kinds::PUSH_BATCH,
            Arc::new(PushBatchHandler {
                store: Arc::clone(store),
                push: Arc::clone(&self.push),
                retry_after: self.config.push_retry_after,
            }),
        );
        handlers.register(
            kinds::PUSH_RETRY,
            Arc::new(PushRetryHandler {
                store: Arc::clone(store),
                push: Arc::clone(&self.push),
            }),
        );
        handlers.register(
            kinds::WEBHOOK,
            Arc::new(WebhookHandler {
                store: Arc::clone(store),
                outbound: self.outbound.clone(),
                disable_after: self.config.webhook_disable_after,
            }),
        );
        handlers
    }
}

struct GoLiveHandler {
    store: Arc<dyn Store>,
    notifications: Arc<Notifications>,
}

#[async_trait]
impl JobHandler for GoLiveHandler {
    async fn run(&self, job: &ClaimedJob, lease: &LeaseClock) -> Result<(), JobFailure> {
        let mut state: GoLiveJob =
            serde_json::from_str(&job.payload).map_err(JobFailure::payload)?;
        let Some(stream) = self.store.stream(state.stream_id).await? else {
            return Ok(());
        };
        let event = serde_json::to_string(&LiveEvent {
            kind: "notification",
            notification: NotificationDto::live(&stream, state.started_at),
        })
        .expect("events serialize");
        let config = &self.notifications.config;
        if !state.planned {
            let Some(first) = self
                .store
                .plan_go_live(
                    job.lease(),
                    &state,
                    config.cooldown,
                    config.part_size,
                    lease.renewed(),
                )
                .await?
            else {
                tracing::info!(stream = %state.stream_id, "go-live within the cooldown: not notified");
                return Ok(());
            };
            // The other parts were enqueued: let this node's idle workers take them.
            self.notifications.wake_workers();
            state = first;
        }
        // Writing inbox rows is the database's heaviest work; a bounded number of parts
        // at once leaves it room for everything else (the go-live requests included).
        let _turn = self.notifications.parts.acquire().await;
        let batch = NonZeroU32::new(config.batch_size).unwrap_or(NonZeroU32::MIN);
        loop {
            // Paces every fan-out together (review C1.2); a batch larger than a
            // second's budget is validated away at startup.
            self.notifications.pace(batch).await;
            let done = self
                .store
                .fan_out_go_live(job.lease(), &state, batch.get(), lease.renewed())
                .await?;
            metrics::counter!("onair_notification_fanout_rows_total")
                .increment(done.recipients.len() as u64);
            self.notifications.wake_workers();
            self.notifications
                .notifier
                .announce(done.recipients, event.clone())
                .await;
            match done.next {
                Some(next) => state = next,
                None => return Ok(()),
            }
        }
    }
}

#[derive(Serialize)]
struct LiveEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    notification: NotificationDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationDto {
    /// The broadcast that went live (also the notification's id).
    stream_id: Uuid,
    title: String,
    /// The broadcast's status now: `live`, `offline` or `ended`.
    stream_status: String,
    creator: UserSummaryDto,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
}

impl NotificationDto {
    fn live(stream: &StreamView, at: DateTime<Utc>) -> Self {
        Self {
            stream_id: stream.id,
            title: stream.title.clone(),
            stream_status: stream.status.as_str().to_owned(),
            creator: stream.owner.clone().into(),
            created_at: at,
            read_at: None,
        }
    }
}

impl From<Notification> for NotificationDto {
    fn from(n: Notification) -> Self {
        Self {
            stream_id: n.stream_id,
            title: n.title,
            stream_status: n.stream_status.as_str().to_owned(),
            creator: n.creator.into(),
            created_at: n.created_at.get(),
            read_at: n.read_at.map(|t| t.get()),
        }
    }
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/me/notifications", tag = "notifications", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<NotificationDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn inbox(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<NotificationDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.notifications(me, limit, cursor).await?;
    Ok(Json(PageBody::from_page(
        &state,
        page,
        NotificationDto::from,
    )))
}

#[derive(Serialize, ToSchema)]
pub struct UnreadDto {
    unread: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/me/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadDto), (status = 401, body = ErrorBody)))]
async fn unread_count(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<UnreadDto>, ApiError> {
    let unread = state.store.unread_notifications(me).await?;
    Ok(Json(UnreadDto { unread }))
}

/// Mark one notification read (idempotent).
#[utoipa::path(post, path = "/me/notifications/{stream_id}/read", tag = "notifications", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)),
    responses((status = 204, description = "Read"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mark_read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(stream_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state.store.mark_notification_read(me, stream_id).await? {
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
async fn mark_all_read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<MarkedDto>, ApiError> {
    let marked = state.store.mark_all_notifications_read(me).await?;
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
/// `?access_token=`.
#[utoipa::path(get, path = "/me/notifications/live", tag = "notifications", params(FeedQuery),
    responses((status = 200, description = "text/event-stream"), (status = 401, body = ErrorBody),
        (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
async fn live_feed(
    State(state): State<AppState>,
    header: Result<AuthUser, ApiError>,
    Query(query): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let me = match (header, &query.access_token) {
        (Ok(AuthUser(me)), _) => me,
        (Err(ApiError::Unauthorized), Some(token)) => state.access_tokens.verify(token)?,
        (Err(e), _) => return Err(e),
    };
    // Each feed holds a connection open: bounded per node, like chat sockets (review S1).
    let slot = Arc::clone(&state.notifications.feeds)
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyConnections)?;
    let listener = state.notifications.notifier.listen(me).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot start a notification feed");
        ApiError::Unavailable
    })?;
    let unread = state.store.unread_notifications(me).await?;
    let first = Event::default()
        .event("unread")
        .data(format!("{{\"unread\":{unread}}}"));
    // The slot lives as long as the listener: both end with the connection.
    let feed = futures_util::stream::unfold((listener, slot), |(mut listener, slot)| async move {
        let event = listener.events.recv().await?;
        let event = Event::default().event("notification").data(&*event);
        Some((Ok(event), (listener, slot)))
    });
    let events = futures_util::stream::once(async { Ok(first) }).chain(feed);
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
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<NotificationSettings>, ApiError> {
    let push_enabled = state.store.push_enabled(me).await?;
    Ok(Json(NotificationSettings { push_enabled }))
}

/// Change the caller's notification settings.
#[utoipa::path(patch, path = "/me/notification-settings", tag = "notifications", security(("bearer" = [])),
    request_body = NotificationSettings,
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Json(settings): Json<NotificationSettings>,
) -> Result<Json<NotificationSettings>, ApiError> {
    state
        .store
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
async fn is_muted(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<MutedDto>, ApiError> {
    let muted = state.store.is_muted(me, id).await?;
    Ok(Json(MutedDto { muted }))
}

/// Mute a creator's go-live notifications (idempotent; the follow stays).
#[utoipa::path(put, path = "/users/{id}/mute", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Muted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "`validation_failed`: yourself", body = ErrorBody)))]
async fn mute(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if me == id {
        return Err(ApiError::InvalidBody("you cannot mute yourself".into()));
    }
    match state.store.set_muted(me, id, true).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(onair_store::StoreError::NotFound) => Err(ApiError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

/// Unmute a creator (idempotent).
#[utoipa::path(delete, path = "/users/{id}/mute", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Not muted"), (status = 401, body = ErrorBody)))]
async fn unmute(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.store.set_muted(me, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
