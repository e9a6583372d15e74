//! Viewer heartbeats (review S4). A player reports every ~15 s; heartbeats are only
//! collected in memory here, handed to the viewer counter (in-process, or Redis shared by
//! all nodes) in one batch per flush, and the resulting counts are written to the
//! database in one transaction per persist interval. No heartbeat touches a backend.
//!
//! Anonymous viewers are counted by a viewer token the server signs (issue 14): the
//! stream, a viewer id the server chose and an expiry, under an HMAC. A client cannot pick
//! its ids, and minting counts against the per-address heartbeat quota, so one address
//! adds at most `rate_limit.heartbeat_per_minute` identities a minute (fewer, as its
//! heartbeats share that quota).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::shutdown::signalled;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use onair_core::{Limit, StreamSort, StreamStatus};
use onair_infra::{ViewerCounter, ViewerId};
use onair_store::{StreamStore, ViewerCountUpdate};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Json, Path};
use crate::identity::{AccessTokens, MaybeAuthUser};
use crate::secrets::derive_key;

/// Distinct (stream, viewer) pairs waiting for the next flush; beyond this many the
/// newest are dropped (and counted) rather than growing without bound.
const MAX_PENDING: usize = 1_000_000;

/// A viewer token's signed part: stream id, viewer id (16 bytes each), expiry (Unix ms).
const TOKEN_BODY: usize = 16 + 16 + 8;
const TOKEN_LEN: usize = TOKEN_BODY + 32;

pub struct Viewers {
    store: Arc<dyn StreamStore>,
    counter: Arc<dyn ViewerCounter>,
    salt: [u8; 32],
    token_key: [u8; 32],
    token_ttl_secs: u64,
    pending: Mutex<HashSet<(Uuid, ViewerId)>>,
    /// Broadcasts known to be live, refreshed at every persist.
    live: RwLock<HashSet<Uuid>>,
}

/// The `[viewers]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewerConfig {
    /// How often collected heartbeats go to the viewer counter.
    pub flush_ms: u64,
    /// How often viewer counts are written to the database.
    pub persist_ms: u64,
    /// How long a viewer token is accepted; players then get a new one.
    pub token_ttl_secs: u64,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        Self {
            flush_ms: 2_000,
            persist_ms: 5_000,
            token_ttl_secs: 3_600,
        }
    }
}

impl Viewers {
    pub fn new(
        store: Arc<dyn StreamStore>,
        counter: Arc<dyn ViewerCounter>,
        root_secret: &[u8],
        config: &ViewerConfig,
    ) -> Self {
        Self {
            store,
            counter,
            salt: derive_key(root_secret, "onair/viewer-id"),
            token_key: derive_key(root_secret, "onair/viewer-token"),
            token_ttl_secs: config.token_ttl_secs,
            pending: Mutex::default(),
            live: RwLock::default(),
        }
    }

    /// Viewer ids are kept only as keyed hashes: nothing stored maps back to a client.
    fn hash(&self, identity: &str) -> ViewerId {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.salt).expect("any key length");
        mac.update(identity.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..16].try_into().expect("16 bytes")
    }

    fn token_mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.token_key).expect("any key length");
        mac.update(body);
        mac
    }

    /// A new anonymous identity for `stream_id`, signed.
    fn mint(&self, stream_id: Uuid) -> String {
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.extend_from_slice(stream_id.as_bytes());
        token.extend_from_slice(&rand::random::<[u8; 16]>());
        let ttl_ms = i64::try_from(self.token_ttl_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        token.extend_from_slice(&now_ms().saturating_add(ttl_ms).to_be_bytes());
        let tag = self.token_mac(&token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The viewer id inside `token`, if this server signed it for `stream_id` and it has
    /// not expired.
    fn viewer_of(&self, stream_id: Uuid, token: &str) -> Result<Uuid, ApiError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .filter(|b| b.len() == TOKEN_LEN)
            .ok_or(ApiError::InvalidViewerToken)?;
        let (body, tag) = bytes.split_at(TOKEN_BODY);
        self.token_mac(body)
            .verify_slice(tag)
            .map_err(|_| ApiError::InvalidViewerToken)?;
        let field = |at: usize| -> [u8; 16] { body[at..at + 16].try_into().expect("16 bytes") };
        let expires = i64::from_be_bytes(body[32..].try_into().expect("8 bytes"));
        if Uuid::from_bytes(field(0)) != stream_id || expires <= now_ms() {
            return Err(ApiError::InvalidViewerToken);
        }
        Ok(Uuid::from_bytes(field(16)))
    }

    /// Found and not ended: heartbeats and tokens are for broadcasts that can be watched.
    async fn ensure_live(&self, stream_id: Uuid) -> Result<(), ApiError> {
        let known_live = self
            .live
            .read()
            .expect("live set lock")
            .contains(&stream_id);
        if !known_live {
            // A broadcast that went live since the last refresh: one lookup, then cached.
            match self.store.stream(stream_id).await? {
                None => return Err(ApiError::NotFound("stream")),
                Some(s) if s.status == StreamStatus::Ended => return Err(ApiError::StreamNotLive),
                Some(_) => {
                    self.live.write().expect("live set lock").insert(stream_id);
                }
            }
        }
        Ok(())
    }

    async fn heartbeat(&self, stream_id: Uuid, identity: &str) -> Result<(), ApiError> {
        self.ensure_live(stream_id).await?;
        let viewer = self.hash(identity);
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.len() < MAX_PENDING {
            pending.insert((stream_id, viewer));
        } else {
            metrics::counter!("viewer_heartbeats_dropped_total").increment(1);
        }
        Ok(())
    }

    /// Hands the collected heartbeats to the counter.
    async fn flush(&self) {
        let batch: Vec<_> = std::mem::take(&mut *self.pending.lock().expect("pending lock"))
            .into_iter()
            .collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.counter.record(now_ms(), &batch).await {
            tracing::warn!(error = %e, heartbeats = batch.len(), "viewer flush failed; heartbeats dropped");
        }
    }

    /// Reads every live broadcast's counts and stores them in one transaction.
    async fn persist(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut live = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list_streams(
                    StreamStatus::Live,
                    StreamSort::Started,
                    Limit::new(Some(100))?,
                    cursor,
                )
                .await?;
            live.extend(page.items.iter().map(|s| s.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let counts = self.counter.counts(now_ms(), &live).await?;
        let updates: Vec<_> = live
            .iter()
            .zip(&counts)
            .map(|(id, c)| ViewerCountUpdate {
                stream_id: *id,
                concurrent: i64::try_from(c.concurrent).unwrap_or(i64::MAX),
                unique: i64::try_from(c.unique).unwrap_or(i64::MAX),
            })
            .collect();
        self.store.record_viewer_counts(&updates).await?;
        let total: u64 = counts.iter().map(|c| c.concurrent).sum();
        metrics::gauge!("live_viewers").set(total as f64);
        metrics::gauge!("live_streams").set(live.len() as f64);
        for c in &counts {
            metrics::histogram!("stream_viewers").record(c.concurrent as f64);
        }
        self.counter.retain(&live).await?;
        *self.live.write().expect("live set lock") = live.into_iter().collect();
        Ok(())
    }

    /// Flushes and persists on their intervals until `stop` turns true, then once more,
    /// so heartbeats collected before a shutdown still count.
    pub async fn run(self: Arc<Self>, config: ViewerConfig, mut stop: watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(Duration::from_millis(config.flush_ms));
        let mut persist = tokio::time::interval(Duration::from_millis(config.persist_ms));
        for tick in [&mut flush, &mut persist] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = signalled(&mut stop) => break,
                _ = flush.tick() => self.flush().await,
                _ = persist.tick() => self.flush_and_persist().await,
            }
        }
        self.flush_and_persist().await;
    }

    async fn flush_and_persist(&self) {
        self.flush().await;
        if let Err(e) = self.persist().await {
            tracing::warn!(error = %e, "persisting viewer counts failed");
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Viewers>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(viewer_token))
        .routes(routes!(heartbeat))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ViewerToken {
    /// Sent as `viewer_token` in this stream's heartbeats; opaque.
    viewer_token: String,
    /// Seconds it is accepted for; then get a new one.
    expires_in: u64,
}

/// An anonymous viewer's identity for one broadcast: get one, then send it with every
/// heartbeat until it expires (or a heartbeat answers `invalid_viewer_token`). Counted in
/// the `heartbeat` rate limit class.
#[utoipa::path(post, path = "/streams/{id}/viewer-token", tag = "streams", params(("id" = Uuid, Path)),
    responses((status = 200, body = ViewerToken), (status = 404, body = ErrorBody),
        (status = 409, description = "`stream_not_live`", body = ErrorBody)))]
async fn viewer_token(
    State(viewers): State<Arc<Viewers>>,
    Path(stream_id): Path<Uuid>,
) -> Result<Json<ViewerToken>, ApiError> {
    viewers.ensure_live(stream_id).await?;
    Ok(Json(ViewerToken {
        viewer_token: viewers.mint(stream_id),
        expires_in: viewers.token_ttl_secs,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// From `POST /api/streams/{id}/viewer-token`; required for anonymous viewers,
    /// ignored for logged-in ones.
    viewer_token: Option<String>,
    /// Refused: ids chosen by the client are no longer counted.
    #[schema(value_type = Option<String>, deprecated)]
    viewer_id: Option<serde_json::Value>,
}

/// "Still watching": players send one every 15 s or so while playing.
#[utoipa::path(post, path = "/streams/{id}/heartbeat", tag = "streams", security((), ("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = HeartbeatRequest,
    responses((status = 204, description = "Counted"), (status = 404, body = ErrorBody),
        (status = 409, description = "`stream_not_live`", body = ErrorBody),
        (status = 422, description = "`invalid_viewer_token` (forged, expired or another stream's: get a new one), `validation_failed`", body = ErrorBody)))]
async fn heartbeat(
    State(viewers): State<Arc<Viewers>>,
    MaybeAuthUser(user): MaybeAuthUser,
    Path(stream_id): Path<Uuid>,
    Json(request): Json<HeartbeatRequest>,
) -> Result<StatusCode, ApiError> {
    if request.viewer_id.is_some() {
        return Err(ApiError::Validation(onair_core::ValidationError::new(
            "viewer_id",
            "viewer ids are no longer accepted: get a token from POST /api/streams/{id}/viewer-token and send {\"viewer_token\": …}",
        )));
    }
    let identity = match (user, request.viewer_token) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(token)) => format!("anon:{}", viewers.viewer_of(stream_id, &token)?),
        (None, None) => {
            return Err(ApiError::Validation(onair_core::ValidationError::new(
                "viewer_token",
                "anonymous viewers send the token of POST /api/streams/{id}/viewer-token",
            )));
        }
    };
    viewers.heartbeat(stream_id, &identity).await?;
    Ok(StatusCode::NO_CONTENT)
}
