//! The in-app inbox: the go-live fan-out that fills it (a job in parts and batches, see
//! [`enqueue_go_live`]), reading it, and per-creator mutes.

use std::time::Duration;

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page, StreamStatus};
use sqlx::Executor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::jobs::{self, GoLiveJob, JobLease, NewJob, PushBatchJob, kinds};
use crate::models::StreamOwner;
use crate::postgres::PgStore;
use crate::sql::{Bind, Db, Toggle};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

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
        cooldown: Duration,
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

/// The followers of `$1` with ids in `($2, $3]` who did not mute `$1`.
pub(crate) const FANOUT_RANGE: &str = "
    f.following_id = $1 AND f.follower_id > $2 AND f.follower_id <= $3
    AND NOT EXISTS (SELECT 1 FROM notification_mutes m
                    WHERE m.creator_id = $1 AND m.user_id = f.follower_id)";

/// The id bounds of `(after, upto]` for [`FANOUT_RANGE`]: open ends become the
/// smallest and largest ids.
pub(crate) fn fanout_bounds(after: Option<Uuid>, upto: Option<Uuid>) -> (Uuid, Uuid) {
    (after.unwrap_or(Uuid::nil()), upto.unwrap_or(Uuid::max()))
}

const NOTIFICATION_VIEW: &str = "
    SELECT n.stream_id, s.title, s.status AS stream_status, n.created_at, n.read_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM notifications n
    JOIN streams s ON s.id = n.stream_id
    JOIN users u ON u.id = s.user_id";

const MUTE: Toggle = Toggle {
    insert: "INSERT INTO notification_mutes (creator_id, user_id, created_at)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    delete: "DELETE FROM notification_mutes WHERE creator_id = $1 AND user_id = $2",
};

/// Enqueues the go-live fan-out of broadcast `stream_id` to the followers of
/// `creator_id`, in the transaction that starts the broadcast.
pub(crate) async fn enqueue_go_live<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    stream_id: Uuid,
    creator_id: Uuid,
    started_at: Timestamp,
) -> Result<()>
where
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    Option<String>: Bind<DB>,
    for<'s> &'s str: Bind<DB>,
{
    let job = GoLiveJob {
        stream_id,
        creator_id,
        started_at: started_at.get(),
        after: None,
        upto: None,
        planned: false,
    };
    jobs::enqueue(exec, &NewJob::now(kinds::GO_LIVE, &job)).await
}

/// One batch of a go-live part, apart from the trait so a conflict can redo it;
/// `$relaxed_commit` lets the batch commit without waiting for the disk.
macro_rules! impl_fan_out_batch {
    ($store:ty, relaxed_commit = $relaxed_commit:literal) => {
        impl $store {
            /// One fan-out batch. The primary key of `notifications` keeps it exactly-once;
            /// `skip_existing` tolerates rows already there, at the price of PostgreSQL's
            /// speculative insertion, so only the rare second try pays it.
            async fn fan_out_batch(
                &self,
                lease: JobLease,
                job: &GoLiveJob,
                batch: u32,
                lease_until: Timestamp,
                skip_existing: bool,
            ) -> Result<FanoutBatch> {
                let (from, to) = fanout_bounds(job.after, job.upto);
                let mut tx = self.writer().begin().await?;
                if !$relaxed_commit.is_empty() {
                    // A batch lost in a crash rolls back with its checkpoint and is
                    // written again on retry, so this commit need not wait for the disk.
                    sqlx::query($relaxed_commit).execute(&mut *tx).await?;
                }
                // The batch ends at its `batch`-th follower; fewer left: this is the
                // part's last batch.
                let last: Option<Uuid> = sqlx::query_scalar(
                    "SELECT follower_id FROM follows
                     WHERE following_id = $1 AND follower_id > $2 AND follower_id <= $3
                     ORDER BY follower_id LIMIT 1 OFFSET $4",
                )
                .bind(job.creator_id)
                .bind(from)
                .bind(to)
                .bind(i64::from(batch.max(1) - 1))
                .fetch_optional(&mut *tx)
                .await?;
                let upto = last.unwrap_or(to);
                let on_conflict = if skip_existing { "ON CONFLICT DO NOTHING" } else { "" };
                let recipients: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO notifications (recipient_id, stream_id, created_at)
                     SELECT f.follower_id, $4, $5 FROM follows f
                     WHERE {FANOUT_RANGE}
                     ORDER BY f.follower_id
                     {on_conflict}
                     RETURNING recipient_id"
                )))
                .bind(job.creator_id)
                .bind(from)
                .bind(upto)
                .bind(job.stream_id)
                .bind(Timestamp::from(job.started_at))
                .fetch_all(&mut *tx)
                .await?;
                if !recipients.is_empty() {
                    let subscribed: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT 1 FROM follows f JOIN push_subscriptions p ON p.user_id = f.follower_id
                         WHERE {FANOUT_RANGE} LIMIT 1"
                    )))
                    .bind(job.creator_id)
                    .bind(from)
                    .bind(upto)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if subscribed.is_some() {
                        let push = PushBatchJob {
                            stream_id: job.stream_id,
                            creator_id: job.creator_id,
                            after: job.after,
                            upto,
                        };
                        jobs::enqueue(&mut *tx, &NewJob::now(kinds::PUSH_BATCH, &push)).await?;
                    }
                }
                // Done or not, progress moves to the batch's end: a finished part run
                // again finds nothing left.
                let progressed = GoLiveJob {
                    after: Some(upto),
                    ..job.clone()
                };
                let payload = serde_json::to_string(&progressed).expect("job payloads serialize");
                jobs::checkpoint(&mut *tx, lease, Some(&payload), Some(lease_until)).await?;
                tx.commit().await?;
                Ok(FanoutBatch {
                    recipients,
                    next: last.is_some().then_some(progressed),
                })
            }
        }
    };
}

macro_rules! impl_notification_store {
    ($store:ty) => {
        #[async_trait]
        impl NotificationStore for $store {
            async fn plan_go_live(
                &self,
                lease: JobLease,
                job: &GoLiveJob,
                cooldown: Duration,
                part_size: u32,
                lease_until: Timestamp,
            ) -> Result<Option<GoLiveJob>> {
                let started = Timestamp::from(job.started_at);
                let mut tx = self.writer().begin().await?;
                // Claims the go-live for this broadcast unless the followers heard of an
                // earlier one within the cooldown. Claiming with our own start time is
                // idempotent for a retried plan.
                let cutoff = started.get()
                    - chrono::Duration::from_std(cooldown).unwrap_or(chrono::Duration::MAX);
                // The claim returns the audience size that decides the split below.
                let Some(followers): Option<i64> = sqlx::query_scalar(
                    "UPDATE users SET go_live_notified_at = $2
                     WHERE id = $1 AND (go_live_notified_at IS NULL
                           OR go_live_notified_at < $3 OR go_live_notified_at = $2)
                     RETURNING follower_count",
                )
                .bind(job.creator_id)
                .bind(started)
                .bind(Timestamp::from(cutoff))
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                // Every `part_size`-th follower ends a part (one index-only pass), so
                // parts run on several workers at once. Small audiences stay one part.
                let part_size = i64::from(part_size.max(1));
                let ends: Vec<Uuid> = if followers > part_size {
                    sqlx::query_scalar(
                        "SELECT follower_id FROM (
                             SELECT follower_id, ROW_NUMBER() OVER (ORDER BY follower_id) AS n
                             FROM follows WHERE following_id = $1) ranked
                         WHERE n % $2 = 0 ORDER BY follower_id",
                    )
                    .bind(job.creator_id)
                    .bind(part_size)
                    .fetch_all(&mut *tx)
                    .await?
                } else {
                    Vec::new()
                };
                let part = |after: Option<Uuid>, upto: Option<Uuid>| GoLiveJob {
                    after,
                    upto,
                    planned: true,
                    ..job.clone()
                };
                let first = part(None, ends.first().copied());
                for (i, &after) in ends.iter().enumerate() {
                    let rest = part(Some(after), ends.get(i + 1).copied());
                    jobs::enqueue(&mut *tx, &NewJob::now(kinds::GO_LIVE, &rest)).await?;
                }
                let payload = serde_json::to_string(&first).expect("job payloads serialize");
                jobs::checkpoint(&mut *tx, lease, Some(&payload), Some(lease_until)).await?;
                tx.commit().await?;
                Ok(Some(first))
            }

            async fn fan_out_go_live(
                &self,
                lease: JobLease,
                job: &GoLiveJob,
                batch: u32,
                lease_until: Timestamp,
            ) -> Result<FanoutBatch> {
                match self.fan_out_batch(lease, job, batch, lease_until, false).await {
                    // Rows of this batch exist already (the job was enqueued twice, or a
                    // worker that lost its lease raced us): redo it skipping them.
                    Err(StoreError::Conflict(_)) => {
                        self.fan_out_batch(lease, job, batch, lease_until, true).await
                    }
                    other => other,
                }
            }

            async fn notifications(
                &self,
                user: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Notification>> {
                // Stream ids are UUIDv7: ordering by them is ordering by go-live time, on
                // the primary key alone.
                let before = after.map_or(Uuid::max(), |cursor| cursor.id);
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{NOTIFICATION_VIEW} WHERE n.recipient_id = $1 AND n.stream_id < $2
                     ORDER BY n.stream_id DESC LIMIT $3"
                )))
                .bind(user)
                .bind(before)
                .bind(limit.fetch())
                .fetch_all(&mut *self.reader().await?)
                .await?;
                Ok(Page::from_rows(rows, limit, Notification::cursor))
            }

            async fn unread_notifications(&self, user: Uuid) -> Result<i64> {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications WHERE recipient_id = $1 AND read_at IS NULL",
                )
                .bind(user)
                .fetch_one(&mut *self.reader().await?)
                .await
                .map_err(Into::into)
            }

            async fn mark_notification_read(&self, user: Uuid, stream_id: Uuid) -> Result<bool> {
                let marked = sqlx::query(
                    "UPDATE notifications SET read_at = COALESCE(read_at, $3)
                     WHERE recipient_id = $1 AND stream_id = $2",
                )
                .bind(user)
                .bind(stream_id)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(marked.rows_affected() == 1)
            }

            async fn mark_all_notifications_read(&self, user: Uuid) -> Result<u64> {
                let marked = sqlx::query(
                    "UPDATE notifications SET read_at = $2 WHERE recipient_id = $1 AND read_at IS NULL",
                )
                .bind(user)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(marked.rows_affected())
            }

            async fn set_muted(&self, user: Uuid, creator: Uuid, muted: bool) -> Result<bool> {
                MUTE.set(self.writer(), (creator, user), muted).await
            }

            async fn is_muted(&self, user: Uuid, creator: Uuid) -> Result<bool> {
                let muted: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM notification_mutes WHERE creator_id = $1 AND user_id = $2",
                )
                .bind(creator)
                .bind(user)
                .fetch_optional(self.writer())
                .await?;
                Ok(muted.is_some())
            }

            async fn push_enabled(&self, user: Uuid) -> Result<bool> {
                sqlx::query_scalar("SELECT push_enabled FROM users WHERE id = $1")
                    .bind(user)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn set_push_enabled(&self, user: Uuid, enabled: bool) -> Result<()> {
                let updated = sqlx::query("UPDATE users SET push_enabled = $2 WHERE id = $1")
                    .bind(user)
                    .bind(enabled)
                    .execute(self.writer())
                    .await?;
                if updated.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(StoreError::NotFound)
                }
            }
        }
    };
}

// SQLite in WAL mode with `synchronous = NORMAL` already commits without waiting for
// the disk.
impl_fan_out_batch!(SqliteStore, relaxed_commit = "");
impl_fan_out_batch!(
    PgStore,
    relaxed_commit = "SET LOCAL synchronous_commit = off"
);
impl_notification_store!(SqliteStore);
impl_notification_store!(PgStore);
