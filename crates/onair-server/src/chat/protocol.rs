//! The chat wire protocol: JSON text frames with a `type` field.
//!
//! Client → server: `auth`, `message`, `ping`, and for moderators `delete`, `timeout`,
//! `ban`, `unban`. Server → client: `welcome`, `authenticated`, `message`, `error`, `pong`,
//! `message_deleted`, `user_timed_out`, `user_banned`, `user_unbanned`, `settings`, `tip` (see
//! the README's chat section for examples). A logged-in socket closes with 4001 when its
//! token expires; an `auth` frame with a fresher token moves that deadline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::frame::Frame;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Log in on an open socket (instead of `?access_token=` on the URL).
    Auth {
        token: String,
    },
    Message {
        text: String,
    },
    Ping,
    /// Moderators: remove a message for everyone.
    Delete {
        message_id: Uuid,
    },
    /// Moderators: mute a user for 1 s to 14 days.
    Timeout {
        user_id: Uuid,
        seconds: u32,
    },
    /// Moderators: remove a user from the chat until unbanned.
    Ban {
        user_id: Uuid,
        reason: Option<String>,
    },
    Unban {
        user_id: Uuid,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatUser {
    pub id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
}

/// What a logged-in user is in a room: the owner and moderators may moderate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Moderator,
    Viewer,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// First frame on every socket; the room's recent messages follow it. `user`, `role`
    /// and `timed_out_until` are null on an anonymous socket.
    Welcome {
        room: Uuid,
        user: Option<&'a ChatUser>,
        role: Option<Role>,
        /// When the user's timeout ends, if they are timed out now.
        timed_out_until: Option<DateTime<Utc>>,
        history: usize,
    },
    Authenticated {
        user: &'a ChatUser,
        role: Role,
        timed_out_until: Option<DateTime<Utc>>,
    },
    Message {
        id: Uuid,
        room: Uuid,
        user: &'a ChatUser,
        text: &'a str,
        sent_at: DateTime<Utc>,
    },
    /// Something this socket sent was refused; the socket stays open.
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong,
    MessageDeleted {
        id: Uuid,
    },
    UserTimedOut {
        user_id: Uuid,
        until: DateTime<Utc>,
    },
    UserBanned {
        user_id: Uuid,
    },
    UserUnbanned {
        user_id: Uuid,
    },
    /// A tip to the channel was paid (Stripe confirmed it); replayed like a message.
    Tip {
        id: Uuid,
        room: Uuid,
        user: &'a ChatUser,
        /// Minor units of `currency`.
        amount: i64,
        currency: &'a str,
        message: Option<&'a str>,
        sent_at: DateTime<Utc>,
    },
    /// The room's modes changed.
    Settings {
        slow_mode_secs: i32,
        followers_only_minutes: Option<i32>,
    },
    /// The channel changed (its broadcast went live, offline or ended, was retitled, or
    /// the profile was edited): a page showing it reads it again.
    ChannelChanged,
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> Frame {
        Frame::from(serde_json::to_string(self).expect("frames always serialize"))
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Frame {
        ServerFrame::Error {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
        .encode()
    }
}
