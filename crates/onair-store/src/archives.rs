//! Recordings of past broadcasts. Ending a recorded broadcast inserts its archive and
//! enqueues its processing in the same transaction ([`record_archive`], called by
//! `streams`); the processing job reports progress and switches it to ready; owners set
//! its visibility or delete it (its objects removed by a `media_delete` job).

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use sqlx::{Executor, Transaction};
use uuid::Uuid;

use crate::error::StoreError;
use crate::jobs::{self, ArchiveJob, JobLease, MediaDeleteJob, NewJob, kinds};
use crate::models::StreamOwner;
use crate::postgres::PgStore;
use crate::sql::{Bind, Changed, Db, Row, keyset_page, row_by_id};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Any state, any visibility: callers decide who may see it.
    async fn archive(&self, id: Uuid) -> Result<Option<Archive>>;
    /// The archive of broadcast `stream_id`, if it was recorded and has ended.
    async fn stream_archive(&self, stream_id: Uuid) -> Result<Option<Archive>>;
    /// Records the processing job's progress (0–1) and extends its lease to
    /// `lease_until`, in one transaction. `LeaseLost` when another attempt holds the job
    /// now; `NotFound` when the archive is no longer processing (deleted meanwhile).
    async fn archive_progress(
        &self,
        lease: JobLease,
        id: Uuid,
        progress: f64,
        lease_until: Timestamp,
    ) -> Result<()>;
    /// Publishes the final VOD: one UPDATE switches a processing (or failed, for a
    /// revived job) archive to ready with its new paths. False if it was ready already
    /// or is gone; `LeaseLost` (nothing written) when another attempt holds the job.
    async fn archive_ready(&self, lease: JobLease, id: Uuid, ready: ReadyArchive) -> Result<bool>;
    /// Processing gave up: the archive stays playable as streamed. False unless it was
    /// processing.
    async fn archive_failed(&self, id: Uuid, reason: &str) -> Result<bool>;
    /// `NotFound` unless archive `id` exists and belongs to `owner_id`.
    async fn set_archive_visibility(
        &self,
        id: Uuid,
        owner_id: Uuid,
        visibility: ArchiveVisibility,
    ) -> Result<Archive>;
    /// Deletes the row at once and enqueues the removal of its objects (the live spool
    /// and the VOD) in the same transaction. `NotFound` unless it belongs to `owner_id`.
    async fn delete_archive(&self, id: Uuid, owner_id: Uuid) -> Result<()>;
    /// Public archives, processing or ready, newest first.
    async fn list_archives(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<Archive>>;
    /// A creator's archives, newest first: every one for the creator (`viewer` is the
    /// user), the public processing or ready ones for anyone else.
    async fn user_archives(
        &self,
        user_id: Uuid,
        viewer: Option<Uuid>,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Archive>>;
    /// Bytes stored for the user: their archives and the clips of their channel.
    async fn storage_used(&self, user_id: Uuid) -> Result<i64>;
    /// Up to `limit` archives created before `created_before`, oldest first (retention).
    async fn expired_archives(&self, created_before: Timestamp, limit: u32)
    -> Result<Vec<Archive>>;
}

/// Processing state, shared by archives and clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveStatus {
    Processing,
    Ready,
    Failed,
}

impl ArchiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

impl TryFrom<String> for ArchiveStatus {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        match s.as_str() {
            "processing" => Ok(Self::Processing),
            "ready" => Ok(Self::Ready),
            "failed" => Ok(Self::Failed),
            _ => Err(format!("unknown archive status {s:?}")),
        }
    }
}

/// Who sees an archive: everyone in the lists (`public`), whoever has its link
/// (`unlisted`), or its owner alone (`private`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveVisibility {
    Public,
    Unlisted,
    Private,
}

impl ArchiveVisibility {
    pub const ALL: [Self; 3] = [Self::Public, Self::Unlisted, Self::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl TryFrom<String> for ArchiveVisibility {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        Self::parse(&s).ok_or_else(|| format!("unknown archive visibility {s:?}"))
    }
}

/// A past broadcast's recording, with its owner joined in.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Archive {
    pub id: Uuid,
    pub stream_id: Uuid,
    /// The broadcast's title and category when it ended.
    pub title: String,
    pub category: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ArchiveStatus,
    #[sqlx(try_from = "String")]
    pub visibility: ArchiveVisibility,
    /// Of the processing, 0–1 (1 once ready).
    pub progress: f64,
    /// Exact once ready; 0 before.
    pub duration_ms: i64,
    /// Object-store key of the master playlist: the recording as streamed
    /// (`live/<stream_id>/recording.m3u8`) until ready, then the VOD's.
    pub playlist_path: Option<String>,
    pub thumbnail_path: Option<String>,
    /// Bytes of the final VOD (0 before).
    pub size_bytes: i64,
    pub failure_reason: Option<String>,
    /// When the broadcast ended.
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[sqlx(flatten)]
    pub owner: StreamOwner,
}

impl Archive {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

/// What the processing job published, for [`ArchiveStore::archive_ready`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyArchive {
    /// `vod/<archive_id>/<version>/master.m3u8`.
    pub playlist_path: String,
    pub thumbnail_path: Option<String>,
    pub duration_ms: i64,
    pub size_bytes: i64,
}

/// Object-store key of a broadcast's recording as streamed: the master playlist over
/// the renditions' recordings (`onair_media::RECORDING_PLAYLIST`, written by ingest).
fn recording_playlist_key(stream_id: Uuid) -> String {
    format!("live/{stream_id}/recording.m3u8")
}

const ARCHIVE_VIEW: &str = "
    SELECT a.id, a.stream_id, a.title, a.category, a.status, a.visibility, a.progress,
           a.duration_ms, a.playlist_path, a.thumbnail_path, a.size_bytes, a.failure_reason,
           a.created_at, a.updated_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM archives a
    JOIN users u ON u.id = a.user_id";

/// What others see of a creator's archives, and the public list.
const LISTED: &str = "a.visibility = 'public' AND a.status IN ('processing', 'ready')";

/// A page of archives: `$1` is the filter's value, `$2`/`$3` the keyset, `$4` the limit.
fn archive_page(filter: &str) -> String {
    format!(
        "{ARCHIVE_VIEW} WHERE {filter} AND (a.created_at, a.id) < ($2, $3)
         ORDER BY a.created_at DESC, a.id DESC LIMIT $4"
    )
}

/// Inserts the archive of broadcast `stream_id`, ended at `ended_at`, if it was recorded
/// and has none yet, and then enqueues its processing: in the transaction that ends the
/// broadcast, so a broadcast ended twice is processed once.
pub(crate) async fn record_archive<DB: Db>(
    tx: &mut Transaction<'_, DB>,
    stream_id: Uuid,
    ended_at: Timestamp,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    String: Bind<DB>,
    Option<String>: Bind<DB>,
    for<'s> &'s str: Bind<DB>,
{
    let archive_id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO archives (id, stream_id, user_id, status, playlist_path, title, category,
                               created_at, updated_at)
         SELECT $1, s.id, s.user_id, 'processing', $3, s.title, s.category, $4, $4
         FROM streams s WHERE s.id = $2 AND s.recording
         ON CONFLICT (stream_id) DO NOTHING",
    )
    .bind(archive_id)
    .bind(stream_id)
    .bind(recording_playlist_key(stream_id))
    .bind(ended_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        let job = ArchiveJob {
            archive_id,
            stream_id,
        };
        jobs::enqueue(&mut **tx, &NewJob::now(kinds::ARCHIVE_PROCESS, &job)).await?;
    }
    Ok(())
}

/// Bytes stored for user `$1` (as `storage_used`).
const STORAGE_USED: &str = "
    SELECT CAST((SELECT COALESCE(SUM(size_bytes), 0) FROM archives WHERE user_id = $1)
              + (SELECT COALESCE(SUM(size_bytes), 0) FROM clips WHERE channel_id = $1) AS BIGINT)";

/// [`ArchiveStore::storage_used`] inside another domain's transaction.
pub(crate) async fn storage_used<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    user_id: Uuid,
) -> Result<i64>
where
    Uuid: Bind<DB>,
    (i64,): Row<DB>,
{
    let (used,): (i64,) = sqlx::query_as(STORAGE_USED)
        .bind(user_id)
        .fetch_one(exec)
        .await?;
    Ok(used)
}

macro_rules! impl_archive_store {
    ($store:ty) => {
        #[async_trait]
        impl ArchiveStore for $store {
            async fn archive(&self, id: Uuid) -> Result<Option<Archive>> {
                row_by_id(self.writer(), ARCHIVE_VIEW, "a", id).await
            }

            async fn stream_archive(&self, stream_id: Uuid) -> Result<Option<Archive>> {
                let query = format!("{ARCHIVE_VIEW} WHERE a.stream_id = $1");
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(query))
                    .bind(stream_id)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn archive_progress(
                &self,
                lease: JobLease,
                id: Uuid,
                progress: f64,
                lease_until: Timestamp,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                jobs::checkpoint(&mut *tx, lease, None, Some(lease_until)).await?;
                let updated = sqlx::query(
                    "UPDATE archives SET progress = $2, updated_at = $3
                     WHERE id = $1 AND status = 'processing'",
                )
                .bind(id)
                .bind(progress.clamp(0.0, 1.0))
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn archive_ready(
                &self,
                lease: JobLease,
                id: Uuid,
                ready: ReadyArchive,
            ) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                jobs::checkpoint(&mut *tx, lease, None, None).await?;
                let switched = sqlx::query(
                    "UPDATE archives SET status = 'ready', progress = 1, failure_reason = NULL,
                            playlist_path = $2, thumbnail_path = $3, duration_ms = $4,
                            size_bytes = $5, updated_at = $6
                     WHERE id = $1 AND status <> 'ready'",
                )
                .bind(id)
                .bind(&ready.playlist_path)
                .bind(&ready.thumbnail_path)
                .bind(ready.duration_ms)
                .bind(ready.size_bytes)
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(switched.rows_affected() == 1)
            }

            async fn archive_failed(&self, id: Uuid, reason: &str) -> Result<bool> {
                let failed = sqlx::query(
                    "UPDATE archives SET status = 'failed', failure_reason = $2, updated_at = $3
                     WHERE id = $1 AND status = 'processing'",
                )
                .bind(id)
                .bind(reason)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(failed.rows_affected() == 1)
            }

            async fn set_archive_visibility(
                &self,
                id: Uuid,
                owner_id: Uuid,
                visibility: ArchiveVisibility,
            ) -> Result<Archive> {
                let updated = sqlx::query(
                    "UPDATE archives SET visibility = $3, updated_at = $4
                     WHERE id = $1 AND user_id = $2",
                )
                .bind(id)
                .bind(owner_id)
                .bind(visibility.as_str())
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                if updated.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                self.archive(id).await?.ok_or(StoreError::NotFound)
            }

            async fn delete_archive(&self, id: Uuid, owner_id: Uuid) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                let stream_id: Uuid = sqlx::query_scalar(
                    "DELETE FROM archives WHERE id = $1 AND user_id = $2 RETURNING stream_id",
                )
                .bind(id)
                .bind(owner_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                // The spool too, even once ready: the job removes it after switching,
                // and a crash in between would leave it behind.
                let job = MediaDeleteJob {
                    prefixes: vec![format!("live/{stream_id}/"), format!("vod/{id}/")],
                };
                jobs::enqueue(&mut *tx, &NewJob::now(kinds::MEDIA_DELETE, &job)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_archives(
                &self,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Archive>> {
                let sql = archive_page(&format!("$1 IS NULL AND {LISTED}"));
                keyset_page(
                    &mut *self.reader().await?,
                    sql,
                    None::<Uuid>,
                    limit,
                    after,
                    Archive::cursor,
                )
                .await
            }

            async fn user_archives(
                &self,
                user_id: Uuid,
                viewer: Option<Uuid>,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Archive>> {
                let sql = if viewer == Some(user_id) {
                    archive_page("a.user_id = $1")
                } else {
                    archive_page(&format!("a.user_id = $1 AND {LISTED}"))
                };
                keyset_page(
                    &mut *self.reader().await?,
                    sql,
                    user_id,
                    limit,
                    after,
                    Archive::cursor,
                )
                .await
            }

            async fn storage_used(&self, user_id: Uuid) -> Result<i64> {
                storage_used(&mut *self.reader().await?, user_id).await
            }

            async fn expired_archives(
                &self,
                created_before: Timestamp,
                limit: u32,
            ) -> Result<Vec<Archive>> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{ARCHIVE_VIEW} WHERE a.created_at < $1 ORDER BY a.created_at, a.id LIMIT $2"
                )))
                .bind(created_before)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(Into::into)
            }
        }
    };
}

impl_archive_store!(SqliteStore);
impl_archive_store!(PgStore);
