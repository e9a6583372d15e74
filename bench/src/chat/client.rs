//! The load generator's side of chat: accounts, sockets, and readers that time every
//! message they receive.

use std::time::Instant;

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Where a chat server answers: its HTTP API and its WebSockets.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://host:port`
    pub http: String,
    /// `ws://host:port`
    pub ws: String,
}

impl Endpoint {
    /// A server on `host:port`.
    pub fn local(address: &str) -> Self {
        Self {
            http: format!("http://{address}"),
            ws: format!("ws://{address}"),
        }
    }

    /// A server given by its WebSocket base URL (`ws://host:port`, optionally with a path
    /// prefix); its HTTP API is at the same place over `http://`. (`wss://` would need a
    /// TLS-enabled WebSocket client, which the generator is not built with.)
    pub fn parse(ws_base: &str) -> anyhow::Result<Self> {
        let base = ws_base.trim_end_matches('/');
        let Some(rest) = base.strip_prefix("ws://") else {
            bail!("--server takes a ws:// base URL, e.g. ws://10.0.0.2:8080 (got {ws_base})");
        };
        if rest.is_empty() {
            bail!("--server {ws_base} has no host");
        }
        Ok(Self {
            http: format!("http://{rest}"),
            ws: base.to_owned(),
        })
    }
}

/// A creator's (user id, access token). `run` keeps names apart between runs against the
/// same long-lived server.
pub async fn creator(server: &Endpoint, run: &str, n: usize) -> anyhow::Result<(String, String)> {
    let username = format!("b{run}_{n}");
    let body = json!({"username": username, "email": format!("{username}@bench.example"), "password": "benchmark password"});
    let session: Value = reqwest::Client::new()
        .post(format!("{}/api/auth/signup", server.http))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        session["user_id"].as_str().context("id")?.to_owned(),
        session["access_token"]
            .as_str()
            .context("token")?
            .to_owned(),
    ))
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &Endpoint, room: &str, token: Option<&str>) -> anyhow::Result<Socket> {
    let mut url = format!("{}/api/channels/{room}/chat", server.ws);
    if let Some(token) = token {
        url.push_str(&format!("?access_token={token}"));
    }
    // Small buffers, as the server uses: 10 000 client sockets at tungstenite's default
    // 128 KiB each would make the load generator, not the server, the bottleneck.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    // Nagle off, as browsers have it for WebSockets: otherwise a sender's message waits
    // for the server's delayed ACK of the one before.
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    socket.next().await.context("welcome")??;
    Ok(socket)
}

/// Microseconds from `origin` to `at`, the clock message texts carry.
pub fn micros(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds since the run started.
pub fn stamp(origin: Instant) -> u64 {
    micros(origin, Instant::now())
}

/// The text of the last message each sender sends: readers stop when they see it.
pub const END: &str = "end";

/// One message as a reader received it.
pub struct Delivery {
    /// When it arrived, in µs since the run started.
    pub received: u64,
    /// Send → received, in µs.
    pub latency: u32,
}

/// Reads a socket until its room's sender says it is done, recording each message's
/// arrival. No stop signal is shared between readers: a `select!` on one would be a lock
/// every reader takes on every message.
pub async fn read(mut socket: Socket, origin: Instant) -> Vec<Delivery> {
    let mut deliveries = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Some(stamp_text) = message_text(text.as_str()) else {
            continue;
        };
        if stamp_text == END {
            break;
        }
        if let Some(sent) = stamp_text
            .strip_prefix('t')
            .and_then(|t| t.parse::<u64>().ok())
        {
            let received = stamp(origin);
            deliveries.push(Delivery {
                received,
                latency: u32::try_from(received.saturating_sub(sent)).unwrap_or(u32::MAX),
            });
        }
    }
    deliveries
}

/// A message frame's text (the sender's stamp): a substring search, not a JSON parse.
fn message_text(frame: &str) -> Option<&str> {
    frame
        .split("\"text\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_found_without_parsing_json() {
        let frame = r#"{"type":"message","id":"x","text":"t12345","sent_at":"…"}"#;
        assert_eq!(super::message_text(frame), Some("t12345"));
        assert_eq!(super::message_text(r#"{"type":"welcome"}"#), None);
    }

    #[test]
    fn a_server_is_given_by_its_websocket_base() {
        let server = super::Endpoint::parse("ws://10.0.0.2:8080/").unwrap();
        assert_eq!(server.http, "http://10.0.0.2:8080");
        assert_eq!(server.ws, "ws://10.0.0.2:8080");
        assert!(super::Endpoint::parse("http://10.0.0.2:8080").is_err());
        assert!(super::Endpoint::parse("ws://").is_err());
    }
}
