//! Shapes shared by several domains' responses and requests: how a user appears (whole
//! profile, or a summary inside lists) and clearable fields. At the bottom of the crate.

use chrono::{DateTime, Utc};
use onair_core::ValidationError;
use onair_store::{StreamOwner, TipSender, UserProfile, UserSummary};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileDto {
    id: Uuid,
    username: String,
    display_name: Option<String>,
    bio: String,
    avatar_url: Option<String>,
    follower_count: i64,
    following_count: i64,
    /// Whether the user is broadcasting now.
    is_live: bool,
    live_stream_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    /// Whether the caller follows this user (present only for logged-in callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    followed_by_you: Option<bool>,
    /// Whether the user's broadcasts are recorded (only in the caller's own profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    record_broadcasts: Option<bool>,
}

impl ProfileDto {
    pub fn new(profile: UserProfile, followed_by_you: Option<bool>) -> Self {
        Self {
            id: profile.id,
            username: profile.username,
            display_name: profile.display_name,
            bio: profile.bio,
            avatar_url: profile.avatar_url,
            follower_count: profile.follower_count,
            following_count: profile.following_count,
            is_live: profile.live_stream_id.is_some(),
            live_stream_id: profile.live_stream_id,
            created_at: profile.created_at.get(),
            followed_by_you,
            record_broadcasts: None,
        }
    }

    /// The caller's own profile, with their settings.
    pub fn own(profile: UserProfile) -> Self {
        let record_broadcasts = Some(profile.record_broadcasts);
        Self {
            record_broadcasts,
            ..Self::new(profile, None)
        }
    }
}

/// How another user appears inside a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummaryDto {
    id: Uuid,
    username: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
}

impl From<StreamOwner> for UserSummaryDto {
    fn from(owner: StreamOwner) -> Self {
        Self {
            id: owner.id,
            username: owner.username,
            display_name: owner.display_name,
            avatar_url: owner.avatar_url,
        }
    }
}

impl From<TipSender> for UserSummaryDto {
    fn from(sender: TipSender) -> Self {
        Self {
            id: sender.id,
            username: sender.username,
            display_name: sender.display_name,
            avatar_url: sender.avatar_url,
        }
    }
}

impl From<UserSummary> for UserSummaryDto {
    fn from(user: UserSummary) -> Self {
        Self {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            avatar_url: user.avatar_url,
        }
    }
}

/// Distinguishes an absent field (leave as is) from `null` (clear it).
pub fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Parses a field that may be absent (`None`), cleared (`Some(None)`) or set.
pub fn parse_clearable<T>(
    field: Option<Option<String>>,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<Option<Option<T>>, ValidationError> {
    field
        .map(|v| v.as_deref().map(parse).transpose())
        .transpose()
}
