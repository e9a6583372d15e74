//! The notifications service: go-live fan-out (the job that writes followers' inboxes in
//! set-based batches, paced by a rate limit shared by every node), realtime
//! announcements, Web Push and webhook delivery, and the inbox's storage.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use onair_infra::{BreakerSettings, Breakers, RedisPool, SharedRateLimit};
use onair_store::jobs::{ClaimedJob, GoLiveJob, kinds};
use onair_store::{Notification, NotificationStore, PushStore, Store, StreamView, WebhookStore};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use super::outbound::Outbound;
use super::push::{PushBatchHandler, PushRetryHandler, VapidKeyError, WebPush};
use super::realtime::Notifier;
use super::webhooks::WebhookHandler;
use crate::dto::UserSummaryDto;
use crate::identity::AccessTokens;
use crate::jobs::{JobFailure, JobHandler, JobHandlers, LeaseClock};
use crate::pagination::Cursors;
use crate::rate_limit::PerClient;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error(transparent)]
    Vapid(#[from] VapidKeyError),
    #[error("cannot connect to Redis for live notifications: {0}")]
    Bus(#[from] onair_infra::InfraError),
}

/// The storage the notification endpoints read and write.
pub struct NotifyStores {
    pub inbox: Arc<dyn NotificationStore>,
    pub subscriptions: Arc<dyn PushStore>,
    pub webhooks: Arc<dyn WebhookStore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Followers per fan-out statement (see bench/RESULTS.md for the choice).
    pub batch_size: u32,
    /// Followers per fan-out part: a larger audience is split into parts that run as
    /// separate jobs, in parallel on any worker.
    pub part_size: u32,
    /// Fan-out parts this process runs at once (more wait for their turn).
    pub parallel_parts: usize,
    /// A creator going live again within this does not notify again.
    pub cooldown_secs: u64,
    /// Notification rows per second written at most, across all fan-outs: by every node
    /// together with Redis, by this process without.
    pub rows_per_second: u32,
    /// Live feeds (SSE connections) this node holds; more are answered 503.
    pub max_feeds: usize,
    /// Live feeds one client address (an IPv4 address, an IPv6 /64) may hold on this node.
    pub max_feeds_per_ip: usize,
    /// Deadline of each outbound call (webhooks, push services).
    pub outbound_timeout_ms: u64,
    /// Lets webhooks and push endpoints target private addresses (tests, intranets).
    pub outbound_allow_private: bool,
    /// Ports outbound calls may use (comma-separated in the environment); empty allows
    /// any.
    #[serde(deserialize_with = "crate::settings::comma_list")]
    pub outbound_ports: Vec<u16>,
    /// Hosts whose circuit breakers are kept, per kind (webhook callbacks, push
    /// services); the least recently called beyond it are forgotten.
    pub outbound_breaker_hosts: u64,
    /// Failed deliveries in a row after which a webhook is disabled.
    pub webhook_disable_after: i32,
    /// Webhooks one user may register.
    pub webhooks_per_user: u32,
    /// Push subscriptions (browsers) one user may have.
    pub push_subscriptions_per_user: u32,
    /// VAPID `sub` claim (`mailto:` or `https:`): how push services reach the operator.
    pub vapid_contact: String,
    /// base64url P-256 private key for Web Push; default derived from the secret key.
    pub vapid_private_key: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            batch_size: 2_000,
            part_size: 250_000,
            parallel_parts: 1,
            cooldown_secs: 600,
            rows_per_second: 200_000,
            max_feeds: 10_000,
            max_feeds_per_ip: 10,
            outbound_timeout_ms: 5_000,
            outbound_allow_private: false,
            outbound_ports: vec![443],
            outbound_breaker_hosts: 10_000,
            webhook_disable_after: 10,
            webhooks_per_user: 25,
            push_subscriptions_per_user: 10,
            vapid_contact: "mailto:admin@localhost".into(),
            vapid_private_key: None,
        }
    }
}

/// The Redis key of the fan-out rate limit all nodes share.
const RATE_KEY: &str = "onair:notify:rate";

pub struct Notifications {
    pub(super) config: NotifyConfig,
    pub(super) inbox: Arc<dyn NotificationStore>,
    pub(super) subscriptions: Arc<dyn PushStore>,
    pub(super) webhooks: Arc<dyn WebhookStore>,
    pub(super) access_tokens: Arc<AccessTokens>,
    pub(super) cursors: Arc<Cursors>,
    /// When a failed push is first retried (the job queue's backoff base).
    push_retry_after: Duration,
    pub(super) notifier: Arc<Notifier>,
    pub(super) push: Arc<WebPush>,
    /// Webhook calls (and the target checks of registrations).
    pub(super) outbound: Outbound,
    /// Paces this node's fan-outs; with Redis, `shared_rate` paces every node's together
    /// and this one takes over only while Redis cannot be reached.
    rate: DefaultDirectRateLimiter,
    shared_rate: Option<SharedRateLimit>,
    parts: tokio::sync::Semaphore,
    pub(super) feeds: Arc<tokio::sync::Semaphore>,
    pub(super) feeds_per_client: Arc<PerClient>,
    /// Wakes this node's job runners when work was queued here.
    wake: Arc<Notify>,
}

impl Notifications {
    pub fn new(
        config: &NotifyConfig,
        breaker: BreakerSettings,
        push_retry_after: Duration,
        stores: NotifyStores,
        access: (Arc<AccessTokens>, Arc<Cursors>),
        root_secret: &[u8],
        redis: Option<(&str, RedisPool)>,
    ) -> Result<Arc<Self>, NotificationsError> {
        // Webhooks and push services apart: the same host may serve both.
        let outbound = |dependency| {
            Outbound::new(
                Duration::from_millis(config.outbound_timeout_ms),
                config.outbound_allow_private,
                config.outbound_ports.clone(),
                Breakers::new(dependency, breaker, config.outbound_breaker_hosts),
            )
        };
        let rows_per_second = NonZeroU32::new(config.rows_per_second).unwrap_or(NonZeroU32::MIN);
        let push = WebPush::new(
            root_secret,
            config.vapid_private_key.as_deref(),
            config.vapid_contact.clone(),
            outbound("push"),
        )?;
        let shared_rate = redis
            .as_ref()
            .map(|(_, pool)| SharedRateLimit::new(pool.clone(), RATE_KEY, rows_per_second));
        Ok(Arc::new(Self {
            rate: RateLimiter::direct(Quota::per_second(rows_per_second)),
            shared_rate,
            parts: tokio::sync::Semaphore::new(config.parallel_parts.max(1)),
            feeds: Arc::new(tokio::sync::Semaphore::new(config.max_feeds)),
            feeds_per_client: PerClient::new(config.max_feeds_per_ip),
            notifier: Notifier::new(redis)?,
            push: Arc::new(push),
            outbound: outbound("webhook"),
            config: config.clone(),
            inbox: stores.inbox,
            subscriptions: stores.subscriptions,
            webhooks: stores.webhooks,
            access_tokens: access.0,
            cursors: access.1,
            push_retry_after,
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
                retry_after: self.push_retry_after,
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
                    Duration::from_secs(config.cooldown_secs),
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
    #[schema(schema_with = crate::openapi::stream_status)]
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
