//! The one row shape several domains join in: a broadcast's owner, shown with streams,
//! archives and notifications.

use uuid::Uuid;

/// The owner columns of a joined row (prefixed in SQL so they cannot clash).
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
