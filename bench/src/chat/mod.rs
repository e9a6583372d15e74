//! Chat fan-out under load: N WebSocket readers across R rooms, one sender per room, a
//! fixed message rate; deliveries/s inside the measured window, delivery latency, and
//! server memory per socket (resident and heap in use) with one room and with R. The
//! servers run as their own processes (see `node`), so their memory and CPU are not mixed
//! with the load generator's. One node (in-process rooms) and two nodes sharing Redis are
//! measured in the same run.

mod client;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::node::{Node, Usage, server_p99};
use client::{Delivery, END, Socket, connect, creator, micros, read, stamp};

/// A chat node's settings: its limits out of the way of the load.
const CHAT_NODE: &[(&str, &str)] = &[
    ("ONAIR_CHAT_RATE_BURST", "1000000"),
    ("ONAIR_CHAT_RATE_PERIOD_MS", "1"),
    ("ONAIR_CHAT_MAX_CONNECTIONS", "20000"),
];

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

/// Where reader `i` goes: rooms in turn, and each room's readers alternate between the
/// nodes, so with two nodes every room has readers on both and its messages cross Redis.
fn placement(i: usize, rooms: usize, nodes: usize) -> (usize, usize) {
    (i % rooms, (i / rooms) % nodes)
}

/// Server processes sharing a SQLite file (and Redis when more than one), with a creator
/// account per room, all signed up on the first node.
struct Cluster {
    servers: Vec<Node>,
    /// Per room: the creator's id (the room) and access token.
    rooms: Vec<(String, String)>,
    _data: tempfile::TempDir,
}

impl Cluster {
    async fn start(settings: &Settings, nodes: usize) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let redis = (nodes > 1).then_some(settings.redis_url.as_str());
        let mut servers = Vec::new();
        for _ in 0..nodes {
            servers.push(Node::start(data.path(), redis, CHAT_NODE).await?);
        }
        let mut rooms = Vec::new();
        for n in 0..settings.rooms {
            rooms.push(creator(&servers[0].http, n).await?);
        }
        Ok(Self {
            servers,
            rooms,
            _data: data,
        })
    }

    async fn usage(&mut self) -> anyhow::Result<Usage> {
        let mut total = Usage::default();
        for server in &mut self.servers {
            total = total + server.usage().await?;
        }
        Ok(total)
    }

    /// Opens `sockets` anonymous readers over the first `rooms` rooms (see [`placement`]),
    /// and the servers' memory growth per socket once they have settled.
    async fn open_readers(
        &mut self,
        sockets: usize,
        rooms: usize,
        origin: Instant,
    ) -> anyhow::Result<(Vec<JoinHandle<Vec<Delivery>>>, Memory)> {
        let before = self.usage().await?;
        let mut readers = Vec::with_capacity(sockets);
        for chunk in (0..sockets).collect::<Vec<_>>().chunks(200) {
            let opened = futures_util::future::try_join_all(chunk.iter().map(|&i| {
                let (room, node) = placement(i, rooms, self.servers.len());
                connect(&self.servers[node].http, &self.rooms[room].0, None)
            }))
            .await?;
            for socket in opened {
                readers.push(tokio::spawn(read(socket, origin)));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = self.usage().await?;
        let per_socket = |before: u64, after: u64| (after as f64 - before as f64) / sockets as f64;
        let memory = Memory {
            nodes: self.servers.len(),
            rooms,
            rss: per_socket(before.rss, after.rss),
            heap: per_socket(before.heap, after.heap),
        };
        Ok((readers, memory))
    }
}

/// Idle server memory per open socket, over all nodes.
struct Memory {
    nodes: usize,
    rooms: usize,
    /// Growth of the resident set, bytes per socket.
    rss: f64,
    /// Growth of the allocator's heap in use, bytes per socket.
    heap: f64,
}

struct Outcome {
    nodes: usize,
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
    server_p99_ms: f64,
    server_cpu: f64,
    load_cpu: f64,
}

/// Memory only: every reader in one room (the creators signed up all the same, so the
/// allocator starts from the same state as in the run with traffic).
async fn one_room_memory(settings: &Settings, nodes: usize) -> anyhow::Result<Memory> {
    let mut cluster = Cluster::start(settings, nodes).await?;
    let (readers, memory) = cluster
        .open_readers(settings.sockets, 1, Instant::now())
        .await?;
    for reader in readers {
        reader.abort();
    }
    Ok(memory)
}

async fn run_once(settings: &Settings, nodes: usize) -> anyhow::Result<(Outcome, Memory)> {
    let mut cluster = Cluster::start(settings, nodes).await?;
    let origin = Instant::now();
    let (readers, memory) = cluster
        .open_readers(settings.sockets, settings.rooms, origin)
        .await?;
    let servers = &cluster.servers;

    // One sender per room, on the first node, each at rate / rooms.
    let mut sockets = Vec::with_capacity(cluster.rooms.len());
    for (room, token) in &cluster.rooms {
        sockets.push(connect(&servers[0].http, room, Some(token)).await?);
    }
    let per_room = Duration::from_secs_f64(settings.rooms as f64 / settings.rate as f64);
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(settings.seconds);
    let window_end = micros(origin, until.into_std());
    let cpu_before: u64 = servers
        .iter()
        .map(Node::cpu_ticks)
        .sum::<anyhow::Result<u64>>()?;
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
    let cpu_after: u64 = servers
        .iter()
        .map(Node::cpu_ticks)
        .sum::<anyhow::Result<u64>>()?;
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
        readers_in[placement(i, settings.rooms, nodes).0] += 1;
    }
    let outcome = Outcome {
        nodes,
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
        server_p99_ms: server_p99(servers).await?,
        server_cpu: cores(cpu_after - cpu_before),
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
    let (mut outcomes, mut memory) = (Vec::new(), Vec::new());
    for &nodes in &settings.nodes {
        if settings.rooms > 1 {
            eprintln!(
                "{nodes} node(s): memory of {} sockets in one room…",
                settings.sockets
            );
            memory.push(one_room_memory(&settings, nodes).await?);
        }
        eprintln!(
            "{nodes} node(s): {} sockets in {} rooms, {} messages/s…",
            settings.sockets, settings.rooms, settings.rate
        );
        let (outcome, used) = run_once(&settings, nodes).await?;
        outcomes.push(outcome);
        memory.push(used);
    }
    print_tables(&settings, &outcomes, &memory);
    Ok(())
}

fn print_tables(settings: &Settings, outcomes: &[Outcome], memory: &[Memory]) {
    let ms = |us: u32| format!("{:.1}", f64::from(us) / 1000.0);
    let nodes = |n: usize| format!("{n}{}", if n > 1 { " (Redis)" } else { "" });
    println!(
        "{} sockets in {} rooms ({} per room), {} messages/s for {} s\n",
        settings.sockets,
        settings.rooms,
        settings.sockets / settings.rooms,
        settings.rate,
        settings.seconds
    );
    println!(
        "| nodes | messages sent | deliveries in the window | after it (last at +s) | expected | deliveries/s in the window | p50 ms | p95 ms | p99 ms | server-side p99 ms | server CPU (% of a core) | load generator CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | ≤ {} | {:.0}% | {:.0}% |",
            nodes(o.nodes),
            o.sent,
            o.in_window,
            match o.after_window {
                0 => "0".to_owned(),
                late => format!("{late} (+{:.2})", o.drained_after.as_secs_f64()),
            },
            o.expected,
            o.in_window as f64 / settings.seconds as f64,
            ms(o.p50),
            ms(o.p95),
            ms(o.p99),
            o.server_p99_ms,
            o.server_cpu,
            o.load_cpu
        );
    }
    println!(
        "\nIdle server memory per socket ({} sockets, before any message; over all nodes)\n",
        settings.sockets
    );
    println!("| nodes | rooms | RSS growth per socket | heap in use growth per socket |");
    println!("|---:|---:|---:|---:|");
    for m in memory {
        println!(
            "| {} | {} | {:.1} KB | {:.1} KB |",
            nodes(m.nodes),
            m.rooms,
            m.rss / 1024.0,
            m.heap / 1024.0
        );
    }
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
