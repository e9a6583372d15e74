//! The durable job queue's rows and the payloads of the jobs the store itself enqueues
//! (inside the transaction of the change that causes them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// Job kinds. A kind names its handler; payloads are JSON.
pub mod kinds {
    /// Fan a go-live out to the creator's followers' inboxes ([`super::GoLiveJob`]).
    pub const GO_LIVE: &str = "notify_go_live";
    /// Web Push to the subscribers among one fan-out batch ([`super::PushBatchJob`]).
    pub const PUSH_BATCH: &str = "push_batch";
    /// One Web Push retried on its own ([`super::PushRetryJob`]).
    pub const PUSH_RETRY: &str = "push_retry";
    /// One webhook delivery ([`super::WebhookJob`]); the job id is the message id.
    pub const WEBHOOK: &str = "webhook_delivery";
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: &'static str,
    pub payload: String,
    pub run_at: Timestamp,
}

impl NewJob {
    /// A job ready now.
    pub fn now(kind: &'static str, payload: &impl Serialize) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            payload: serde_json::to_string(payload).expect("job payloads serialize"),
            run_at: Timestamp::now(),
        }
    }
}

/// A job a worker holds until its lease runs out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// 1 on the first run.
    pub attempts: i32,
    pub created_at: Timestamp,
}

impl ClaimedJob {
    /// Identifies this claim: a later claim of the same job (after the lease ran out)
    /// has a higher attempt number, so a late worker cannot overwrite its state.
    pub fn lease(&self) -> JobLease {
        JobLease {
            id: self.id,
            attempt: self.attempts,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLease {
    pub id: Uuid,
    pub attempt: i32,
}

/// Queue depth per (kind, state), for metrics.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobStat {
    pub kind: String,
    pub state: String,
    pub count: i64,
    /// When the oldest of them was enqueued.
    pub oldest: Option<Timestamp>,
}

/// A job that failed `max_attempts` times (or could not be run at all).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// A go-live fan-out, or one part of it. Followers are walked in id order; a part
/// covers the followers with ids in `(after, upto]` (open where `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoLiveJob {
    pub stream_id: Uuid,
    pub creator_id: Uuid,
    pub started_at: DateTime<Utc>,
    /// The last follower already handled; `None` before the first batch.
    #[serde(default)]
    pub after: Option<Uuid>,
    /// The last follower of this part; `None`: up to the creator's last follower.
    #[serde(default)]
    pub upto: Option<Uuid>,
    /// Set once the cooldown was checked and the followers were split into parts.
    #[serde(default)]
    pub planned: bool,
}

/// The followers `(after, upto]` of one fan-out batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushBatchJob {
    pub stream_id: Uuid,
    pub creator_id: Uuid,
    pub after: Option<Uuid>,
    pub upto: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRetryJob {
    pub stream_id: Uuid,
    pub subscription_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookJob {
    pub webhook_id: Uuid,
    pub stream_id: Uuid,
    /// `stream.online` or `stream.offline`.
    pub event: String,
    pub occurred_at: DateTime<Utc>,
}
