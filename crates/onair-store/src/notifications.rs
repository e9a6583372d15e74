//! Rows of the notification domain: the in-app inbox, Web Push subscriptions and
//! outbound webhooks.

use onair_core::{Cursor, StreamStatus};
use uuid::Uuid;

use crate::jobs::GoLiveJob;
use crate::{StreamOwner, Timestamp};

/// An inbox entry: a followed creator went live.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    pub stream_id: Uuid,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub stream_status: StreamStatus,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
    #[sqlx(flatten)]
    pub creator: StreamOwner,
}

impl Notification {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.stream_id)
    }
}

/// What one batch of a go-live fan-out did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutBatch {
    /// Followers who got the notification in this batch.
    pub recipients: Vec<Uuid>,
    /// The job's state for the next batch; `None` when its part is done.
    pub next: Option<GoLiveJob>,
}

#[derive(Debug, Clone)]
pub struct NewPushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret, base64url as the browser gives them.
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    StreamOnline,
    StreamOffline,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamOnline => "stream.online",
            Self::StreamOffline => "stream.offline",
        }
    }
}

impl TryFrom<String> for WebhookEvent {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "stream.online" => Ok(Self::StreamOnline),
            "stream.offline" => Ok(Self::StreamOffline),
            _ => Err(format!("unknown webhook event {s:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub channel_id: Uuid,
    pub event: WebhookEvent,
    pub callback_url: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub channel_id: Uuid,
    #[sqlx(try_from = "String")]
    pub event: WebhookEvent,
    pub callback_url: String,
    pub secret: String,
    /// Failed deliveries in a row.
    pub failures: i32,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Webhook {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}
