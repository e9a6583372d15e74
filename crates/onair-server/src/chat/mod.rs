//! Real-time chat (reviews S1, C5). A room belongs to a channel (its creator), so it
//! persists across broadcasts; `/api/streams/{id}/chat` joins the room of the stream's
//! creator. Anyone may read; sending needs a logged-in user. Each node holds its sockets'
//! rooms in process and serializes each message once per room.

mod distribution;
mod moderation;
mod outbox;
mod protocol;
mod rooms;
mod session;
mod socket;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use onair_infra::{InfraError, RedisPool};
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::distribution::{BusUnavailable, RedisChat, Reply};
use self::outbox::Outbox;
use self::protocol::ChatUser;
pub use self::rooms::RoomLimits;
use self::rooms::{Joined, RoomEvent, Rooms};
use self::session::{Member, Session};
use self::socket::{SocketLimits, Upgrade};
use crate::error::{ApiError, ErrorBody, Path, Query};
use crate::state::AppState;

/// Largest WebSocket message accepted at the protocol level; the session answers frames
/// over its own, smaller limit with an error frame.
const MAX_WEBSOCKET_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Sockets this node accepts; more upgrades are answered 503.
    pub max_connections: usize,
    pub rooms: RoomLimits,
    /// Messages a user may send in a burst, then one per `refill`.
    pub burst: NonZeroU32,
    pub refill: Duration,
}

pub struct Chat {
    rooms: Arc<Rooms>,
    /// Scale-out: rooms span nodes through Redis.
    redis: Option<RedisChat>,
    rate_limiter: DefaultKeyedRateLimiter<Uuid>,
    slots: Arc<Semaphore>,
    send_queue: usize,
}

impl Chat {
    /// `redis`: the URL and pool of a Redis shared by every node, for scale-out.
    pub fn new(limits: ChatLimits, redis: Option<(&str, RedisPool)>) -> Result<Self, InfraError> {
        let quota = Quota::with_period(limits.refill)
            .expect("a positive refill period")
            .allow_burst(limits.burst);
        let rooms = Arc::new(Rooms::new(limits.rooms));
        let redis = redis
            .map(|(url, pool)| RedisChat::start(url, pool, Arc::clone(&rooms), limits.rooms))
            .transpose()?;
        Ok(Self {
            rooms,
            redis,
            rate_limiter: RateLimiter::keyed(quota),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            send_queue: limits.rooms.send_queue,
        })
    }

    /// Puts a socket in `room`: live frames go to its outbox from now on; the history to
    /// replay comes with the membership.
    async fn join(&self, room: Uuid, outbox: &Arc<Outbox>) -> Result<Joined, ApiError> {
        let mut joined = self.rooms.join(room, outbox);
        if let Some(redis) = &self.redis {
            joined.history = redis.joined(room).await.map_err(unavailable)?;
        }
        Ok(joined)
    }

    /// Delivers `event` to the room on every node; a chat message (`message_id`) is also
    /// kept for replay. With `reply_to` (a sender's socket) this does not wait for Redis:
    /// a failure reaches that socket as an error frame instead.
    async fn publish(
        &self,
        room: Uuid,
        event: RoomEvent,
        message_id: Option<Uuid>,
        reply_to: Option<&Arc<Outbox>>,
    ) -> Result<(), ApiError> {
        let Some(redis) = &self.redis else {
            return self
                .rooms
                .publish(room, event, message_id, std::time::Instant::now())
                .map_err(|_| ApiError::Unavailable);
        };
        let keep = message_id.is_some();
        if let Some(socket) = reply_to {
            let reply = Reply::Socket(Arc::downgrade(socket));
            return redis.publish(room, &event, keep, reply).map_err(bus_down);
        }
        let (done, outcome) = oneshot::channel();
        redis
            .publish(room, &event, keep, Reply::Wait(done))
            .map_err(bus_down)?;
        outcome
            .await
            .map_err(|_| ApiError::Unavailable)?
            .map_err(bus_down)
    }

    async fn forget(&self, room: Uuid, message_id: Uuid) -> Result<(), ApiError> {
        match &self.redis {
            None => self.rooms.forget(room, message_id),
            Some(redis) => redis.forget(room, message_id).await.map_err(unavailable)?,
        }
        Ok(())
    }

    /// Forgets empty rooms (and their Redis subscriptions) and idle rate-limit entries.
    pub async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            let (emptied, open) = self.rooms.sweep();
            if let Some(redis) = &self.redis {
                for room in emptied {
                    // A socket may have joined again meanwhile: keep its subscription.
                    if !self.rooms.is_open(room)
                        && redis.left(room).await.is_ok()
                        && self.rooms.is_open(room)
                    {
                        let _ = redis.joined(room).await;
                    }
                }
            }
            self.rate_limiter.retain_recent();
            metrics::gauge!("chat_rooms").set(open as f64);
        }
    }
}

fn bus_down(_: BusUnavailable) -> ApiError {
    ApiError::Unavailable // the publisher logged why
}

fn unavailable(error: InfraError) -> ApiError {
    tracing::warn!(%error, "chat bus unavailable");
    ApiError::Unavailable
}

impl AppState {
    /// The user behind an access token, with their standing in `room`. Banned users
    /// cannot log in to that room's chat (they may still read it anonymously).
    async fn chat_member(&self, room: Uuid, token: &str) -> Result<Member, ApiError> {
        let id = self.access_tokens.verify(token)?;
        let profile = self
            .store
            .profile(id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let standing = self.store.chat_standing(room, id).await?;
        if standing.banned {
            return Err(ApiError::BannedFromChat);
        }
        let user = ChatUser {
            id,
            username: profile.username,
            display_name: profile.display_name,
        };
        Ok(Member::new(user, standing))
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(channel_chat))
        .routes(routes!(stream_chat))
        .merge(moderation::router())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChatQuery {
    /// An access token, for clients that cannot send one in the first frame. Never logged.
    access_token: Option<String>,
}

/// Join a channel's chat room (WebSocket).
#[utoipa::path(get, path = "/channels/{user_id}/chat", tag = "chat", params(("user_id" = Uuid, Path), ChatQuery),
    responses((status = 101, description = "Switching to the chat protocol"),
        (status = 400, description = "`websocket_required`", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
async fn channel_chat(
    State(state): State<AppState>,
    Path(channel): Path<Uuid>,
    Query(query): Query<ChatQuery>,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    connect(state, channel, query, upgrade).await
}

/// Join the chat of a stream's channel (WebSocket).
#[utoipa::path(get, path = "/streams/{id}/chat", tag = "chat", params(("id" = Uuid, Path), ChatQuery),
    responses((status = 101, description = "Switching to the chat protocol"),
        (status = 400, description = "`websocket_required`", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
async fn stream_chat(
    State(state): State<AppState>,
    Path(stream_id): Path<Uuid>,
    Query(query): Query<ChatQuery>,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    let stream = state
        .store
        .stream(stream_id)
        .await?
        .ok_or(ApiError::NotFound("stream"))?;
    connect(state, stream.owner.id, query, upgrade).await
}

/// Everything that can refuse a socket happens here, before the handshake.
async fn connect(
    state: AppState,
    channel: Uuid,
    query: ChatQuery,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    let slot = Arc::clone(&state.chat.slots)
        .try_acquire_owned()
        .map_err(|_| {
            metrics::counter!("chat_upgrades_rejected_total").increment(1);
            ApiError::TooManyConnections
        })?;
    state
        .store
        .profile(channel)
        .await?
        .ok_or(ApiError::NotFound("channel"))?;
    let member = match &query.access_token {
        Some(token) => Some(state.chat_member(channel, token).await?),
        None => None,
    };
    let limits = SocketLimits {
        max_message: MAX_WEBSOCKET_MESSAGE,
        send_queue: state.chat.send_queue,
    };
    let session = Session::new(state, channel, member, slot);
    Ok(upgrade.on_upgrade(limits, move |socket| session.run(socket)))
}
