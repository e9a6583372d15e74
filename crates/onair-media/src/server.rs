//! The ingest server: the RTMP and (when enabled) SRT listeners in front of one set of
//! ingest slots, so a node's cap holds over both protocols.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::ingest::{Ingest, IngestConfig};
use crate::libsrt::SrtError;
use crate::{PublishHandler, Publishers, rtmp, srt};

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {protocol} on {addr}: {source}")]
pub struct BindError {
    pub protocol: &'static str,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

pub struct IngestServer {
    rtmp: rtmp::Listener,
    srt: Option<srt::Listener>,
    ingest: Arc<Ingest>,
}

impl IngestServer {
    pub async fn bind(
        config: IngestConfig,
        handler: Arc<dyn PublishHandler>,
        publishers: Publishers,
    ) -> Result<Self, BindError> {
        let rtmp = rtmp::Listener::bind(config.rtmp_bind)
            .await
            .map_err(|source| BindError {
                protocol: "RTMP",
                addr: config.rtmp_bind,
                source,
            })?;
        let ingest = Arc::new(Ingest::new(config, handler, publishers));
        let srt = match &ingest.config.srt {
            Some(settings) => match srt::Listener::bind(settings, Arc::clone(&ingest)) {
                Ok(listener) => Some(listener),
                // RTMP ingest still works on a node without libsrt.
                Err(error @ SrtError::Missing(_)) => {
                    tracing::error!(%error, "SRT ingest is disabled");
                    None
                }
                Err(error) => {
                    return Err(BindError {
                        protocol: "SRT",
                        addr: settings.bind,
                        source: std::io::Error::other(error),
                    });
                }
            },
            None => None,
        };
        Ok(Self { rtmp, srt, ingest })
    }

    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp.local_addr()
    }

    /// The SRT listener's UDP address, when SRT is enabled.
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.srt.as_ref().map(srt::Listener::local_addr)
    }

    /// Accepts publishers until `shutdown` resolves; then closes every session (their
    /// broadcasts go offline, as for any publisher that drops).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        // Flipped to true on shutdown; listeners and sessions watch it.
        let (stop, stopped) = watch::channel(false);
        let rtmp = tokio::spawn(self.rtmp.run(Arc::clone(&self.ingest), stopped.clone()));
        let srt = self.srt.map(|srt| tokio::spawn(srt.run(stopped)));
        shutdown.await;
        let _ = stop.send(true);
        let _ = rtmp.await;
        if let Some(srt) = srt {
            let _ = srt.await;
        }
    }
}
