//! One chat socket's session: replays history, reads the viewer's frames, applies rule
//! changes to its user, and keeps the connection alive. Room frames do not pass through
//! here: the room's writer sends them straight to the socket's outbox. A socket that
//! falls more than the send queue behind is dropped rather than slowing the room; a peer
//! silent for two ping intervals is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use onair_core::ChatText;
use onair_store::ChatSettings;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use uuid::Uuid;

use super::frame::{Frame, encode};
use super::member::Member;
use super::moderation::Action;
use super::outbox::{Outbox, Stop};
use super::protocol::{ClientFrame, ServerFrame};
use super::rooms::RoomEvent;
use super::service::Chat;
use super::socket::ChatSocket;
use crate::error::ApiError;
use crate::rate_limit::ClientSlot;
use crate::shutdown::signalled;

const PING_EVERY: Duration = Duration::from_secs(30);
/// Largest client frame we parse; bigger ones get an error frame.
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// How long a closing socket's last frames may take to reach the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The close code of a socket whose user's token expired (an application code, 4000–4999).
const TOKEN_EXPIRED: CloseCode = CloseCode::Library(4001);

pub struct Session {
    chat: Arc<Chat>,
    room: Uuid,
    member: Option<Member>,
    /// The room's modes: read once the socket is on the rule feed, then kept by it.
    settings: ChatSettings,
    /// The node's slot and the client address's, both given back when the socket ends.
    _slots: (OwnedSemaphorePermit, ClientSlot),
}

/// Why a socket stopped, for logs and metrics.
#[derive(Debug)]
enum Closed {
    ByPeer,
    SlowConsumer,
    Banned,
    Idle,
    WriteFailed,
    Unavailable,
    TooBig,
    ShuttingDown,
    TokenExpired,
}

impl Session {
    pub fn new(
        chat: Arc<Chat>,
        room: Uuid,
        member: Option<Member>,
        slots: (OwnedSemaphorePermit, ClientSlot),
    ) -> Self {
        Self {
            chat,
            room,
            member,
            settings: ChatSettings::default(),
            _slots: slots,
        }
    }

    pub async fn run(mut self, socket: ChatSocket) {
        metrics::gauge!("chat_connections").increment(1.0);
        let outbox = Arc::clone(&socket.outbox);
        let closed = self.serve(socket).await;
        // Out of the room by now: nothing more may follow a close frame, which (if any)
        // gets a last chance to go out.
        outbox.seal();
        outbox.finish(CLOSE_TIMEOUT).await;
        metrics::gauge!("chat_connections").decrement(1.0);
        if matches!(closed, Closed::SlowConsumer) {
            metrics::counter!("chat_slow_consumers_dropped_total").increment(1);
        }
        tracing::debug!(room = %self.room, ?closed, "chat socket closed");
    }

    async fn serve(&mut self, ChatSocket { mut ws, outbox }: ChatSocket) -> Closed {
        let mut joined = self.chat.join(self.room, &outbox).await;
        // The rule feed is live from the join on; the modes, and a ban made since the
        // check before the handshake, are read now so that no change falls in between.
        if let Err(e) = self.refresh_rules().await {
            outbox.open([encode(&ServerFrame::error(e.code(), e.to_string()))]);
            let _ = ws.send(close(CloseCode::Policy, "refused")).await;
            return Closed::Unavailable;
        }
        let member = self.member.as_ref();
        let welcome = ServerFrame::Welcome {
            room: self.room,
            user: member.map(|m| &m.user),
            role: member.map(|m| m.role(self.room)),
            timed_out_until: member.and_then(Member::timed_out_until),
            history: joined.history.len(),
        }
        .encode();
        outbox.open(std::iter::once(&welcome).chain(&joined.history).map(encode));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard_from = Instant::now();
        let mut closing = self.chat.closing();
        loop {
            let expires = self.member.as_ref().map(|member| member.expires);
            let reply = tokio::select! {
                stop = outbox.drain() => return stopped(stop),
                () = until(expires) => {
                    let _ = ws.send(close(TOKEN_EXPIRED, "token expired: reconnect and log in again")).await;
                    outbox.seal();
                    return Closed::TokenExpired;
                }
                () = signalled(&mut closing) => {
                    let _ = ws.send(close(CloseCode::Away, "server shutting down: reconnect")).await;
                    outbox.seal();
                    return Closed::ShuttingDown;
                }
                rule = joined.rules.recv() => match rule {
                    Ok(rule) if self.apply(&rule) => {
                        let _ = ws.send(close(CloseCode::Policy, "banned")).await;
                        outbox.seal();
                        return Closed::Banned;
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = ws.send(close(CloseCode::Policy, "too slow: reconnect")).await;
                        outbox.seal();
                        return Closed::SlowConsumer;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Closed::ByPeer,
                },
                message = ws.next() => {
                    heard_from = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            // The backlog keeps draining while the frame is handled (it
                            // may wait on the database); a frame once started is finished.
                            let mut handling = std::pin::pin!(self.handle(text.as_str(), &outbox));
                            tokio::select! {
                                reply = &mut handling => reply,
                                stop = outbox.drain() => {
                                    handling.await;
                                    return stopped(stop);
                                }
                            }
                        }
                        Some(Ok(Message::Binary(_))) => Some(ServerFrame::error("unsupported_frame", "send JSON text frames")),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
                        Some(Ok(Message::Close(_))) => {
                            let _ = ws.flush().await; // tungstenite's close reply
                            outbox.seal();
                            return Closed::ByPeer;
                        }
                        Some(Err(WsError::Capacity(_))) => {
                            let _ = ws.send(close(CloseCode::Size, "message too big")).await;
                            outbox.seal();
                            return Closed::TooBig;
                        }
                        Some(Err(_)) | None => return Closed::ByPeer,
                    }
                }
                _ = ping.tick() => {
                    if heard_from.elapsed() > 2 * PING_EVERY {
                        return Closed::Idle;
                    }
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return Closed::WriteFailed;
                    }
                    None
                }
            };
            if let Some(reply) = reply
                && ws.send(Message::Text(reply)).await.is_err()
            {
                return Closed::WriteFailed;
            }
        }
    }

    /// Reads the room's modes and this socket's user's standing.
    async fn refresh_rules(&mut self) -> Result<(), ApiError> {
        self.settings = self.chat.store.chat_settings(self.room).await?;
        let Some(member) = self.member.as_mut() else {
            return Ok(());
        };
        member.standing = self
            .chat
            .store
            .chat_standing(self.room, member.user.id)
            .await?;
        if member.standing.banned {
            return Err(ApiError::BannedFromChat);
        }
        Ok(())
    }

    /// Handles one client frame; returns the reply for this socket only, if any.
    async fn handle(&mut self, text: &str, outbox: &Arc<Outbox>) -> Option<Frame> {
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
            ClientFrame::Auth { token } => match self.chat.member(self.room, &token).await {
                Ok(member) => {
                    let reply = ServerFrame::Authenticated {
                        user: &member.user,
                        role: member.role(self.room),
                        timed_out_until: member.timed_out_until(),
                    }
                    .encode();
                    self.member = Some(member);
                    Some(reply)
                }
                Err(e) => Some(ServerFrame::error(e.code(), e.to_string())),
            },
            ClientFrame::Message { text } => self.say(&text, outbox).await.err(),
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
            self.chat.moderate(self.room, member.user.id, action).await;
        outcome
            .err()
            .map(|e| ServerFrame::error(e.code(), e.to_string()))
    }

    /// Validates and broadcasts a message; the error frame for this socket if refused.
    async fn say(&mut self, text: &str, outbox: &Arc<Outbox>) -> Result<(), Frame> {
        let room = self.room;
        let settings = self.settings;
        let Some(member) = self.member.as_mut() else {
            return Err(unauthenticated());
        };
        let text = ChatText::parse(text)
            .map_err(|e| ServerFrame::error("invalid_message", e.to_string()))?;
        let slow = member.may_say(room, settings)?;
        let user = &member.user;
        if let Err((code, message, wait)) = self.chat.admit(room, user.id, slow) {
            return Err(ServerFrame::Error {
                code,
                message: message.to_owned(),
                retry_after_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            }
            .encode());
        }
        metrics::counter!("chat_messages_in_total").increment(1);
        let id = Uuid::now_v7();
        let frame = ServerFrame::Message {
            id,
            room,
            user,
            text: text.as_str(),
            sent_at: Utc::now(),
        }
        .encode();
        self.chat
            .publish(room, RoomEvent::Frame(frame), Some(id), Some(outbox))
            .await
            .map_err(|e| ServerFrame::error(e.code(), e.to_string()))
    }
}

fn unauthenticated() -> Frame {
    ServerFrame::error(
        "unauthenticated",
        "log in to chat: send {\"type\":\"auth\",\"token\":…}",
    )
}

/// Resolves at `deadline`; never without one (an anonymous socket).
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn stopped(stop: Stop) -> Closed {
    match stop {
        Stop::TooSlow => Closed::SlowConsumer,
        Stop::Failed => Closed::WriteFailed,
        Stop::Sealed => Closed::ByPeer,
    }
}

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}
