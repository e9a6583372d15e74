//! The chat server under test, whichever it is: OnAir nodes or the baseline as child
//! processes of this benchmark (their memory and CPU measured), or a server elsewhere
//! (`--server`, nothing measured but what the generator sees). Every room has a creator
//! account signed up over the server's HTTP API.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::client::{Delivery, Endpoint, connect, creator, read};
use super::{Server, Settings, placement};
use crate::node::{Node, Usage, server_p99};

/// A chat node's settings: its limits out of the way of the load.
const CHAT_NODE: &[(&str, &str)] = &[
    ("ONAIR_CHAT_RATE_BURST", "1000000"),
    ("ONAIR_CHAT_RATE_PERIOD_MS", "1"),
    ("ONAIR_CHAT_MAX_CONNECTIONS", "20000"),
    // Every generated socket comes from 127.0.0.1.
    ("ONAIR_CHAT_MAX_CONNECTIONS_PER_IP", "20000"),
];

pub struct Cluster {
    /// The local server processes (none for a remote server).
    processes: Vec<Node>,
    /// Where the sockets go: one endpoint per node.
    endpoints: Vec<Endpoint>,
    /// OnAir nodes publish their own delivery histogram.
    onair: bool,
    /// Per room: the creator's id (the room) and access token.
    pub rooms: Vec<(String, String)>,
    _data: Option<tempfile::TempDir>,
}

/// Idle server memory per open socket, over all processes.
pub struct Memory {
    pub server: Server,
    pub rooms: usize,
    /// Growth of the resident set and of the heap in use, bytes per socket (none when the
    /// server is not a child process).
    pub growth: Option<Usage<f64>>,
}

impl Cluster {
    /// OnAir nodes sharing a SQLite file (and Redis when more than one), the baseline, or
    /// the remote server; the creators are signed up on the first.
    pub async fn start(settings: &Settings, server: &Server) -> anyhow::Result<Self> {
        let (processes, data, onair) = match server {
            Server::OnAir { nodes } => {
                let data = tempfile::tempdir()?;
                let redis = (*nodes > 1).then_some(settings.redis_url.as_str());
                let mut processes = Vec::new();
                for _ in 0..*nodes {
                    processes.push(Node::start(data.path(), redis, CHAT_NODE).await?);
                }
                (processes, Some(data), true)
            }
            Server::Baseline => (vec![super::baseline::start().await?], None, false),
            Server::Remote(_) => (Vec::new(), None, false),
        };
        let endpoints = match server {
            Server::Remote(endpoint) => vec![endpoint.clone()],
            _ => processes.iter().map(|p| Endpoint::local(&p.http)).collect(),
        };
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let mut rooms = Vec::new();
        for n in 0..settings.rooms {
            rooms.push(creator(&endpoints[0], &run, n).await?);
        }
        Ok(Self {
            processes,
            endpoints,
            onair,
            rooms,
            _data: data,
        })
    }

    /// Where senders connect.
    pub fn first(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    async fn usage(&mut self) -> anyhow::Result<Option<Usage>> {
        if self.processes.is_empty() {
            return Ok(None);
        }
        let mut total = Usage::default();
        for process in &mut self.processes {
            total = total + process.usage().await?;
        }
        Ok(Some(total))
    }

    /// CPU time the local server processes have used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<Option<u64>> {
        if self.processes.is_empty() {
            return Ok(None);
        }
        let ticks = self.processes.iter().map(Node::cpu_ticks);
        Ok(Some(ticks.sum::<anyhow::Result<u64>>()?))
    }

    /// OnAir's own delivery p99 (ms, a bucket bound); nothing from other servers.
    pub async fn server_p99(&self) -> anyhow::Result<Option<f64>> {
        if !self.onair {
            return Ok(None);
        }
        Ok(Some(server_p99(&self.processes).await?))
    }

    /// Opens `sockets` anonymous readers over the first `rooms` rooms (see [`placement`]),
    /// and the servers' memory growth per socket once they have settled.
    pub async fn open_readers(
        &mut self,
        server: &Server,
        sockets: usize,
        rooms: usize,
        origin: Instant,
    ) -> anyhow::Result<(Vec<JoinHandle<Vec<Delivery>>>, Memory)> {
        let before = self.usage().await?;
        let mut readers = Vec::with_capacity(sockets);
        for chunk in (0..sockets).collect::<Vec<_>>().chunks(200) {
            let opened = futures_util::future::try_join_all(chunk.iter().map(|&i| {
                let (room, node) = placement(i, rooms, self.endpoints.len());
                connect(&self.endpoints[node], &self.rooms[room].0, None)
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
            server: server.clone(),
            rooms,
            growth: before.zip(after).map(|(before, after)| Usage {
                rss: per_socket(before.rss, after.rss),
                heap: per_socket(before.heap, after.heap),
            }),
        };
        Ok((readers, memory))
    }
}
