//! A logged-in user on a chat socket, and what the room's rules let them do.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use onair_store::{ChatSettings, ChatStanding};
use uuid::Uuid;

use super::frame::Frame;
use super::protocol::{ChatUser, Role, ServerFrame};

/// A logged-in user on this socket, and what they may do in this room.
pub struct Member {
    pub user: ChatUser,
    pub standing: ChatStanding,
    /// When this user last sent a message on this socket (slow mode).
    pub last_sent: Option<Instant>,
}

impl Member {
    pub fn new(user: ChatUser, standing: ChatStanding) -> Self {
        Self {
            user,
            standing,
            last_sent: None,
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

    /// The room's rules for this user: bans, timeouts, followers-only and slow mode (the
    /// last two do not bind the owner and moderators).
    pub fn may_say(&self, room: Uuid, settings: ChatSettings) -> Result<(), Frame> {
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
            return Ok(());
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
        let slow = Duration::from_secs(u64::try_from(settings.slow_mode_secs).unwrap_or(0));
        let since_last = self.last_sent.map(|last| last.elapsed());
        if let Some(since_last) = since_last
            && since_last < slow
        {
            return refuse("slow_mode", "slow mode is on", Some(slow - since_last));
        }
        Ok(())
    }
}
