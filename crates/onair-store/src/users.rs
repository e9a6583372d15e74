//! Accounts: signup, the login lookup, public profiles.

use async_trait::async_trait;
use onair_core::{AvatarUrl, Bio, DisplayName, Email, Username};
use sqlx::Executor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sessions;
use crate::sql::{Bind, Db, Row};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

/// Holds the user's row until the transaction ends. A user's capped registrations
/// (webhooks, push subscriptions) take it first: two at once cannot both count one
/// under the cap and both insert.
pub(crate) async fn lock_user<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    user_id: Uuid,
) -> Result<()>
where
    Uuid: Bind<DB>,
{
    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
        .bind(user_id)
        .execute(exec)
        .await?;
    Ok(())
}

/// `Suspended` when the user's account is suspended, `NotFound` when there is no such
/// user. A write only an active account may make (going live) checks it in its
/// transaction.
pub(crate) async fn ensure_active<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    user_id: Uuid,
) -> Result<()>
where
    Uuid: Bind<DB>,
    (bool,): Row<DB>,
{
    let suspended: Option<(bool,)> =
        sqlx::query_as("SELECT suspended_at IS NOT NULL FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(exec)
            .await?;
    match suspended.map(|(s,)| s) {
        None => Err(StoreError::NotFound),
        Some(true) => Err(StoreError::Suspended),
        Some(false) => Ok(()),
    }
}

/// Inserts `user`'s row (no session). Signup and `onair admin create` call it in their
/// transaction.
pub(crate) async fn insert_user_row<'e, DB: Db>(
    exec: impl Executor<'e, Database = DB>,
    user: &NewUser,
) -> Result<()>
where
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    for<'s> &'s str: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(user.id)
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(user.password_hash.as_str())
    .bind(user.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict::Username` / `Conflict::Email` when taken.
    async fn create_user(&self, user: NewUser) -> Result<UserProfile>;
    /// Signup: the user and the first refresh token of its first login (a new session
    /// family), in one transaction, so neither is stored without the other. Fails like
    /// [`UserStore::create_user`].
    async fn create_user_with_session(
        &self,
        user: NewUser,
        refresh_token_hash: &[u8],
        expires_at: Timestamp,
    ) -> Result<UserProfile>;
    /// Looks a login up by username or email.
    async fn credentials(&self, login: &str) -> Result<Option<Credentials>>;
    async fn profile(&self, id: Uuid) -> Result<Option<UserProfile>>;
    async fn profile_by_username(&self, username: &Username) -> Result<Option<UserProfile>>;
    async fn update_profile(&self, id: Uuid, patch: ProfilePatch) -> Result<UserProfile>;
}

pub struct NewUser {
    pub id: Uuid,
    pub username: Username,
    pub email: Email,
    /// PHC string (argon2id); the store never sees a password.
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// What login needs to verify a password, and whether the account may log in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: Uuid,
    pub password_hash: String,
    pub suspended: bool,
}

/// Everything public about a user (serializable for the caches).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct UserProfile {
    pub id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub follower_count: i64,
    pub following_count: i64,
    /// The broadcast that is live now, if any.
    pub live_stream_id: Option<Uuid>,
    /// Whether the user's broadcasts are recorded (a setting only its owner sees).
    pub record_broadcasts: bool,
    pub created_at: Timestamp,
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<Option<DisplayName>>,
    pub bio: Option<Bio>,
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub record_broadcasts: Option<bool>,
}

/// The profile of the user matching `$condition` (on `u`, taking `$1`).
macro_rules! profile_where {
    ($condition:literal) => {
        concat!(
            "SELECT u.id, u.username, u.display_name, u.bio, u.avatar_url,
                    u.follower_count, u.following_count, s.id AS live_stream_id,
                    u.record_broadcasts, u.created_at
             FROM users u
             LEFT JOIN streams s ON s.user_id = u.id AND s.status IN ('live', 'offline')
             WHERE ",
            $condition
        )
    };
}

const PROFILE: &str = profile_where!("u.id = $1");
/// Usernames are stored lower-case ([`Username`]), so an exact match is case-insensitive.
const PROFILE_BY_USERNAME: &str = profile_where!("u.username = $1");

macro_rules! impl_user_store {
    ($store:ty) => {
        impl $store {
            /// Inserts `user` and, when given, the first refresh token of its session
            /// (hash, expiry); returns the new profile. One transaction.
            async fn insert_user(
                &self,
                user: NewUser,
                session: Option<(&[u8], Timestamp)>,
            ) -> Result<UserProfile> {
                let mut tx = self.writer().begin().await?;
                insert_user_row(&mut *tx, &user).await?;
                if let Some((token_hash, expires_at)) = session {
                    sessions::insert_token(&mut *tx, user.id, None, token_hash, expires_at).await?;
                }
                let profile = sqlx::query_as(PROFILE)
                    .bind(user.id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(profile)
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, user: NewUser) -> Result<UserProfile> {
                self.insert_user(user, None).await
            }

            async fn create_user_with_session(
                &self,
                user: NewUser,
                refresh_token_hash: &[u8],
                expires_at: Timestamp,
            ) -> Result<UserProfile> {
                self.insert_user(user, Some((refresh_token_hash, expires_at)))
                    .await
            }

            async fn credentials(&self, login: &str) -> Result<Option<Credentials>> {
                sqlx::query_as(
                    "SELECT id, password_hash, suspended_at IS NOT NULL AS suspended
                     FROM users WHERE username = $1 OR email = $1",
                )
                .bind(login)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn profile(&self, id: Uuid) -> Result<Option<UserProfile>> {
                sqlx::query_as(PROFILE)
                    .bind(id)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(Into::into)
            }

            async fn profile_by_username(
                &self,
                username: &Username,
            ) -> Result<Option<UserProfile>> {
                sqlx::query_as(PROFILE_BY_USERNAME)
                    .bind(username.as_str())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(Into::into)
            }

            async fn update_profile(&self, id: Uuid, patch: ProfilePatch) -> Result<UserProfile> {
                let display_name = patch
                    .display_name
                    .as_ref()
                    .map(|d| d.as_ref().map(|d| d.as_str()));
                let avatar_url = patch
                    .avatar_url
                    .as_ref()
                    .map(|a| a.as_ref().map(|a| a.as_str()));
                let updated = sqlx::query(
                    "UPDATE users SET
                        display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
                        bio = COALESCE($4, bio),
                        avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END,
                        record_broadcasts = COALESCE($8, record_broadcasts),
                        updated_at = $7
                     WHERE id = $1",
                )
                .bind(id)
                .bind(display_name.is_some())
                .bind(display_name.flatten())
                .bind(patch.bio.as_ref().map(|b| b.as_str()))
                .bind(avatar_url.is_some())
                .bind(avatar_url.flatten())
                .bind(Timestamp::now())
                .bind(patch.record_broadcasts)
                .execute(self.writer())
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query_as(PROFILE)
                    .bind(id)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Into::into)
            }
        }
    };
}

impl_user_store!(SqliteStore);
impl_user_store!(PgStore);
