//! `onair worker`, the real binary, as a child process on the benchmark's database: the
//! fan-out as it runs in production, through the server's job runner.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use onair_store::Store;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;
use uuid::Uuid;

use super::{UNPACED, all_notified, creator, forget_cooldown, go_live_jobs, no_go_live_jobs};

/// How often the benchmark looks at a fan-out's jobs: the resolution of its times.
const POLL: Duration = Duration::from_millis(5);

/// A running `onair worker` (killed when dropped).
pub struct Worker {
    _process: Child,
    _data: tempfile::TempDir,
}

impl Worker {
    /// Starts `onair worker` with its fan-out paced at `rows_per_second`, and waits until
    /// its job runner is running.
    pub async fn start(database_url: &str, rows_per_second: u32) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut command = crate::server::onair_worker(database_url, data.path(), rows_per_second)?;
        // At info the worker logs (to stdout) when its runner starts; its warnings and
        // errors go on to the benchmark's stderr.
        command.env("ONAIR_LOG", "info").stdout(Stdio::piped());
        let mut process = command.spawn().context("starting onair worker")?;
        let mut lines = BufReader::new(process.stdout.take().context("piped stdout")?).lines();
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("worker running") {
                    return anyhow::Ok(());
                }
                pass_on_trouble(&line);
            }
            anyhow::bail!("onair worker exited: {:?}", process.wait().await?)
        })
        .await;
        started.context("onair worker did not start in 30 s")??;
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                pass_on_trouble(&line);
            }
        });
        Ok(Self {
            _process: process,
            _data: data,
        })
    }
}

fn pass_on_trouble(log_line: &str) {
    if log_line.contains("WARN") || log_line.contains("ERROR") {
        eprintln!("onair worker: {log_line}");
    }
}

/// A go-live's fan-out as the benchmark saw it in the jobs table.
pub struct Watched {
    /// From the go-live to a runner taking its job.
    pub picked_up: Duration,
    /// From then until its last part finished.
    pub fan_out: Duration,
}

/// Watches `stream`'s go-live jobs from `since` until none is left.
pub async fn watch(pool: &PgPool, stream: Uuid, since: Instant) -> anyhow::Result<Watched> {
    let mut taken = None;
    loop {
        let (left, running) = go_live_jobs(pool, stream).await?;
        if running > 0 && taken.is_none() {
            taken = Some(Instant::now());
        }
        if left == 0 {
            let done = Instant::now();
            // Finished between two looks: taken no later than it was done.
            let taken = taken.unwrap_or(done);
            return Ok(Watched {
                picked_up: taken - since,
                fan_out: done - taken,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The store-level sizes fanned out again by an unpaced `onair worker`. A fresh process's
/// first fan-out also opens its connections and plans its statements, so the smallest
/// audience is fanned out once first, unreported.
pub async fn runner_fan_outs(
    database_url: &str,
    store: &Arc<dyn Store>,
    pool: &PgPool,
    sizes: &[i64],
) -> anyhow::Result<Vec<Watched>> {
    super::settle(pool).await?;
    let _worker = Worker::start(database_url, UNPACED).await?;
    if let Some(&smallest) = sizes.first() {
        through_worker(store, pool, smallest).await?;
    }
    let mut rows = Vec::new();
    for &n in sizes {
        let watched = through_worker(store, pool, n).await?;
        eprintln!(
            "{n} followers through onair worker: picked up after {:.2} s, fan-out {:.2} s",
            watched.picked_up.as_secs_f64(),
            watched.fan_out.as_secs_f64()
        );
        rows.push(watched);
    }
    Ok(rows)
}

/// The creator with `n` followers goes live (the store call the API makes, which enqueues
/// the job) and the running worker, polling the queue as it does for jobs another process
/// enqueued, takes it and fans it out.
async fn through_worker(store: &Arc<dyn Store>, pool: &PgPool, n: i64) -> anyhow::Result<Watched> {
    forget_cooldown(pool, creator(n)).await?;
    let stream = store
        .start_stream(Uuid::now_v7(), creator(n), "runner", None)
        .await?;
    let watched = watch(pool, stream.id, Instant::now()).await?;
    all_notified(pool, stream.id, n).await?;
    store.end_stream(creator(n)).await?;
    no_go_live_jobs(pool).await?;
    Ok(watched)
}
