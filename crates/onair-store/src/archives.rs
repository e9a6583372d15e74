//! Recordings of past broadcasts, written by the archive pipeline.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use uuid::Uuid;

use crate::error::StoreError;
use crate::models::StreamOwner;
use crate::postgres::PgStore;
use crate::sql::{keyset_page, row_by_id};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

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

/// A past broadcast's recording, with its owner joined in.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Archive {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: ArchiveStatus,
    pub duration_ms: i64,
    /// Object-store path of the playlist, relative to the media root.
    pub playlist_path: Option<String>,
    pub created_at: Timestamp,
    #[sqlx(flatten)]
    pub owner: StreamOwner,
}

impl Archive {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

pub struct NewArchive {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub status: ArchiveStatus,
    pub duration_ms: i64,
    pub playlist_path: Option<String>,
    pub created_at: Timestamp,
}

const ARCHIVE_VIEW: &str = "
    SELECT a.id, a.stream_id, s.title, a.status, a.duration_ms, a.playlist_path, a.created_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM archives a
    JOIN streams s ON s.id = a.stream_id
    JOIN users u ON u.id = a.user_id";

/// A page of ready archives: `$1` is the filter's value, `$2`/`$3` the keyset, `$4` the limit.
fn archive_page(filter: &str) -> String {
    format!(
        "{ARCHIVE_VIEW} WHERE a.status = 'ready' AND {filter} AND (a.created_at, a.id) < ($2, $3)
         ORDER BY a.created_at DESC, a.id DESC LIMIT $4"
    )
}

macro_rules! impl_archive_store {
    ($store:ty) => {
        #[async_trait]
        impl ArchiveStore for $store {
            async fn insert_archive(&self, archive: NewArchive) -> Result<Archive> {
                let inserted = sqlx::query(
                    "INSERT INTO archives (id, stream_id, user_id, status, duration_ms, playlist_path, created_at)
                     SELECT $1, s.id, s.user_id, $3, $4, $5, $6 FROM streams s WHERE s.id = $2",
                )
                .bind(archive.id)
                .bind(archive.stream_id)
                .bind(archive.status.as_str())
                .bind(archive.duration_ms)
                .bind(&archive.playlist_path)
                .bind(archive.created_at)
                .execute(self.writer())
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                row_by_id(self.writer(), ARCHIVE_VIEW, "a", archive.id)
                    .await?
                    .ok_or(StoreError::NotFound)
            }

            async fn archive(&self, id: Uuid) -> Result<Option<Archive>> {
                row_by_id(self.reader(), ARCHIVE_VIEW, "a", id).await
            }

            async fn list_archives(
                &self,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Archive>> {
                let sql = archive_page("$1 IS NULL");
                keyset_page(self.reader(), sql, None::<Uuid>, limit, after, Archive::cursor).await
            }

            async fn user_archives(
                &self,
                user_id: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Archive>> {
                let sql = archive_page("a.user_id = $1");
                keyset_page(self.reader(), sql, user_id, limit, after, Archive::cursor).await
            }
        }
    };
}

impl_archive_store!(SqliteStore);
impl_archive_store!(PgStore);
