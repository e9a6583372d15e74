//! Real-time chat (reviews S1, C5). A room belongs to a channel (its creator), so it
//! persists across broadcasts; `/api/streams/{id}/chat` joins the room of the stream's
//! creator. Anyone may read; sending needs a logged-in user. Each node holds its sockets'
//! rooms in process and serializes each message once per room.

mod distribution;
mod frame;
mod member;
mod moderation;
mod outbox;
mod protocol;
mod rooms;
mod roster;
mod service;
mod session;
mod socket;

pub use self::service::{ChangeAnnouncer, Chat, ChatConfig, ChatStores};

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::session::Session;
use self::socket::{SocketLimits, Upgrade};
use crate::error::{ApiError, ErrorBody, Path, Query};
use crate::identity::AccessTokens;
use crate::rate_limit::ClientIp;

/// Largest WebSocket message accepted at the protocol level; the session answers frames
/// over its own, smaller limit with an error frame.
const MAX_WEBSOCKET_MESSAGE: usize = 64 * 1024;

/// The chat sockets: what chat nodes serve.
pub fn sockets<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Chat>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(channel_chat))
        .routes(routes!(stream_chat))
}

/// Moderation over HTTP (it reaches every node's sockets through the bus): API nodes.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Chat>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    use self::moderation::*;
    use self::roster::*;
    OpenApiRouter::new()
        .routes(routes!(moderators))
        .routes(routes!(add_moderator, remove_moderator))
        .routes(routes!(bans, ban_user))
        .routes(routes!(unban_user))
        .routes(routes!(delete_message))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(moderation_log))
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
        (status = 403, description = "`banned`: the token's user, from this room", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
async fn channel_chat(
    State(chat): State<Arc<Chat>>,
    Path(channel): Path<Uuid>,
    Query(query): Query<ChatQuery>,
    ClientIp(client): ClientIp,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    connect(chat, channel, query, client, upgrade).await
}

/// Join the chat of a stream's channel (WebSocket).
#[utoipa::path(get, path = "/streams/{id}/chat", tag = "chat", params(("id" = Uuid, Path), ChatQuery),
    responses((status = 101, description = "Switching to the chat protocol"),
        (status = 400, description = "`websocket_required`", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`banned`: the token's user, from this room", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, description = "`too_many_connections`", body = ErrorBody)))]
async fn stream_chat(
    State(chat): State<Arc<Chat>>,
    Path(stream_id): Path<Uuid>,
    Query(query): Query<ChatQuery>,
    ClientIp(client): ClientIp,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    let stream = chat
        .streams
        .stream(stream_id)
        .await?
        .ok_or(ApiError::NotFound("stream"))?;
    connect(chat, stream.owner.id, query, client, upgrade).await
}

/// Everything that can refuse a socket happens here, before the handshake.
async fn connect(
    chat: Arc<Chat>,
    channel: Uuid,
    query: ChatQuery,
    client: IpAddr,
    upgrade: Upgrade,
) -> Result<Response, ApiError> {
    let refused = |e| {
        metrics::counter!("chat_upgrades_rejected_total").increment(1);
        e
    };
    let client_slot = chat.per_client.acquire(client).map_err(refused)?;
    let slot = Arc::clone(&chat.slots)
        .try_acquire_owned()
        .map_err(|_| refused(ApiError::TooManyConnections))?;
    chat.channel_exists(channel).await?;
    let member = match &query.access_token {
        Some(token) => Some(chat.member(channel, token).await?),
        None => None,
    };
    let limits = SocketLimits {
        max_message: MAX_WEBSOCKET_MESSAGE,
        send_queue: chat.send_queue,
    };
    let session = Session::new(chat, channel, member, (slot, client_slot));
    Ok(upgrade.on_upgrade(limits, move |socket| session.run(socket)))
}
