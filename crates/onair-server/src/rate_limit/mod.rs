//! API rate limits (review M1). Every `/api` request counts against one class's GCRA
//! quota: sign-up, login and refresh per client address (`auth_ip`); heartbeats and
//! viewer tokens, webhook / push registrations per caller; everything else per user
//! (`user`) or, for anonymous calls, per client address (`anonymous`). Logins also count
//! per target account (`auth_account`), from wherever they come, so a guesser spread over
//! many addresses is slowed too. HLS media, the web UI, the docs, the media server's callbacks
//! (`/api/hooks`, with their secret), `/healthz`, `/readyz` and `/metrics` are outside the
//! API's router and never limited; chat messages have their own per-user limit (`chat`).
//!
//! Buckets live in this process (embedded) or in Redis, shared by every node. A Redis
//! that does not answer lets requests through (`fail_open`, the default) or refuses them
//! with `503 service_unavailable` — its unavailability, not the client's excess, so not a
//! 429 — and is counted in `onair_rate_limit_backend_errors_total` either way.

mod client_ip;
mod per_client;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::{Method, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onair_infra::{MemoryRateLimiter, Quota, RateLimiter, RedisPool, RedisRateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use client_ip::TrustedProxies;
pub use per_client::{ClientIp, ClientSlot, PerClient};

use crate::error::{ApiError, RateLimitState};
use crate::identity::{AccessTokens, MaybeAuthUser};

/// A limiter that has not answered by then has failed (open or closed, as configured):
/// a stalled Redis must not hold every request up to its deadline.
const BACKEND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off: nothing is limited (load tests).
    pub enabled: bool,
    /// With Redis unreachable: serve unlimited (true) or answer 503 (false).
    pub fail_open: bool,
    /// Where the buckets live in Redis.
    pub key_prefix: String,
    pub user_per_minute: NonZeroU32,
    pub anonymous_per_minute: NonZeroU32,
    pub auth_ip_per_minute: NonZeroU32,
    pub auth_account_per_minute: NonZeroU32,
    pub heartbeat_per_minute: NonZeroU32,
    pub registration_per_minute: NonZeroU32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let n = |n| NonZeroU32::new(n).expect("a positive default");
        Self {
            enabled: true,
            fail_open: true,
            key_prefix: "onair:rl:".into(),
            user_per_minute: n(100),
            anonymous_per_minute: n(20),
            auth_ip_per_minute: n(10),
            auth_account_per_minute: n(5),
            // A player sends one every 15 s; a few tabs behind one address fit.
            heartbeat_per_minute: n(60),
            registration_per_minute: n(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    User,
    Anonymous,
    AuthIp,
    AuthAccount,
    Heartbeat,
    Registration,
}

impl Class {
    const ALL: [Self; 6] = [
        Self::User,
        Self::Anonymous,
        Self::AuthIp,
        Self::AuthAccount,
        Self::Heartbeat,
        Self::Registration,
    ];

    /// The policy name in headers and metrics, and the Redis key's part.
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Anonymous => "anonymous",
            Self::AuthIp => "auth_ip",
            Self::AuthAccount => "auth_account",
            Self::Heartbeat => "heartbeat",
            Self::Registration => "registration",
        }
    }

    fn per_minute(self, config: &RateLimitConfig) -> NonZeroU32 {
        match self {
            Self::User => config.user_per_minute,
            Self::Anonymous => config.anonymous_per_minute,
            Self::AuthIp => config.auth_ip_per_minute,
            Self::AuthAccount => config.auth_account_per_minute,
            Self::Heartbeat => config.heartbeat_per_minute,
            Self::Registration => config.registration_per_minute,
        }
    }

    /// The class of a request to `path` (its route template), apart from who sends it.
    fn of(method: &Method, path: &str) -> Option<Self> {
        if method != Method::POST {
            return None;
        }
        match path {
            "/api/auth/signup" | "/api/auth/login" | "/api/auth/refresh" => Some(Self::AuthIp),
            "/api/streams/{id}/heartbeat" | "/api/streams/{id}/viewer-token" => {
                Some(Self::Heartbeat)
            }
            "/api/webhooks" | "/api/me/push-subscriptions" => Some(Self::Registration),
            _ => None,
        }
    }
}

/// The limiters of every class, and how a request is told which it counts against.
pub struct RateLimits {
    /// Indexed by [`Class`] (`ALL` is in declaration order); `None`: limits are off.
    limiters: Option<Vec<Arc<dyn RateLimiter>>>,
    proxies: TrustedProxies,
    access_tokens: Arc<AccessTokens>,
    fail_open: bool,
}

impl RateLimits {
    pub fn new(
        config: &RateLimitConfig,
        proxies: TrustedProxies,
        access_tokens: Arc<AccessTokens>,
        redis: Option<&RedisPool>,
    ) -> Self {
        let limiter = |class: Class| -> Arc<dyn RateLimiter> {
            let quota = Quota::per_minute(class.per_minute(config));
            match redis {
                Some(pool) => Arc::new(RedisRateLimiter::new(
                    pool.clone(),
                    format!("{}{}:", config.key_prefix, class.name()),
                    quota,
                )),
                None => Arc::new(MemoryRateLimiter::new(quota)),
            }
        };
        Self {
            limiters: config
                .enabled
                .then(|| Class::ALL.iter().copied().map(limiter).collect()),
            proxies,
            access_tokens,
            fail_open: config.fail_open,
        }
    }

    /// Counts a request of `key` against `class`: what its headers say when it fits
    /// (`None` when it went through unchecked), the error to answer when it does not.
    async fn check(&self, class: Class, key: &str) -> Result<Option<RateLimitState>, ApiError> {
        let Some(limiters) = &self.limiters else {
            return Ok(None);
        };
        let limiter = &limiters[class as usize];
        let decision = match tokio::time::timeout(BACKEND_TIMEOUT, limiter.check(key)).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(error)) => return self.backend_failed(&error),
            Err(_) => return self.backend_failed(&"no answer in time"),
        };
        let quota = limiter.quota();
        let state = RateLimitState {
            policy: class.name(),
            quota: quota.limit.get(),
            window_secs: quota.window.as_secs(),
            remaining: decision.remaining,
            // Rounded up, and a refused client never told to retry at once.
            reset_secs: (decision.reset.as_micros().div_ceil(1_000_000) as u64)
                .max(u64::from(!decision.allowed)),
        };
        if decision.allowed {
            Ok(Some(state))
        } else {
            metrics::counter!("onair_rate_limited_total", "class" => class.name()).increment(1);
            Err(ApiError::RateLimited(state))
        }
    }

    fn backend_failed(
        &self,
        error: &dyn std::fmt::Display,
    ) -> Result<Option<RateLimitState>, ApiError> {
        metrics::counter!("onair_rate_limit_backend_errors_total").increment(1);
        tracing::warn!(%error, fail_open = self.fail_open, "rate limit backend failed");
        if self.fail_open {
            Ok(None)
        } else {
            Err(ApiError::Unavailable)
        }
    }

    /// Counts a login attempt on `account` (its id, or the login tried when no account
    /// has it), wherever the attempt comes from.
    pub async fn check_login(&self, account: &str) -> Result<(), ApiError> {
        // Hashed: the buckets in Redis need not hold anyone's email.
        let digest = Sha256::digest(account.as_bytes());
        self.check(Class::AuthAccount, &hex::encode(&digest[..16]))
            .await
            .map(drop)
    }

    /// Who sent a request: its peer, or the client our trusted proxies forwarded.
    fn client_ip(&self, parts: &Parts) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        self.proxies.client_ip(peer, &parts.headers)
    }

    /// The class and the key a request counts against.
    async fn classify(&self, parts: &mut Parts) -> (Class, String) {
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let class = Class::of(&parts.method, &path);
        // An invalid token is the handler's to refuse: until then the caller is anonymous.
        let user = match class {
            Some(Class::AuthIp) => None,
            _ => MaybeAuthUser::from_request_parts(parts, &self.access_tokens)
                .await
                .ok()
                .and_then(|MaybeAuthUser(user)| user),
        };
        let client = || client_ip::client_key(self.client_ip(parts));
        match (class, user) {
            (Some(class), Some(user)) => (class, user.to_string()),
            (Some(class), None) => (class, client()),
            (None, Some(user)) => (Class::User, user.to_string()),
            (None, None) => (Class::Anonymous, client()),
        }
    }
}

/// The middleware on `/api`: refuses a request past its quota with `429 rate_limited`,
/// and tells every counted one where it stands (`RateLimit`, `RateLimit-Policy`). Every
/// request carries its [`ClientIp`] on from here.
pub async fn limit(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // For the handlers that cap connections per client, limits on or off.
    let client = ClientIp(limits.client_ip(&parts));
    parts.extensions.insert(client);
    if limits.limiters.is_none() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (class, key) = limits.classify(&mut parts).await;
    match limits.check(class, &key).await {
        Ok(state) => {
            let mut response = next.run(Request::from_parts(parts, body)).await;
            // A handler's own refusal (a login's per-account limit) tells its own policy.
            if let Some(state) = state
                && !response.headers().contains_key(RateLimitState::STATE)
            {
                state.write(response.headers_mut());
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_route() {
        let post = Method::POST;
        assert_eq!(Class::of(&post, "/api/auth/login"), Some(Class::AuthIp));
        assert_eq!(Class::of(&post, "/api/auth/logout"), None);
        assert_eq!(
            Class::of(&post, "/api/streams/{id}/heartbeat"),
            Some(Class::Heartbeat)
        );
        // Minting viewer identities shares the heartbeat quota (issue 14).
        assert_eq!(
            Class::of(&post, "/api/streams/{id}/viewer-token"),
            Some(Class::Heartbeat)
        );
        assert_eq!(Class::of(&post, "/api/webhooks"), Some(Class::Registration));
        assert_eq!(Class::of(&Method::GET, "/api/webhooks"), None);
    }

    #[test]
    fn defaults_are_the_reviews() {
        let config = RateLimitConfig::default();
        assert!(config.enabled && config.fail_open);
        assert_eq!(config.user_per_minute.get(), 100);
        assert_eq!(config.anonymous_per_minute.get(), 20);
    }
}
