//! Broadcasts: starting and ending them (through the API or a publisher connection),
//! viewer counts, and the lists. A broadcast going online enqueues its followers' go-live
//! fan-out (`notifications`), and going online or offline its webhook deliveries
//! (`webhooks`), and ending a recorded one its archive (`archives`), in the transaction
//! that changes it.

use async_trait::async_trait;
use onair_core::{Category, Cursor, Limit, Page, StreamSort, StreamStatus, StreamTitle};
use uuid::Uuid;

use crate::archives;
use crate::error::{Conflict, StoreError};
use crate::models::StreamOwner;
use crate::notifications;
use crate::postgres::PgStore;
use crate::sql::{count_keyset, keyset_page, page_from, row_by_id};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;
use crate::users;
use crate::webhooks::{self, WebhookEvent};

type Result<T> = std::result::Result<T, StoreError>;

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
    /// another connection is already publishing. The broadcast is recorded if the user
    /// records broadcasts and stores less than `quota_bytes` (`None`: no quota), or if it
    /// was already (a reconnect continues the recording).
    async fn attach_publisher(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        new_stream_id: Uuid,
        quota_bytes: Option<i64>,
        lease_until: Option<Timestamp>,
    ) -> Result<(StreamView, bool)>;
    /// Renews the lease of publisher `session_id` on its live broadcast until `until`.
    /// False when it no longer publishes a live broadcast (ended, rotated out, or its
    /// lease lapsed and the broadcast went offline): the publish should stop.
    async fn renew_publisher_lease(&self, session_id: Uuid, until: Timestamp) -> Result<bool>;
    /// Live broadcasts whose publisher's lease ran out before `now` (its ingest node
    /// died) go offline as of the lease's end, as if the publisher had left. Returns
    /// their owners.
    async fn expire_publisher_leases(&self, now: Timestamp) -> Result<Vec<Uuid>>;
    /// The publisher left: its broadcast goes live → offline. False if `session_id`
    /// publishes nothing (any more).
    async fn detach_publisher(&self, session_id: Uuid) -> Result<bool>;
    /// Ends the broadcast `session_id` publishes, now (media failure).
    async fn end_published_stream(&self, session_id: Uuid) -> Result<bool>;
    /// Ends every broadcast that has been offline since before `cutoff` (its publisher
    /// did not come back in time). Returns the owners of those that ended.
    async fn end_abandoned_streams(&self, cutoff: Timestamp) -> Result<Vec<Uuid>>;
    /// Stores a batch of viewer counts (one transaction; peak kept as the maximum seen).
    async fn record_viewer_counts(&self, counts: &[ViewerCountUpdate]) -> Result<()>;
    /// Reads from the primary: callers check ownership with it before writing.
    async fn stream(&self, id: Uuid) -> Result<Option<StreamView>>;
    async fn update_stream(&self, id: Uuid, patch: StreamPatch) -> Result<StreamView>;
    /// Broadcasts in a state, most recently started first or with the most viewers first
    /// (keyset on the last flushed count, so a page boundary reflects that flush).
    async fn list_streams(
        &self,
        status: StreamStatus,
        sort: StreamSort,
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

/// A broadcast with its owner joined in (review S3: one query, no N+1).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StreamView {
    pub id: Uuid,
    pub title: String,
    pub category: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: StreamStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Concurrent viewers at the last flush.
    pub viewer_count: i64,
    pub peak_viewer_count: i64,
    pub unique_viewer_count: i64,
    /// Whether an RTMP publisher is feeding it now (a stream started through the API
    /// alone has no video).
    pub publishing: bool,
    /// Whether it is recorded for an archive (decided when a publisher attaches).
    pub recording: bool,
    /// Why it is not recorded although the owner records broadcasts
    /// (`storage_quota_exceeded`).
    pub recording_refused: Option<String>,
    #[sqlx(flatten)]
    pub owner: StreamOwner,
}

impl StreamView {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.started_at.get(), self.id)
    }

    fn viewers_cursor(&self) -> Cursor {
        Cursor::by_count(self.viewer_count, self.id)
    }
}

/// One stream's counts for [`StreamStore::record_viewer_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerCountUpdate {
    pub stream_id: Uuid,
    pub concurrent: i64,
    pub unique: i64,
}

#[derive(Debug, Default)]
pub struct StreamPatch {
    pub title: Option<StreamTitle>,
    pub category: Option<Option<Category>>,
}

const STREAM_VIEW: &str = "
    SELECT s.id, s.title, s.category, s.status, s.started_at, s.ended_at,
           s.viewer_count, s.peak_viewer_count, s.unique_viewer_count,
           s.publisher_session IS NOT NULL AS publishing, s.recording, s.recording_refused,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM streams s JOIN users u ON u.id = s.user_id";

/// A page of broadcasts: `$1` is the filter's value, `$2`/`$3` the keyset, `$4` the limit.
pub(crate) fn stream_page(filter: &str) -> String {
    format!(
        "{STREAM_VIEW} WHERE {filter} AND (s.started_at, s.id) < ($2, $3)
         ORDER BY s.started_at DESC, s.id DESC LIMIT $4"
    )
}

pub(crate) const LIVE_LIST_FILTER: &str = "s.status = $1";

/// Broadcasts in state `$1` with the most viewers first; the keyset and limit as in
/// [`stream_page`].
pub(crate) const STREAMS_BY_VIEWERS: &str = "
    WHERE s.status = $1 AND (s.viewer_count, s.id) < ($2, $3)
    ORDER BY s.viewer_count DESC, s.id DESC LIMIT $4";

pub(crate) fn streams_by_viewers() -> String {
    format!("{STREAM_VIEW} {STREAMS_BY_VIEWERS}")
}

/// Which active (live or offline) broadcast to end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Active {
    /// The user's, whichever it is.
    OfUser(Uuid),
    /// This one.
    Stream(Uuid),
}

/// Ends the active broadcast matching `$1` (`$2`: now); returns its id and owner.
macro_rules! end_active_where {
    ($condition:literal) => {
        concat!(
            "UPDATE streams SET status = 'ended', ended_at = $2, updated_at = $2,
                    publisher_session = NULL
             WHERE ",
            $condition,
            " AND status IN ('live', 'offline')
             RETURNING id, user_id"
        )
    };
}

const END_ACTIVE_OF_USER: &str = end_active_where!("user_id = $1");
const END_ACTIVE_STREAM: &str = end_active_where!("id = $1");

macro_rules! impl_stream_store {
    ($store:ty) => {
        impl $store {
            async fn stream_on_primary(&self, id: Uuid) -> Result<StreamView> {
                row_by_id(self.writer(), STREAM_VIEW, "s", id)
                    .await?
                    .ok_or(StoreError::NotFound)
            }
        }

        #[async_trait]
        impl StreamStore for $store {
            async fn start_stream(
                &self,
                id: Uuid,
                user_id: Uuid,
                title: &str,
                category: Option<&str>,
            ) -> Result<StreamView> {
                let now = Timestamp::now();
                let mut tx = self.writer().begin().await?;
                users::ensure_active(&mut *tx, user_id).await?;
                sqlx::query(
                    "INSERT INTO streams (id, user_id, title, category, status, started_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'live', $5, $5)",
                )
                .bind(id)
                .bind(user_id)
                .bind(title)
                .bind(category)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                self.commit_change(tx, id, user_id, true, now).await
            }

            async fn end_stream(&self, user_id: Uuid) -> Result<StreamView> {
                let mut tx = self.writer().begin().await?;
                let (id, _) = Self::end_active(&mut tx, Active::OfUser(user_id))
                    .await?
                    .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                self.stream_on_primary(id).await
            }

            async fn attach_publisher(
                &self,
                user_id: Uuid,
                session_id: Uuid,
                new_stream_id: Uuid,
                quota_bytes: Option<i64>,
                lease_until: Option<Timestamp>,
            ) -> Result<(StreamView, bool)> {
                let mut tx = self.writer().begin().await?;
                let (stream_id, resumed) =
                    Self::attach(&mut tx, user_id, session_id, new_stream_id).await?;
                sqlx::query("UPDATE streams SET publisher_lease_until = $2 WHERE id = $1")
                    .bind(stream_id)
                    .bind(lease_until)
                    .execute(&mut *tx)
                    .await?;
                Self::decide_recording(&mut tx, stream_id, user_id, quota_bytes).await?;
                tx.commit().await?;
                Ok((self.stream_on_primary(stream_id).await?, resumed))
            }

            async fn renew_publisher_lease(&self, session_id: Uuid, until: Timestamp) -> Result<bool> {
                let renewed = sqlx::query(
                    "UPDATE streams SET publisher_lease_until = $2
                     WHERE publisher_session = $1 AND status = 'live'",
                )
                .bind(session_id)
                .bind(until)
                .execute(self.writer())
                .await?;
                Ok(renewed.rows_affected() == 1)
            }

            async fn expire_publisher_leases(&self, now: Timestamp) -> Result<Vec<Uuid>> {
                let owners = sqlx::query_scalar(
                    "UPDATE streams SET status = 'offline', publisher_session = NULL,
                            updated_at = publisher_lease_until, publisher_lease_until = NULL
                     WHERE status = 'live' AND publisher_lease_until IS NOT NULL
                       AND publisher_lease_until < $1
                     RETURNING user_id",
                )
                .bind(now)
                .fetch_all(self.writer())
                .await?;
                Ok(owners)
            }

            async fn detach_publisher(&self, session_id: Uuid) -> Result<bool> {
                let detached = sqlx::query(
                    "UPDATE streams SET status = 'offline', publisher_session = NULL, updated_at = $2
                     WHERE publisher_session = $1 AND status = 'live'",
                )
                .bind(session_id)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(detached.rows_affected() == 1)
            }

            async fn end_published_stream(&self, session_id: Uuid) -> Result<bool> {
                let now = Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let ended: Option<(Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE streams SET status = 'ended', ended_at = $2, updated_at = $2,
                            publisher_session = NULL
                     WHERE publisher_session = $1 AND status IN ('live', 'offline')
                     RETURNING id, user_id",
                )
                .bind(session_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((stream_id, user_id)) = ended {
                    Self::announce(&mut tx, stream_id, user_id, false, now).await?;
                }
                tx.commit().await?;
                Ok(ended.is_some())
            }

            async fn end_abandoned_streams(&self, cutoff: Timestamp) -> Result<Vec<Uuid>> {
                // The broadcast ended when its publisher left, not when this sweep noticed.
                let mut tx = self.writer().begin().await?;
                let ended: Vec<(Uuid, Uuid, Timestamp)> = sqlx::query_as(
                    "UPDATE streams SET status = 'ended', ended_at = updated_at
                     WHERE status = 'offline' AND updated_at < $1
                     RETURNING id, user_id, ended_at",
                )
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                for &(stream_id, user_id, ended_at) in &ended {
                    Self::announce(&mut tx, stream_id, user_id, false, ended_at).await?;
                }
                tx.commit().await?;
                Ok(ended.into_iter().map(|(_, user_id, _)| user_id).collect())
            }

            async fn record_viewer_counts(&self, counts: &[ViewerCountUpdate]) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for count in counts {
                    sqlx::query(
                        "UPDATE streams SET viewer_count = $2, unique_viewer_count = $3,
                            peak_viewer_count = CASE WHEN peak_viewer_count > $2
                                                     THEN peak_viewer_count ELSE $2 END
                         WHERE id = $1",
                    )
                    .bind(count.stream_id)
                    .bind(count.concurrent)
                    .bind(count.unique)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn stream(&self, id: Uuid) -> Result<Option<StreamView>> {
                row_by_id(self.writer(), STREAM_VIEW, "s", id).await
            }

            async fn update_stream(&self, id: Uuid, patch: StreamPatch) -> Result<StreamView> {
                let category = patch.category.as_ref().map(|c| c.as_ref().map(|c| c.as_str()));
                let updated = sqlx::query(
                    "UPDATE streams SET
                        title = COALESCE($2, title),
                        category = CASE WHEN $3 THEN $4 ELSE category END,
                        updated_at = $5
                     WHERE id = $1",
                )
                .bind(id)
                .bind(patch.title.as_ref().map(|t| t.as_str()))
                .bind(category.is_some())
                .bind(category.flatten())
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                self.stream_on_primary(id).await
            }

            async fn list_streams(
                &self,
                status: StreamStatus,
                sort: StreamSort,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<StreamView>> {
                let status = status.as_str();
                match sort {
                    StreamSort::Started => {
                        let sql = stream_page(LIVE_LIST_FILTER);
                        keyset_page(&mut *self.reader().await?, sql, status, limit, after, StreamView::cursor)
                            .await
                    }
                    StreamSort::Viewers => {
                        let start = count_keyset(after)?;
                        let sql = streams_by_viewers();
                        page_from(&mut *self.reader().await?, sql, status, start, limit, StreamView::viewers_cursor)
                            .await
                    }
                }
            }

            async fn user_streams(
                &self,
                user_id: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<StreamView>> {
                let sql = stream_page("s.user_id = $1");
                keyset_page(&mut *self.reader().await?, sql, user_id, limit, after, StreamView::cursor).await
            }
        }
    };
}

/// Steps inside a stream write's transaction.
macro_rules! impl_stream_steps {
    ($store:ty, $db:ty) => {
        impl $store {
            /// What broadcast `stream_id` of `channel_id` going online (`online`) or
            /// offline at `at` causes: the followers' go-live fan-out, the channel's
            /// webhook deliveries, and the archive of a recorded broadcast that ended.
            async fn announce(
                tx: &mut sqlx::Transaction<'_, $db>,
                stream_id: Uuid,
                channel_id: Uuid,
                online: bool,
                at: Timestamp,
            ) -> Result<()> {
                let event = if online {
                    notifications::enqueue_go_live(&mut **tx, stream_id, channel_id, at).await?;
                    WebhookEvent::StreamOnline
                } else {
                    archives::record_archive(tx, stream_id, at).await?;
                    WebhookEvent::StreamOffline
                };
                webhooks::enqueue_deliveries(tx, channel_id, stream_id, event, at).await
            }

            /// Ends the active broadcast `which` names, now, with what that causes (see
            /// [`Self::announce`]); its id and owner, or `None` when it is not active.
            pub(crate) async fn end_active(
                tx: &mut sqlx::Transaction<'_, $db>,
                which: Active,
            ) -> Result<Option<(Uuid, Uuid)>> {
                let now = Timestamp::now();
                let (sql, id) = match which {
                    Active::OfUser(user_id) => (END_ACTIVE_OF_USER, user_id),
                    Active::Stream(stream_id) => (END_ACTIVE_STREAM, stream_id),
                };
                let ended: Option<(Uuid, Uuid)> = sqlx::query_as(sql)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&mut **tx)
                    .await?;
                if let Some((stream_id, user_id)) = ended {
                    Self::announce(tx, stream_id, user_id, false, now).await?;
                }
                Ok(ended)
            }

            /// Announces broadcast `id` of `user_id` going online (`online`) or offline,
            /// commits `tx`, and reads the broadcast back.
            async fn commit_change(
                &self,
                mut tx: sqlx::Transaction<'_, $db>,
                id: Uuid,
                user_id: Uuid,
                online: bool,
                at: Timestamp,
            ) -> Result<StreamView> {
                Self::announce(&mut tx, id, user_id, online, at).await?;
                tx.commit().await?;
                self.stream_on_primary(id).await
            }

            /// Whether broadcast `stream_id` of `user_id`, which a publisher just
            /// attached to, is recorded: once recorded it stays so; otherwise it is if
            /// the user records broadcasts and stores less than `quota_bytes`.
            async fn decide_recording(
                tx: &mut sqlx::Transaction<'_, $db>,
                stream_id: Uuid,
                user_id: Uuid,
                quota_bytes: Option<i64>,
            ) -> Result<()> {
                let wanted: bool =
                    sqlx::query_scalar("SELECT record_broadcasts FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_one(&mut **tx)
                        .await?;
                let over_quota = match quota_bytes {
                    Some(quota) if wanted => archives::storage_used(&mut **tx, user_id).await? >= quota,
                    _ => false,
                };
                let refused = over_quota.then_some("storage_quota_exceeded");
                sqlx::query(
                    "UPDATE streams SET recording = (recording OR $2),
                            recording_refused = CASE WHEN recording OR $2 THEN NULL ELSE $3 END
                     WHERE id = $1",
                )
                .bind(stream_id)
                .bind(wanted && !over_quota)
                .bind(refused)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// [`StreamStore::attach_publisher`] inside its transaction: returns the
            /// broadcast's id and whether it was continued.
            async fn attach(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: Uuid,
                session_id: Uuid,
                new_stream_id: Uuid,
            ) -> Result<(Uuid, bool)> {
                let now = Timestamp::now();
                users::ensure_active(&mut **tx, user_id).await?;
                let active: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
                    "SELECT id, publisher_session FROM streams
                     WHERE user_id = $1 AND status IN ('live', 'offline')",
                )
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?;
                let taken = || StoreError::Conflict(Conflict::ActiveStream);
                Ok(match active {
                    // The same publisher announcing itself again (a retried callback).
                    Some((id, Some(publisher))) if publisher == session_id => (id, true),
                    Some((_, Some(_))) => return Err(taken()),
                    Some((id, None)) => {
                        let attached = sqlx::query(
                            "UPDATE streams SET status = 'live', publisher_session = $2, updated_at = $3
                             WHERE id = $1 AND publisher_session IS NULL
                               AND status IN ('live', 'offline')",
                        )
                        .bind(id)
                        .bind(session_id)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        if attached.rows_affected() != 1 {
                            return Err(taken());
                        }
                        (id, true)
                    }
                    None => {
                        let inserted = sqlx::query(
                            "INSERT INTO streams (id, user_id, title, category, status, started_at,
                                                  updated_at, publisher_session)
                             SELECT $1, u.id,
                                    COALESCE(prev.title, u.username || ' is live'), prev.category,
                                    'live', $3, $3, $2
                             FROM users u
                             LEFT JOIN (SELECT title, category FROM streams WHERE user_id = $4
                                        ORDER BY started_at DESC LIMIT 1) prev ON TRUE
                             WHERE u.id = $4",
                        )
                        .bind(new_stream_id)
                        .bind(session_id)
                        .bind(now)
                        .bind(user_id)
                        .execute(&mut **tx)
                        .await?;
                        if inserted.rows_affected() != 1 {
                            return Err(StoreError::NotFound);
                        }
                        Self::announce(tx, new_stream_id, user_id, true, now).await?;
                        (new_stream_id, false)
                    }
                })
            }
        }
    };
}

impl_stream_store!(SqliteStore);
impl_stream_store!(PgStore);
impl_stream_steps!(SqliteStore, sqlx::Sqlite);
impl_stream_steps!(PgStore, sqlx::Postgres);
