//! Rows as the store returns them, and the inputs of writes. Inputs are built from the
//! validated newtypes of `onair-core`, so the store never checks shapes itself.

use onair_core::{
    AvatarUrl, Bio, Category, Cursor, DisplayName, Email, StreamStatus, StreamTitle, Username,
};
use uuid::Uuid;

use crate::Timestamp;

pub struct NewUser {
    pub id: Uuid,
    pub username: Username,
    pub email: Email,
    /// PHC string (argon2id); the store never sees a password.
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// What login needs to verify a password.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: Uuid,
    pub password_hash: String,
}

/// Everything public about a user.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    pub created_at: Timestamp,
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<Option<DisplayName>>,
    pub bio: Option<Bio>,
    pub avatar_url: Option<Option<AvatarUrl>>,
}

/// Result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was valid; it is now spent and the new one belongs to the same family.
    Rotated { user_id: Uuid },
    /// The token had already been spent or revoked: someone replayed it, so the whole
    /// family (every token descended from that login) has been revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// How a user appears inside lists (followers, stream owners).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// One row of a followers or following list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FollowEntry {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub followed_at: Timestamp,
}

impl FollowEntry {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.followed_at.get(), self.user.id)
    }
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
    #[sqlx(flatten)]
    pub owner: StreamOwner,
}

/// The owner columns of [`StreamView`] (prefixed in SQL so they cannot clash).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StreamOwner {
    #[sqlx(rename = "owner_id")]
    pub id: Uuid,
    #[sqlx(rename = "owner_username")]
    pub username: String,
    #[sqlx(rename = "owner_display_name")]
    pub display_name: Option<String>,
    #[sqlx(rename = "owner_avatar_url")]
    pub avatar_url: Option<String>,
}

impl StreamView {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.started_at.get(), self.id)
    }
}

/// One stream's counts for [`crate::StreamStore::record_viewer_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerCountUpdate {
    pub stream_id: uuid::Uuid,
    pub concurrent: i64,
    pub unique: i64,
}

#[derive(Debug, Default)]
pub struct StreamPatch {
    pub title: Option<StreamTitle>,
    pub category: Option<Option<Category>>,
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

    fn try_from(s: String) -> Result<Self, Self::Error> {
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
