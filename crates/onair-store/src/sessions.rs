//! Login sessions: families of single-use refresh tokens, stored hashed.

use async_trait::async_trait;
use sqlx::Executor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sql::{Bind, Db};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

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
    /// a spent token revokes its family (refresh-token reuse detection); a family whose
    /// login was at or before `started_by` has outlived the sessions' absolute lifetime.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        replacement: &[u8],
        expires_at: Timestamp,
        started_by: Timestamp,
    ) -> Result<RefreshRotation>;
    /// Revokes the family of the given token (logout). Unknown tokens are ignored.
    async fn revoke_refresh_family(&self, token_hash: &[u8]) -> Result<()>;
}

/// Result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was valid; it is now spent and the new one belongs to the same family.
    Rotated { user_id: Uuid },
    /// The token had already been spent or revoked: someone replayed it, so the whole
    /// family (every token descended from that login) has been revoked.
    Reused,
    /// The login that started the family is older than the sessions' absolute lifetime.
    SessionExpired,
    /// Unknown or expired.
    Invalid,
    /// The account is suspended (its tokens were revoked with the suspension).
    Suspended,
}

/// A family of refresh tokens: one login's session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family {
    family_id: Uuid,
    session_started_at: Timestamp,
}

/// Stores a refresh token of `user_id` in `family`, or in a new family (a new login, now)
/// when `None`. Signup calls it inside the transaction that creates the user.
pub(crate) async fn insert_token<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    user_id: Uuid,
    family: Option<Family>,
    token_hash: &[u8],
    expires_at: Timestamp,
) -> Result<()>
where
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    for<'b> &'b [u8]: Bind<DB>,
{
    let now = Timestamp::now();
    let family = family.unwrap_or_else(|| Family {
        family_id: Uuid::now_v7(),
        session_started_at: now,
    });
    sqlx::query(
        "INSERT INTO refresh_tokens
             (token_hash, family_id, user_id, expires_at, created_at, session_started_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(family.family_id)
    .bind(user_id)
    .bind(expires_at)
    .bind(now)
    .bind(family.session_started_at)
    .execute(exec)
    .await?;
    Ok(())
}

macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait]
        impl SessionStore for $store {
            async fn insert_refresh_token(
                &self,
                user_id: Uuid,
                token_hash: &[u8],
                expires_at: Timestamp,
            ) -> Result<()> {
                insert_token(self.writer(), user_id, None, token_hash, expires_at).await
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8],
                replacement: &[u8],
                expires_at: Timestamp,
                started_by: Timestamp,
            ) -> Result<RefreshRotation> {
                let now = Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let spent: Option<(Uuid, Family)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET used_at = $2
                     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL
                       AND expires_at > $2 AND session_started_at > $3
                       AND NOT EXISTS (SELECT 1 FROM users u
                                       WHERE u.id = refresh_tokens.user_id
                                         AND u.suspended_at IS NOT NULL)
                     RETURNING user_id, family_id, session_started_at",
                )
                .bind(presented)
                .bind(now)
                .bind(started_by)
                .fetch_optional(&mut *tx)
                .await?
                .map(|(user_id, family_id, session_started_at)| {
                    (user_id, Family { family_id, session_started_at })
                });
                if let Some((user_id, family)) = spent {
                    insert_token(&mut *tx, user_id, Some(family), replacement, expires_at)
                        .await?;
                    tx.commit().await?;
                    return Ok(RefreshRotation::Rotated { user_id });
                }
                let refused: Option<(Uuid, bool, bool, bool)> = sqlx::query_as(
                    "SELECT t.family_id, t.used_at IS NOT NULL OR t.revoked_at IS NOT NULL,
                            t.session_started_at <= $2, u.suspended_at IS NOT NULL
                     FROM refresh_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_hash = $1",
                )
                .bind(presented)
                .bind(started_by)
                .fetch_optional(&mut *tx)
                .await?;
                let family_id = match refused {
                    Some((_, _, _, true)) => return Ok(RefreshRotation::Suspended),
                    Some((family_id, true, _, _)) => family_id,
                    Some((_, false, true, _)) => return Ok(RefreshRotation::SessionExpired),
                    _ => return Ok(RefreshRotation::Invalid),
                };
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2
                     WHERE family_id = $1 AND revoked_at IS NULL",
                )
                .bind(family_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(RefreshRotation::Reused)
            }

            async fn revoke_refresh_family(&self, token_hash: &[u8]) -> Result<()> {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2
                     WHERE revoked_at IS NULL
                       AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                )
                .bind(token_hash)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }
    };
}

impl_session_store!(SqliteStore);
impl_session_store!(PgStore);
