//! A benchmark server: its own process, so its memory and CPU are its own. An OnAir one is
//! this benchmark binary run as `onair-bench node`, which serves exactly as `onair serve`
//! does (same library, configuration from the same environment) and also answers `heap`
//! on stdin with the allocator's heap in use: glibc can only report that from inside the
//! process, and the load generator's own allocations must not count. [`Node::spawn`] runs
//! any server that answers the same way (the chat baseline).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The `node` subcommand: serves until stdin closes (the benchmark ended or died).
pub async fn serve() -> anyhow::Result<()> {
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut out = tokio::io::stdout();
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "heap" {
                let answer = format!("{}\n", heap_in_use());
                if out.write_all(answer.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    break;
                }
            }
        }
        let _ = closed.send(());
    });
    crate::server::serve_from_env(async {
        let _ = on_close.await;
    })
    .await
}

/// Bytes the allocator has handed out and not had back: chunks in use in every arena,
/// plus blocks mapped on their own.
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// Resident memory and heap in use of a node, in bytes (or bytes per socket).
#[derive(Clone, Copy, Default)]
pub struct Usage<T = u64> {
    pub rss: T,
    pub heap: T,
}

impl<T: std::ops::Add<Output = T>> std::ops::Add for Usage<T> {
    type Output = Usage<T>;
    fn add(self, other: Usage<T>) -> Usage<T> {
        Usage {
            rss: self.rss + other.rss,
            heap: self.heap + other.heap,
        }
    }
}

pub struct Node {
    process: Child,
    questions: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    pub http: String,
}

impl Node {
    /// A node keeping its SQLite file in `data`, sharing `redis` with the others if set,
    /// with the `ONAIR_*` `settings` besides.
    pub async fn start(
        data: &std::path::Path,
        redis: Option<&str>,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("node")
            .env("ONAIR_BIND", format!("127.0.0.1:{port}"))
            .env("ONAIR_DATA_DIR", data)
            .env("ONAIR_SECRET_KEY", crate::server::SECRET)
            .env("ONAIR_RTMP_ENABLED", "false")
            .envs(settings.iter().copied())
            // Thousands of sockets join, and floods come, from one address.
            .env("ONAIR_RATE_LIMIT_ENABLED", "false");
        if let Some(url) = redis {
            command.env("REDIS_URL", url);
        }
        Self::spawn(command, port).await
    }

    /// Runs `command`, a server that listens on 127.0.0.1:`port`, answers `GET /healthz`
    /// and `heap` on stdin, and exits when its stdin closes; returns once it answers.
    pub async fn spawn(mut command: Command, port: u16) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut process = command.spawn()?;
        let questions = process.stdin.take().context("piped stdin")?;
        let answers = BufReader::new(process.stdout.take().context("piped stdout")?).lines();
        let node = Self {
            process,
            questions,
            answers,
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
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let pid = self.process.id().context("running")?;
        crate::media::process_ticks(&format!("/proc/{pid}/stat"))
    }

    /// The process's resident memory (`VmRSS`) and its allocator's heap in use.
    pub async fn usage(&mut self) -> anyhow::Result<Usage> {
        let pid = self.process.id().context("running")?;
        let rss = resident_bytes(pid)?;
        self.questions.write_all(b"heap\n").await?;
        self.questions.flush().await?;
        let heap = self
            .answers
            .next_line()
            .await?
            .context("the node closed its output")?
            .parse()?;
        Ok(Usage { rss, heap })
    }

    /// The delivery-latency histogram's buckets (upper bound in seconds, count).
    pub async fn delivery_buckets(&self) -> anyhow::Result<Vec<(f64, f64)>> {
        let text = reqwest::get(format!("http://{}/metrics", self.http))
            .await?
            .text()
            .await?;
        let mut buckets = Vec::new();
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
            buckets.push((le, count.trim().parse()?));
        }
        Ok(buckets)
    }
}

/// The resident memory (`VmRSS`) of process `pid`, in bytes.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// A loopback port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The servers' own delivery-latency histogram (receive → the room's last socket write),
/// summed over nodes: the bucket bound (ms) at or under which 99 % of deliveries fell.
pub async fn server_p99(servers: &[Node]) -> anyhow::Result<f64> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for server in servers {
        for (le, count) in server.delivery_buckets().await? {
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
