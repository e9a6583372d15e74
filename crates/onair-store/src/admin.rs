//! Operators: the admin flag, suspensions, and the audit log of every admin action
//! (append-only: triggers refuse to change or delete its rows). Each action commits in
//! one transaction with its audit entry, so the log never misses an action nor records
//! one that did not happen. Ending a broadcast goes through `streams` (its archive and
//! webhooks are enqueued with it), reviving a job through `jobs`.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

use crate::error::{Conflict, StoreError};
use crate::jobs;
use crate::postgres::PgStore;
use crate::sql::{Bind, Db, keyset};
use crate::sqlite::SqliteStore;
use crate::streams::Active;
use crate::timestamp::Timestamp;
use crate::users::{self, NewUser};

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// The user's admin flag and suspension; `None` when there is no such user.
    async fn account_status(&self, user_id: Uuid) -> Result<Option<AccountStatus>>;
    /// Creates `user` as an admin. Fails like [`crate::UserStore::create_user`].
    async fn create_admin(&self, actor: Actor, user: NewUser) -> Result<()>;
    /// Grants (`admin`) or revokes the admin flag; false when it already was so (then
    /// nothing is recorded). `NotFound` when there is no such user.
    async fn set_admin(&self, actor: Actor, user_id: Uuid, admin: bool) -> Result<bool>;
    /// Suspends the account: marks it, revokes every refresh token it holds and ends its
    /// active broadcast. `NotFound`, or `Conflict::AlreadySuspended`.
    async fn suspend_user(
        &self,
        actor: Actor,
        user_id: Uuid,
        reason: Option<&str>,
    ) -> Result<Suspension>;
    /// Lifts a suspension. `NotFound`, or `Conflict::NotSuspended`.
    async fn unsuspend_user(&self, actor: Actor, user_id: Uuid) -> Result<()>;
    /// Ends broadcast `stream_id` if it is active (live or offline); returns its owner.
    /// `NotFound` when it is not active (or does not exist).
    async fn end_broadcast(
        &self,
        actor: Actor,
        stream_id: Uuid,
        reason: Option<&str>,
    ) -> Result<Uuid>;
    /// Queues a dead job again (as [`crate::JobStore::revive_job`]); false if there is
    /// no such dead job (then nothing is recorded).
    async fn revive_dead_job(&self, actor: Actor, job_id: Uuid) -> Result<bool>;
    /// The audit log, newest first.
    async fn audit_log(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<AuditEntry>>;
}

/// Who performs an admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The `onair admin` command, run by whoever can reach the database.
    Cli,
    /// An admin through the API.
    Admin(Uuid),
}

impl Actor {
    fn id(self) -> Option<Uuid> {
        match self {
            Self::Cli => None,
            Self::Admin(id) => Some(id),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Admin(_) => "api",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountStatus {
    pub is_admin: bool,
    pub suspended_at: Option<Timestamp>,
}

/// What a suspension did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// Logins whose refresh token was revoked.
    pub revoked_sessions: u64,
    /// The broadcast that was ended (its owner's active one).
    pub ended_stream: Option<Uuid>,
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    /// The admin who acted; `None` for the command line.
    pub actor_id: Option<Uuid>,
    /// `api` or `cli`.
    pub actor: String,
    /// `user.suspend`, `user.unsuspend`, `user.grant_admin`, `user.revoke_admin`,
    /// `user.create_admin`, `stream.end`, `job.revive`.
    pub action: String,
    /// `user`, `stream` or `job`.
    pub target_kind: String,
    pub target_id: Uuid,
    /// A JSON object: the reason given, what the action changed.
    pub details: String,
    pub created_at: Timestamp,
}

impl AuditEntry {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

/// Appends the audit entry of `action` on `target` (kind, id) by `actor`, in the
/// action's transaction.
async fn audit<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    actor: Actor,
    action: &str,
    (target_kind, target_id): (&str, Uuid),
    details: serde_json::Value,
) -> Result<()>
where
    Uuid: Bind<DB>,
    Option<Uuid>: Bind<DB>,
    Timestamp: Bind<DB>,
    String: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO admin_audit (id, actor_id, actor, action, target_kind, target_id, details,
                                  created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.id())
    .bind(actor.label().to_owned())
    .bind(action.to_owned())
    .bind(target_kind.to_owned())
    .bind(target_id)
    .bind(details.to_string())
    .bind(Timestamp::now())
    .execute(exec)
    .await?;
    Ok(())
}

macro_rules! impl_admin_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// After an update of user `user_id` changed nothing: `NotFound` when there is
            /// no such user, else `otherwise`.
            async fn user_unchanged<T>(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: Uuid,
                otherwise: Result<T>,
            ) -> Result<T> {
                let exists: Option<(bool,)> = sqlx::query_as("SELECT TRUE FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                match exists {
                    Some(_) => otherwise,
                    None => Err(StoreError::NotFound),
                }
            }
        }

        #[async_trait]
        impl AdminStore for $store {
            async fn account_status(&self, user_id: Uuid) -> Result<Option<AccountStatus>> {
                sqlx::query_as("SELECT is_admin, suspended_at FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn create_admin(&self, actor: Actor, user: NewUser) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                users::insert_user_row(&mut *tx, &user).await?;
                sqlx::query("UPDATE users SET is_admin = TRUE WHERE id = $1")
                    .bind(user.id)
                    .execute(&mut *tx)
                    .await?;
                let details = json!({ "username": user.username.as_str() });
                audit(&mut *tx, actor, "user.create_admin", ("user", user.id), details).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_admin(&self, actor: Actor, user_id: Uuid, admin: bool) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let changed = sqlx::query(
                    "UPDATE users SET is_admin = $2, updated_at = $3
                     WHERE id = $1 AND is_admin <> $2",
                )
                .bind(user_id)
                .bind(admin)
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() == 0 {
                    return Self::user_unchanged(&mut tx, user_id, Ok(false)).await;
                }
                let action = if admin { "user.grant_admin" } else { "user.revoke_admin" };
                audit(&mut *tx, actor, action, ("user", user_id), json!({})).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn suspend_user(
                &self,
                actor: Actor,
                user_id: Uuid,
                reason: Option<&str>,
            ) -> Result<Suspension> {
                let now = Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let marked = sqlx::query(
                    "UPDATE users SET suspended_at = $2, updated_at = $2
                     WHERE id = $1 AND suspended_at IS NULL",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if marked.rows_affected() == 0 {
                    let already = Err(StoreError::Conflict(Conflict::AlreadySuspended));
                    return Self::user_unchanged(&mut tx, user_id, already).await;
                }
                // Spent and expired tokens refresh nothing already: one live token per login.
                let revoked = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2
                     WHERE user_id = $1 AND revoked_at IS NULL AND used_at IS NULL
                       AND expires_at > $2",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let ended = Self::end_active(&mut tx, Active::OfUser(user_id)).await?;
                let suspension = Suspension {
                    revoked_sessions: revoked.rows_affected(),
                    ended_stream: ended.map(|(stream_id, _)| stream_id),
                };
                let details = json!({
                    "reason": reason,
                    "revoked_sessions": suspension.revoked_sessions,
                    "ended_stream": suspension.ended_stream,
                });
                audit(&mut *tx, actor, "user.suspend", ("user", user_id), details).await?;
                tx.commit().await?;
                Ok(suspension)
            }

            async fn unsuspend_user(&self, actor: Actor, user_id: Uuid) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                let lifted = sqlx::query(
                    "UPDATE users SET suspended_at = NULL, updated_at = $2
                     WHERE id = $1 AND suspended_at IS NOT NULL",
                )
                .bind(user_id)
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
                if lifted.rows_affected() == 0 {
                    let not = Err(StoreError::Conflict(Conflict::NotSuspended));
                    return Self::user_unchanged(&mut tx, user_id, not).await;
                }
                audit(&mut *tx, actor, "user.unsuspend", ("user", user_id), json!({})).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn end_broadcast(
                &self,
                actor: Actor,
                stream_id: Uuid,
                reason: Option<&str>,
            ) -> Result<Uuid> {
                let mut tx = self.writer().begin().await?;
                let (_, owner) = Self::end_active(&mut tx, Active::Stream(stream_id))
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let details = json!({ "reason": reason, "owner": owner });
                audit(&mut *tx, actor, "stream.end", ("stream", stream_id), details).await?;
                tx.commit().await?;
                Ok(owner)
            }

            async fn revive_dead_job(&self, actor: Actor, job_id: Uuid) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                if !jobs::revive(&mut *tx, job_id).await? {
                    return Ok(false);
                }
                audit(&mut *tx, actor, "job.revive", ("job", job_id), json!({})).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn audit_log(
                &self,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<AuditEntry>> {
                let (at, id) = keyset(after)?;
                let rows = sqlx::query_as(
                    "SELECT id, actor_id, actor, action, target_kind, target_id, details, created_at
                     FROM admin_audit WHERE (created_at, id) < ($1, $2)
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(at)
                .bind(id)
                .bind(limit.fetch())
                // The primary: an admin reads the log right after acting, and rarely.
                .fetch_all(self.writer())
                .await?;
                Ok(Page::from_rows(rows, limit, AuditEntry::cursor))
            }
        }
    };
}

impl_admin_store!(SqliteStore, sqlx::Sqlite);
impl_admin_store!(PgStore, sqlx::Postgres);
