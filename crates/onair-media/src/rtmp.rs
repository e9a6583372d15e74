//! The RTMP listener. Each connection runs a scuffle-rtmp session whose handler checks the
//! publish with the application, then turns audio/video messages into FLV on ffmpeg's
//! stdin; the first video message's H.264 configuration gives the source height that
//! sets the ladder. A refused, failed or stopped publish closes the connection and frees
//! its ingest slot (`ingest.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use scuffle_rtmp::ServerSession;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, watch};
use tracing::Instrument;

use crate::flv::{self, TagKind};
use crate::ingest::{self, Ingest, Publish, refused};
use crate::transcoder::InputFormat;
use crate::{PublishEnd, PublishRefused, stream_key_of};

/// The bound RTMP port.
pub(crate) struct Listener(TcpListener);

impl Listener {
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self(TcpListener::bind(addr).await?))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.0
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Accepts publishers until `stopped` turns true; every session ends then too.
    pub(crate) async fn run(self, ingest: Arc<Ingest>, stopped: watch::Receiver<bool>) {
        tracing::info!(addr = %self.local_addr(), "RTMP ingest listening");
        let stopping = ingest::stopping(stopped.clone());
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                accepted = self.0.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let ingest = Arc::clone(&ingest);
                        let stopped = stopped.clone();
                        tokio::spawn(
                            serve_connection(ingest, socket, stopped)
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
    }
}

/// The publish in progress on one connection.
struct Active {
    rtmp_stream_id: u32,
    publish: Publish,
}

async fn serve_connection(
    ingest: Arc<Ingest>,
    socket: tokio::net::TcpStream,
    mut stopped: watch::Receiver<bool>,
) {
    let active: Arc<Mutex<Option<Active>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(Notify::new());
    let handler = Session {
        ingest: Arc::clone(&ingest),
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
        () = ingest.revoked(&stop, || {
            let active = Arc::clone(&active);
            async move { active.lock().await.as_ref().map(|a| a.publish.publication.clone()) }
        }) => PublishEnd::Stopped,
    };
    // The connection is gone (closed by either side): finish whatever it was publishing.
    let active = active.lock().await.take();
    if let Some(active) = active {
        ingest.finish(active.publish, ended).await;
    }
}

struct Session {
    ingest: Arc<Ingest>,
    active: Arc<Mutex<Option<Active>>>,
    /// Wakes `Ingest::revoked` when the application stops this publish.
    stop: Arc<Notify>,
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
            refused(PublishRefused::AlreadyPublishing);
            return Err(close_connection());
        }
        if app_name != self.ingest.config.app {
            refused(PublishRefused::UnknownApp);
            return Err(close_connection());
        }
        let slot = self.ingest.slot().map_err(|_| close_connection())?;
        let stop = Arc::clone(&self.stop);
        let publish = self
            .ingest
            .start(slot, stream_key_of(stream_name), InputFormat::Flv, stop)
            .await
            .map_err(|_| close_connection())?;
        *active = Some(Active {
            rtmp_stream_id: stream_id,
            publish,
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
            self.ingest
                .finish(active.publish, PublishEnd::PublisherLeft)
                .await;
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
        let output = &mut active.publish.output;
        let mut written = Ok(());
        // The first video message decides the ladder (H.264 sends its configuration first).
        if kind == TagKind::Video && output.waiting() {
            written = output.start(flv::source_height(&body)).await;
        }
        if written.is_ok() {
            written = output.write(flv::tag(kind, timestamp, &body)).await;
        }
        if written.is_err() {
            // ffmpeg is gone: end the broadcast and drop the publisher.
            let active = guard.take().expect("checked above");
            self.ingest.transcoder_failed(active.publish).await;
            return Err(close_connection());
        }
        Ok(())
    }
}
