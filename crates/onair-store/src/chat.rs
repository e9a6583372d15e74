//! Chat moderation: moderators, bans and timeouts, a channel's chat modes, and the
//! moderation log. (Messages themselves are not stored.)

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use uuid::Uuid;

use crate::error::StoreError;
use crate::follows::UserSummary;
use crate::postgres::PgStore;
use crate::sql::{Toggle, keyset, keyset_page};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Appoints (`true`) or removes a moderator; returns whether anything changed.
    async fn set_moderator(&self, channel: Uuid, user: Uuid, moderator: bool) -> Result<bool>;
    async fn chat_standing(&self, channel: Uuid, user: Uuid) -> Result<ChatStanding>;
    /// The channel's moderators, latest appointed first.
    async fn moderators(
        &self,
        channel: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Moderator>>;
    /// Bans or times out (replacing any earlier ban of that user in that channel).
    async fn put_ban(&self, ban: NewBan) -> Result<()>;
    /// Lifts a ban or timeout; returns whether there was one.
    async fn lift_ban(&self, channel: Uuid, user: Uuid) -> Result<bool>;
    /// Who may not talk in the channel now: bans, and timeouts not over yet; latest first.
    async fn active_bans(
        &self,
        channel: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ActiveBan>>;
    async fn chat_settings(&self, channel: Uuid) -> Result<ChatSettings>;
    async fn put_chat_settings(&self, channel: Uuid, settings: ChatSettings) -> Result<()>;
    async fn log_moderation(&self, entry: &ModerationEntry) -> Result<()>;
    /// The channel's moderation log, newest first.
    async fn moderation_log(
        &self,
        channel: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ModerationEntry>>;
}

/// Where a user stands in a channel's chat, read once when they join or log in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatStanding {
    pub is_moderator: bool,
    /// Banned until lifted.
    pub banned: bool,
    /// Timed out until then (only when still in the future).
    pub timed_out_until: Option<Timestamp>,
    /// When the user started following the channel.
    pub followed_at: Option<Timestamp>,
}

/// A channel's chat modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatSettings {
    /// Minimum seconds between two messages of a user (0: off).
    pub slow_mode_secs: i32,
    /// Only followers may talk; followed for at least this many minutes (None: off).
    pub followers_only_minutes: Option<i32>,
}

/// A ban (`expires_at` None) or a timeout.
#[derive(Debug, Clone)]
pub struct NewBan {
    pub channel_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub created_by: Uuid,
}

/// A moderator of a channel.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Moderator {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub appointed_at: Timestamp,
}

impl Moderator {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.appointed_at.get(), self.user.id)
    }
}

/// A ban (`expires_at` None) or a timeout that is not over.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ActiveBan {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub expires_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

impl ActiveBan {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.user.id)
    }
}

/// One moderator action, as the channel owner reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModerationEntry {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub moderator_id: Uuid,
    /// `delete`, `timeout`, `ban`, `unban`, `settings`, `add_moderator`, `remove_moderator`.
    pub action: String,
    pub target_user_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub details: Option<String>,
    pub created_at: Timestamp,
}

impl ModerationEntry {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

const MODERATOR: Toggle = Toggle {
    insert: "INSERT INTO channel_moderators (channel_id, user_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
    delete: "DELETE FROM channel_moderators WHERE channel_id = $1 AND user_id = $2",
};

macro_rules! impl_chat_store {
    ($store:ty) => {
        #[async_trait]
        impl ChatStore for $store {
            async fn set_moderator(
                &self,
                channel: Uuid,
                user: Uuid,
                moderator: bool,
            ) -> Result<bool> {
                MODERATOR.set(self.writer(), (channel, user), moderator).await
            }

            async fn chat_standing(&self, channel: Uuid, user: Uuid) -> Result<ChatStanding> {
                sqlx::query_as(
                    "SELECT
                        EXISTS (SELECT 1 FROM channel_moderators
                                WHERE channel_id = $1 AND user_id = $2) AS is_moderator,
                        EXISTS (SELECT 1 FROM channel_bans
                                WHERE channel_id = $1 AND user_id = $2 AND expires_at IS NULL) AS banned,
                        (SELECT expires_at FROM channel_bans
                         WHERE channel_id = $1 AND user_id = $2 AND expires_at > $3) AS timed_out_until,
                        (SELECT created_at FROM follows
                         WHERE follower_id = $2 AND following_id = $1) AS followed_at",
                )
                .bind(channel)
                .bind(user)
                .bind(Timestamp::now())
                .fetch_one(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn moderators(
                &self,
                channel: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Moderator>> {
                let sql = "SELECT u.id, u.username, u.display_name, u.avatar_url,
                                  m.created_at AS appointed_at
                           FROM channel_moderators m JOIN users u ON u.id = m.user_id
                           WHERE m.channel_id = $1 AND (m.created_at, m.user_id) < ($2, $3)
                           ORDER BY m.created_at DESC, m.user_id DESC LIMIT $4";
                // The primary: the owner sees an appointment they just made.
                keyset_page(self.writer(), sql.to_owned(), channel, limit, after, Moderator::cursor)
                    .await
            }

            async fn put_ban(&self, ban: NewBan) -> Result<()> {
                sqlx::query(
                    "INSERT INTO channel_bans (channel_id, user_id, expires_at, reason, created_by, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (channel_id, user_id) DO UPDATE SET expires_at = excluded.expires_at,
                        reason = excluded.reason, created_by = excluded.created_by,
                        created_at = excluded.created_at",
                )
                .bind(ban.channel_id)
                .bind(ban.user_id)
                .bind(ban.expires_at)
                .bind(&ban.reason)
                .bind(ban.created_by)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn lift_ban(&self, channel: Uuid, user: Uuid) -> Result<bool> {
                let lifted =
                    sqlx::query("DELETE FROM channel_bans WHERE channel_id = $1 AND user_id = $2")
                        .bind(channel)
                        .bind(user)
                        .execute(self.writer())
                        .await?;
                Ok(lifted.rows_affected() == 1)
            }

            async fn active_bans(
                &self,
                channel: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<ActiveBan>> {
                let (at, id) = keyset(after)?;
                let rows = sqlx::query_as(
                    "SELECT u.id, u.username, u.display_name, u.avatar_url,
                            b.expires_at, b.reason, b.created_at
                     FROM channel_bans b JOIN users u ON u.id = b.user_id
                     WHERE b.channel_id = $1 AND (b.created_at, b.user_id) < ($2, $3)
                       AND (b.expires_at IS NULL OR b.expires_at > $5)
                     ORDER BY b.created_at DESC, b.user_id DESC LIMIT $4",
                )
                .bind(channel)
                .bind(at)
                .bind(id)
                .bind(limit.fetch())
                .bind(Timestamp::now())
                // The primary: a moderator sees a ban they just made.
                .fetch_all(self.writer())
                .await?;
                Ok(Page::from_rows(rows, limit, ActiveBan::cursor))
            }

            async fn chat_settings(&self, channel: Uuid) -> Result<ChatSettings> {
                let settings = sqlx::query_as(
                    "SELECT slow_mode_secs, followers_only_minutes FROM chat_settings
                     WHERE channel_id = $1",
                )
                .bind(channel)
                .fetch_optional(self.writer())
                .await?;
                Ok(settings.unwrap_or_default())
            }

            async fn put_chat_settings(&self, channel: Uuid, settings: ChatSettings) -> Result<()> {
                sqlx::query(
                    "INSERT INTO chat_settings (channel_id, slow_mode_secs, followers_only_minutes, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (channel_id) DO UPDATE SET slow_mode_secs = excluded.slow_mode_secs,
                        followers_only_minutes = excluded.followers_only_minutes,
                        updated_at = excluded.updated_at",
                )
                .bind(channel)
                .bind(settings.slow_mode_secs)
                .bind(settings.followers_only_minutes)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn log_moderation(&self, entry: &ModerationEntry) -> Result<()> {
                sqlx::query(
                    "INSERT INTO moderation_log (id, channel_id, moderator_id, action, target_user_id,
                                                 message_id, details, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(entry.id)
                .bind(entry.channel_id)
                .bind(entry.moderator_id)
                .bind(&entry.action)
                .bind(entry.target_user_id)
                .bind(entry.message_id)
                .bind(&entry.details)
                .bind(entry.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn moderation_log(
                &self,
                channel: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<ModerationEntry>> {
                let sql = "SELECT id, channel_id, moderator_id, action, target_user_id, message_id,
                                  details, created_at
                           FROM moderation_log WHERE channel_id = $1 AND (created_at, id) < ($2, $3)
                           ORDER BY created_at DESC, id DESC LIMIT $4";
                keyset_page(&mut *self.reader().await?, sql.to_owned(), channel, limit, after, ModerationEntry::cursor)
                    .await
            }
        }
    };
}

impl_chat_store!(SqliteStore);
impl_chat_store!(PgStore);
