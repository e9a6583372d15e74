//! The application side of the media plane: authenticating publishers by stream key,
//! moving broadcasts through their lifecycle (live → offline within the reconnect window
//! → ended), and serving the HLS that ingest writes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use onair_media::{Publication, PublishEnd, PublishHandler, PublishRefused};
use onair_store::{Conflict, Store, StoreError, Timestamp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Path};
use crate::state::AppState;
use crate::streams::StreamKeys;

/// Publish authentication and broadcast lifecycle for the built-in ingest (and, through
/// the same store operations, for external media servers' callbacks).
pub struct Broadcasts {
    pub store: Arc<dyn Store>,
}

#[async_trait]
impl PublishHandler for Broadcasts {
    async fn publish_started(&self, stream_key: &str) -> Result<Publication, PublishRefused> {
        let user_id = StreamKeys::claimed_user(stream_key).ok_or(PublishRefused::InvalidKey)?;
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "publish check failed");
            PublishRefused::Unavailable
        };
        let record = self.store.stream_key(user_id).await.map_err(unavailable)?;
        if !record.is_some_and(|record| StreamKeys::verify(stream_key, &record)) {
            return Err(PublishRefused::InvalidKey);
        }
        let session_id = Uuid::now_v7();
        match self
            .store
            .attach_publisher(user_id, session_id, Uuid::now_v7())
            .await
        {
            Ok((stream, resumed)) => Ok(Publication {
                user_id,
                stream_id: stream.id,
                session_id,
                resumed,
            }),
            Err(StoreError::Conflict(Conflict::ActiveStream)) => {
                Err(PublishRefused::AlreadyPublishing)
            }
            Err(StoreError::NotFound) => Err(PublishRefused::InvalidKey),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn publish_ended(&self, publication: &Publication, end: PublishEnd) {
        let (id, session) = (publication.stream_id, publication.session_id);
        let result = match end {
            // Offline, not ended: the publisher may reconnect within the window.
            PublishEnd::PublisherLeft => self.store.detach_publisher(id, session).await,
            PublishEnd::TranscoderFailed => self.store.end_published_stream(id, session).await,
        };
        if let Err(e) = result {
            // The abandoned-broadcast sweep ends it later if it stays without a publisher.
            tracing::error!(error = %e, stream_id = %id, "could not record the end of a publish");
        }
    }
}

/// Ends broadcasts whose publisher did not return within `grace`. Running as a sweep
/// rather than a timer per broadcast means a restart or a crashed node loses nothing.
pub async fn end_abandoned_broadcasts(store: Arc<dyn Store>, grace: Duration) {
    let period = (grace / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = chrono::Utc::now() - grace;
        match store.end_abandoned_streams(Timestamp::from(cutoff)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "ended broadcasts whose publisher did not return"),
            Err(e) => tracing::warn!(error = %e, "abandoned-broadcast sweep failed"),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hls_master))
        .routes(routes!(hls_rendition))
}

/// Where ingest writes a broadcast's HLS.
pub fn live_dir(media_root: &std::path::Path, stream_id: Uuid) -> PathBuf {
    media_root.join("live").join(stream_id.to_string())
}

/// A live broadcast's master playlist (`master.m3u8`).
#[utoipa::path(get, path = "/live/{stream_id}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("file" = String, Path, description = "`master.m3u8`")),
    responses((status = 200, description = "HLS master playlist"), (status = 404, body = ErrorBody)))]
async fn hls_master(
    State(state): State<AppState>,
    Path((stream_id, file)): Path<(Uuid, String)>,
) -> Result<Response, ApiError> {
    serve_hls(&state, stream_id, &[&file]).await
}

/// A rendition's playlist (`index.m3u8`) or segment (`seg_00001.ts`).
#[utoipa::path(get, path = "/live/{stream_id}/{rendition}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("rendition" = String, Path, description = "`source` or `360p`"),
        ("file" = String, Path, description = "`index.m3u8` or a segment")),
    responses((status = 200, description = "HLS playlist or MPEG-TS segment"), (status = 404, body = ErrorBody)))]
async fn hls_rendition(
    State(state): State<AppState>,
    Path((stream_id, rendition, file)): Path<(Uuid, String, String)>,
) -> Result<Response, ApiError> {
    serve_hls(&state, stream_id, &[&rendition, &file]).await
}

/// Playlists change every segment and are never cached; segments never change.
async fn serve_hls(
    state: &AppState,
    stream_id: Uuid,
    parts: &[&str],
) -> Result<Response, ApiError> {
    let file = parts.last().copied().unwrap_or_default();
    let (content_type, cache_control) = if file.ends_with(".m3u8") {
        ("application/vnd.apple.mpegurl", "no-cache")
    } else if file.ends_with(".ts") {
        ("video/mp2t", "public, max-age=31536000, immutable")
    } else {
        return Err(ApiError::NotFound("media file"));
    };
    // Plain file names only: no traversal, no hidden files.
    let plain = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !parts.iter().all(plain) {
        return Err(ApiError::NotFound("media file"));
    }
    let path = parts
        .iter()
        .fold(live_dir(&state.media_root, stream_id), |dir, part| {
            dir.join(part)
        });
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::NotFound("media file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}
