//! The application side of the media plane: authenticating publishers by stream key,
//! moving broadcasts through their lifecycle (live → offline within the reconnect window
//! → ended), callbacks from external media servers, and serving the HLS ingest writes.

mod hls;
mod hooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use onair_media::{Publication, PublishEnd, PublishHandler, PublishRefused};
use onair_store::{Conflict, Store, StoreError, Timestamp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::state::AppState;
use crate::streams::StreamKeys;

/// Publish authentication and broadcast lifecycle for the built-in ingest (and, through
/// the same store operations, for external media servers' callbacks).
pub struct Broadcasts {
    pub store: Arc<dyn Store>,
    /// Wakes this node's job runners: going live and ending queue notifications.
    pub jobs: Arc<tokio::sync::Notify>,
}

impl Broadcasts {
    /// Authenticates `stream_key` and attaches publisher `session_id` to its owner's
    /// broadcast (continuing one within the reconnect window, else starting one).
    pub async fn attach(
        &self,
        stream_key: &str,
        session_id: Uuid,
    ) -> Result<Publication, PublishRefused> {
        let user_id = StreamKeys::claimed_user(stream_key).ok_or(PublishRefused::InvalidKey)?;
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "publish check failed");
            PublishRefused::Unavailable
        };
        let record = self.store.stream_key(user_id).await.map_err(unavailable)?;
        if !record.is_some_and(|record| StreamKeys::verify(stream_key, &record)) {
            return Err(PublishRefused::InvalidKey);
        }
        match self
            .store
            .attach_publisher(user_id, session_id, Uuid::now_v7())
            .await
        {
            Ok((stream, resumed)) => {
                self.jobs.notify_one();
                Ok(Publication {
                    user_id,
                    stream_id: stream.id,
                    session_id,
                    resumed,
                })
            }
            Err(StoreError::Conflict(Conflict::ActiveStream)) => {
                Err(PublishRefused::AlreadyPublishing)
            }
            Err(StoreError::NotFound) => Err(PublishRefused::InvalidKey),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Publisher `session_id` is gone. A publisher that left may reconnect within the
    /// window, so its broadcast goes offline; a media failure ends it.
    pub async fn detach(&self, session_id: Uuid, end: PublishEnd) {
        let result = match end {
            PublishEnd::PublisherLeft => self.store.detach_publisher(session_id).await,
            PublishEnd::TranscoderFailed => self.store.end_published_stream(session_id).await,
        };
        self.jobs.notify_one();
        if let Err(e) = result {
            // The abandoned-broadcast sweep ends it later if it stays without a publisher.
            tracing::error!(error = %e, %session_id, "could not record the end of a publish");
        }
    }
}

#[async_trait]
impl PublishHandler for Broadcasts {
    async fn publish_started(&self, stream_key: &str) -> Result<Publication, PublishRefused> {
        self.attach(stream_key, Uuid::now_v7()).await
    }

    async fn publish_ended(&self, publication: &Publication, end: PublishEnd) {
        self.detach(publication.session_id, end).await;
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
        .routes(routes!(hls::hls_master))
        .routes(routes!(hls::hls_rendition))
        .routes(routes!(hooks::media_hook))
}
