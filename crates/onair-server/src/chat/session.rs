//! One chat socket: replays history, forwards the room's frames, reads the viewer's
//! frames. A socket that falls more than the send queue behind is dropped rather than
//! slowing the room; a peer silent for two ping intervals is closed.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::clock::{Clock, DefaultClock};
use onair_core::ChatText;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use uuid::Uuid;

use super::protocol::{ChatUser, ClientFrame, ServerFrame};
use super::rooms::Frame;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(30);
/// Largest client frame we parse; bigger ones get an error frame.
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// A write that takes longer than this means the peer is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Session {
    pub state: AppState,
    pub room: Uuid,
    pub user: Option<ChatUser>,
    pub _slot: OwnedSemaphorePermit,
}

/// Why a socket stopped, for logs and metrics.
#[derive(Debug)]
enum Closed {
    ByPeer,
    SlowConsumer,
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
        let (mut feed, history) = self.state.chat.rooms.join(self.room);
        let welcome = ServerFrame::Welcome {
            room: self.room,
            user: self.user.as_ref(),
            history: history.len(),
        }
        .encode();
        for frame in std::iter::once(welcome).chain(history) {
            if send(&mut sink, frame).await.is_err() {
                return Closed::WriteFailed;
            }
        }
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard_from = Instant::now();
        loop {
            tokio::select! {
                frame = feed.recv() => match frame {
                    Ok(frame) => {
                        if send(&mut sink, frame).await.is_err() {
                            return Closed::WriteFailed;
                        }
                        metrics::counter!("chat_messages_out_total").increment(1);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: "too slow: reconnect".into() }))).await;
                        return Closed::SlowConsumer;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Closed::ByPeer,
                },
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
            ClientFrame::Auth { token } => match self.state.chat_user(&token).await {
                Ok(user) => {
                    let reply = ServerFrame::Authenticated { user: &user }.encode();
                    self.user = Some(user);
                    Some(reply)
                }
                Err(e) => Some(ServerFrame::error(e.code(), e.to_string())),
            },
            ClientFrame::Message { text } => self.say(&text).err(),
        }
    }

    /// Validates and broadcasts a message; the error frame for this socket if refused.
    fn say(&self, text: &str) -> Result<(), Frame> {
        let Some(user) = &self.user else {
            return Err(ServerFrame::error(
                "unauthenticated",
                "log in to chat: send {\"type\":\"auth\",\"token\":…}",
            ));
        };
        let text = ChatText::parse(text)
            .map_err(|e| ServerFrame::error("invalid_message", e.to_string()))?;
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
        let frame = ServerFrame::Message {
            id: Uuid::now_v7(),
            room: self.room,
            user,
            text: text.as_str(),
            sent_at: chrono::Utc::now(),
        }
        .encode();
        self.state.chat.rooms.publish(self.room, frame, true);
        Ok(())
    }
}

async fn send<S>(sink: &mut S, frame: Frame) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(frame))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
