//! Chat fan-out under load: N WebSocket readers across R rooms, one sender per room, a
//! fixed message rate; deliveries/s, delivery latency, and server memory per socket. The
//! server runs as its own process (the release `onair` binary next to this one), so its
//! memory and CPU are not mixed with the load generator's. One node (in-process rooms)
//! and two nodes sharing Redis are measured in the same run.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub struct Settings {
    pub sockets: usize,
    pub rooms: usize,
    /// Messages per second over all rooms.
    pub rate: u64,
    pub seconds: u64,
    pub redis_url: String,
    /// Node counts to measure, in order (1: in-process rooms; more: sharing Redis).
    pub nodes: Vec<usize>,
}

struct Node {
    process: Child,
    http: String,
}

impl Node {
    async fn start(data: &std::path::Path, redis: Option<&str>) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("onair");
        if !binary.exists() {
            bail!(
                "{} is missing: build it first (cargo build --release -p onair)",
                binary.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(&binary);
        command
            .env("ONAIR_BIND", format!("127.0.0.1:{port}"))
            .env("ONAIR_DATA_DIR", data)
            .env("ONAIR_SECRET_KEY", crate::SECRET)
            .env("ONAIR_RTMP_ENABLED", "false")
            .env("ONAIR_CHAT_RATE_BURST", "1000000")
            .env("ONAIR_CHAT_RATE_PERIOD_MS", "1")
            .env("ONAIR_CHAT_MAX_CONNECTIONS", "20000")
            .env("ONAIR_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Some(url) = redis {
            command.env("REDIS_URL", url);
        }
        let node = Self {
            process: command.spawn()?,
            http: format!("127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("http://{}/healthz", node.http))
                .send()
                .await
                .is_ok()
            {
                return Ok(node);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not start")
    }

    /// CPU time (user + system) the server process has used so far, in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let pid = self.process.id().context("running")?;
        crate::media::process_ticks(&format!("/proc/{pid}/stat"))
    }

    /// Resident memory of the server process, in bytes.
    fn rss(&self) -> anyhow::Result<u64> {
        let pid = self.process.id().context("running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS")?;
        Ok(kb * 1024)
    }
}

/// The servers' own delivery-latency histogram (receive → the room's last socket write),
/// summed over nodes: the bucket bound (ms) at or under which 99 % of deliveries fell.
async fn server_p99(servers: &[Node]) -> anyhow::Result<f64> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for server in servers {
        let text = reqwest::get(format!("http://{}/metrics", server.http))
            .await?
            .text()
            .await?;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("chat_delivery_seconds_bucket{le=\"") else {
                continue;
            };
            let (le, count) = rest.split_once("\"} ").context("bucket line")?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            let count: f64 = count.trim().parse()?;
            match buckets.iter_mut().find(|(bound, _)| *bound == le) {
                Some((_, total)) => *total += count,
                None => buckets.push((le, count)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |(_, count)| *count);
    let bound = buckets
        .iter()
        .find(|(_, count)| *count >= total * 0.99)
        .map_or(f64::NAN, |(le, _)| *le);
    Ok(bound * 1000.0)
}

/// A creator's (user id, access token).
async fn creator(http: &str, n: usize) -> anyhow::Result<(String, String)> {
    let body = json!({"username": format!("room{n}"), "email": format!("room{n}@bench.example"), "password": "benchmark password"});
    let session: Value = reqwest::Client::new()
        .post(format!("http://{http}/api/auth/signup"))
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(http: &str, room: &str, token: Option<&str>) -> anyhow::Result<Socket> {
    let mut url = format!("ws://{http}/api/channels/{room}/chat");
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

/// Microseconds since the run started, as carried in message texts.
fn stamp(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The text of the last message each sender sends: readers stop when they see it.
const END: &str = "end";

/// Reads a socket until its room's sender says it is done, recording each message's
/// latency (µs). No stop signal is shared between readers: a `select!` on one would be a
/// lock every reader takes on every message.
async fn read(mut socket: Socket, origin: Instant) -> Vec<u32> {
    let mut latencies = Vec::new();
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
            latencies.push(u32::try_from(stamp(origin).saturating_sub(sent)).unwrap_or(u32::MAX));
        }
    }
    latencies
}

/// A message frame's text (the sender's stamp): a substring search, not a JSON parse.
fn message_text(frame: &str) -> Option<&str> {
    frame
        .split("\"text\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
}

struct Outcome {
    nodes: usize,
    sent: u64,
    delivered: usize,
    expected: u64,
    per_second: f64,
    p50: u32,
    p95: u32,
    p99: u32,
    server_p99_ms: f64,
    idle_bytes_per_socket: f64,
    server_cpu: f64,
    load_cpu: f64,
}

async fn run_once(settings: &Settings, nodes: usize) -> anyhow::Result<Outcome> {
    let data = tempfile::tempdir()?;
    let redis = (nodes > 1).then_some(settings.redis_url.as_str());
    let mut servers = Vec::new();
    for _ in 0..nodes {
        servers.push(Node::start(data.path(), redis).await?);
    }
    let mut rooms = Vec::new();
    for n in 0..settings.rooms {
        rooms.push(creator(&servers[0].http, n).await?);
    }
    let rss_before: u64 = servers.iter().map(Node::rss).sum::<anyhow::Result<u64>>()?;

    let origin = Instant::now();
    let mut readers = Vec::with_capacity(settings.sockets);
    for chunk in (0..settings.sockets).collect::<Vec<_>>().chunks(200) {
        let opened = futures_util::future::try_join_all(chunk.iter().map(|&i| {
            let http = &servers[i % nodes].http;
            connect(http, &rooms[i % rooms.len()].0, None)
        }))
        .await?;
        for socket in opened {
            readers.push(tokio::spawn(read(socket, origin)));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after: u64 = servers.iter().map(Node::rss).sum::<anyhow::Result<u64>>()?;

    // One sender per room, on the first node, each at rate / rooms.
    let mut sockets = Vec::with_capacity(rooms.len());
    for (room, token) in &rooms {
        sockets.push(connect(&servers[0].http, room, Some(token)).await?);
    }
    let sent = Arc::new(AtomicU64::new(0));
    let per_room = Duration::from_secs_f64(settings.rooms as f64 / settings.rate as f64);
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(settings.seconds);
    let cpu_before: u64 = servers
        .iter()
        .map(Node::cpu_ticks)
        .sum::<anyhow::Result<u64>>()?;
    let load_before = crate::media::process_ticks("/proc/self/stat")?;
    let mut senders = Vec::new();
    for (n, mut socket) in sockets.into_iter().enumerate() {
        let sent = Arc::clone(&sent);
        // Senders take turns across each period, so messages arrive evenly: in step,
        // every room's message would land in the same instant every period, a burst no
        // real audience makes, and each reader's latency would be its place in it.
        let phase = per_room.mul_f64(n as f64 / settings.rooms as f64);
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + phase, per_room);
            while tick.tick().await < until {
                let frame = json!({"type": "message", "text": format!("t{}", stamp(origin))});
                if socket
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            socket
        }));
    }
    let mut senders_done = Vec::new();
    for sender in senders {
        senders_done.push(sender.await?);
    }
    let cpu_after: u64 = servers
        .iter()
        .map(Node::cpu_ticks)
        .sum::<anyhow::Result<u64>>()?;
    let load_after = crate::media::process_ticks("/proc/self/stat")?;
    let cores = |ticks: u64| {
        ticks as f64 / crate::media::TICKS_PER_SECOND / settings.seconds as f64 * 100.0
    };
    // Outside the measured window: tell every room's readers the run is over.
    for socket in &mut senders_done {
        let frame = json!({"type": "message", "text": END});
        socket.send(Message::Text(frame.to_string().into())).await?;
    }
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await?);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let sent = sent.load(Ordering::Relaxed);
    Ok(Outcome {
        nodes,
        sent,
        delivered: latencies.len(),
        expected: sent * (settings.sockets / settings.rooms) as u64,
        per_second: latencies.len() as f64 / settings.seconds as f64,
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        server_p99_ms: server_p99(&servers).await?,
        idle_bytes_per_socket: rss_after.saturating_sub(rss_before) as f64
            / settings.sockets as f64,
        server_cpu: cores(cpu_after - cpu_before),
        load_cpu: cores(load_after - load_before),
    })
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for &nodes in &settings.nodes {
        eprintln!(
            "{nodes} node(s): {} sockets in {} rooms, {} messages/s…",
            settings.sockets, settings.rooms, settings.rate
        );
        outcomes.push(run_once(&settings, nodes).await?);
    }
    let ms = |us: u32| format!("{:.1}", f64::from(us) / 1000.0);
    println!(
        "{} sockets in {} rooms ({} per room), {} messages/s for {} s\n",
        settings.sockets,
        settings.rooms,
        settings.sockets / settings.rooms,
        settings.rate,
        settings.seconds
    );
    println!(
        "| nodes | messages sent | deliveries (expected) | deliveries/s | p50 ms | p95 ms | p99 ms | server-side p99 ms | idle server memory per socket | server CPU (% of a core) | load generator CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        println!(
            "| {}{} | {} | {} ({}) | {:.0} | {} | {} | {} | ≤ {} | {:.1} KB | {:.0}% | {:.0}% |",
            o.nodes,
            if o.nodes > 1 { " (Redis)" } else { "" },
            o.sent,
            o.delivered,
            o.expected,
            o.per_second,
            ms(o.p50),
            ms(o.p95),
            ms(o.p99),
            o.server_p99_ms,
            o.idle_bytes_per_socket / 1024.0,
            o.server_cpu,
            o.load_cpu
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_found_without_parsing_json() {
        let frame = r#"{"type":"message","id":"x","text":"t12345","sent_at":"…"}"#;
        assert_eq!(super::message_text(frame), Some("t12345"));
        assert_eq!(super::message_text(r#"{"type":"welcome"}"#), None);
    }
}
