//! In-process chat rooms. Each room has one writer task: a message is serialized and
//! encoded as a WebSocket frame once, and the same bytes go to every socket in the room
//! (review S1: fan-out costs one serialization per message, not one per socket). Rule
//! changes (bans, timeouts, modes) also reach the sessions, which enforce them. Each room
//! keeps the recent history new sockets replay on join.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onair_store::ChatSettings;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Bytes;
use uuid::Uuid;

use super::frame::{Frame, encode_into};
use super::outbox::Outbox;

/// A serialized server→client frame. Cloning shares the bytes.
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

#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// History kept for replay on join: at most this many messages…
    pub history_len: usize,
    /// …no older than this.
    pub history_age: Duration,
}

/// Events a room's writer may have queued before publishing is refused. The writer never
/// waits on a socket, so only a starved CPU fills this.
const WRITER_BACKLOG: usize = 4096;
/// Rule changes a session may fall behind by; it cannot enforce what it missed, so it
/// closes (the client reconnects with its standing read afresh).
const RULE_BACKLOG: usize = 64;
/// Events the writer sends in one go: a burst reaches each socket in one write.
const WRITE_BATCH: usize = 64;

/// The room's writer cannot keep up; the event was not published.
#[derive(Debug, thiserror::Error)]
#[error("chat room is overloaded")]
pub struct RoomBusy;

struct Kept {
    at: Instant,
    message_id: Uuid,
    frame: Frame,
}

/// An event on its way to a room's sockets: its place in the room's order, and when the
/// server received it (for the delivery-latency histogram: receive → last socket write).
struct Delivery {
    seq: u64,
    event: RoomEvent,
    received: Instant,
}

struct Member {
    outbox: Arc<Outbox>,
    /// The first event this socket gets live; earlier ones were in its history.
    from_seq: u64,
}

#[derive(Default)]
struct Members {
    sockets: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
}

impl Members {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        self.sockets.lock().expect("members lock")
    }
}

struct Room {
    next_seq: u64,
    writer: mpsc::Sender<Delivery>,
    rules: broadcast::Sender<RoomEvent>,
    members: Arc<Members>,
    history: VecDeque<Kept>,
}

/// A socket's place in a room; leaving the room is dropping it.
pub struct Membership {
    members: Arc<Members>,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.members.lock().remove(&self.id);
    }
}

/// What joining a room gives a socket.
pub struct Joined {
    /// Rule changes, for the session to apply to its user.
    pub rules: broadcast::Receiver<RoomEvent>,
    /// The recent messages, to send before anything live.
    pub history: Vec<Frame>,
    pub _membership: Membership,
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

    /// Adds a socket to `room`. Live frames go to `outbox` from now on; the returned
    /// history holds exactly the messages before them.
    pub fn join(&self, room: Uuid, outbox: &Arc<Outbox>) -> Joined {
        let mut rooms = self.lock();
        let room = rooms.entry(room).or_insert_with(Room::open);
        let cutoff = Instant::now().checked_sub(self.limits.history_age);
        room.history
            .retain(|kept| cutoff.is_none_or(|cutoff| kept.at >= cutoff));
        let history = room.history.iter().map(|kept| kept.frame.clone()).collect();
        let id = room.members.next_id.fetch_add(1, Ordering::Relaxed);
        room.members.lock().insert(
            id,
            Member {
                outbox: Arc::clone(outbox),
                from_seq: room.next_seq,
            },
        );
        Joined {
            rules: room.rules.subscribe(),
            history,
            _membership: Membership {
                members: Arc::clone(&room.members),
                id,
            },
        }
    }

    /// Sends `event` to every socket in the room. A chat message (`message_id`) is also
    /// kept for replay.
    pub fn publish(
        &self,
        room: Uuid,
        event: RoomEvent,
        message_id: Option<Uuid>,
        received: Instant,
    ) -> Result<(), RoomBusy> {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(&room) else {
            return Ok(()); // Nobody is here and nothing to keep: no room to create.
        };
        let frame = event.frame().clone();
        let seq = room.next_seq;
        room.writer
            .try_send(Delivery {
                seq,
                event,
                received,
            })
            .map_err(|_| {
                metrics::counter!("chat_room_overloaded_total").increment(1);
                RoomBusy
            })?;
        room.next_seq += 1;
        if let Some(message_id) = message_id {
            room.history.push_back(Kept {
                at: Instant::now(),
                message_id,
                frame,
            });
            while room.history.len() > self.limits.history_len {
                room.history.pop_front();
            }
        }
        Ok(())
    }

    /// Removes a deleted message from the replay history.
    pub fn forget(&self, room: Uuid, message_id: Uuid) {
        if let Some(room) = self.lock().get_mut(&room) {
            room.history.retain(|kept| kept.message_id != message_id);
        }
    }

    /// Drops rooms nobody is in (their writers end); returns them, and how many remain.
    pub fn sweep(&self) -> (Vec<Uuid>, usize) {
        let mut rooms = self.lock();
        let empty: Vec<Uuid> = rooms
            .iter()
            .filter(|(_, room)| room.members.lock().is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in &empty {
            rooms.remove(id);
        }
        (empty, rooms.len())
    }

    /// Whether any socket on this node is in `room`.
    pub fn is_open(&self, room: Uuid) -> bool {
        self.lock().contains_key(&room)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Room>> {
        self.rooms.lock().expect("rooms lock")
    }
}

impl Room {
    /// A room with its writer task running.
    fn open() -> Self {
        let (writer, deliveries) = mpsc::channel(WRITER_BACKLOG);
        let (rules, _) = broadcast::channel(RULE_BACKLOG);
        let members = Arc::<Members>::default();
        tokio::spawn(write_room(deliveries, Arc::clone(&members), rules.clone()));
        Self {
            next_seq: 0,
            writer,
            rules,
            members,
            history: VecDeque::new(),
        }
    }
}

/// The room's writer: encodes what is queued once, hands the bytes to every socket, then
/// passes rule changes on to the sessions (after their notices, so a banned user sees why).
async fn write_room(
    mut deliveries: mpsc::Receiver<Delivery>,
    members: Arc<Members>,
    rules: broadcast::Sender<RoomEvent>,
) {
    let sent = metrics::counter!("chat_messages_out_total");
    let latency = metrics::histogram!("chat_delivery_seconds");
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut targets: Vec<(Arc<Outbox>, u64)> = Vec::new();
    let mut wire = Vec::new();
    // Where each event's frame starts in `wire`, so a socket that joined mid-batch gets
    // only what came after its history.
    let mut starts = Vec::with_capacity(WRITE_BATCH);
    while deliveries.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for delivery in &batch {
            starts.push(wire.len());
            encode_into(delivery.event.frame(), &mut wire);
        }
        let wire_bytes = Bytes::from(std::mem::take(&mut wire));
        // Sockets are copied out so joins and leaves need not wait for the writes.
        targets.extend(
            members
                .lock()
                .values()
                .map(|member| (Arc::clone(&member.outbox), member.from_seq)),
        );
        let first_seq = batch[0].seq;
        let mut frames_sent = 0;
        for (outbox, from_seq) in targets.drain(..) {
            let skip = usize::try_from(from_seq.saturating_sub(first_seq)).unwrap_or(usize::MAX);
            let Some(&start) = starts.get(skip) else {
                continue;
            };
            // A refusal means the socket stopped; its session is closing it.
            if outbox.send(wire_bytes.slice(start..)).is_ok() {
                frames_sent += batch.len() - skip;
            }
        }
        sent.increment(frames_sent as u64);
        for delivery in batch.drain(..) {
            latency.record(delivery.received.elapsed().as_secs_f64());
            if !matches!(delivery.event, RoomEvent::Frame(_)) {
                // An error only means no session is listening.
                let _ = rules.send(delivery.event);
            }
        }
        starts.clear();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::chat::outbox::Stop;

    fn rooms(history_len: usize) -> Rooms {
        Rooms::new(RoomLimits {
            history_len,
            history_age: Duration::from_secs(300),
        })
    }

    fn frame(text: &str) -> RoomEvent {
        RoomEvent::Frame(Frame::from(text.to_owned()))
    }

    /// A server-side outbox and the client end of its connection.
    async fn socket(send_queue: usize) -> (Arc<Outbox>, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_, write) = accepted.unwrap().0.into_split();
        let outbox = Outbox::new(write, send_queue, Bytes::from_static(b"\x88\0"));
        let client = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
        (Arc::new(outbox), client)
    }

    async fn next_text(client: &mut WebSocketStream<TcpStream>) -> String {
        let message = client.next().await.unwrap().unwrap();
        message.into_text().unwrap().as_str().to_owned()
    }

    #[tokio::test]
    async fn history_then_live_frames_each_exactly_once() {
        let rooms = rooms(3);
        let room = Uuid::now_v7();
        let (early, mut early_client) = socket(16).await;
        let joined = rooms.join(room, &early);
        assert!(joined.history.is_empty());
        early.open([]);
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for (n, id) in ids.iter().enumerate() {
            rooms
                .publish(room, frame(&format!("m{n}")), Some(*id), Instant::now())
                .unwrap();
        }
        rooms
            .publish(room, frame("not kept"), None, Instant::now())
            .unwrap();
        rooms.forget(room, ids[2]);

        // A latecomer replays what is kept, then gets only what follows it.
        let (late, mut late_client) = socket(16).await;
        let late_joined = rooms.join(room, &late);
        let history: Vec<&str> = late_joined.history.iter().map(|f| f.as_str()).collect();
        assert_eq!(history, ["m1", "m3"]);
        late.open([]);
        rooms
            .publish(room, frame("after"), None, Instant::now())
            .unwrap();
        assert_eq!(next_text(&mut late_client).await, "after");
        for expected in ["m0", "m1", "m2", "m3", "not kept", "after"] {
            assert_eq!(next_text(&mut early_client).await, expected);
        }
        drop((joined, late_joined));
    }

    #[tokio::test]
    async fn a_socket_that_does_not_read_is_cut_off_not_waited_for() {
        let rooms = rooms(0);
        let room = Uuid::now_v7();
        let (stalled, _unread) = socket(4).await;
        let (reader, mut reader_client) = socket(4).await;
        let _stalled_in = rooms.join(room, &stalled);
        let _reader_in = rooms.join(room, &reader);
        stalled.open([]);
        reader.open([]);
        // Large frames fill the kernel buffers of the socket nobody reads.
        let big = "x".repeat(64 * 1024);
        let reading = tokio::spawn(async move {
            for _ in 0..200 {
                assert_eq!(next_text(&mut reader_client).await.len(), big.len());
            }
        });
        for _ in 0..200 {
            rooms
                .publish(room, frame(&"x".repeat(64 * 1024)), None, Instant::now())
                .unwrap();
            tokio::task::yield_now().await;
        }
        reading.await.unwrap();
        assert_eq!(stalled.drain().await, Stop::TooSlow);
    }

    #[tokio::test]
    async fn nothing_follows_a_close_frame() {
        let rooms = rooms(0);
        let room = Uuid::now_v7();
        let (outbox, mut client) = socket(4).await;
        let _in_room = rooms.join(room, &outbox);
        outbox.open([]);
        rooms
            .publish(room, frame("before"), None, Instant::now())
            .unwrap();
        assert_eq!(next_text(&mut client).await, "before");
        outbox.seal();
        assert_eq!(outbox.send(Bytes::from_static(b"x")), Err(Stop::Sealed));
        rooms
            .publish(room, frame("after"), None, Instant::now())
            .unwrap();
        outbox.finish(Duration::from_secs(1)).await;
        drop((_in_room, outbox));
        let rest = client.next().await;
        assert!(
            !matches!(rest, Some(Ok(ref message)) if message.is_text()),
            "{rest:?}"
        );
    }

    #[tokio::test]
    async fn empty_rooms_are_swept() {
        let rooms = rooms(1);
        let room = Uuid::now_v7();
        let (outbox, _client) = socket(4).await;
        let joined = rooms.join(room, &outbox);
        assert_eq!(rooms.sweep(), (vec![], 1));
        drop(joined);
        assert_eq!(rooms.sweep(), (vec![room], 0));
        assert!(!rooms.is_open(room));
    }
}
