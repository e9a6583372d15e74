//! How a room's events reach every node. Embedded: straight into this process's rooms.
//! Scale-out (review S1): PUBLISH on the room's Redis channel, which every node with
//! sockets in the room subscribes to (this one included), and the replay history in a
//! Redis sorted set per room, trimmed by age and length and expiring with the room.
//! While Redis is away, events go straight to this node's sockets (chat continues
//! node-locally); fan-out across nodes resumes when Redis returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use onair_infra::{InfraError, RedisBus, RedisPool};
use onair_store::ChatSettings;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::frame::{Frame, encode};
use super::outbox::Outbox;
use super::protocol::ServerFrame;
use super::rooms::{RoomEvent, RoomLimits, Rooms};

const TOPIC_PREFIX: &str = "onair:chat:";

fn topic(room: Uuid) -> String {
    format!("{TOPIC_PREFIX}{room}")
}

fn history_key(room: Uuid) -> String {
    format!("{TOPIC_PREFIX}{room}:history")
}

/// A room event as it crosses Redis, with when the sending node received it and which
/// event of which node it is.
#[derive(Serialize, Deserialize)]
struct Wire {
    received_ms: i64,
    /// Absent from the events of nodes older than this field (a rolling upgrade).
    #[serde(default)]
    origin: EventId,
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

/// An event's identity: its node (random per process) and its number there.
#[derive(Serialize, Deserialize, Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
struct EventId {
    node: u64,
    seq: u64,
}

/// How long Redis may still echo an event this node delivered itself.
const ECHO_WINDOW: Duration = Duration::from_secs(60);

/// This node's events on their way through Redis. An event whose publish failed or found
/// no subscription listening is delivered to this node's sockets directly; but a publish
/// that timed out may still have reached Redis, and its echo may come before or after the
/// direct delivery. Whichever comes second is dropped, so a socket sees a message once.
struct Echoes {
    node: u64,
    next: AtomicU64,
    events: Mutex<HashMap<EventId, Passage>>,
}

enum Passage {
    /// Being published; the bus has not brought it back.
    InFlight,
    /// Delivered here directly at that time: its echo is to be dropped.
    DeliveredHere(Instant),
}

impl Echoes {
    fn new() -> Self {
        Self {
            node: rand::random(),
            next: AtomicU64::new(0),
            events: Mutex::default(),
        }
    }

    fn next_id(&self) -> EventId {
        EventId {
            node: self.node,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn events(&self) -> std::sync::MutexGuard<'_, HashMap<EventId, Passage>> {
        self.events.lock().expect("echoes lock")
    }

    fn publishing(&self, ids: impl Iterator<Item = EventId>) {
        self.events().extend(ids.map(|id| (id, Passage::InFlight)));
    }

    fn published(&self, ids: impl Iterator<Item = EventId>) {
        let mut events = self.events();
        for id in ids {
            events.remove(&id);
        }
    }

    /// Which of `ids` still need delivering here (their echo has not come): those are
    /// marked delivered.
    fn deliver_here(&self, ids: impl Iterator<Item = EventId>) -> Vec<bool> {
        let now = Instant::now();
        let mut events = self.events();
        events.retain(|_, passage| match passage {
            Passage::InFlight => true,
            Passage::DeliveredHere(at) => now.duration_since(*at) < ECHO_WINDOW,
        });
        ids.map(|id| match events.get_mut(&id) {
            Some(passage) => {
                *passage = Passage::DeliveredHere(now);
                true
            }
            None => false,
        })
        .collect()
    }

    /// Whether a bus event is the echo of one delivered here already (and so dropped).
    fn is_echo(&self, id: EventId) -> bool {
        id.node == self.node && matches!(self.events().remove(&id), Some(Passage::DeliveredHere(_)))
    }
}

/// Events waiting for the publisher before publishing is refused (Redis is too slow).
const PUBLISH_BACKLOG: usize = 4096;
/// Events the publisher sends to Redis in one round trip.
const PUBLISH_BATCH: usize = 256;

/// Publishing to Redis failed or is backed up.
#[derive(Debug, thiserror::Error)]
#[error("the chat bus is unavailable")]
pub struct BusUnavailable;

/// Who hears how a publish went.
pub enum Reply {
    /// The caller waits for the outcome.
    Wait(oneshot::Sender<Result<(), BusUnavailable>>),
    /// The caller goes on; a failure reaches this socket as an error frame.
    Socket(Weak<Outbox>),
}

struct Outgoing {
    room: Uuid,
    id: EventId,
    event: RoomEvent,
    /// A chat message's id: its frame also goes into the room's history.
    message_id: Option<Uuid>,
    payload: Vec<u8>,
    received: Instant,
    reply: Reply,
}

pub struct RedisChat {
    bus: RedisBus,
    pool: RedisPool,
    limits: RoomLimits,
    outgoing: mpsc::Sender<Outgoing>,
    echoes: Arc<Echoes>,
}

/// What the publisher task needs: Redis, and this node's rooms to fall back on.
struct Publisher {
    pool: RedisPool,
    bus: RedisBus,
    rooms: Arc<Rooms>,
    limits: RoomLimits,
    echoes: Arc<Echoes>,
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
        let local = Arc::clone(&rooms);
        let echoes = Arc::new(Echoes::new());
        let heard = Arc::clone(&echoes);
        let deliver = move |channel: &str, payload: &[u8]| {
            let room = channel
                .strip_prefix(TOPIC_PREFIX)
                .and_then(|r| Uuid::try_parse(r).ok());
            match (room, serde_json::from_slice::<Wire>(payload)) {
                (Some(_), Ok(wire)) if heard.is_echo(wire.origin) => {}
                (Some(room), Ok(wire)) => {
                    let in_flight = u64::try_from(now_ms() - wire.received_ms).unwrap_or(0);
                    let received = Instant::now()
                        .checked_sub(Duration::from_millis(in_flight))
                        .unwrap_or_else(Instant::now);
                    if let Err(busy) = local.publish(room, wire.event.into(), None, received) {
                        tracing::warn!(%room, %busy, "dropped a chat event from the bus");
                    }
                }
                _ => tracing::warn!(channel, "dropped an unreadable chat bus message"),
            }
        };
        let bus = RedisBus::start(url, pool.clone(), Arc::new(deliver))?;
        let (outgoing, queue) = mpsc::channel(PUBLISH_BACKLOG);
        let publisher = Publisher {
            pool: pool.clone(),
            bus: bus.clone(),
            rooms,
            limits,
            echoes: Arc::clone(&echoes),
        };
        tokio::spawn(publisher.run(queue));
        Ok(Self {
            bus,
            pool,
            limits,
            outgoing,
            echoes,
        })
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

    /// Queues `event` for every node's sockets in the room (and, with `message_id`, for
    /// the room's history). With [`Reply::Wait`] the outcome arrives once Redis has it.
    pub fn publish(
        &self,
        room: Uuid,
        event: RoomEvent,
        message_id: Option<Uuid>,
        reply: Reply,
    ) -> Result<(), BusUnavailable> {
        let id = self.echoes.next_id();
        let wire = Wire {
            received_ms: now_ms(),
            origin: id,
            event: Envelope::from(&event),
        };
        let outgoing = Outgoing {
            room,
            id,
            payload: serde_json::to_vec(&wire).expect("envelopes serialize"),
            event,
            message_id,
            received: Instant::now(),
            reply,
        };
        self.outgoing.try_send(outgoing).map_err(|_| BusUnavailable)
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

impl Publisher {
    /// Sends queued events to Redis, as many as are waiting in one round trip (a
    /// sender's session never waits for Redis, and Redis sees one pipeline, not one call
    /// per message), in queue order, so each room's messages keep their order.
    async fn run(self, mut queue: mpsc::Receiver<Outgoing>) {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        // History scores (ms) strictly increase, so messages kept in the same millisecond
        // replay in the order they were sent, not sorted by their text.
        let mut last_score = f64::MIN;
        while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
            // Read before publishing: a subscriber that reconnects meanwhile may hear a
            // message delivered here already (dropped as an echo), never miss it.
            let listening = self.bus.is_listening();
            self.echoes.publishing(batch.iter().map(|o| o.id));
            let published = self.pipeline(&batch, &mut last_score).await;
            if let Err(error) = &published {
                tracing::warn!(%error, events = batch.len(), "chat events not published; delivered on this node only");
            }
            let local_only = published.is_err() || !listening;
            // Without a fallback, every event is left to the bus.
            let here = if local_only {
                metrics::counter!("chat_bus_local_only_total").increment(batch.len() as u64);
                self.echoes.deliver_here(batch.iter().map(|o| o.id))
            } else {
                self.echoes.published(batch.iter().map(|o| o.id));
                vec![false; batch.len()]
            };
            for (outgoing, here) in batch.drain(..).zip(here) {
                let delivered = if here {
                    self.rooms
                        .publish(
                            outgoing.room,
                            outgoing.event,
                            outgoing.message_id,
                            outgoing.received,
                        )
                        .map_err(|_| BusUnavailable)
                } else {
                    Ok(())
                };
                reply(outgoing.reply, delivered);
            }
        }
    }

    async fn pipeline(&self, batch: &[Outgoing], last_score: &mut f64) -> redis::RedisResult<()> {
        let limits = self.limits;
        let history_len = isize::try_from(limits.history_len).unwrap_or(isize::MAX);
        let mut pipe = redis::pipe();
        let now = now_ms();
        for outgoing in batch {
            if outgoing.message_id.is_some() {
                let key = history_key(outgoing.room);
                *last_score = (now as f64).max(*last_score + 0.001);
                pipe.zadd(&key, outgoing.event.frame().as_str(), *last_score)
                    .ignore();
                pipe.zrembyscore(&key, "-inf", now - millis(limits.history_age))
                    .ignore();
                pipe.zremrangebyrank(&key, 0, -(history_len + 1)).ignore();
                pipe.pexpire(&key, millis(limits.history_age)).ignore();
            }
            pipe.publish(topic(outgoing.room), &outgoing.payload)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.pool.get()).await
    }
}

/// Tells the sender how its event went: a waiting caller gets the outcome, a socket an
/// error frame on failure.
fn reply(reply: Reply, delivered: Result<(), BusUnavailable>) {
    match reply {
        Reply::Wait(done) => {
            let _ = done.send(delivered);
        }
        Reply::Socket(socket) => {
            if let Err(error) = delivered
                && let Some(socket) = socket.upgrade()
            {
                let frame = ServerFrame::error("service_unavailable", error.to_string());
                let _ = socket.send(encode(&frame));
            }
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_delivered_here_is_not_delivered_again_by_its_echo() {
        let echoes = Echoes::new();
        let (early, late, normal) = (echoes.next_id(), echoes.next_id(), echoes.next_id());
        echoes.publishing([early, late, normal].into_iter());
        // The publish timed out, but Redis had it: one echo came before the fallback.
        assert!(
            !echoes.is_echo(early),
            "first arrival: delivered from the bus"
        );
        assert_eq!(
            echoes.deliver_here([early, late].into_iter()),
            vec![false, true]
        );
        assert!(echoes.is_echo(late), "second arrival: dropped");
        assert!(!echoes.is_echo(late), "forgotten once dropped");
        // A published event's echo is delivered; other nodes' events always are.
        echoes.published([normal].into_iter());
        assert!(!echoes.is_echo(normal));
        let elsewhere = EventId {
            node: echoes.node.wrapping_add(1),
            seq: late.seq,
        };
        assert!(!echoes.is_echo(elsewhere));
        assert!(echoes.events().is_empty());
    }
}
