//! How a room's events reach every node. Embedded: straight into this process's rooms.
//! Scale-out (review S1): PUBLISH on the room's Redis channel, which every node with
//! sockets in the room subscribes to (this one included), and the replay history in a
//! Redis sorted set per room, trimmed by age and length and expiring with the room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use onair_infra::{InfraError, RedisBus, RedisPool};
use onair_store::ChatSettings;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rooms::{Frame, RoomEvent, RoomLimits, Rooms};

const TOPIC_PREFIX: &str = "onair:chat:";

fn topic(room: Uuid) -> String {
    format!("{TOPIC_PREFIX}{room}")
}

fn history_key(room: Uuid) -> String {
    format!("{TOPIC_PREFIX}{room}:history")
}

/// A room event as it crosses Redis, with when the sending node received it.
#[derive(Serialize, Deserialize)]
struct Wire {
    received_ms: i64,
    #[serde(flatten)]
    event: Envelope,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Envelope {
    Frame {
        frame: String,
    },
    Restrict {
        user: Uuid,
        until: Option<DateTime<Utc>>,
        frame: String,
    },
    Unrestrict {
        user: Uuid,
        frame: String,
    },
    Settings {
        slow_mode_secs: i32,
        followers_only_minutes: Option<i32>,
        frame: String,
    },
}

impl From<&RoomEvent> for Envelope {
    fn from(event: &RoomEvent) -> Self {
        let frame = event.frame().as_str().to_owned();
        match event {
            RoomEvent::Frame(_) => Self::Frame { frame },
            RoomEvent::Restrict { user, until, .. } => Self::Restrict {
                user: *user,
                until: *until,
                frame,
            },
            RoomEvent::Unrestrict { user, .. } => Self::Unrestrict { user: *user, frame },
            RoomEvent::Settings { settings, .. } => Self::Settings {
                slow_mode_secs: settings.slow_mode_secs,
                followers_only_minutes: settings.followers_only_minutes,
                frame,
            },
        }
    }
}

impl From<Envelope> for RoomEvent {
    fn from(envelope: Envelope) -> Self {
        match envelope {
            Envelope::Frame { frame } => Self::Frame(Frame::from(frame)),
            Envelope::Restrict { user, until, frame } => Self::Restrict {
                user,
                until,
                frame: Frame::from(frame),
            },
            Envelope::Unrestrict { user, frame } => Self::Unrestrict {
                user,
                frame: Frame::from(frame),
            },
            Envelope::Settings {
                slow_mode_secs,
                followers_only_minutes,
                frame,
            } => Self::Settings {
                settings: ChatSettings {
                    slow_mode_secs,
                    followers_only_minutes,
                },
                frame: Frame::from(frame),
            },
        }
    }
}

pub struct RedisChat {
    bus: RedisBus,
    pool: RedisPool,
    limits: RoomLimits,
}

impl RedisChat {
    /// Subscribes this node's rooms to Redis: whatever arrives on a room's channel is
    /// delivered to the room's local sockets.
    pub fn start(
        url: &str,
        pool: RedisPool,
        rooms: Arc<Rooms>,
        limits: RoomLimits,
    ) -> Result<Self, InfraError> {
        let deliver = move |channel: &str, payload: &[u8]| {
            let room = channel
                .strip_prefix(TOPIC_PREFIX)
                .and_then(|r| Uuid::try_parse(r).ok());
            match (room, serde_json::from_slice::<Wire>(payload)) {
                (Some(room), Ok(wire)) => {
                    let in_flight = u64::try_from(now_ms() - wire.received_ms).unwrap_or(0);
                    let received = Instant::now()
                        .checked_sub(Duration::from_millis(in_flight))
                        .unwrap_or_else(Instant::now);
                    if let Err(busy) = rooms.publish(room, wire.event.into(), None, received) {
                        tracing::warn!(%room, %busy, "dropped a chat event from the bus");
                    }
                }
                _ => tracing::warn!(channel, "dropped an unreadable chat bus message"),
            }
        };
        let bus = RedisBus::start(url, pool.clone(), Arc::new(deliver))?;
        Ok(Self { bus, pool, limits })
    }

    pub async fn joined(&self, room: Uuid) -> Result<Vec<Frame>, InfraError> {
        self.bus.subscribe(&topic(room)).await?;
        let oldest = now_ms() - millis(self.limits.history_age);
        let frames: Vec<String> = self
            .pool
            .get()
            .zrangebyscore(history_key(room), oldest, "+inf")
            .await?;
        Ok(frames.into_iter().map(Frame::from).collect())
    }

    pub async fn left(&self, room: Uuid) -> Result<(), InfraError> {
        self.bus.unsubscribe(&topic(room)).await
    }

    /// Publishes `event` to the room on every node; `keep` also adds it to the room's
    /// history, in the same round trip.
    pub async fn publish(
        &self,
        room: Uuid,
        event: &RoomEvent,
        keep: bool,
    ) -> Result<(), InfraError> {
        let mut history = redis::pipe();
        if keep {
            let key = history_key(room);
            let now = now_ms();
            let len = isize::try_from(self.limits.history_len).unwrap_or(isize::MAX);
            history.zadd(&key, event.frame().as_str(), now).ignore();
            history
                .zrembyscore(&key, "-inf", now - millis(self.limits.history_age))
                .ignore();
            history.zremrangebyrank(&key, 0, -(len + 1)).ignore();
            history
                .pexpire(&key, millis(self.limits.history_age))
                .ignore();
        }
        let wire = Wire {
            received_ms: now_ms(),
            event: Envelope::from(event),
        };
        let payload = serde_json::to_vec(&wire).expect("envelopes serialize");
        self.bus
            .publish_after(history, &topic(room), &payload)
            .await
    }

    /// Removes a deleted message from the room's history.
    pub async fn forget(&self, room: Uuid, message_id: Uuid) -> Result<(), InfraError> {
        let key = history_key(room);
        let mut connection = self.pool.get();
        let frames: Vec<String> = connection.zrange(&key, 0, -1).await?;
        let marker = format!("\"id\":\"{message_id}\"");
        if let Some(frame) = frames.into_iter().find(|f| f.contains(&marker)) {
            let _: i64 = connection.zrem(&key, frame).await?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
