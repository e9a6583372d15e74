//! One chat socket: replays history, forwards the room's frames, reads the viewer's
//! frames. A socket that falls more than the send queue behind is dropped rather than
//! slowing the room; a peer silent for two ping intervals is closed.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use governor::clock::{Clock, DefaultClock};
use onair_core::ChatText;
use onair_store::{ChatSettings, ChatStanding};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use uuid::Uuid;

use super::moderation::Action;
use super::protocol::{ChatUser, ClientFrame, ServerFrame};
use super::rooms::{Delivery, Frame, RoomEvent};
use crate::error::ApiError;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(30);
/// Largest client frame we parse; bigger ones get an error frame.
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// A write that takes longer than this means the peer is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Session {
    pub state: AppState,
    pub room: Uuid,
    pub member: Option<Member>,
    pub settings: ChatSettings,
    pub _slot: OwnedSemaphorePermit,
}

/// A logged-in user on this socket, and what they may do in this room.
pub struct Member {
    pub user: ChatUser,
    pub standing: ChatStanding,
    last_sent: Option<Instant>,
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

/// Why a socket stopped, for logs and metrics.
#[derive(Debug)]
enum Closed {
    ByPeer,
    SlowConsumer,
    Banned,
    Idle,
    WriteFailed,
}

impl Session {
    pub async fn run(mut self, socket: WebSocket) {
        metrics::gauge!("chat_connections").increment(1.0);
        let closed = self.serve(socket).await;
        metrics::gauge!("chat_connections").decrement(1.0);
        if matches!(closed, Closed::SlowConsumer) {
            metrics::counter!("chat_slow_consumers_dropped_total").increment(1);
        }
        tracing::debug!(room = %self.room, ?closed, "chat socket closed");
    }

    async fn serve(&mut self, socket: WebSocket) -> Closed {
        let (mut sink, mut incoming) = socket.split();
        let (mut feed, history) = match self.state.chat.join(self.room).await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = send(&mut sink, ServerFrame::error(e.code(), e.to_string())).await;
                return Closed::WriteFailed;
            }
        };
        let user = self.member.as_ref().map(|m| &m.user);
        let welcome = ServerFrame::Welcome {
            room: self.room,
            user,
            history: history.len(),
        }
        .encode();
        for frame in std::iter::once(welcome).chain(history) {
            if send(&mut sink, frame).await.is_err() {
                return Closed::WriteFailed;
            }
        }
        // Metric handles looked up once per socket, not once per frame.
        let mut delivered = DeliveryMetrics::new();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard_from = Instant::now();
        loop {
            tokio::select! {
                first = feed.recv() => {
                    let batch = match take_batch(first, &mut feed) {
                        Ok(batch) => batch,
                        Err(closed) => {
                            if matches!(closed, Closed::SlowConsumer) {
                                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: "too slow: reconnect".into() }))).await;
                            }
                            return closed;
                        }
                    };
                    if write_all(&mut sink, batch.iter().map(|d| d.event.frame().clone())).await.is_err() {
                        return Closed::WriteFailed;
                    }
                    for delivery in &batch {
                        delivered.record(delivery);
                        if self.apply(&delivery.event) {
                            let _ = sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: "banned".into() }))).await;
                            return Closed::Banned;
                        }
                    }
                }
                message = incoming.next() => {
                    heard_from = Instant::now();
                    let reply = match message {
                        Some(Ok(Message::Text(text))) => self.handle(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => Some(ServerFrame::error("unsupported_frame", "send JSON text frames")),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Closed::ByPeer,
                    };
                    if let Some(reply) = reply
                        && send(&mut sink, reply).await.is_err()
                    {
                        return Closed::WriteFailed;
                    }
                }
                _ = ping.tick() => {
                    if heard_from.elapsed() > 2 * PING_EVERY {
                        return Closed::Idle;
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return Closed::WriteFailed;
                    }
                }
            }
        }
    }

    /// Handles one client frame; returns the reply for this socket only, if any.
    async fn handle(&mut self, text: &str) -> Option<Frame> {
        if text.len() > MAX_CLIENT_FRAME {
            return Some(ServerFrame::error(
                "frame_too_large",
                format!("frames are limited to {MAX_CLIENT_FRAME} bytes"),
            ));
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => return Some(ServerFrame::error("invalid_frame", e.to_string())),
        };
        match frame {
            ClientFrame::Ping => Some(ServerFrame::Pong.encode()),
            ClientFrame::Auth { token } => match self.state.chat_member(self.room, &token).await {
                Ok(member) => {
                    let reply = ServerFrame::Authenticated { user: &member.user }.encode();
                    self.member = Some(member);
                    Some(reply)
                }
                Err(e) => Some(ServerFrame::error(e.code(), e.to_string())),
            },
            ClientFrame::Message { text } => self.say(&text).await.err(),
            ClientFrame::Delete { message_id } => {
                self.moderate(Action::Delete { message_id }).await
            }
            ClientFrame::Timeout { user_id, seconds } => {
                self.moderate(Action::Timeout { user_id, seconds }).await
            }
            ClientFrame::Ban { user_id, reason } => {
                self.moderate(Action::Ban { user_id, reason }).await
            }
            ClientFrame::Unban { user_id } => self.moderate(Action::Unban { user_id }).await,
        }
    }

    /// Applies a room event to this socket's view of its user; true if the socket must
    /// close (its user was banned).
    fn apply(&mut self, event: &RoomEvent) -> bool {
        match event {
            RoomEvent::Settings { settings, .. } => self.settings = *settings,
            RoomEvent::Restrict { user, until, .. } => {
                if let Some(member) = self.member.as_mut().filter(|m| m.user.id == *user) {
                    match until {
                        None => return true,
                        Some(until) => member.standing.timed_out_until = Some((*until).into()),
                    }
                }
            }
            RoomEvent::Unrestrict { user, .. } => {
                if let Some(member) = self.member.as_mut().filter(|m| m.user.id == *user) {
                    member.standing.banned = false;
                    member.standing.timed_out_until = None;
                }
            }
            RoomEvent::Frame(_) => {}
        }
        false
    }

    async fn moderate(&self, action: Action) -> Option<Frame> {
        let Some(member) = &self.member else {
            return Some(unauthenticated());
        };
        let outcome: Result<(), ApiError> =
            self.state.moderate(self.room, member.user.id, action).await;
        outcome
            .err()
            .map(|e| ServerFrame::error(e.code(), e.to_string()))
    }

    /// Validates and broadcasts a message; the error frame for this socket if refused.
    async fn say(&mut self, text: &str) -> Result<(), Frame> {
        let room = self.room;
        let settings = self.settings;
        let Some(member) = self.member.as_mut() else {
            return Err(unauthenticated());
        };
        let text = ChatText::parse(text)
            .map_err(|e| ServerFrame::error("invalid_message", e.to_string()))?;
        member.may_say(room, settings)?;
        let user = &member.user;
        if let Err(not_until) = self.state.chat.rate_limiter.check_key(&user.id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ServerFrame::Error {
                code: "rate_limited",
                message: "you are sending messages too fast".into(),
                retry_after_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            }
            .encode());
        }
        metrics::counter!("chat_messages_in_total").increment(1);
        member.last_sent = Some(Instant::now());
        let id = Uuid::now_v7();
        let frame = ServerFrame::Message {
            id,
            room,
            user,
            text: text.as_str(),
            sent_at: Utc::now(),
        }
        .encode();
        self.state
            .chat
            .publish(room, RoomEvent::Frame(frame), Some(id))
            .await
            .map_err(|e| ServerFrame::error(e.code(), e.to_string()))
    }
}

impl Member {
    /// The room's rules for this user: bans, timeouts, followers-only and slow mode (the
    /// last two do not bind the owner and moderators).
    fn may_say(&self, room: Uuid, settings: ChatSettings) -> Result<(), Frame> {
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
        if room == self.user.id || self.standing.is_moderator {
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
        if let Some(last) = self.last_sent
            && last.elapsed() < slow
        {
            return refuse("slow_mode", "slow mode is on", Some(slow - last.elapsed()));
        }
        Ok(())
    }
}

fn unauthenticated() -> Frame {
    ServerFrame::error(
        "unauthenticated",
        "log in to chat: send {\"type\":\"auth\",\"token\":…}",
    )
}

/// Most frames a socket writes before one flush: under load, a socket's pending frames
/// go out in one system call instead of one each.
const MAX_BATCH: usize = 64;

/// The frame just received plus whatever else is already waiting, up to a batch.
fn take_batch(
    first: Result<Delivery, broadcast::error::RecvError>,
    feed: &mut broadcast::Receiver<Delivery>,
) -> Result<Vec<Delivery>, Closed> {
    use broadcast::error::{RecvError, TryRecvError};
    let mut batch = Vec::new();
    let mut next = first.map_err(|e| match e {
        RecvError::Lagged(_) => Closed::SlowConsumer,
        RecvError::Closed => Closed::ByPeer,
    });
    loop {
        batch.push(next?);
        if batch.len() == MAX_BATCH {
            return Ok(batch);
        }
        next = match feed.try_recv() {
            Ok(delivery) => Ok(delivery),
            Err(TryRecvError::Empty) => return Ok(batch),
            Err(TryRecvError::Lagged(_)) => Err(Closed::SlowConsumer),
            Err(TryRecvError::Closed) => Err(Closed::ByPeer),
        };
    }
}

async fn send<S>(sink: &mut S, frame: Frame) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    write_all(sink, std::iter::once(frame)).await
}

/// Writes frames and flushes once, giving up if the peer does not take them in time.
async fn write_all<S>(sink: &mut S, frames: impl Iterator<Item = Frame>) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    let write = async {
        for frame in frames {
            sink.feed(Message::Text(frame)).await?;
        }
        sink.flush().await
    };
    let mut write = std::pin::pin!(write);
    // Almost every write completes at once (the socket buffer has room): arm the timer
    // only for the ones that have to wait, not for each of the ~200 k writes a second.
    let written = match futures_util::FutureExt::now_or_never(&mut write) {
        Some(result) => result,
        None => match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(result) => result,
            Err(_) => return Err(()),
        },
    };
    written.map_err(|_| ())
}

/// Per-socket delivery metrics, kept cheap on the hottest path: the shared counter is
/// updated in steps (an atomic add per frame on a cache line every core shares costs
/// more than the frame), and the latency histogram samples one delivery in eight.
struct DeliveryMetrics {
    sent: metrics::Counter,
    latency: metrics::Histogram,
    unreported: u64,
    seen: u64,
}

impl DeliveryMetrics {
    const REPORT_EVERY: u64 = 64;
    const SAMPLE_EVERY: u64 = 8;

    fn new() -> Self {
        Self {
            sent: metrics::counter!("chat_messages_out_total"),
            latency: metrics::histogram!("chat_delivery_seconds"),
            unreported: 0,
            seen: 0,
        }
    }

    fn record(&mut self, delivery: &Delivery) {
        self.unreported += 1;
        if self.unreported == Self::REPORT_EVERY {
            self.sent.increment(self.unreported);
            self.unreported = 0;
        }
        if matches!(delivery.event, RoomEvent::Frame(_)) {
            self.seen += 1;
            if self.seen % Self::SAMPLE_EVERY == 1 {
                self.latency
                    .record(delivery.received.elapsed().as_secs_f64());
            }
        }
    }
}

impl Drop for DeliveryMetrics {
    fn drop(&mut self) {
        self.sent.increment(self.unreported);
    }
}
