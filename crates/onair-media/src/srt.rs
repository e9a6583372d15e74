//! The SRT listener (srt-tokio). A publisher names its stream key in the `streamid`
//! (`publish:<key>`, SRT's access-control syntax `#!::r=<key>,m=publish`, or the plain
//! key); the key is checked with the application before the handshake completes, so a
//! refusal reaches the encoder as an SRT rejection. An accepted connection's MPEG-TS goes
//! to ffmpeg as it arrives, the ladder set from its first H.264 sequence parameter set.
//! srt-tokio's listener task can die on a handshake it does not implement (it panics on
//! unknown extensions, and on key material when no passphrase is configured and the
//! publisher does not announce its key length): it is then bound again within
//! `REBIND_AFTER`, and publishers cut off by it reconnect within the grace window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use srt_protocol::settings::KeySettings;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{KeySize, Passphrase};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::ingest::{self, Ingest, Publish, SrtConfig, refused};
use crate::mpegts::{Sniffer, Source};
use crate::transcoder::InputFormat;
use crate::{PublishEnd, PublishRefused};

/// How long to wait before binding again after the listener died.
const REBIND_AFTER: Duration = Duration::from_millis(200);

/// The bound SRT port.
pub(crate) struct Listener {
    config: SrtConfig,
    local_addr: SocketAddr,
    /// Kept open: dropping it closes the listener.
    _listener: SrtListener,
    incoming: SrtIncoming,
}

impl Listener {
    pub(crate) async fn bind(config: SrtConfig) -> std::io::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(config.bind).await?;
        let local_addr = socket.local_addr()?;
        let (listener, incoming) = SrtListener::builder()
            .latency(config.latency)
            .socket(socket)
            .bind(local_addr)
            .await?;
        Ok(Self {
            config,
            local_addr,
            _listener: listener,
            incoming,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts publishers until `stopped` turns true; every session ends then too.
    pub(crate) async fn run(mut self, ingest: Arc<Ingest>, stopped: watch::Receiver<bool>) {
        tracing::info!(addr = %self.local_addr, "SRT ingest listening");
        let stopping = ingest::stopping(stopped.clone());
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                request = self.incoming.incoming().next() => match request {
                    Some(request) => {
                        let peer = request.remote();
                        let passphrase = self.config.passphrase.clone();
                        tokio::spawn(
                            connect(Arc::clone(&ingest), request, passphrase, stopped.clone())
                                .instrument(tracing::info_span!("srt", %peer)),
                        );
                    }
                    None => self = self.rebind().await,
                },
            }
        }
    }

    /// Binds the same address again after srt-tokio's listener task ended on its own.
    async fn rebind(self) -> Self {
        tracing::error!(addr = %self.local_addr, "the SRT listener stopped; binding it again");
        metrics::counter!("ingest_srt_listener_restarts_total").increment(1);
        let mut config = self.config.clone();
        config.bind = self.local_addr;
        drop(self);
        loop {
            tokio::time::sleep(REBIND_AFTER).await;
            match Self::bind(config.clone()).await {
                Ok(listener) => return listener,
                Err(error) => tracing::warn!(%error, "cannot bind the SRT listener yet"),
            }
        }
    }
}

/// The stream key a `streamid` names for publishing, or why it names none.
fn stream_key(stream_id: &str) -> Result<&str, PublishRefused> {
    let key = if let Some(fields) = stream_id.strip_prefix("#!::") {
        // SRT access control: comma-separated `k=v`; `r` the resource, `m` the mode.
        let field = |name: &str| {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        if field("m").is_some_and(|mode| mode != "publish") {
            return Err(PublishRefused::UnknownApp);
        }
        let resource = field("r").unwrap_or_default();
        resource.strip_prefix("live/").unwrap_or(resource)
    } else if let Some((mode, key)) = stream_id.split_once(':') {
        if mode != "publish" {
            return Err(PublishRefused::UnknownApp);
        }
        key
    } else {
        stream_id
    };
    match key.trim() {
        "" => Err(PublishRefused::InvalidKey),
        key => Ok(key),
    }
}

/// The SRT rejection an encoder is told for a refusal.
fn rejection(refusal: PublishRefused) -> RejectReason {
    RejectReason::Server(match refusal {
        PublishRefused::UnknownApp => ServerRejectReason::BadRequest,
        PublishRefused::InvalidKey | PublishRefused::AccountSuspended => {
            ServerRejectReason::Forbidden
        }
        PublishRefused::AlreadyPublishing => ServerRejectReason::Conflict,
        PublishRefused::AtCapacity => ServerRejectReason::Overload,
        PublishRefused::Unavailable => ServerRejectReason::Down,
        PublishRefused::BadPassphrase => ServerRejectReason::Unauthorized,
    })
}

/// The keys to decrypt a connection with: the configured passphrase at the publisher's
/// key length (srt-tokio panics on a mismatch; unspecified lets the key material decide,
/// and a publisher that does not encrypt is then rejected by the handshake). Err: the
/// publisher announces encryption and no passphrase is configured.
fn keys(passphrase: Option<&str>, key_size: KeySize) -> Result<Option<KeySettings>, ()> {
    match (passphrase, key_size) {
        (None, KeySize::Unspecified) => Ok(None),
        (None, _) => Err(()),
        (Some(passphrase), key_size) => Ok(Some(KeySettings {
            key_size,
            passphrase: Passphrase::try_from(passphrase.to_owned()).map_err(|_| ())?,
        })),
    }
}

/// Checks a connection request and, when the application accepts the publish, serves it.
async fn connect(
    ingest: Arc<Ingest>,
    request: ConnectionRequest,
    passphrase: Option<String>,
    stopped: watch::Receiver<bool>,
) {
    let Ok(keys) = keys(passphrase.as_deref(), request.key_size()) else {
        let refusal = refused(PublishRefused::BadPassphrase);
        let _ = request.reject(rejection(refusal)).await;
        return;
    };
    let stream_id = request.stream_id().map(|id| id.to_string());
    let key = match stream_key(stream_id.as_deref().unwrap_or_default()) {
        Ok(key) => key,
        Err(refusal) => {
            let _ = request.reject(rejection(refused(refusal))).await;
            return;
        }
    };
    // Every check that writes nothing comes before the handshake, and the broadcast is
    // attached only after it: a handshake that fails (a wrong passphrase) leaves no
    // broadcast and sends no notification. Refusals so far are SRT rejections.
    let admitted = match ingest.slot() {
        Ok(slot) => ingest.verify(key).await.map(|()| slot),
        Err(refusal) => Err(refusal),
    };
    let slot = match admitted {
        Ok(slot) => slot,
        Err(refusal) => {
            let _ = request.reject(rejection(refusal)).await;
            return;
        }
    };
    let socket = match request.accept(keys).await {
        Ok(socket) => socket,
        Err(_) => {
            refused(PublishRefused::BadPassphrase);
            return;
        }
    };
    // Refused now (a race with a rotation or another publisher): the connection closes.
    let stop = Arc::new(Notify::new());
    let started = ingest.start(
        slot,
        key,
        InputFormat::MpegTs { adts_audio: false },
        Arc::clone(&stop),
    );
    if let Ok(publish) = started.await {
        serve(&ingest, publish, socket, &stop, stopped).await;
    }
}

/// Feeds the publisher's stream to its output until it leaves, the node stops, or the
/// application stops the publish.
async fn serve(
    ingest: &Ingest,
    mut publish: Publish,
    mut socket: SrtSocket,
    stop: &Notify,
    mut stopped: watch::Receiver<bool>,
) {
    let publication = publish.publication.clone();
    let output = &mut publish.output;
    let receiving = async {
        let mut sniffer = Sniffer::default();
        while let Some(Ok((_, data))) = socket.next().await {
            if output.waiting() {
                let found = sniffer.push(&data);
                if found != Source::Unknown && sniffer.adts_audio() {
                    output.audio_in_adts();
                }
                let started = match found {
                    Source::Unknown => Ok(()),
                    Source::Height(height) => output.start(Some(height)).await,
                    Source::Unreadable => output.start(None).await,
                };
                started?;
            }
            output.write(data).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // None: ffmpeg is gone, which ends the broadcast.
    let ended = tokio::select! {
        received = receiving => received.ok().map(|()| PublishEnd::PublisherLeft),
        _ = stopped.wait_for(|stop| *stop) => Some(PublishEnd::PublisherLeft),
        () = ingest.revoked(stop, || std::future::ready(Some(publication.clone()))) => Some(PublishEnd::Stopped),
    };
    match ended {
        Some(end) => ingest.finish(publish, end).await,
        None => ingest.transcoder_failed(publish).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_key_from_every_streamid_form() {
        assert_eq!(stream_key("publish:abc"), Ok("abc"));
        assert_eq!(stream_key("abc"), Ok("abc"));
        assert_eq!(stream_key("#!::r=abc,m=publish"), Ok("abc"));
        assert_eq!(stream_key("#!::m=publish,r=live/abc"), Ok("abc"));
        assert_eq!(stream_key("#!::r=abc"), Ok("abc"));
        assert_eq!(
            stream_key("#!::r=abc,m=request"),
            Err(PublishRefused::UnknownApp)
        );
        assert_eq!(stream_key("play:abc"), Err(PublishRefused::UnknownApp));
        assert_eq!(stream_key("publish:"), Err(PublishRefused::InvalidKey));
        assert_eq!(stream_key(""), Err(PublishRefused::InvalidKey));
    }

    #[test]
    fn encryption_must_match_the_passphrase() {
        assert_eq!(keys(None, KeySize::Unspecified), Ok(None));
        assert!(keys(None, KeySize::AES128).is_err());
        let settings = keys(Some("a long passphrase"), KeySize::Unspecified).unwrap();
        assert_eq!(settings.unwrap().key_size, KeySize::Unspecified);
        let settings = keys(Some("a long passphrase"), KeySize::AES256).unwrap();
        assert_eq!(settings.unwrap().key_size, KeySize::AES256);
        assert!(keys(Some("short"), KeySize::AES128).is_err());
    }
}
