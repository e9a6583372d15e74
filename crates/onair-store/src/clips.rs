//! Clips: short cuts of an archive or of a live broadcast. Inserting one enqueues its
//! cut (`clip_cut`), deleting one the removal of its objects (`media_delete`), each in
//! the same transaction.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use uuid::Uuid;

use crate::archives::ArchiveStatus;
use crate::error::StoreError;
use crate::jobs::{self, ClipJob, JobLease, MediaDeleteJob, NewJob, kinds};
use crate::models::StreamOwner;
use crate::postgres::PgStore;
use crate::sql::{keyset_page, row_by_id};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait ClipStore: Send + Sync {
    /// Inserts a processing clip of broadcast `stream_id` (of its archive `archive_id`
    /// when given) on the broadcast's channel, and enqueues its cut. `NotFound` if the
    /// broadcast does not exist or the archive is not its own. Ranges are the caller's
    /// to check against the recording.
    async fn insert_clip(&self, clip: NewClip) -> Result<Clip>;
    async fn clip(&self, id: Uuid) -> Result<Option<Clip>>;
    /// Switches a processing (or failed, for a revived job) clip to ready. False if it
    /// was ready already or is gone; `LeaseLost` (nothing written) when another attempt
    /// holds the job.
    async fn clip_ready(&self, lease: JobLease, id: Uuid, ready: ReadyClip) -> Result<bool>;
    /// False unless it was processing.
    async fn clip_failed(&self, id: Uuid, reason: &str) -> Result<bool>;
    /// A channel's clips in every state, newest first.
    async fn channel_clips(
        &self,
        channel_id: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Clip>>;
    /// Deletes clip `id` on behalf of `by` — its clipper, the channel's owner or one of
    /// the channel's moderators — and enqueues the removal of its objects, in one
    /// transaction. False (nothing deleted) when `by` is none of them; `NotFound` when
    /// there is no such clip.
    async fn delete_clip(&self, id: Uuid, by: Uuid) -> Result<bool>;
}

/// A clip, with its channel's owner joined in.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Clip {
    pub id: Uuid,
    pub clipper_id: Uuid,
    pub archive_id: Option<Uuid>,
    pub stream_id: Uuid,
    pub title: String,
    /// From the start of the recording.
    pub start_secs: f64,
    /// Asked for until ready, then the cut's exact length.
    pub duration_secs: f64,
    #[sqlx(try_from = "String")]
    pub status: ArchiveStatus,
    /// `clips/<id>/index.m3u8` (an HLS VOD playlist) once ready.
    pub playlist_path: Option<String>,
    pub thumbnail_path: Option<String>,
    pub failure_reason: Option<String>,
    pub size_bytes: i64,
    pub created_at: Timestamp,
    /// The channel's owner.
    #[sqlx(flatten)]
    pub channel: StreamOwner,
}

impl Clip {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewClip {
    pub id: Uuid,
    pub clipper_id: Uuid,
    pub stream_id: Uuid,
    pub archive_id: Option<Uuid>,
    pub title: String,
    pub start_secs: f64,
    pub duration_secs: f64,
}

/// What the cut produced, for [`ClipStore::clip_ready`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyClip {
    pub playlist_path: String,
    pub thumbnail_path: Option<String>,
    pub duration_secs: f64,
    pub size_bytes: i64,
}

const CLIP_VIEW: &str = "
    SELECT c.id, c.clipper_id, c.archive_id, c.stream_id, c.title, c.start_secs,
           c.duration_secs, c.status, c.playlist_path, c.thumbnail_path, c.failure_reason,
           c.size_bytes, c.created_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM clips c
    JOIN users u ON u.id = c.channel_id";

macro_rules! impl_clip_store {
    ($store:ty) => {
        #[async_trait]
        impl ClipStore for $store {
            async fn insert_clip(&self, clip: NewClip) -> Result<Clip> {
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO clips (id, channel_id, clipper_id, archive_id, stream_id, title,
                                        start_secs, duration_secs, status, created_at)
                     SELECT $1, s.user_id, $2, $3, s.id, $5, $6, $7, 'processing', $8
                     FROM streams s
                     WHERE s.id = $4 AND ($3 IS NULL OR EXISTS (
                         SELECT 1 FROM archives a WHERE a.id = $3 AND a.stream_id = s.id))",
                )
                .bind(clip.id)
                .bind(clip.clipper_id)
                .bind(clip.archive_id)
                .bind(clip.stream_id)
                .bind(&clip.title)
                .bind(clip.start_secs)
                .bind(clip.duration_secs)
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                let job = ClipJob { clip_id: clip.id };
                jobs::enqueue(&mut *tx, &NewJob::now(kinds::CLIP_CUT, &job)).await?;
                let created = row_by_id(&mut *tx, CLIP_VIEW, "c", clip.id).await?;
                tx.commit().await?;
                created.ok_or(StoreError::NotFound)
            }

            async fn clip(&self, id: Uuid) -> Result<Option<Clip>> {
                row_by_id(self.writer(), CLIP_VIEW, "c", id).await
            }

            async fn clip_ready(&self, lease: JobLease, id: Uuid, ready: ReadyClip) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                jobs::checkpoint(&mut *tx, lease, None, None).await?;
                let switched = sqlx::query(
                    "UPDATE clips SET status = 'ready', failure_reason = NULL, playlist_path = $2,
                            thumbnail_path = $3, duration_secs = $4, size_bytes = $5
                     WHERE id = $1 AND status <> 'ready'",
                )
                .bind(id)
                .bind(&ready.playlist_path)
                .bind(&ready.thumbnail_path)
                .bind(ready.duration_secs)
                .bind(ready.size_bytes)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(switched.rows_affected() == 1)
            }

            async fn clip_failed(&self, id: Uuid, reason: &str) -> Result<bool> {
                let failed = sqlx::query(
                    "UPDATE clips SET status = 'failed', failure_reason = $2
                     WHERE id = $1 AND status = 'processing'",
                )
                .bind(id)
                .bind(reason)
                .execute(self.writer())
                .await?;
                Ok(failed.rows_affected() == 1)
            }

            async fn channel_clips(
                &self,
                channel_id: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Clip>> {
                let sql = format!(
                    "{CLIP_VIEW} WHERE c.channel_id = $1 AND (c.created_at, c.id) < ($2, $3)
                     ORDER BY c.created_at DESC, c.id DESC LIMIT $4"
                );
                keyset_page(&mut *self.reader().await?, sql, channel_id, limit, after, Clip::cursor).await
            }

            async fn delete_clip(&self, id: Uuid, by: Uuid) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let deleted: Option<Uuid> = sqlx::query_scalar(
                    "DELETE FROM clips WHERE id = $1 AND (clipper_id = $2 OR channel_id = $2
                         OR EXISTS (SELECT 1 FROM channel_moderators m
                                    WHERE m.channel_id = clips.channel_id AND m.user_id = $2))
                     RETURNING id",
                )
                .bind(id)
                .bind(by)
                .fetch_optional(&mut *tx)
                .await?;
                if deleted.is_none() {
                    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM clips WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return exists.map(|_| false).ok_or(StoreError::NotFound);
                }
                let job = MediaDeleteJob {
                    prefixes: vec![format!("clips/{id}/")],
                };
                jobs::enqueue(&mut *tx, &NewJob::now(kinds::MEDIA_DELETE, &job)).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

impl_clip_store!(SqliteStore);
impl_clip_store!(PgStore);
