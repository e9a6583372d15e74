//! A logged-in user on a chat socket, and what the room's rules let them do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_store::{ChatSettings, ChatStanding};
use uuid::Uuid;

use super::frame::Frame;
use super::protocol::{ChatUser, Role, ServerFrame};

/// A logged-in user on this socket, and what they may do in this room.
pub struct Member {
    pub user: ChatUser,
    pub standing: ChatStanding,
    /// When the token the user logged in with expires: the socket closes then (4001)
    /// unless an `auth` frame with a fresher token moved it.
    pub expires: tokio::time::Instant,
}

impl Member {
    pub fn new(user: ChatUser, standing: ChatStanding, expires_in: Duration) -> Self {
        Self {
            user,
            standing,
            expires: tokio::time::Instant::now() + expires_in,
        }
    }
}

impl Member {
    /// What this user is in `room`, as their standing was last read.
    pub fn role(&self, room: Uuid) -> Role {
        if room == self.user.id {
            Role::Owner
        } else if self.standing.is_moderator {
            Role::Moderator
        } else {
            Role::Viewer
        }
    }

    /// When this user's timeout ends, if it has not yet.
    pub fn timed_out_until(&self) -> Option<DateTime<Utc>> {
        self.standing
            .timed_out_until
            .map(|until| until.get())
            .filter(|until| *until > Utc::now())
    }

    /// The room's rules for this user: bans, timeouts and followers-only; then the slow
    /// mode interval that applies to them, which the service enforces across sockets
    /// (neither followers-only nor slow mode binds the owner and moderators).
    pub fn may_say(&self, room: Uuid, settings: ChatSettings) -> Result<Duration, Frame> {
        let refuse = |code, message: &str, wait: Option<Duration>| {
            Err(ServerFrame::Error {
                code,
                message: message.to_owned(),
                retry_after_ms: wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
            }
            .encode())
        };
        if self.standing.banned {
            return refuse("banned", "you are banned from this chat", None);
        }
        if let Some(until) = self.standing.timed_out_until
            && let Ok(left) = (until.get() - Utc::now()).to_std()
        {
            return refuse("timed_out", "you are timed out", Some(left));
        }
        if self.role(room) != Role::Viewer {
            return Ok(Duration::ZERO);
        }
        if let Some(minutes) = settings.followers_only_minutes {
            let needed = chrono::Duration::minutes(i64::from(minutes));
            if self
                .standing
                .followed_at
                .is_none_or(|at| Utc::now() - at.get() < needed)
            {
                return refuse(
                    "followers_only",
                    &format!("followers of at least {minutes} minutes only"),
                    None,
                );
            }
        }
        Ok(Duration::from_secs(
            u64::try_from(settings.slow_mode_secs).unwrap_or(0),
        ))
    }
}
