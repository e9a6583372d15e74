//! SQL of the job queue and the notification domain, written once for both backends like
//! `shared.rs`. Two dialect differences come in as macro arguments: how a claim skips
//! rows another worker is claiming (`FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on
//! SQLite, where every write goes through the single writer connection, so claims cannot
//! overlap), and the statement that lets a fan-out batch commit without waiting for the
//! disk (none on SQLite, whose WAL mode with `synchronous = NORMAL` already does not).

use uuid::Uuid;

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

pub(crate) const NOTIFICATION_VIEW: &str = "
    SELECT n.stream_id, s.title, s.status AS stream_status, n.created_at, n.read_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM notifications n
    JOIN streams s ON s.id = n.stream_id
    JOIN users u ON u.id = s.user_id";

pub(crate) const WEBHOOK_COLUMNS: &str =
    "id, owner_id, channel_id, event, callback_url, secret, failures, disabled_at, created_at";

pub(crate) const PUSH_COLUMNS: &str = "id, user_id, endpoint, p256dh, auth, created_at";

macro_rules! impl_notification_traits {
    ($store:ty, $db:ty, $skip_locked:literal, $relaxed_commit:literal) => {
        impl $store {
            async fn enqueue_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &$crate::jobs::NewJob,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO jobs (id, kind, payload, state, attempts, run_at, created_at)
                     VALUES ($1, $2, $3, 'queued', 0, $4, $5)",
                )
                .bind(job.id)
                .bind(job.kind)
                .bind(&job.payload)
                .bind(job.run_at)
                .bind($crate::Timestamp::now())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// The jobs a broadcast starting (`online`) or ending causes, in the
            /// transaction that changes it: the go-live fan-out, and one delivery per
            /// enabled webhook of the channel for that event.
            async fn enqueue_stream_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                stream_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                online: bool,
                at: $crate::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                use $crate::jobs::{kinds, GoLiveJob, NewJob, WebhookJob};
                let event = if online {
                    let job = GoLiveJob {
                        stream_id,
                        creator_id: channel_id,
                        started_at: at.get(),
                        after: None,
                        upto: None,
                        planned: false,
                    };
                    Self::enqueue_in(tx, &NewJob::now(kinds::GO_LIVE, &job)).await?;
                    $crate::WebhookEvent::StreamOnline
                } else {
                    $crate::WebhookEvent::StreamOffline
                };
                let hooks: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT id FROM webhooks
                     WHERE channel_id = $1 AND event = $2 AND disabled_at IS NULL",
                )
                .bind(channel_id)
                .bind(event.as_str())
                .fetch_all(&mut **tx)
                .await?;
                for webhook_id in hooks {
                    let job = WebhookJob {
                        webhook_id,
                        stream_id,
                        event: event.as_str().to_owned(),
                        occurred_at: at.get(),
                    };
                    Self::enqueue_in(tx, &NewJob::now(kinds::WEBHOOK, &job)).await?;
                }
                Ok(())
            }

            /// Stores a running job's new payload and lease; `LeaseLost` if this claim
            /// no longer holds it.
            async fn checkpoint_job(
                tx: &mut sqlx::Transaction<'_, $db>,
                lease: $crate::jobs::JobLease,
                payload: &str,
                lease_until: $crate::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                let held = sqlx::query(
                    "UPDATE jobs SET payload = $3, lease_until = $4
                     WHERE id = $1 AND attempts = $2 AND state = 'running'",
                )
                .bind(lease.id)
                .bind(lease.attempt)
                .bind(payload)
                .bind(lease_until)
                .execute(&mut **tx)
                .await?;
                if held.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err($crate::StoreError::LeaseLost)
                }
            }

            /// One fan-out batch. The primary key of `notifications` keeps it exactly-once;
            /// `skip_existing` tolerates rows already there, at the price of PostgreSQL's
            /// speculative insertion, so only the rare second try pays it.
            async fn fan_out_batch(
                &self,
                lease: $crate::jobs::JobLease,
                job: &$crate::jobs::GoLiveJob,
                batch: u32,
                lease_until: $crate::Timestamp,
                skip_existing: bool,
            ) -> Result<$crate::FanoutBatch, $crate::StoreError> {
                use $crate::jobs::{kinds, NewJob, PushBatchJob};
                let (from, to) = $crate::notify_sql::fanout_bounds(job.after, job.upto);
                let mut tx = self.writer().begin().await?;
                if !$relaxed_commit.is_empty() {
                    // A batch lost in a crash rolls back with its checkpoint and is
                    // written again on retry, so this commit need not wait for the disk.
                    sqlx::query($relaxed_commit).execute(&mut *tx).await?;
                }
                // The batch ends at its `batch`-th follower; fewer left: this is the
                // part's last batch.
                let last: Option<uuid::Uuid> = sqlx::query_scalar(
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
                let recipients: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO notifications (recipient_id, stream_id, created_at)
                     SELECT f.follower_id, $4, $5 FROM follows f
                     WHERE {}
                     ORDER BY f.follower_id
                     {on_conflict}
                     RETURNING recipient_id",
                    $crate::notify_sql::FANOUT_RANGE
                )))
                .bind(job.creator_id)
                .bind(from)
                .bind(upto)
                .bind(job.stream_id)
                .bind($crate::Timestamp::from(job.started_at))
                .fetch_all(&mut *tx)
                .await?;
                if !recipients.is_empty() {
                    let subscribed: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT 1 FROM follows f JOIN push_subscriptions p ON p.user_id = f.follower_id
                         WHERE {} LIMIT 1",
                        $crate::notify_sql::FANOUT_RANGE
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
                        Self::enqueue_in(&mut tx, &NewJob::now(kinds::PUSH_BATCH, &push)).await?;
                    }
                }
                // Done or not, progress moves to the batch's end: a finished part run
                // again finds nothing left.
                let progressed = $crate::jobs::GoLiveJob { after: Some(upto), ..job.clone() };
                let payload = serde_json::to_string(&progressed).expect("job payloads serialize");
                Self::checkpoint_job(&mut tx, lease, &payload, lease_until).await?;
                tx.commit().await?;
                Ok($crate::FanoutBatch {
                    recipients,
                    next: last.is_some().then_some(progressed),
                })
            }

            /// Moves a running job (of this claim) to `state`.
            async fn settle_job(
                &self,
                lease: $crate::jobs::JobLease,
                state: &str,
                run_at: Option<$crate::Timestamp>,
                error: &str,
            ) -> Result<(), $crate::StoreError> {
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

        #[async_trait::async_trait]
        impl $crate::traits::JobStore for $store {
            async fn enqueue(&self, job: $crate::jobs::NewJob) -> Result<(), $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                Self::enqueue_in(&mut tx, &job).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_jobs(
                &self,
                limit: u32,
                lease_until: $crate::Timestamp,
            ) -> Result<Vec<$crate::jobs::ClaimedJob>, $crate::StoreError> {
                sqlx::query_as(concat!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2
                     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $1
                                  ORDER BY run_at LIMIT $3 ",
                    $skip_locked,
                    ") RETURNING id, kind, payload, attempts, created_at"
                ))
                // Planned afresh on every call: PostgreSQL may switch a prepared
                // statement to a generic plan, and this one's (limit and run time
                // unknown) hash-joins a scan of the whole jobs table on every claim.
                .persistent(false)
                .bind($crate::Timestamp::now())
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn complete_jobs(&self, jobs: &[$crate::jobs::JobLease]) -> Result<(), $crate::StoreError> {
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

            async fn retry_job(
                &self,
                job: $crate::jobs::JobLease,
                run_at: $crate::Timestamp,
                error: &str,
            ) -> Result<(), $crate::StoreError> {
                self.settle_job(job, "queued", Some(run_at), error).await
            }

            async fn bury_job(&self, job: $crate::jobs::JobLease, error: &str) -> Result<(), $crate::StoreError> {
                self.settle_job(job, "dead", None, error).await
            }

            async fn release_expired_jobs(&self, max_attempts: i32) -> Result<u64, $crate::StoreError> {
                let released = sqlx::query(
                    "UPDATE jobs SET state = CASE WHEN attempts >= $2 THEN 'dead' ELSE 'queued' END,
                            lease_until = NULL, last_error = 'lease expired: the worker stopped'
                     WHERE state = 'running' AND lease_until < $1",
                )
                .bind($crate::Timestamp::now())
                .bind(max_attempts)
                .execute(self.writer())
                .await?;
                Ok(released.rows_affected())
            }

            async fn job_stats(&self) -> Result<Vec<$crate::jobs::JobStat>, $crate::StoreError> {
                sqlx::query_as(
                    "SELECT kind, state, COUNT(*) AS count, MIN(created_at) AS oldest
                     FROM jobs GROUP BY kind, state ORDER BY kind, state",
                )
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn dead_jobs(
                &self,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::jobs::DeadJob>, $crate::StoreError> {
                let sql = "SELECT id, kind, payload, attempts, last_error, created_at FROM jobs
                     WHERE state = $1 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4";
                self.keyset_page(sql.to_owned(), "dead", limit, after, |job: &$crate::jobs::DeadJob| {
                    onair_core::Cursor::new(job.created_at.get(), job.id)
                })
                .await
            }

            async fn revive_job(&self, id: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let revived = sqlx::query(
                    "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2
                     WHERE id = $1 AND state = 'dead'",
                )
                .bind(id)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(revived.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::NotificationStore for $store {
            async fn plan_go_live(
                &self,
                lease: $crate::jobs::JobLease,
                job: &$crate::jobs::GoLiveJob,
                cooldown: std::time::Duration,
                part_size: u32,
                lease_until: $crate::Timestamp,
            ) -> Result<Option<$crate::jobs::GoLiveJob>, $crate::StoreError> {
                use $crate::jobs::{kinds, GoLiveJob, NewJob};
                let started = $crate::Timestamp::from(job.started_at);
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
                .bind($crate::Timestamp::from(cutoff))
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                // Every `part_size`-th follower ends a part (one index-only pass), so
                // parts run on several workers at once. Small audiences stay one part.
                let part_size = i64::from(part_size.max(1));
                let ends: Vec<uuid::Uuid> = if followers > part_size {
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
                let part = |after: Option<uuid::Uuid>, upto: Option<uuid::Uuid>| GoLiveJob {
                    after,
                    upto,
                    planned: true,
                    ..job.clone()
                };
                let first = part(None, ends.first().copied());
                for (i, &after) in ends.iter().enumerate() {
                    let rest = part(Some(after), ends.get(i + 1).copied());
                    Self::enqueue_in(&mut tx, &NewJob::now(kinds::GO_LIVE, &rest)).await?;
                }
                let payload = serde_json::to_string(&first).expect("job payloads serialize");
                Self::checkpoint_job(&mut tx, lease, &payload, lease_until).await?;
                tx.commit().await?;
                Ok(Some(first))
            }

            async fn fan_out_go_live(
                &self,
                lease: $crate::jobs::JobLease,
                job: &$crate::jobs::GoLiveJob,
                batch: u32,
                lease_until: $crate::Timestamp,
            ) -> Result<$crate::FanoutBatch, $crate::StoreError> {
                match self.fan_out_batch(lease, job, batch, lease_until, false).await {
                    // Rows of this batch exist already (the job was enqueued twice, or a
                    // worker that lost its lease raced us): redo it skipping them.
                    Err($crate::StoreError::Conflict(_)) => {
                        self.fan_out_batch(lease, job, batch, lease_until, true).await
                    }
                    other => other,
                }
            }

            async fn notifications(
                &self,
                user: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::Notification>, $crate::StoreError> {
                // Stream ids are UUIDv7: ordering by them is ordering by go-live time, on
                // the primary key alone.
                let before = after.map_or(uuid::Uuid::max(), |cursor| cursor.id);
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE n.recipient_id = $1 AND n.stream_id < $2
                     ORDER BY n.stream_id DESC LIMIT $3",
                    $crate::notify_sql::NOTIFICATION_VIEW
                )))
                .bind(user)
                .bind(before)
                .bind(limit.fetch())
                .fetch_all(self.reader())
                .await?;
                Ok(onair_core::Page::from_rows(rows, limit, $crate::Notification::cursor))
            }

            async fn unread_notifications(&self, user: uuid::Uuid) -> Result<i64, $crate::StoreError> {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications WHERE recipient_id = $1 AND read_at IS NULL",
                )
                .bind(user)
                .fetch_one(self.reader())
                .await
                .map_err(Into::into)
            }

            async fn mark_notification_read(&self, user: uuid::Uuid, stream_id: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let marked = sqlx::query(
                    "UPDATE notifications SET read_at = COALESCE(read_at, $3)
                     WHERE recipient_id = $1 AND stream_id = $2",
                )
                .bind(user)
                .bind(stream_id)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(marked.rows_affected() == 1)
            }

            async fn mark_all_notifications_read(&self, user: uuid::Uuid) -> Result<u64, $crate::StoreError> {
                let marked = sqlx::query(
                    "UPDATE notifications SET read_at = $2 WHERE recipient_id = $1 AND read_at IS NULL",
                )
                .bind(user)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(marked.rows_affected())
            }

            async fn set_muted(&self, user: uuid::Uuid, creator: uuid::Uuid, muted: bool) -> Result<bool, $crate::StoreError> {
                let changed = if muted {
                    sqlx::query(
                        "INSERT INTO notification_mutes (creator_id, user_id, created_at)
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(creator)
                    .bind(user)
                    .bind($crate::Timestamp::now())
                    .execute(self.writer())
                    .await?
                } else {
                    sqlx::query("DELETE FROM notification_mutes WHERE creator_id = $1 AND user_id = $2")
                        .bind(creator)
                        .bind(user)
                        .execute(self.writer())
                        .await?
                };
                Ok(changed.rows_affected() == 1)
            }

            async fn is_muted(&self, user: uuid::Uuid, creator: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let muted: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM notification_mutes WHERE creator_id = $1 AND user_id = $2",
                )
                .bind(creator)
                .bind(user)
                .fetch_optional(self.writer())
                .await?;
                Ok(muted.is_some())
            }

            async fn push_enabled(&self, user: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                sqlx::query_scalar("SELECT push_enabled FROM users WHERE id = $1")
                    .bind(user)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn set_push_enabled(&self, user: uuid::Uuid, enabled: bool) -> Result<(), $crate::StoreError> {
                let updated = sqlx::query("UPDATE users SET push_enabled = $2 WHERE id = $1")
                    .bind(user)
                    .bind(enabled)
                    .execute(self.writer())
                    .await?;
                if updated.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err($crate::StoreError::NotFound)
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::PushStore for $store {
            async fn add_push_subscription(
                &self,
                sub: $crate::NewPushSubscription,
            ) -> Result<$crate::PushSubscription, $crate::StoreError> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id,
                         p256dh = excluded.p256dh, auth = excluded.auth
                     RETURNING {}",
                    $crate::notify_sql::PUSH_COLUMNS
                )))
                .bind(sub.id)
                .bind(sub.user_id)
                .bind(&sub.endpoint)
                .bind(&sub.p256dh)
                .bind(&sub.auth)
                .bind($crate::Timestamp::now())
                .fetch_one(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn remove_push_subscription(&self, user: uuid::Uuid, endpoint: &str) -> Result<bool, $crate::StoreError> {
                let removed = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                    .bind(user)
                    .bind(endpoint)
                    .execute(self.writer())
                    .await?;
                Ok(removed.rows_affected() == 1)
            }

            async fn push_subscription(&self, id: uuid::Uuid) -> Result<Option<$crate::PushSubscription>, $crate::StoreError> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM push_subscriptions WHERE id = $1",
                    $crate::notify_sql::PUSH_COLUMNS
                )))
                .bind(id)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn delete_push_subscription(&self, id: uuid::Uuid) -> Result<(), $crate::StoreError> {
                sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn push_targets(
                &self,
                batch: &$crate::jobs::PushBatchJob,
            ) -> Result<Vec<$crate::PushSubscription>, $crate::StoreError> {
                let (from, to) = $crate::notify_sql::fanout_bounds(batch.after, Some(batch.upto));
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT p.id, p.user_id, p.endpoint, p.p256dh, p.auth, p.created_at
                     FROM follows f
                     JOIN users u ON u.id = f.follower_id
                     JOIN push_subscriptions p ON p.user_id = f.follower_id
                     WHERE {} AND u.push_enabled",
                    $crate::notify_sql::FANOUT_RANGE
                )))
                .bind(batch.creator_id)
                .bind(from)
                .bind(to)
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::WebhookStore for $store {
            async fn create_webhook(
                &self,
                hook: $crate::NewWebhook,
                max_per_owner: i64,
            ) -> Result<Option<$crate::Webhook>, $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                // Holding the owner's row serializes their registrations: two at once
                // cannot both count one under the cap and both insert.
                sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                    .bind(hook.owner_id)
                    .execute(&mut *tx)
                    .await?;
                let created = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO webhooks (id, owner_id, channel_id, event, callback_url, secret, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE (SELECT COUNT(*) FROM webhooks WHERE owner_id = $2) < $8
                     RETURNING {}",
                    $crate::notify_sql::WEBHOOK_COLUMNS
                )))
                .bind(hook.id)
                .bind(hook.owner_id)
                .bind(hook.channel_id)
                .bind(hook.event.as_str())
                .bind(&hook.callback_url)
                .bind(&hook.secret)
                .bind($crate::Timestamp::now())
                .bind(max_per_owner)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn webhook(&self, id: uuid::Uuid) -> Result<Option<$crate::Webhook>, $crate::StoreError> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM webhooks WHERE id = $1",
                    $crate::notify_sql::WEBHOOK_COLUMNS
                )))
                .bind(id)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn webhooks(
                &self,
                owner: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::Webhook>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM webhooks WHERE owner_id = $1 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                    $crate::notify_sql::WEBHOOK_COLUMNS
                );
                self.keyset_page(sql, owner, limit, after, $crate::Webhook::cursor).await
            }

            async fn delete_webhook(&self, owner: uuid::Uuid, id: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner)
                    .execute(self.writer())
                    .await?;
                Ok(deleted.rows_affected() == 1)
            }

            async fn record_webhook_delivery(
                &self,
                id: uuid::Uuid,
                ok: bool,
                disable_after: i32,
            ) -> Result<bool, $crate::StoreError> {
                let disabled_at: Option<Option<$crate::Timestamp>> = sqlx::query_scalar(
                    "UPDATE webhooks
                     SET failures = CASE WHEN $2 THEN 0 ELSE failures + 1 END,
                         disabled_at = CASE
                             WHEN disabled_at IS NULL AND NOT $2 AND failures + 1 >= $3 THEN $4
                             ELSE disabled_at END
                     WHERE id = $1
                     RETURNING disabled_at",
                )
                .bind(id)
                .bind(ok)
                .bind(disable_after)
                .bind($crate::Timestamp::now())
                .fetch_optional(self.writer())
                .await?;
                Ok(matches!(disabled_at, Some(Some(_))))
            }
        }
    };
}

pub(crate) use impl_notification_traits;
