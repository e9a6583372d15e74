//! Chat's WebSocket transport: the upgrade handshake, and a socket whose reading side is
//! tungstenite's (frames, fragments, control frames, limits) while every write, the
//! session's and the room's, goes through the socket's [`Outbox`] as whole frames.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::frame::TOO_SLOW;
use super::outbox::Outbox;
use crate::error::ApiError;

/// A WebSocket upgrade request, checked (RFC 6455 §4.2.1) but not yet answered.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    accept: HeaderValue,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let asks = |name: HeaderName, token: &str| has_token(&parts.headers, name, token);
        let is_upgrade = parts.method == Method::GET
            && asks(CONNECTION, "upgrade")
            && asks(UPGRADE, "websocket")
            && asks(SEC_WEBSOCKET_VERSION, "13");
        let key = parts.headers.get(SEC_WEBSOCKET_KEY);
        let (true, Some(key)) = (is_upgrade, key) else {
            return Err(ApiError::WebSocketRequired);
        };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header value");
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(ApiError::WebSocketRequired)?;
        Ok(Self { on_upgrade, accept })
    }
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Largest message accepted from the client, whole.
    pub max_message: usize,
    /// Writes that may wait for a slow peer before it is cut off.
    pub send_queue: usize,
}

impl Upgrade {
    /// Answers 101 Switching Protocols and, once the client has switched, runs `session`.
    pub fn on_upgrade<F, Fut>(self, limits: SocketLimits, session: F) -> Response
    where
        F: FnOnce(ChatSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        tokio::spawn(async move {
            let upgraded = match self.on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => return tracing::debug!(%error, "chat upgrade failed"),
            };
            // `serve` hands hyper plain TCP streams; this is one of them.
            let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
                return tracing::error!("chat needs a connection accepted by `serve`");
            };
            // Copied out: the `Bytes` would keep hyper's whole read buffer alive for as
            // long as the socket lives.
            let early = parts.read_buf.to_vec();
            drop(parts.read_buf);
            let (read, write) = parts.io.into_inner().into_split();
            let outbox = Arc::new(Outbox::new(write, limits.send_queue, TOO_SLOW.clone()));
            let transport = Transport {
                read,
                outbox: Arc::clone(&outbox),
            };
            // Chat frames are small: 1 KiB read chunks instead of tungstenite's 128 KiB
            // keep an idle socket's memory low (review S1 budgets ~10 KB a connection);
            // larger messages are still assembled whole, up to the limit.
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(0)
                .max_message_size(Some(limits.max_message))
                .max_frame_size(Some(limits.max_message));
            let ws =
                WebSocketStream::from_partially_read(transport, early, Role::Server, Some(config))
                    .await;
            session(ChatSocket { ws, outbox }).await;
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_ACCEPT, self.accept)
            .body(Body::empty())
            .expect("a valid response")
    }
}

/// An open chat socket: the client's frames come from `ws` (which also writes the
/// session's own frames); room frames go straight to `outbox`.
pub struct ChatSocket {
    pub ws: WebSocketStream<Transport>,
    pub outbox: Arc<Outbox>,
}

/// Reads from the TCP stream; writes into the outbox. tungstenite writes each frame it
/// makes in one call, and the outbox takes all of it, so frames never interleave.
pub struct Transport {
    read: OwnedReadHalf,
    outbox: Arc<Outbox>,
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let sent = self.outbox.send(Bytes::copy_from_slice(buf));
        Poll::Ready(sent.map(|()| buf.len()).map_err(|stop| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("socket stopped: {stop:?}"),
            )
        }))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // the outbox writes on its own
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
