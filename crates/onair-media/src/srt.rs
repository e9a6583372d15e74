//! The SRT listener, on libsrt (see `libsrt`). A publisher names its stream key in the
//! `streamid` (`publish:<key>`, SRT's access-control syntax `#!::r=<key>,m=publish`, or
//! the plain key); the key is checked with the application during the handshake, so a
//! refusal reaches the encoder as an SRT rejection. An accepted connection's MPEG-TS goes
//! to ffmpeg as it arrives, the ladder set from its first H.264 sequence parameter set.
//! libsrt's sockets are not file descriptors tokio can poll: one thread accepts, and one
//! per connection reads (an ingest is a whole transcoder; the node's cap bounds both).

use std::collections::HashMap;
use std::ffi::c_int;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::ingest::{self, Ingest, Publish, SrtConfig, refused};
use crate::libsrt::{self, ListenOptions, SrtError};
use crate::mpegts::{Sniffer, Source};
use crate::transcoder::InputFormat;
use crate::{PublishEnd, PublishRefused};

/// The key check runs on libsrt's receiving thread, which every connection on the port
/// shares: past this, the caller is told the service is unavailable.
const VERIFY_WITHIN: Duration = Duration::from_millis(250);
/// Key checks are remembered this long, so callers repeating one (an encoder retrying, or
/// someone trying a key over and over) hold that thread up once. Admitting a key that was
/// rotated meanwhile is harmless: attaching the broadcast checks it again.
const VERDICT_TTL: Duration = Duration::from_secs(5);
/// Distinct keys remembered at most.
const VERDICTS: u64 = 10_000;
/// An admitted caller whose handshake has not completed by then failed it (libsrt's
/// encryption check comes after the key check).
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(3);
/// How often the accepting and reading threads look whether they are still wanted.
const POLL: Duration = Duration::from_millis(100);
/// Datagrams queued between a connection's reading thread and its transcoder.
const RECEIVE_QUEUE: usize = 256;

/// The bound SRT port.
pub(crate) struct Listener {
    socket: libsrt::Listener,
    gate: Arc<Gate>,
    local_addr: SocketAddr,
}

impl Listener {
    /// Binds the SRT port; must be called inside the runtime that checks keys.
    pub(crate) fn bind(config: &SrtConfig, ingest: Arc<Ingest>) -> Result<Self, SrtError> {
        let gate = Arc::new(Gate {
            ingest,
            runtime: Handle::current(),
            verdicts: moka::sync::Cache::builder()
                .max_capacity(VERDICTS)
                .time_to_live(VERDICT_TTL)
                .build(),
            admitted: Mutex::default(),
        });
        let options = ListenOptions {
            latency: config.latency,
            passphrase: config.passphrase.as_deref(),
        };
        let socket = libsrt::Listener::bind(config.bind, &options, Arc::clone(&gate) as _)?;
        let local_addr = socket.local_addr()?;
        Ok(Self {
            socket,
            gate,
            local_addr,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts publishers until `stopped` turns true; every session ends then too.
    pub(crate) async fn run(self, stopped: watch::Receiver<bool>) {
        tracing::info!(addr = %self.local_addr, "SRT ingest listening");
        let ingest = Arc::clone(&self.gate.ingest);
        // The accepting thread stops when this receiver is dropped.
        let (accepted_tx, mut accepted) = mpsc::channel(8);
        let Self { socket, gate, .. } = self;
        let spawned = std::thread::Builder::new()
            .name("srt-accept".into())
            .spawn(move || accept(&socket, &gate, &accepted_tx));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the SRT accepting thread");
            return;
        }
        let stopping = ingest::stopping(stopped.clone());
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                connection = accepted.recv() => match connection {
                    Some((socket, admission)) => {
                        let peer = admission.peer;
                        tokio::spawn(
                            publish(Arc::clone(&ingest), socket, admission, stopped.clone())
                                .instrument(tracing::info_span!("srt", ?peer)),
                        );
                    }
                    None => {
                        tracing::error!("the SRT accepting thread stopped; SRT ingest is down");
                        return;
                    }
                },
            }
        }
    }
}

/// Hands over connections whose handshake completed, until nobody takes them.
fn accept(
    listener: &libsrt::Listener,
    gate: &Gate,
    accepted: &mpsc::Sender<(libsrt::Socket, Admission)>,
) {
    while !accepted.is_closed() {
        gate.forget_stale();
        match listener.accept(POLL) {
            Ok(None) => {}
            Ok(Some(socket)) => {
                // Every connection passed the gate first; one it has not seen is closed.
                if let Some(admission) = gate.take(socket.id())
                    && accepted.blocking_send((socket, admission)).is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "SRT accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The application's checks, asked by libsrt during each handshake.
struct Gate {
    ingest: Arc<Ingest>,
    runtime: Handle,
    /// Recent key checks, by stream key (an unavailable store's answers are not kept).
    verdicts: moka::sync::Cache<String, Result<(), PublishRefused>>,
    /// Callers admitted whose handshake is still completing, by libsrt's socket id.
    admitted: Mutex<HashMap<c_int, Admission>>,
}

/// A caller that passed the key check.
struct Admission {
    key: String,
    peer: Option<SocketAddr>,
    at: Instant,
}

impl Gate {
    fn admissions(&self) -> std::sync::MutexGuard<'_, HashMap<c_int, Admission>> {
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, socket: c_int) -> Option<Admission> {
        self.admissions().remove(&socket)
    }

    /// Forgets callers whose handshake failed after the key check.
    fn forget_stale(&self) {
        self.admissions().retain(|_, admission| {
            let pending = admission.at.elapsed() < HANDSHAKE_WITHIN;
            if !pending {
                refused(PublishRefused::BadPassphrase);
            }
            pending
        });
    }

    fn check<'a>(&self, stream_id: &'a str) -> Result<&'a str, PublishRefused> {
        let key = stream_key(stream_id).map_err(refused)?;
        // Every check here writes nothing and holds nothing; the slot is taken and the
        // broadcast attached only after the handshake, so one that fails (a wrong
        // passphrase) leaves no broadcast and notifies nobody.
        self.ingest.has_room()?;
        if let Some(verdict) = self.verdicts.get(key) {
            return verdict.map(|()| key).map_err(refused);
        }
        let verified = self
            .runtime
            // Made inside block_on: a timer can only be created within the runtime, and
            // this is libsrt's thread.
            .block_on(async { tokio::time::timeout(VERIFY_WITHIN, self.ingest.verify(key)).await });
        let verdict = verified.unwrap_or_else(|_| Err(refused(PublishRefused::Unavailable)));
        if verdict != Err(PublishRefused::Unavailable) {
            self.verdicts.insert(key.to_owned(), verdict);
        }
        verdict.map(|()| key)
    }
}

impl libsrt::Gate for Gate {
    fn admit(&self, socket: c_int, stream_id: &str, peer: Option<SocketAddr>) -> Result<(), c_int> {
        let _span = tracing::info_span!("srt", ?peer).entered();
        let key = self.check(stream_id).map_err(rejection)?;
        let admission = Admission {
            key: key.to_owned(),
            peer,
            at: Instant::now(),
        };
        self.admissions().insert(socket, admission);
        Ok(())
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

/// The SRT rejection an encoder is told for a refusal: SRT's predefined reasons are
/// `1000 + an HTTP status` (libsrt's `SRT_REJX_*`).
fn rejection(refusal: PublishRefused) -> c_int {
    1000 + match refusal {
        // Only a mode other than publish (SRT_REJX_BAD_MODE).
        PublishRefused::UnknownApp => 405,
        PublishRefused::BadPassphrase => 401,
        PublishRefused::AtCapacity => 402, // SRT_REJX_OVERLOAD
        PublishRefused::InvalidKey | PublishRefused::AccountSuspended => 403,
        PublishRefused::AlreadyPublishing => 409,
        PublishRefused::Unavailable => 503,
    }
}

/// Serves an admitted connection once it has a slot and the application attaches its
/// broadcast (refused now, in a race with a rotation or another publisher, or the
/// slot's last holder: the connection closes).
async fn publish(
    ingest: Arc<Ingest>,
    socket: libsrt::Socket,
    admission: Admission,
    stopped: watch::Receiver<bool>,
) {
    let stop = Arc::new(Notify::new());
    let input = InputFormat::MpegTs { adts_audio: false };
    let Ok(slot) = ingest.slot() else { return };
    let started = ingest.start(slot, &admission.key, input, Arc::clone(&stop));
    if let Ok(publish) = started.await {
        serve(&ingest, publish, receive(socket), &stop, stopped).await;
    }
}

/// Reads the connection on a thread of its own into a queue, until the connection ends
/// or the queue's receiver is dropped; then closes it.
fn receive(socket: libsrt::Socket) -> mpsc::Receiver<Bytes> {
    let (queue, received) = mpsc::channel(RECEIVE_QUEUE);
    let span = tracing::Span::current();
    let read = move || {
        let _span = span.entered();
        if let Err(error) = socket.set_receive_timeout(POLL) {
            tracing::warn!(%error, "cannot read the SRT connection");
            return;
        }
        let mut buffer = [0; libsrt::MAX_PAYLOAD];
        while !queue.is_closed() {
            match socket.receive(&mut buffer) {
                Ok(None) => {}
                Ok(Some(len)) => {
                    if queue
                        .blocking_send(Bytes::copy_from_slice(&buffer[..len]))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "the SRT connection ended");
                    return;
                }
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("srt-receive".into())
        .spawn(read)
    {
        tracing::error!(%error, "cannot start an SRT reading thread");
    }
    received
}

/// Feeds the publisher's stream to its output until it leaves, the node stops, or the
/// application stops the publish.
async fn serve(
    ingest: &Ingest,
    mut publish: Publish,
    mut received: mpsc::Receiver<Bytes>,
    stop: &Notify,
    mut stopped: watch::Receiver<bool>,
) {
    let publication = publish.publication.clone();
    let output = &mut publish.output;
    let receiving = async {
        let mut sniffer = Sniffer::default();
        while let Some(data) = received.recv().await {
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
    // The connection closes now (its reading thread finds the queue gone), not after the
    // finish.
    drop(received);
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
    fn refusals_are_told_with_srt_predefined_reasons() {
        assert_eq!(rejection(PublishRefused::InvalidKey), 1403);
        assert_eq!(rejection(PublishRefused::AlreadyPublishing), 1409);
        assert_eq!(rejection(PublishRefused::AtCapacity), 1402);
        assert_eq!(rejection(PublishRefused::Unavailable), 1503);
    }
}
