//! Chat fan-out under load: N WebSocket readers across R rooms, one sender per room, a
//! fixed message rate; deliveries/s inside the measured window, delivery latency, and
//! server memory per socket (resident and heap in use) with one room and with R. The
//! servers run as their own processes (see `node`), so their memory and CPU are not mixed
//! with the load generator's. One node (in-process rooms), two nodes sharing Redis, and the
//! Node `ws` baseline (see `baseline`) are measured in the same run, each also at a
//! saturating rate if asked; or, with `--server`, a server on another machine alone.

mod baseline;
pub(crate) mod client;
mod cluster;
mod report;

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

pub use client::Endpoint;
use client::{END, Socket, connect, micros, stamp};
use cluster::{Cluster, Memory};

/// A chat server to measure.
#[derive(Clone, Debug)]
pub enum Server {
    /// OnAir nodes as child processes (1: in-process rooms; more: sharing Redis).
    OnAir { nodes: usize },
    /// The Node `ws` baseline as a child process.
    Baseline,
    /// A server already running elsewhere, at this WebSocket base URL.
    Remote(Endpoint),
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::OnAir { nodes: 1 } => write!(f, "OnAir, 1 node"),
            Server::OnAir { nodes } => write!(f, "OnAir, {nodes} nodes (Redis)"),
            Server::Baseline => write!(f, "Node ws baseline"),
            Server::Remote(endpoint) => write!(f, "{}", endpoint.ws),
        }
    }
}

pub struct Settings {
    pub sockets: usize,
    pub rooms: usize,
    /// Messages per second over all rooms.
    pub rate: u64,
    /// A second run per server at this many messages per second, meant to be more than
    /// the server can deliver: its deliveries/s are the saturation throughput.
    pub saturation_rate: Option<u64>,
    pub seconds: u64,
    pub redis_url: String,
    /// The servers to measure, in order.
    pub servers: Vec<Server>,
}

impl Settings {
    /// Deliveries per second `rate` messages per second ask for.
    fn deliveries(&self, rate: u64) -> u64 {
        rate * (self.sockets / self.rooms) as u64
    }
}

/// Where reader `i` goes: rooms in turn, and each room's readers alternate between the
/// nodes, so with two nodes every room has readers on both and its messages cross Redis.
fn placement(i: usize, rooms: usize, nodes: usize) -> (usize, usize) {
    (i % rooms, (i / rooms) % nodes)
}

pub struct Outcome {
    server: Server,
    /// Messages per second asked of the senders.
    rate: u64,
    sent: u64,
    /// Deliveries received by the end of the measured window, and after it.
    in_window: usize,
    after_window: usize,
    /// The last delivery's arrival after the window closed.
    drained_after: Duration,
    expected: u64,
    p50: u32,
    p95: u32,
    p99: u32,
    /// OnAir's own histogram; not known for other servers.
    server_p99_ms: Option<f64>,
    /// Not known for a remote server.
    server_cpu: Option<f64>,
    load_cpu: f64,
}

/// Memory only: every reader in one room (the creators signed up all the same, so the
/// allocator starts from the same state as in the run with traffic).
async fn one_room_memory(settings: &Settings, server: &Server) -> anyhow::Result<Memory> {
    let mut cluster = Cluster::start(settings, server).await?;
    let (readers, memory) = cluster
        .open_readers(server, settings.sockets, 1, Instant::now())
        .await?;
    for reader in readers {
        reader.abort();
    }
    Ok(memory)
}

async fn run_once(
    settings: &Settings,
    server: &Server,
    rate: u64,
) -> anyhow::Result<(Outcome, Memory)> {
    let mut cluster = Cluster::start(settings, server).await?;
    let origin = Instant::now();
    let (readers, memory) = cluster
        .open_readers(server, settings.sockets, settings.rooms, origin)
        .await?;

    // One sender per room, on the first node, each at rate / rooms.
    let mut sockets = Vec::with_capacity(cluster.rooms.len());
    for (room, token) in &cluster.rooms {
        sockets.push(connect(cluster.first(), room, Some(token)).await?);
    }
    let per_room = Duration::from_secs_f64(settings.rooms as f64 / rate as f64);
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(settings.seconds);
    let window_end = micros(origin, until.into_std());
    let cpu_before = cluster.cpu_ticks()?;
    let load_before = crate::media::process_ticks("/proc/self/stat")?;
    let mut senders = Vec::new();
    for (n, socket) in sockets.into_iter().enumerate() {
        // Senders take turns across each period, so messages arrive evenly: in step,
        // every room's message would land in the same instant every period, a burst no
        // real audience makes, and each reader's latency would be its place in it.
        let phase = per_room.mul_f64(n as f64 / settings.rooms as f64);
        let tick = tokio::time::interval_at(start + phase, per_room);
        senders.push(tokio::spawn(send(socket, tick, until, origin)));
    }
    let mut done: Vec<(Socket, u64)> = Vec::new();
    for sender in senders {
        done.push(sender.await?);
    }
    let cpu_after = cluster.cpu_ticks()?;
    let load_after = crate::media::process_ticks("/proc/self/stat")?;
    let cores = |ticks: u64| {
        ticks as f64 / crate::media::TICKS_PER_SECOND / settings.seconds as f64 * 100.0
    };
    // Outside the measured window: tell every room's readers the run is over.
    for (socket, _) in &mut done {
        let frame = json!({"type": "message", "text": END});
        socket.send(Message::Text(frame.to_string().into())).await?;
    }
    let mut deliveries = Vec::new();
    for reader in readers {
        deliveries.extend(reader.await?);
    }
    let in_window = deliveries
        .iter()
        .filter(|d| d.received <= window_end)
        .count();
    let last = deliveries.iter().map(|d| d.received).max().unwrap_or(0);
    let mut latencies: Vec<u32> = deliveries.iter().map(|d| d.latency).collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    // Each room's messages times the readers placed in it.
    let mut readers_in = vec![0u64; settings.rooms];
    for i in 0..settings.sockets {
        readers_in[placement(i, settings.rooms, 1).0] += 1;
    }
    let outcome = Outcome {
        server: server.clone(),
        rate,
        sent: done.iter().map(|(_, sent)| sent).sum(),
        in_window,
        after_window: deliveries.len() - in_window,
        drained_after: Duration::from_micros(last.saturating_sub(window_end)),
        expected: done
            .iter()
            .zip(&readers_in)
            .map(|((_, sent), readers)| sent * readers)
            .sum(),
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        server_p99_ms: cluster.server_p99().await?,
        server_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| cores(after - before)),
        load_cpu: cores(load_after - load_before),
    };
    Ok((outcome, memory))
}

/// A room's sender: a stamped message on every tick until `until`; returns the socket
/// and how many it sent.
async fn send(
    mut socket: Socket,
    mut tick: tokio::time::Interval,
    until: tokio::time::Instant,
    origin: Instant,
) -> (Socket, u64) {
    let mut sent = 0;
    while tick.tick().await < until {
        let frame = json!({"type": "message", "text": format!("t{}", stamp(origin))});
        if socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    (socket, sent)
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut results = report::Results::default();
    for server in &settings.servers {
        if settings.rooms > 1 {
            eprintln!(
                "{server}: memory of {} sockets in one room…",
                settings.sockets
            );
            results
                .memory
                .push(one_room_memory(&settings, server).await?);
        }
        for (rate, saturating) in std::iter::once((settings.rate, false))
            .chain(settings.saturation_rate.map(|r| (r, true)))
        {
            eprintln!(
                "{server}: {} sockets in {} rooms, {rate} messages/s…",
                settings.sockets, settings.rooms
            );
            let (outcome, memory) = run_once(&settings, server, rate).await?;
            if saturating {
                results.saturation.push(outcome);
            } else {
                results.fixed.push(outcome);
                results.memory.push(memory);
            }
        }
    }
    report::print(&settings, &results);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn every_room_has_readers_on_every_node() {
        let (rooms, nodes) = (100, 2);
        let mut seen = HashSet::new();
        for i in 0..rooms * nodes {
            seen.insert(super::placement(i, rooms, nodes));
        }
        assert_eq!(seen.len(), rooms * nodes);
    }

    #[test]
    fn readers_are_spread_evenly() {
        let (rooms, nodes, sockets) = (100, 2, 10_000);
        let mut per = vec![vec![0; nodes]; rooms];
        for i in 0..sockets {
            let (room, node) = super::placement(i, rooms, nodes);
            per[room][node] += 1;
        }
        assert!(per.iter().flatten().all(|&n| n == sockets / rooms / nodes));
    }
}
