//! The RTMP listener. Each connection runs a scuffle-rtmp session whose handler checks the
//! publish with the application, then turns audio/video messages into FLV on ffmpeg's
//! stdin. Capacity is a semaphore of ingest slots; a refused, failed or stopped publish
//! closes the connection and frees its slot. A publish is stopped at once through
//! `Publishers`, or within `RECHECK` when its broadcast is no longer live with it (ended
//! or its key rotated through another node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scuffle_rtmp::ServerSession;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::flv::{self, TagKind};
use crate::master;
use crate::mirror::Mirror;
use crate::transcoder::{TranscodeSettings, Transcoder};
use crate::{Publication, PublishEnd, PublishHandler, PublishRefused, Publishers, stream_key_of};

/// How often a session asks whether its broadcast is still live with it.
const RECHECK: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub bind: SocketAddr,
    /// The RTMP application publishers must use (`rtmp://host/<app>/<key>`).
    pub app: String,
    /// Concurrent ingests this node accepts; more are refused.
    pub max_ingests: usize,
    /// The spool: ffmpeg writes HLS to `<media_root>/live/<stream id>/`.
    pub media_root: PathBuf,
    /// Where HLS is published (the spool itself by default).
    pub store: onair_infra::MediaStore,
    pub transcode: TranscodeSettings,
}

pub struct IngestServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    config: IngestConfig,
    handler: Arc<dyn PublishHandler>,
    slots: Arc<Semaphore>,
    publishers: Publishers,
}

impl IngestServer {
    pub async fn bind(
        config: IngestConfig,
        handler: Arc<dyn PublishHandler>,
        publishers: Publishers,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.bind).await?;
        let slots = Arc::new(Semaphore::new(config.max_ingests));
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                config,
                handler,
                slots,
                publishers,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Accepts publishers until `shutdown` resolves; then closes every session (their
    /// broadcasts go offline, as for any publisher that drops).
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(addr = %self.local_addr(), "RTMP ingest listening");
        // Flipped to true on shutdown; every session watches it.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let shared = Arc::clone(&self.shared);
                        let stopped = stopped.clone();
                        tokio::spawn(
                            serve_connection(shared, socket, stopped)
                                .instrument(tracing::info_span!("rtmp", %peer)),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        let _ = stop.send(true);
    }
}

/// The publish in progress on one connection.
struct Active {
    rtmp_stream_id: u32,
    publication: Publication,
    transcoder: Transcoder,
    mirror: Mirror,
    _slot: OwnedSemaphorePermit,
}

async fn serve_connection(
    shared: Arc<Shared>,
    socket: tokio::net::TcpStream,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let active = Arc::new(Mutex::new(None));
    let stop = Arc::new(Notify::new());
    let handler = Session {
        shared: Arc::clone(&shared),
        active: Arc::clone(&active),
        stop: Arc::clone(&stop),
    };
    let session = ServerSession::new(socket, handler);
    let ended = tokio::select! {
        result = session.run() => match result {
            Ok(_) => PublishEnd::PublisherLeft,
            Err(e) => {
                tracing::debug!(error = ?e, "RTMP session ended with an error");
                PublishEnd::PublisherLeft
            }
        },
        _ = stopped.wait_for(|stop| *stop) => PublishEnd::PublisherLeft,
        () = revoked(&shared, &active, &stop) => PublishEnd::Stopped,
    };
    // The connection is gone (closed by either side): finish whatever it was publishing.
    let active = active.lock().await.take();
    if let Some(active) = active {
        finish(&shared, active, ended).await;
    }
}

/// Resolves when the application stops this connection's publish, or when a re-check
/// finds its broadcast no longer live with it.
async fn revoked(shared: &Shared, active: &Mutex<Option<Active>>, stop: &Notify) {
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.notified() => return,
            _ = tick.tick() => {}
        }
        let publication = active.lock().await.as_ref().map(|a| a.publication.clone());
        if let Some(publication) = publication
            && !shared.handler.still_live(&publication).await
        {
            return;
        }
    }
}

/// Stops ffmpeg and tells the application how the publish ended.
async fn finish(shared: &Shared, active: Active, end: PublishEnd) {
    shared.publishers.unregister(&active.publication);
    let status = active.transcoder.finish(Duration::from_secs(5)).await;
    active.mirror.finish().await;
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
    tracing::info!(stream_id = %active.publication.stream_id, ?end, "publish ended");
    shared.handler.publish_ended(&active.publication, end).await;
}

struct Session {
    shared: Arc<Shared>,
    active: Arc<Mutex<Option<Active>>>,
    /// Wakes `revoked` when the application stops this publish.
    stop: Arc<Notify>,
}

fn refuse(reason: PublishRefused) -> ServerSessionError {
    metrics::counter!("ingest_refused_total", "reason" => reason.reason()).increment(1);
    // Never log the key itself.
    tracing::warn!(reason = reason.reason(), "publish refused");
    close_connection()
}

/// Any handler error ends the session and closes the socket. scuffle-rtmp has no variant
/// for "refused by the application"; the real reason is logged where it happens.
fn close_connection() -> ServerSessionError {
    ServerSessionError::InvalidChunkSize(0)
}

impl SessionHandler for Session {
    async fn on_publish(
        &mut self,
        stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        let mut active = self.active.lock().await;
        if active.is_some() {
            return Err(refuse(PublishRefused::AlreadyPublishing));
        }
        if app_name != self.shared.config.app {
            return Err(refuse(PublishRefused::UnknownApp));
        }
        let Ok(slot) = Arc::clone(&self.shared.slots).try_acquire_owned() else {
            return Err(refuse(PublishRefused::AtCapacity));
        };
        let publication = self
            .shared
            .handler
            .publish_started(stream_key_of(stream_name))
            .await
            .map_err(refuse)?;
        let output = self
            .shared
            .config
            .media_root
            .join(crate::live_key(publication.stream_id));
        let mut transcoder = match Transcoder::spawn(
            &self.shared.config.transcode,
            &output,
            publication.record,
        ) {
            Ok(transcoder) => transcoder,
            Err(e) => {
                tracing::error!(error = %e, ffmpeg = %self.shared.config.transcode.ffmpeg.display(), "cannot start ffmpeg");
                metrics::counter!("ingest_transcoder_failures_total").increment(1);
                self.shared
                    .handler
                    .publish_ended(&publication, PublishEnd::TranscoderFailed)
                    .await;
                return Err(refuse(PublishRefused::Unavailable));
            }
        };
        if transcoder.write(&flv::HEADER).await.is_err() {
            self.shared
                .handler
                .publish_ended(&publication, PublishEnd::TranscoderFailed)
                .await;
            return Err(refuse(PublishRefused::Unavailable));
        }
        metrics::gauge!("ingest_active").increment(1.0);
        tracing::info!(stream_id = %publication.stream_id, resumed = publication.resumed, "publish accepted");
        let mirror = Mirror::start(
            &self.shared.config.store,
            output.clone(),
            crate::live_key(publication.stream_id),
            publication.record,
        );
        tokio::spawn(master::publish_when_ready(
            output,
            self.shared.config.transcode.ffprobe(),
            publication.record,
            Instant::now(),
            Duration::from_secs(30),
        ));
        self.shared
            .publishers
            .register(&publication, Arc::clone(&self.stop));
        *active = Some(Active {
            rtmp_stream_id: stream_id,
            publication,
            transcoder,
            mirror,
            _slot: slot,
        });
        Ok(())
    }

    async fn on_unpublish(&mut self, stream_id: u32) -> Result<(), ServerSessionError> {
        let mut active = self.active.lock().await;
        if active
            .as_ref()
            .is_some_and(|a| a.rtmp_stream_id == stream_id)
            && let Some(active) = active.take()
        {
            finish(&self.shared, active, PublishEnd::PublisherLeft).await;
        }
        Ok(())
    }

    async fn on_data(
        &mut self,
        stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        let (kind, timestamp, body) = match data {
            SessionData::Video { timestamp, data } => (TagKind::Video, timestamp, data),
            SessionData::Audio { timestamp, data } => (TagKind::Audio, timestamp, data),
            // Metadata is optional for ffmpeg, which probes the codecs itself.
            SessionData::Amf0 { .. } => return Ok(()),
        };
        let mut guard = self.active.lock().await;
        let Some(active) = guard.as_mut().filter(|a| a.rtmp_stream_id == stream_id) else {
            return Ok(());
        };
        if active
            .transcoder
            .write(&flv::tag(kind, timestamp, &body))
            .await
            .is_err()
        {
            // ffmpeg is gone: end the broadcast and drop the publisher.
            let active = guard.take().expect("checked above");
            metrics::counter!("ingest_transcoder_failures_total").increment(1);
            finish(&self.shared, active, PublishEnd::TranscoderFailed).await;
            return Err(close_connection());
        }
        Ok(())
    }
}
