//! The durable job queue: its trait, its rows, the payloads of the jobs the store itself
//! enqueues, and the two calls other domains' writes make inside their own transaction
//! ([`enqueue`] for the outbox, [`checkpoint`] for a running job's progress).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onair_core::{Cursor, Limit, Page, TraceParent};
use serde::{Deserialize, Serialize};
use sqlx::Executor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sql::{Bind, Changed, Db, keyset_page};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

/// The durable job queue. Jobs caused by a write are enqueued by that write, in its
/// transaction ([`enqueue`]); `enqueue` here is for the rest.
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
    /// Keeps a long job's claim until `lease_until`; `LeaseLost` when another attempt
    /// holds it now.
    async fn extend_lease(&self, lease: JobLease, lease_until: Timestamp) -> Result<()>;
}

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
    /// Build an ended broadcast's final VOD ([`super::ArchiveJob`]).
    pub const ARCHIVE_PROCESS: &str = "archive_process";
    /// Cut a clip ([`super::ClipJob`]).
    pub const CLIP_CUT: &str = "clip_cut";
    /// Remove a deleted archive's or clip's objects ([`super::MediaDeleteJob`]).
    pub const MEDIA_DELETE: &str = "media_delete";
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: &'static str,
    pub payload: String,
    pub run_at: Timestamp,
    /// The span enqueuing it, for the job's span to link to.
    pub trace_parent: Option<TraceParent>,
}

impl NewJob {
    /// A job ready now, caused by the current span.
    pub fn now(kind: &'static str, payload: &impl Serialize) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            payload: serde_json::to_string(payload).expect("job payloads serialize"),
            run_at: Timestamp::now(),
            trace_parent: TraceParent::current(),
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
    /// [`NewJob::trace_parent`], as stored.
    pub trace_parent: Option<String>,
}

impl ClaimedJob {
    /// The span that enqueued this job, if it was traced.
    pub fn caused_by(&self) -> Option<TraceParent> {
        self.trace_parent.as_deref().and_then(TraceParent::parse)
    }

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

/// Processing of archive `archive_id`, the recording of broadcast `stream_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveJob {
    pub archive_id: Uuid,
    pub stream_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipJob {
    pub clip_id: Uuid,
}

/// Object-store key prefixes to remove, each ending in `/` (`vod/<archive_id>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaDeleteJob {
    pub prefixes: Vec<String>,
}

/// Enqueues `job`; other domains pass their transaction, so the job exists exactly when
/// the change that causes it does (outbox).
pub(crate) async fn enqueue<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    job: &NewJob,
) -> Result<()>
where
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    for<'s> &'s str: Bind<DB>,
    Option<String>: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state, attempts, run_at, created_at, trace_parent)
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6)",
    )
    .bind(job.id)
    .bind(job.kind)
    .bind(job.payload.as_str())
    .bind(job.run_at)
    .bind(Timestamp::now())
    .bind(job.trace_parent.clone().map(String::from))
    .execute(exec)
    .await?;
    Ok(())
}

/// Stores a running job's new payload and lease (`None`: unchanged), in the transaction
/// of the work it records; `LeaseLost` if this claim no longer holds the job (then the
/// caller rolls its work back).
pub(crate) async fn checkpoint<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    lease: JobLease,
    payload: Option<&str>,
    lease_until: Option<Timestamp>,
) -> Result<()>
where
    Uuid: Bind<DB>,
    i32: Bind<DB>,
    Option<Timestamp>: Bind<DB>,
    Option<String>: Bind<DB>,
{
    let held = sqlx::query(
        "UPDATE jobs SET payload = COALESCE($3, payload), lease_until = COALESCE($4, lease_until)
         WHERE id = $1 AND attempts = $2 AND state = 'running'",
    )
    .bind(lease.id)
    .bind(lease.attempt)
    .bind(payload.map(str::to_owned))
    .bind(lease_until)
    .execute(exec)
    .await?;
    if held.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost)
    }
}

/// Queues dead job `id` again with a fresh attempt count; false if there is no such dead
/// job. An admin's revival calls it in the transaction that audits it.
pub(crate) async fn revive<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    id: Uuid,
) -> Result<bool>
where
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
{
    let revived = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(Timestamp::now())
    .execute(exec)
    .await?;
    Ok(revived.rows_affected() == 1)
}

/// `$skip_locked`: how a claim skips the jobs another worker is claiming.
macro_rules! impl_job_store {
    ($store:ty, $db:ty, skip_locked = $skip_locked:literal) => {
        impl $store {
            /// Moves a running job (of this claim) to `state`.
            async fn settle_job(
                &self,
                lease: JobLease,
                state: &str,
                run_at: Option<Timestamp>,
                error: &str,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE jobs SET state = $3, run_at = COALESCE($4, run_at),
                            lease_until = NULL, last_error = $5
                     WHERE id = $1 AND attempts = $2 AND state = 'running'",
                )
                .bind(lease.id)
                .bind(lease.attempt)
                .bind(state)
                .bind(run_at)
                .bind(error)
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl JobStore for $store {
            async fn enqueue(&self, job: NewJob) -> Result<()> {
                enqueue(self.writer(), &job).await
            }

            async fn claim_jobs(
                &self,
                limit: u32,
                lease_until: Timestamp,
            ) -> Result<Vec<ClaimedJob>> {
                sqlx::query_as(concat!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2
                     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $1
                                  ORDER BY run_at LIMIT $3 ",
                    $skip_locked,
                    ") RETURNING id, kind, payload, attempts, created_at, trace_parent"
                ))
                // Planned afresh on every call: PostgreSQL may switch a prepared
                // statement to a generic plan, and this one's (limit and run time
                // unknown) hash-joins a scan of the whole jobs table on every claim.
                .persistent(false)
                .bind(Timestamp::now())
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn complete_jobs(&self, jobs: &[JobLease]) -> Result<()> {
                if jobs.is_empty() {
                    return Ok(());
                }
                // By id alone, whatever the job's state now: its work is done even if its
                // lease ran out meanwhile. (A `state` condition lets PostgreSQL pick the
                // running-leases index from stale statistics and walk every dead entry
                // of a drained backlog in it: 10× slower.)
                let mut query = sqlx::QueryBuilder::<$db>::new("DELETE FROM jobs WHERE id IN (");
                let mut ids = query.separated(", ");
                for job in jobs {
                    ids.push_bind(job.id);
                }
                query.push(")");
                query.build().execute(self.writer()).await?;
                Ok(())
            }

            async fn retry_job(&self, job: JobLease, run_at: Timestamp, error: &str) -> Result<()> {
                self.settle_job(job, "queued", Some(run_at), error).await
            }

            async fn bury_job(&self, job: JobLease, error: &str) -> Result<()> {
                self.settle_job(job, "dead", None, error).await
            }

            async fn release_expired_jobs(&self, max_attempts: i32) -> Result<u64> {
                let released = sqlx::query(
                    "UPDATE jobs SET state = CASE WHEN attempts >= $2 THEN 'dead' ELSE 'queued' END,
                            lease_until = NULL, last_error = 'lease expired: the worker stopped'
                     WHERE state = 'running' AND lease_until < $1",
                )
                .bind(Timestamp::now())
                .bind(max_attempts)
                .execute(self.writer())
                .await?;
                Ok(released.rows_affected())
            }

            async fn job_stats(&self) -> Result<Vec<JobStat>> {
                sqlx::query_as(
                    "SELECT kind, state, COUNT(*) AS count, MIN(created_at) AS oldest
                     FROM jobs GROUP BY kind, state ORDER BY kind, state",
                )
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn dead_jobs(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<DeadJob>> {
                let sql = "SELECT id, kind, payload, attempts, last_error, created_at FROM jobs
                     WHERE state = $1 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4";
                keyset_page(&mut *self.reader().await?, sql.to_owned(), "dead", limit, after, |job: &DeadJob| {
                    Cursor::new(job.created_at.get(), job.id)
                })
                .await
            }

            async fn extend_lease(&self, lease: JobLease, lease_until: Timestamp) -> Result<()> {
                checkpoint(self.writer(), lease, None, Some(lease_until)).await
            }

            async fn revive_job(&self, id: Uuid) -> Result<bool> {
                revive(self.writer(), id).await
            }
        }
    };
}

// SQLite needs no skipping: every write goes through its single writer connection, so
// two claims cannot overlap.
impl_job_store!(SqliteStore, sqlx::Sqlite, skip_locked = "");
impl_job_store!(
    PgStore,
    sqlx::Postgres,
    skip_locked = "FOR UPDATE SKIP LOCKED"
);
