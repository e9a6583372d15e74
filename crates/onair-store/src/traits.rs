//! The storage contract, split by domain. Each trait is implemented once per backend;
//! `tests/it` runs the same cases against both.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page, StreamStatus};
use uuid::Uuid;

use crate::jobs::{ClaimedJob, DeadJob, GoLiveJob, JobLease, JobStat, NewJob, PushBatchJob};
use crate::models::*;
use crate::notifications::*;
use crate::{StoreError, Timestamp};

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict::Username` / `Conflict::Email` when taken.
    async fn create_user(&self, user: NewUser) -> Result<UserProfile>;
    /// Creates the user and the first refresh token of its first login (a new family)
    /// in one transaction: both or neither.
    async fn create_user_with_session(
        &self,
        user: NewUser,
        refresh_token_hash: &[u8],
        expires_at: Timestamp,
    ) -> Result<UserProfile>;
    /// Looks a login up by username or email.
    async fn credentials(&self, login: &str) -> Result<Option<Credentials>>;
    async fn profile(&self, id: Uuid) -> Result<Option<UserProfile>>;
    async fn update_profile(&self, id: Uuid, patch: ProfilePatch) -> Result<UserProfile>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores the first refresh token of a new login (a new family).
    async fn insert_refresh_token(
        &self,
        user_id: Uuid,
        token_hash: &[u8],
        expires_at: Timestamp,
    ) -> Result<()>;
    /// Spends `presented` and stores `replacement` in its family, atomically. Presenting
    /// a spent token revokes its family (refresh-token reuse detection).
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        replacement: &[u8],
        expires_at: Timestamp,
    ) -> Result<RefreshRotation>;
    /// Revokes the family of the given token (logout). Unknown tokens are ignored.
    async fn revoke_refresh_family(&self, token_hash: &[u8]) -> Result<()>;
}

#[async_trait]
pub trait FollowStore: Send + Sync {
    /// Returns whether a new follow was created (false when it already existed).
    /// `NotFound` when either user does not exist.
    async fn follow(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    /// Returns whether a follow was removed.
    async fn unfollow(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    async fn is_following(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    /// Who follows `user`, newest first.
    async fn followers(
        &self,
        user: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<FollowEntry>>;
    /// Whom `user` follows, newest first.
    async fn following(
        &self,
        user: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<FollowEntry>>;
}

#[async_trait]
pub trait StreamKeyStore: Send + Sync {
    async fn stream_key(&self, user_id: Uuid) -> Result<Option<StreamKeyRecord>>;
    /// Stores the user's first key material unless one exists (then returns false).
    async fn insert_stream_key(&self, record: &StreamKeyRecord) -> Result<bool>;
    /// Creates or replaces the user's key material (rotation invalidates the old key).
    async fn put_stream_key(&self, record: &StreamKeyRecord) -> Result<()>;
}

#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Starts a new live broadcast. `Conflict::ActiveStream` if one is already active.
    async fn start_stream(
        &self,
        id: Uuid,
        user_id: Uuid,
        title: &str,
        category: Option<&str>,
    ) -> Result<StreamView>;
    /// Ends the user's active broadcast; `NotFound` if there is none.
    async fn end_stream(&self, user_id: Uuid) -> Result<StreamView>;
    /// Attaches a publisher connection to the user's broadcast: continues the active one
    /// if it has no publisher (offline within the reconnect window, or started through
    /// the API), else starts a new live one titled like the user's previous broadcast.
    /// Returns the broadcast and whether it was continued. `Conflict::ActiveStream` when
    /// another connection is already publishing.
    async fn attach_publisher(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        new_stream_id: Uuid,
    ) -> Result<(StreamView, bool)>;
    /// The publisher left: its broadcast goes live → offline. False if `session_id`
    /// publishes nothing (any more).
    async fn detach_publisher(&self, session_id: Uuid) -> Result<bool>;
    /// Ends the broadcast `session_id` publishes, now (media failure).
    async fn end_published_stream(&self, session_id: Uuid) -> Result<bool>;
    /// Ends every broadcast that has been offline since before `cutoff` (its publisher
    /// did not come back in time). Returns how many ended.
    async fn end_abandoned_streams(&self, cutoff: Timestamp) -> Result<u64>;
    /// Stores a batch of viewer counts (one transaction; peak kept as the maximum seen).
    async fn record_viewer_counts(&self, counts: &[ViewerCountUpdate]) -> Result<()>;
    /// Reads from the primary: callers check ownership with it before writing.
    async fn stream(&self, id: Uuid) -> Result<Option<StreamView>>;
    async fn update_stream(&self, id: Uuid, patch: StreamPatch) -> Result<StreamView>;
    /// Broadcasts in a state, most recently started first.
    async fn list_streams(
        &self,
        status: StreamStatus,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<StreamView>>;
    async fn user_streams(
        &self,
        user_id: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<StreamView>>;
}

#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Written by the archive pipeline when a broadcast's recording is produced.
    async fn insert_archive(&self, archive: NewArchive) -> Result<Archive>;
    async fn archive(&self, id: Uuid) -> Result<Option<Archive>>;
    /// Ready archives, newest first.
    async fn list_archives(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<Archive>>;
    async fn user_archives(
        &self,
        user_id: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Archive>>;
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Appoints (`true`) or removes a moderator; returns whether anything changed.
    async fn set_moderator(&self, channel: Uuid, user: Uuid, moderator: bool) -> Result<bool>;
    async fn chat_standing(&self, channel: Uuid, user: Uuid) -> Result<ChatStanding>;
    /// Bans or times out (replacing any earlier ban of that user in that channel).
    async fn put_ban(&self, ban: NewBan) -> Result<()>;
    /// Lifts a ban or timeout; returns whether there was one.
    async fn lift_ban(&self, channel: Uuid, user: Uuid) -> Result<bool>;
    async fn chat_settings(&self, channel: Uuid) -> Result<ChatSettings>;
    async fn put_chat_settings(&self, channel: Uuid, settings: ChatSettings) -> Result<()>;
    async fn log_moderation(&self, entry: &ModerationEntry) -> Result<()>;
    /// The channel's moderation log, newest first.
    async fn moderation_log(
        &self,
        channel: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ModerationEntry>>;
}

/// The durable job queue. Jobs caused by a write are enqueued by that write, in its
/// transaction; `enqueue` is for the rest.
#[async_trait]
pub trait JobStore: Send + Sync {
    async fn enqueue(&self, job: NewJob) -> Result<()>;
    /// Takes up to `limit` ready jobs, oldest first, for a lease ending at
    /// `lease_until`. Concurrent claims never take the same job.
    async fn claim_jobs(&self, limit: u32, lease_until: Timestamp) -> Result<Vec<ClaimedJob>>;
    /// Finished jobs leave the queue.
    async fn complete_jobs(&self, jobs: &[JobLease]) -> Result<()>;
    /// Back to the queue, to run again at `run_at`.
    async fn retry_job(&self, job: JobLease, run_at: Timestamp, error: &str) -> Result<()>;
    /// To the dead letters.
    async fn bury_job(&self, job: JobLease, error: &str) -> Result<()>;
    /// Jobs whose worker vanished (lease ran out) run again, or are buried once they have
    /// had `max_attempts`. Returns how many were released.
    async fn release_expired_jobs(&self, max_attempts: i32) -> Result<u64>;
    async fn job_stats(&self) -> Result<Vec<JobStat>>;
    /// Dead letters, newest first.
    async fn dead_jobs(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<DeadJob>>;
    /// Queues a dead job again with a fresh attempt count; false if no such dead job.
    async fn revive_job(&self, id: Uuid) -> Result<bool>;
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// The first step of a go-live job, in one transaction: unless the creator's
    /// followers were told of a go-live within `cooldown` (then `None`, nothing done),
    /// splits the followers into parts of about `part_size`, enqueues a job per part but
    /// the first, and turns this job into the first part (returned).
    async fn plan_go_live(
        &self,
        lease: JobLease,
        job: &GoLiveJob,
        cooldown: std::time::Duration,
        part_size: u32,
        lease_until: Timestamp,
    ) -> Result<Option<GoLiveJob>>;
    /// One batch of a planned go-live part, in one transaction: writes the notifications
    /// of the part's next `batch` followers (set-based, in follower order, skipping
    /// those who muted the creator), records the job's progress, extends its lease to
    /// `lease_until`, and enqueues Web Push for the batch when any of them subscribed.
    /// `LeaseLost` when another worker holds the job now.
    async fn fan_out_go_live(
        &self,
        lease: JobLease,
        job: &GoLiveJob,
        batch: u32,
        lease_until: Timestamp,
    ) -> Result<FanoutBatch>;
    /// The user's inbox, newest first.
    async fn notifications(
        &self,
        user: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Notification>>;
    async fn unread_notifications(&self, user: Uuid) -> Result<i64>;
    /// False when the user has no such notification.
    async fn mark_notification_read(&self, user: Uuid, stream_id: Uuid) -> Result<bool>;
    /// Returns how many were unread.
    async fn mark_all_notifications_read(&self, user: Uuid) -> Result<u64>;
    /// Mutes (`true`) or unmutes a creator's go-live notifications for `user`. Returns
    /// whether anything changed; `NotFound` for an unknown creator.
    async fn set_muted(&self, user: Uuid, creator: Uuid, muted: bool) -> Result<bool>;
    async fn is_muted(&self, user: Uuid, creator: Uuid) -> Result<bool>;
    async fn push_enabled(&self, user: Uuid) -> Result<bool>;
    async fn set_push_enabled(&self, user: Uuid, enabled: bool) -> Result<()>;
}

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Subscribes a browser; an endpoint subscribed before (by anyone) is taken over.
    async fn add_push_subscription(&self, sub: NewPushSubscription) -> Result<PushSubscription>;
    /// Returns whether the user had that endpoint.
    async fn remove_push_subscription(&self, user: Uuid, endpoint: &str) -> Result<bool>;
    async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscription>>;
    /// The push service said the subscription is gone (404/410).
    async fn delete_push_subscription(&self, id: Uuid) -> Result<()>;
    /// Subscriptions of the batch's followers who still want push from this creator.
    async fn push_targets(&self, batch: &PushBatchJob) -> Result<Vec<PushSubscription>>;
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// `None` when the owner already has `max_per_owner` webhooks (a cap against abuse:
    /// each webhook is a delivery per event). `NotFound` for an unknown channel.
    async fn create_webhook(&self, hook: NewWebhook, max_per_owner: i64)
    -> Result<Option<Webhook>>;
    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>>;
    /// The owner's webhooks, newest first.
    async fn webhooks(
        &self,
        owner: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Webhook>>;
    /// Returns whether the owner had it.
    async fn delete_webhook(&self, owner: Uuid, id: Uuid) -> Result<bool>;
    /// Counts a delivery's outcome. Failures in a row reaching `disable_after` disable
    /// the webhook; returns whether it is disabled now.
    async fn record_webhook_delivery(&self, id: Uuid, ok: bool, disable_after: i32)
    -> Result<bool>;
}

/// Size of one connection pool, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// `primary`, `replica0`…, or `writer` / `reader` on SQLite.
    pub name: String,
    pub size: u32,
    pub idle: u32,
}

/// Everything the application needs from storage.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + FollowStore
    + StreamKeyStore
    + StreamStore
    + ArchiveStore
    + ChatStore
    + JobStore
    + NotificationStore
    + PushStore
    + WebhookStore
    + Send
    + Sync
{
    fn backend(&self) -> crate::Backend;
    async fn migrate(&self) -> Result<()>;
    /// Round-trips to every pool (readiness).
    async fn ping(&self) -> Result<()>;
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// Closes every pool, waiting for connections in use to be returned.
    async fn close(&self);
}

pub(crate) fn pool_stats<DB: sqlx::Database>(name: &str, pool: &sqlx::Pool<DB>) -> PoolStats {
    PoolStats {
        name: name.to_owned(),
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
    }
}
