//! In-process chat rooms: one broadcast channel per room carrying frames serialized once
//! (review S1: fan-out costs one serialization per message, not one per socket), plus
//! the recent history new sockets replay on join.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use uuid::Uuid;

/// A serialized server→client frame. Cloning shares the bytes, so every socket in a room
/// sends the same buffer.
pub type Frame = axum::extract::ws::Utf8Bytes;

#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Frames a socket may fall behind by before it is dropped as a slow consumer.
    pub send_queue: usize,
    /// History kept for replay on join: at most this many messages…
    pub history_len: usize,
    /// …no older than this.
    pub history_age: Duration,
}

struct Room {
    frames: broadcast::Sender<Frame>,
    history: VecDeque<(Instant, Frame)>,
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
    pub fn join(&self, room: Uuid) -> (broadcast::Receiver<Frame>, Vec<Frame>) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let room = rooms.entry(room).or_insert_with(|| Room {
            frames: broadcast::channel(self.limits.send_queue).0,
            history: VecDeque::new(),
        });
        let cutoff = Instant::now().checked_sub(self.limits.history_age);
        room.history
            .retain(|(at, _)| cutoff.is_none_or(|cutoff| *at >= cutoff));
        let history = room
            .history
            .iter()
            .map(|(_, frame)| frame.clone())
            .collect();
        (room.frames.subscribe(), history)
    }

    /// Sends `frame` to every socket in the room; `keep` also records it for replay.
    pub fn publish(&self, room: Uuid, frame: Frame, keep: bool) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let Some(room) = rooms.get_mut(&room) else {
            return; // Nobody is here and nothing to keep: no room to create.
        };
        if keep {
            room.history.push_back((Instant::now(), frame.clone()));
            while room.history.len() > self.limits.history_len {
                room.history.pop_front();
            }
        }
        // An error only means no socket is listening right now.
        let _ = room.frames.send(frame);
    }

    /// Drops rooms nobody is in; returns how many rooms remain (for metrics).
    pub fn sweep(&self) -> usize {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        rooms.retain(|_, room| room.frames.receiver_count() > 0);
        rooms.len()
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

    #[test]
    fn history_is_bounded_and_replayed() {
        let rooms = rooms(2);
        let room = Uuid::now_v7();
        let (mut feed, history) = rooms.join(room);
        assert!(history.is_empty());
        for n in 0..3 {
            rooms.publish(room, Frame::from(format!("m{n}")), true);
        }
        rooms.publish(room, Frame::from("pong"), false);
        assert_eq!(feed.try_recv().unwrap().as_str(), "m0");
        let (_, history) = rooms.join(room);
        let history: Vec<&str> = history.iter().map(|f| f.as_str()).collect();
        assert_eq!(history, ["m1", "m2"]);
    }

    #[test]
    fn a_lagging_socket_is_detected_not_waited_for() {
        let rooms = rooms(0);
        let room = Uuid::now_v7();
        let (mut slow, _) = rooms.join(room);
        for n in 0..10 {
            rooms.publish(room, Frame::from(format!("m{n}")), false);
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn empty_rooms_are_swept() {
        let rooms = rooms(1);
        let (feed, _) = rooms.join(Uuid::now_v7());
        assert_eq!(rooms.sweep(), 1);
        drop(feed);
        assert_eq!(rooms.sweep(), 0);
    }
}
