//! What every ingest protocol shares: the node's ingest slots, the application's checks
//! and lifecycle calls, and stopping a publish — at once through `Publishers`, or within
//! `RECHECK` when its broadcast is no longer live with it (ended, or its key rotated
//! through another node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::output::LiveOutput;
use crate::transcoder::{InputFormat, TranscodeSettings};
use crate::{Publication, PublishEnd, PublishHandler, PublishRefused, Publishers};

/// How often a publish asks whether its broadcast is still live with it.
const RECHECK: Duration = Duration::from_secs(3);
/// How long ffmpeg has to flush its last segment when a publish ends.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub rtmp_bind: SocketAddr,
    /// The RTMP application publishers must use (`rtmp://host/<app>/<key>`).
    pub app: String,
    /// The SRT listener, when enabled.
    pub srt: Option<SrtConfig>,
    /// Concurrent ingests this node accepts, over every protocol; more are refused.
    pub max_ingests: usize,
    /// The spool: ffmpeg writes HLS to `<media_root>/live/<stream id>/`.
    pub media_root: PathBuf,
    /// Where HLS is published (the spool itself by default).
    pub store: onair_infra::MediaStore,
    pub transcode: TranscodeSettings,
}

/// SRT ingest: publishers name their stream key in the `streamid`.
#[derive(Debug, Clone)]
pub struct SrtConfig {
    pub bind: SocketAddr,
    /// When set, publishers must encrypt with it (AES, any key length); otherwise they
    /// must not encrypt.
    pub passphrase: Option<String>,
    /// The receive latency offered (SRT's buffer for retransmissions); a publisher asking
    /// for more gets its own.
    pub latency: Duration,
}

pub(crate) struct Ingest {
    pub(crate) config: IngestConfig,
    handler: Arc<dyn PublishHandler>,
    slots: Arc<Semaphore>,
    publishers: Publishers,
}

/// An ingest slot, free again when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// An accepted publish: its broadcast, its output, and the ingest slot it holds.
pub(crate) struct Publish {
    pub(crate) publication: Publication,
    pub(crate) output: LiveOutput,
    _slot: Slot,
}

/// Resolves once `stopped` turns true (the node shuts its ingest down).
pub(crate) async fn stopping(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Counts and logs a refusal (never with the key itself).
pub(crate) fn refused(reason: PublishRefused) -> PublishRefused {
    metrics::counter!("ingest_refused_total", "reason" => reason.reason()).increment(1);
    tracing::warn!(reason = reason.reason(), "publish refused");
    reason
}

impl Ingest {
    pub(crate) fn new(
        config: IngestConfig,
        handler: Arc<dyn PublishHandler>,
        publishers: Publishers,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_ingests));
        Self {
            config,
            handler,
            slots,
            publishers,
        }
    }

    /// One of the node's ingest slots, held by a publish until it ends.
    pub(crate) fn slot(&self) -> Result<Slot, PublishRefused> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Ok(Slot { _permit: permit }),
            Err(_) => Err(refused(PublishRefused::AtCapacity)),
        }
    }

    /// Whether a slot is free now (nothing is held: a caller still completing its
    /// handshake takes one only once it has).
    pub(crate) fn has_room(&self) -> Result<(), PublishRefused> {
        match self.slots.available_permits() {
            0 => Err(refused(PublishRefused::AtCapacity)),
            _ => Ok(()),
        }
    }

    /// Whether `stream_key` may publish; nothing is written.
    pub(crate) async fn verify(&self, stream_key: &str) -> Result<(), PublishRefused> {
        self.handler.key_valid(stream_key).await.map_err(refused)
    }

    /// Attaches `stream_key`'s broadcast to a publish holding `slot`, whose input comes
    /// in `input`. `stop` is woken when the application stops the publish.
    pub(crate) async fn start(
        &self,
        slot: Slot,
        stream_key: &str,
        input: InputFormat,
        stop: Arc<Notify>,
    ) -> Result<Publish, PublishRefused> {
        let publication = self
            .handler
            .publish_started(stream_key)
            .await
            .map_err(refused)?;
        metrics::gauge!("ingest_active").increment(1.0);
        tracing::info!(stream_id = %publication.stream_id, resumed = publication.resumed, "publish accepted");
        self.publishers.register(&publication, stop);
        Ok(Publish {
            output: LiveOutput::new(&self.config, &publication, input),
            publication,
            _slot: slot,
        })
    }

    /// Resolves when the application stops the publish (`stop`), or when a re-check
    /// finds the broadcast of the `current` publish (None between publishes) no longer
    /// live with it.
    pub(crate) async fn revoked<F: Future<Output = Option<Publication>>>(
        &self,
        stop: &Notify,
        current: impl Fn() -> F,
    ) {
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.notified() => return,
                _ = tick.tick() => {}
            }
            if let Some(publication) = current().await
                && !self.handler.still_live(&publication).await
            {
                return;
            }
        }
    }

    /// Ends a publish whose ffmpeg is gone (it could not start, or stopped reading).
    pub(crate) async fn transcoder_failed(&self, publish: Publish) {
        metrics::counter!("ingest_transcoder_failures_total").increment(1);
        self.finish(publish, PublishEnd::TranscoderFailed).await;
    }

    /// Stops ffmpeg and tells the application how the publish ended.
    pub(crate) async fn finish(&self, publish: Publish, end: PublishEnd) {
        self.publishers.unregister(&publish.publication);
        let status = publish.output.finish(FLUSH_GRACE).await;
        let end = match status {
            Some(status) if !status.success() && end == PublishEnd::PublisherLeft => {
                // ffmpeg exits non-zero when its input stops mid-stream only if it broke.
                tracing::warn!(?status, "ffmpeg exited with failure");
                metrics::counter!("ingest_transcoder_failures_total").increment(1);
                PublishEnd::TranscoderFailed
            }
            _ => end,
        };
        metrics::gauge!("ingest_active").decrement(1.0);
        tracing::info!(stream_id = %publish.publication.stream_id, ?end, "publish ended");
        self.handler.publish_ended(&publish.publication, end).await;
    }
}
