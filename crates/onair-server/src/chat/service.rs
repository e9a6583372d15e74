//! The chat service: this node's rooms and sockets, the Redis bus that joins rooms across
//! nodes, per-user rate limits, and who may talk where.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use onair_infra::{InfraError, RedisPool};
use onair_store::{ChatStore, StreamStore, Tip, UserStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot, watch};
use uuid::Uuid;

use super::distribution::{BusUnavailable, RedisChat, Reply};
use super::member::Member;
use super::outbox::Outbox;
use super::protocol::{ChatUser, ServerFrame};
use super::rooms::{Joined, RoomEvent, RoomLimits, Rooms};
use crate::caches::ChannelListener;
use crate::error::ApiError;
use crate::identity::AccessTokens;
use crate::pagination::Cursors;
use crate::rate_limit::PerClient;
use crate::shutdown::signalled;

/// The storage chat reads and writes.
pub struct ChatStores {
    pub chat: Arc<dyn ChatStore>,
    pub users: Arc<dyn UserStore>,
    pub streams: Arc<dyn StreamStore>,
}

/// The `[chat]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Sockets this node accepts (review S1); more upgrades are answered 503.
    pub max_connections: usize,
    /// Sockets one client address (an IPv4 address, an IPv6 /64) may hold on this node.
    pub max_connections_per_ip: usize,
    /// Writes a socket may have waiting for a slow reader before it is dropped.
    pub send_queue: usize,
    /// Messages replayed on join: at most this many, no older than `history_secs`.
    pub history_len: usize,
    pub history_secs: u64,
    /// Per-user rate: a burst of this many messages, then one per period.
    pub rate_burst: u32,
    pub rate_period_ms: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 20,
            send_queue: 256,
            history_len: 100,
            history_secs: 300,
            rate_burst: 5,
            rate_period_ms: 1_000,
        }
    }
}

impl ChatConfig {
    fn room_limits(&self) -> RoomLimits {
        RoomLimits {
            history_len: self.history_len,
            history_age: Duration::from_secs(self.history_secs),
        }
    }
}

/// The longest slow mode a room may set.
pub(super) const MAX_SLOW_MODE: Duration = Duration::from_secs(86_400);

pub struct Chat {
    pub(super) store: Arc<dyn ChatStore>,
    users: Arc<dyn UserStore>,
    pub(super) streams: Arc<dyn StreamStore>,
    access_tokens: Arc<AccessTokens>,
    pub(super) cursors: Arc<Cursors>,
    rooms: Arc<Rooms>,
    /// Scale-out: rooms span nodes through Redis.
    redis: Option<RedisChat>,
    /// Per user, across every socket and login on this node.
    rate_limiter: DefaultKeyedRateLimiter<Uuid>,
    /// Slow mode: when each (room, user) last sent, across every socket on this node.
    last_sent: Mutex<HashMap<(Uuid, Uuid), Instant>>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) per_client: Arc<PerClient>,
    pub(super) send_queue: usize,
    max_connections: usize,
    /// Turns true when this node shuts down: every socket closes with 1001.
    closing: watch::Sender<bool>,
}

impl Chat {
    /// `redis`: the URL and pool of a Redis shared by every node, for scale-out.
    pub fn new(
        config: &ChatConfig,
        stores: ChatStores,
        access_tokens: Arc<AccessTokens>,
        cursors: Arc<Cursors>,
        redis: Option<(&str, RedisPool)>,
    ) -> Result<Self, InfraError> {
        let burst = NonZeroU32::new(config.rate_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_millis(config.rate_period_ms))
            .expect("a positive refill period")
            .allow_burst(burst);
        let limits = config.room_limits();
        let rooms = Arc::new(Rooms::new(limits));
        let redis = redis
            .map(|(url, pool)| RedisChat::start(url, pool, Arc::clone(&rooms), limits))
            .transpose()?;
        Ok(Self {
            store: stores.chat,
            users: stores.users,
            streams: stores.streams,
            access_tokens,
            cursors,
            rooms,
            redis,
            rate_limiter: RateLimiter::keyed(quota),
            last_sent: Mutex::default(),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            per_client: PerClient::new(config.max_connections_per_ip),
            send_queue: config.send_queue,
            max_connections: config.max_connections,
            closing: watch::Sender::new(false),
        })
    }

    /// Puts a socket in `room`: live frames go to its outbox from now on; the history to
    /// replay comes with the membership.
    pub(super) async fn join(&self, room: Uuid, outbox: &Arc<Outbox>) -> Joined {
        let mut joined = self.rooms.join(room, outbox);
        if let Some(redis) = &self.redis {
            match redis.joined(room).await {
                Ok(history) => joined.history = history,
                // Served node-locally (the room is subscribed once Redis returns), with
                // what this node kept meanwhile.
                Err(error) => tracing::warn!(%error, %room, "chat joined without Redis"),
            }
        }
        joined
    }

    /// Delivers `event` to the room on every node; a chat message (`message_id`) is also
    /// kept for replay. With `reply_to` (a sender's socket) this does not wait for Redis:
    /// a failure reaches that socket as an error frame instead.
    pub(super) async fn publish(
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
        if let Some(socket) = reply_to {
            let reply = Reply::Socket(Arc::downgrade(socket));
            return redis
                .publish(room, event, message_id, reply)
                .map_err(bus_down);
        }
        let (done, outcome) = oneshot::channel();
        redis
            .publish(room, event, message_id, Reply::Wait(done))
            .map_err(bus_down)?;
        outcome
            .await
            .map_err(|_| ApiError::Unavailable)?
            .map_err(bus_down)
    }

    /// Refuses a tip whose announcement would speak in a chat its sender may not: banned
    /// from it, or timed out (then a tip without a message is fine).
    pub async fn check_tipper(
        &self,
        room: Uuid,
        user: Uuid,
        with_message: bool,
    ) -> Result<(), ApiError> {
        let standing = self.store.chat_standing(room, user).await?;
        if standing.banned {
            return Err(ApiError::BannedFromChat);
        }
        if with_message && standing.timed_out_until.is_some() {
            let reason = "you are timed out in this chat: tip without a message";
            return Err(onair_core::ValidationError::new("message", reason).into());
        }
        Ok(())
    }

    /// Announces a paid tip in its channel's room on every node, kept for replay like a
    /// message. A failure is only logged: the tip is settled either way.
    pub async fn announce_tip(&self, tip: &Tip) {
        let user = ChatUser {
            id: tip.sender.id,
            username: tip.sender.username.clone(),
            display_name: tip.sender.display_name.clone(),
        };
        let frame = ServerFrame::Tip {
            id: tip.id,
            room: tip.channel.id,
            user: &user,
            amount: tip.amount,
            currency: &tip.currency,
            message: tip.message.as_deref(),
            sent_at: chrono::Utc::now(),
        }
        .encode();
        let event = RoomEvent::Frame(frame);
        if let Err(error) = self
            .publish(tip.channel.id, event, Some(tip.id), None)
            .await
        {
            tracing::warn!(%error, tip = %tip.id, "tip not announced in chat");
        }
    }

    /// Removes a deleted message from replay, here (kept while Redis was away) and in
    /// Redis. Without Redis the deletion still goes out; its history there expires
    /// within `chat.history_secs`.
    pub(super) async fn forget(&self, room: Uuid, message_id: Uuid) {
        self.rooms.forget(room, message_id);
        if let Some(redis) = &self.redis
            && let Err(error) = redis.forget(room, message_id).await
        {
            tracing::warn!(%error, %room, "deleted message left in the Redis history");
        }
    }

    /// Forgets empty rooms (and their Redis subscriptions) and idle rate-limit entries,
    /// until the node shuts down.
    pub async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        let mut closing = self.closing.subscribe();
        loop {
            tokio::select! {
                () = signalled(&mut closing) => return,
                _ = tick.tick() => {}
            }
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
            self.last_sent
                .lock()
                .expect("slow mode lock")
                .retain(|_, at| at.elapsed() < MAX_SLOW_MODE);
            metrics::gauge!("chat_rooms").set(open as f64);
        }
    }

    /// The node is going away: every socket closes with 1001 (going away) so its client
    /// reconnects, to another node behind the balancer. Waits up to `grace` for them.
    pub async fn close_all(&self, grace: Duration) {
        self.closing.send_replace(true);
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("chat sockets still open after the shutdown grace period");
        }
    }

    /// Admits a message of `user` in `room`, whichever socket or login it comes from:
    /// refused while their last one is less than `slow` old (slow mode), or past their
    /// rate; the refusal's code, message and how long to wait.
    pub(super) fn admit(
        &self,
        room: Uuid,
        user: Uuid,
        slow: Duration,
    ) -> Result<(), (&'static str, &'static str, Duration)> {
        // Held across both checks so that two sockets cannot both pass slow mode.
        let mut last_sent = self.last_sent.lock().expect("slow mode lock");
        let now = Instant::now();
        if let Some(since) = last_sent.get(&(room, user)).map(|at| now - *at)
            && since < slow
        {
            return Err(("slow_mode", "slow mode is on", slow - since));
        }
        if let Err(not_until) = self.rate_limiter.check_key(&user) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(("rate_limited", "you are sending messages too fast", wait));
        }
        if !slow.is_zero() {
            last_sent.insert((room, user), now);
        }
        Ok(())
    }

    /// Resolves when the node starts shutting down.
    pub(super) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

fn bus_down(_: BusUnavailable) -> ApiError {
    ApiError::Unavailable // the publisher logged why
}

impl Chat {
    /// 404 unless `channel` is a user.
    pub(super) async fn channel_exists(&self, channel: Uuid) -> Result<(), ApiError> {
        self.users
            .profile(channel)
            .await?
            .ok_or(ApiError::NotFound("channel"))
            .map(drop)
    }

    /// The user behind an access token, with their standing in `room`. Banned users
    /// cannot log in to that room's chat (they may still read it anonymously).
    pub async fn member(&self, room: Uuid, token: &str) -> Result<Member, ApiError> {
        let (id, expires_in) = self.access_tokens.verify_expiring(token)?;
        let profile = self
            .users
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
        Ok(Member::new(user, standing, expires_in))
    }
}

/// The chat as the caches' [`ChannelListener`]: a changed channel is announced in its
/// room on every node, so the pages showing it read it again.
pub struct ChangeAnnouncer(pub Arc<Chat>);

impl ChannelListener for ChangeAnnouncer {
    fn channel_changed(&self, channel: Uuid) {
        let chat = Arc::clone(&self.0);
        tokio::spawn(async move {
            let event = RoomEvent::Frame(ServerFrame::ChannelChanged.encode());
            if let Err(error) = chat.publish(channel, event, None, None).await {
                tracing::debug!(%error, %channel, "a channel change was not announced in chat");
            }
        });
    }
}
