//! In-process chat rooms: one broadcast channel per room carrying frames serialized once
//! (review S1: fan-out costs one serialization per message, not one per socket), plus
//! the recent history new sockets replay on join.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use onair_store::ChatSettings;
use tokio::sync::broadcast;
use uuid::Uuid;

/// A serialized server→client frame. Cloning shares the bytes, so every socket in a room
/// sends the same buffer.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// What a room's sockets receive: a frame to forward, some with a consequence for the
/// sockets of one user or for the room's rules.
#[derive(Debug, Clone)]
pub enum RoomEvent {
    Frame(Frame),
    /// `user` is banned (`until` None: their sockets close) or timed out until `until`.
    Restrict {
        user: Uuid,
        until: Option<chrono::DateTime<chrono::Utc>>,
        frame: Frame,
    },
    Unrestrict {
        user: Uuid,
        frame: Frame,
    },
    Settings {
        settings: ChatSettings,
        frame: Frame,
    },
}

impl RoomEvent {
    pub fn frame(&self) -> &Frame {
        match self {
            Self::Frame(frame)
            | Self::Restrict { frame, .. }
            | Self::Unrestrict { frame, .. }
            | Self::Settings { frame, .. } => frame,
        }
    }
}

/// An event on its way to a room's sockets, with when the server received it (for the
/// delivery-latency histogram: receive → socket write).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: RoomEvent,
    pub received: Instant,
}

#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Frames a socket may fall behind by before it is dropped as a slow consumer.
    pub send_queue: usize,
    /// History kept for replay on join: at most this many messages…
    pub history_len: usize,
    /// …no older than this.
    pub history_age: Duration,
}

struct Kept {
    at: Instant,
    message_id: Uuid,
    frame: Frame,
}

struct Room {
    events: broadcast::Sender<Delivery>,
    history: VecDeque<Kept>,
}

pub struct Rooms {
    rooms: Mutex<HashMap<Uuid, Room>>,
    limits: RoomLimits,
}

impl Rooms {
    pub fn new(limits: RoomLimits) -> Self {
        Self {
            rooms: Mutex::default(),
            limits,
        }
    }

    /// Subscribes to `room`, returning the live feed and the history to replay first.
    pub fn join(&self, room: Uuid) -> (broadcast::Receiver<Delivery>, Vec<Frame>) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let room = rooms.entry(room).or_insert_with(|| Room {
            events: broadcast::channel(self.limits.send_queue).0,
            history: VecDeque::new(),
        });
        let cutoff = Instant::now().checked_sub(self.limits.history_age);
        room.history
            .retain(|kept| cutoff.is_none_or(|cutoff| kept.at >= cutoff));
        let history = room.history.iter().map(|kept| kept.frame.clone()).collect();
        (room.events.subscribe(), history)
    }

    /// Sends `event` to every socket in the room. A chat message (`message_id`) is also
    /// kept for replay.
    pub fn publish(
        &self,
        room: Uuid,
        event: RoomEvent,
        message_id: Option<Uuid>,
        received: Instant,
    ) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let Some(room) = rooms.get_mut(&room) else {
            return; // Nobody is here and nothing to keep: no room to create.
        };
        if let Some(message_id) = message_id {
            room.history.push_back(Kept {
                at: Instant::now(),
                message_id,
                frame: event.frame().clone(),
            });
            while room.history.len() > self.limits.history_len {
                room.history.pop_front();
            }
        }
        // An error only means no socket is listening right now.
        let _ = room.events.send(Delivery { event, received });
    }

    /// Removes a deleted message from the replay history.
    pub fn forget(&self, room: Uuid, message_id: Uuid) {
        if let Some(room) = self.rooms.lock().expect("rooms lock").get_mut(&room) {
            room.history.retain(|kept| kept.message_id != message_id);
        }
    }

    /// Drops rooms nobody is in; returns them, and how many rooms remain.
    pub fn sweep(&self) -> (Vec<Uuid>, usize) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let empty: Vec<Uuid> = rooms
            .iter()
            .filter(|(_, room)| room.events.receiver_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in &empty {
            rooms.remove(id);
        }
        (empty, rooms.len())
    }

    /// Whether any socket on this node is in `room`.
    pub fn is_open(&self, room: Uuid) -> bool {
        self.rooms.lock().expect("rooms lock").contains_key(&room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(history_len: usize) -> Rooms {
        Rooms::new(RoomLimits {
            send_queue: 4,
            history_len,
            history_age: Duration::from_secs(300),
        })
    }

    fn frame(text: &str) -> RoomEvent {
        RoomEvent::Frame(Frame::from(text.to_owned()))
    }

    #[test]
    fn history_is_bounded_replayed_and_forgets_deleted_messages() {
        let rooms = rooms(3);
        let room = Uuid::now_v7();
        let (_feed, history) = rooms.join(room);
        assert!(history.is_empty());
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for (n, id) in ids.iter().enumerate() {
            rooms.publish(room, frame(&format!("m{n}")), Some(*id), Instant::now());
        }
        rooms.publish(room, frame("not kept"), None, Instant::now());
        rooms.forget(room, ids[2]);
        let (_, history) = rooms.join(room);
        let history: Vec<&str> = history.iter().map(|f| f.as_str()).collect();
        assert_eq!(history, ["m1", "m3"]);
    }

    #[test]
    fn a_lagging_socket_is_detected_not_waited_for() {
        let rooms = rooms(0);
        let room = Uuid::now_v7();
        let (mut slow, _) = rooms.join(room);
        for n in 0..10 {
            rooms.publish(room, frame(&format!("m{n}")), None, Instant::now());
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn empty_rooms_are_swept() {
        let rooms = rooms(1);
        let room = Uuid::now_v7();
        let (feed, _) = rooms.join(room);
        assert_eq!(rooms.sweep(), (vec![], 1));
        drop(feed);
        assert_eq!(rooms.sweep(), (vec![room], 0));
        assert!(!rooms.is_open(room));
    }
}
