//! The `onair serve` processes of a topology: all roles in one node, or a node per role,
//! on one PostgreSQL database and one Redis, sharing one data directory (the embedded
//! media store: the ingest node writes HLS there and the API node serves it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::node::{free_port, resident_bytes};
use crate::server::{SECRET, onair_binary};

/// How the roles are spread over processes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One node with every role (the baseline).
    OneNode,
    /// An API + chat node, an ingest node and a worker node.
    ByRole,
}

impl Topology {
    pub fn label(self) -> &'static str {
        match self {
            Self::OneNode => "one node (api,chat,ingest,worker)",
            Self::ByRole => "by role (api,chat · ingest · worker)",
        }
    }

    /// The nodes' roles, in start order: the first migrates the database.
    fn roles(self) -> &'static [&'static str] {
        match self {
            Self::OneNode => &["api,chat,ingest,worker"],
            Self::ByRole => &["api,chat", "ingest", "worker"],
        }
    }
}

/// The settings every node gets besides its roles and addresses: limits out of the way
/// of a load that comes from one address, keys of this run's own in Redis, and a
/// publisher's broadcast ending soon after it disconnects.
fn common_settings(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ONAIR_SECRET_KEY", SECRET.to_owned()),
        ("ONAIR_RATE_LIMIT_ENABLED", "false".to_owned()),
        ("ONAIR_CHAT_RATE_BURST", "1000".to_owned()),
        ("ONAIR_CHAT_RATE_PERIOD_MS", "1".to_owned()),
        ("ONAIR_CHAT_MAX_CONNECTIONS_PER_IP", "100000".to_owned()),
        ("ONAIR_RECONNECT_GRACE_SECS", "2".to_owned()),
        ("ONAIR_MAX_INGESTS", "8".to_owned()),
        ("ONAIR_CACHE_KEY_PREFIX", format!("{prefix}:cache:")),
        ("ONAIR_RATE_LIMIT_KEY_PREFIX", format!("{prefix}:rl:")),
    ]
}

/// A running `onair serve` process; killed when dropped.
pub struct OnairNode {
    pub roles: &'static str,
    process: Child,
    /// `http://127.0.0.1:port`.
    pub http: String,
    /// `rtmp://127.0.0.1:port/live`, on a node with the ingest role.
    pub rtmp: Option<String>,
}

impl OnairNode {
    async fn start(
        roles: &'static str,
        data: &Path,
        database_url: &str,
        redis_url: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let (http, rtmp) = (free_port()?, free_port()?);
        let log = std::fs::File::create(data.join(format!("{}.log", roles.replace(',', "-"))))?;
        let process = Command::new(onair_binary()?)
            .arg("serve")
            .env("ONAIR_ROLE", roles)
            .env("ONAIR_DATA_DIR", data)
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("ONAIR_BIND", format!("127.0.0.1:{http}"))
            .env("ONAIR_RTMP_BIND", format!("127.0.0.1:{rtmp}"))
            .env("ONAIR_SRT_BIND", "127.0.0.1:0")
            .envs(common_settings(prefix))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting onair serve")?;
        let node = Self {
            roles,
            process,
            http: format!("http://127.0.0.1:{http}"),
            rtmp: roles
                .contains("ingest")
                .then(|| format!("rtmp://127.0.0.1:{rtmp}/live")),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            let ready = client.get(format!("{}/readyz", node.http)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(node);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the {roles} node was not ready within 30 s (see its log in {data:?})")
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.process.id().context("the node exited")
    }

    /// CPU ticks used so far by the node process, and by its children (transcoders).
    pub fn cpu_ticks(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.pid()?;
        let own = crate::media::process_ticks(&format!("/proc/{pid}/stat"))?;
        let children = crate::media::children(pid).iter().map(|c| c.1).sum();
        Ok((own, children))
    }

    pub fn rss(&self) -> anyhow::Result<u64> {
        resident_bytes(self.pid()?)
    }
}

/// The nodes of a topology, started in order, and the data directory they share.
pub struct Cluster {
    pub nodes: Vec<OnairNode>,
    _data: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(
        topology: Topology,
        database_url: &str,
        redis_url: &str,
    ) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let prefix = format!("bench-platform-{}", uuid::Uuid::new_v4().simple());
        let mut nodes = Vec::new();
        for roles in topology.roles() {
            nodes.push(
                OnairNode::start(roles, data.path(), database_url, redis_url, &prefix).await?,
            );
        }
        Ok(Self { nodes, _data: data })
    }

    fn with_role(&self, role: &str) -> &OnairNode {
        self.nodes
            .iter()
            .find(|n| n.roles.split(',').any(|r| r == role))
            .expect("every topology has every role")
    }

    /// Where the API (and HLS) is served.
    pub fn api(&self) -> &str {
        &self.with_role("api").http
    }

    /// Where chat sockets connect, without the scheme.
    pub fn chat(&self) -> &str {
        self.with_role("chat").http.trim_start_matches("http://")
    }

    pub fn rtmp(&self) -> &str {
        self.with_role("ingest")
            .rtmp
            .as_deref()
            .expect("an ingest node has RTMP")
    }
}
