//! The material a publisher's stream key is checked against (never the key itself).

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait StreamKeyStore: Send + Sync {
    async fn stream_key(&self, user_id: Uuid) -> Result<Option<StreamKeyRecord>>;
    /// Stores the user's first key material unless one exists (then returns false).
    async fn insert_stream_key(&self, record: &StreamKeyRecord) -> Result<bool>;
    /// Creates or replaces the user's key material (rotation invalidates the old key).
    async fn put_stream_key(&self, record: &StreamKeyRecord) -> Result<()>;
}

/// The stored material of a stream key: the key itself is never stored. `secret` is
/// random and only useful together with the server's key-derivation secret; `key_hash`
/// is SHA-256 of the derived key, compared in constant time at publish.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamKeyRecord {
    pub user_id: Uuid,
    pub nonce: Vec<u8>,
    pub key_hash: Vec<u8>,
    pub created_at: Timestamp,
}

/// Inserts a record; `{}` is what an existing one of the user does (`ON CONFLICT`).
fn upsert(on_conflict: &str) -> String {
    format!(
        "INSERT INTO stream_keys (user_id, nonce, key_hash, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) {on_conflict}"
    )
}

macro_rules! impl_stream_key_store {
    ($store:ty) => {
        impl $store {
            /// Writes `record`; returns whether a row was inserted or changed.
            async fn write_stream_key(
                &self,
                record: &StreamKeyRecord,
                on_conflict: &str,
            ) -> Result<bool> {
                let written = sqlx::query(sqlx::AssertSqlSafe(upsert(on_conflict)))
                    .bind(record.user_id)
                    .bind(&record.nonce)
                    .bind(&record.key_hash)
                    .bind(record.created_at)
                    .execute(self.writer())
                    .await?;
                Ok(written.rows_affected() == 1)
            }
        }

        #[async_trait]
        impl StreamKeyStore for $store {
            async fn stream_key(&self, user_id: Uuid) -> Result<Option<StreamKeyRecord>> {
                sqlx::query_as(
                    "SELECT user_id, nonce, key_hash, created_at FROM stream_keys WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn insert_stream_key(&self, record: &StreamKeyRecord) -> Result<bool> {
                self.write_stream_key(record, "DO NOTHING").await
            }

            async fn put_stream_key(&self, record: &StreamKeyRecord) -> Result<()> {
                let replace = "DO UPDATE SET nonce = excluded.nonce, key_hash = excluded.key_hash,
                               created_at = excluded.created_at";
                self.write_stream_key(record, replace).await?;
                Ok(())
            }
        }
    };
}

impl_stream_key_store!(SqliteStore);
impl_stream_key_store!(PgStore);
