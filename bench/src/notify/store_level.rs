//! Fan-outs and the queue driven through the store's own calls, as a worker makes them:
//! the statements' cost without a job runner or a rate limit in between.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::StreamExt;
use onair_server::jobs::{JobFailure, JobHandler, JobHandlers, JobRunner, JobsConfig, LeaseClock};
use onair_store::jobs::{ClaimedJob, GoLiveJob, kinds};
use onair_store::{Store, Timestamp};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::server::default_fan_out;

/// Goes live (which enqueues the job) and runs the fan-out the way a worker process
/// does: the job plans its parts, which run `notify_parallel_parts` at a time (without
/// the rate limit, to show the statements' own speed).
pub async fn batched_fan_out(
    store: &Arc<dyn Store>,
    creator: Uuid,
    batch: u32,
    part_size: u32,
) -> anyhow::Result<(Duration, usize)> {
    let workers = default_fan_out().parallel_parts;
    let stream = store
        .start_stream(Uuid::now_v7(), creator, "bench", None)
        .await?;
    let root = claim_go_live(store, stream.id).await?;
    let state: GoLiveJob = serde_json::from_str(&root.payload)?;
    let started = Instant::now();
    let first = store
        .plan_go_live(root.lease(), &state, Duration::ZERO, part_size, lease())
        .await?
        .context("cooldown is off in the benchmark")?;
    let mut parts = vec![(root.lease(), first)];
    for part in claim_all(store, stream.id).await? {
        parts.push((part.lease(), serde_json::from_str(&part.payload)?));
    }
    let count = parts.len();
    let leases: Vec<_> = parts.iter().map(|(lease, _)| *lease).collect();
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(parts)
        .map(|(job, mut state)| async move {
            loop {
                let done = store.fan_out_go_live(job, &state, batch, lease()).await?;
                match done.next {
                    Some(next) => state = next,
                    None => return Ok(()),
                }
            }
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    let took = started.elapsed();
    results.into_iter().collect::<anyhow::Result<()>>()?;
    store.complete_jobs(&leases).await?;
    store.end_stream(creator).await?;
    Ok((took, count))
}

fn lease() -> Timestamp {
    Timestamp::from(chrono::Utc::now() + chrono::Duration::seconds(60))
}

/// Claims every ready job; returns the go-live jobs of `stream`, completes the rest.
async fn claim_all(store: &Arc<dyn Store>, stream: Uuid) -> anyhow::Result<Vec<ClaimedJob>> {
    let claimed = store.claim_jobs(1_000, lease()).await?;
    let (mine, others): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .partition(|job| job.kind == kinds::GO_LIVE && job.payload.contains(&stream.to_string()));
    let others: Vec<_> = others.iter().map(ClaimedJob::lease).collect();
    store.complete_jobs(&others).await?;
    Ok(mine)
}

async fn claim_go_live(store: &Arc<dyn Store>, stream: Uuid) -> anyhow::Result<ClaimedJob> {
    claim_all(store, stream)
        .await?
        .into_iter()
        .next()
        .context("the go-live job was not enqueued")
}

pub struct Naive {
    pub done: i64,
    pub took: Duration,
    pub finished: bool,
}

/// The naive loop's connection. Its commits do not wait for the disk, as the batched
/// fan-out's do not (`SET LOCAL synchronous_commit = off` per batch): the comparison is
/// one statement per follower against one per batch, nothing else.
pub async fn naive_pool(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "off")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(setting == "off", "synchronous_commit is {setting}");
    Ok(pool)
}

/// Review C1's loop: one INSERT per follower, each its own statement and commit, the
/// same row the batched statement writes (no `ON CONFLICT`, as its first try has none).
pub async fn naive_fan_out(
    store: &Arc<dyn Store>,
    pool: &PgPool,
    creator: Uuid,
    budget: Duration,
) -> anyhow::Result<Naive> {
    let stream = store
        .start_stream(Uuid::now_v7(), creator, "naive", None)
        .await?;
    let job = claim_go_live(store, stream.id).await?;
    let followers: Vec<Uuid> =
        sqlx::query_scalar("SELECT follower_id FROM follows WHERE following_id = $1")
            .bind(creator)
            .fetch_all(pool)
            .await?;
    let started = Instant::now();
    let mut done = 0;
    for follower in &followers {
        sqlx::query(
            "INSERT INTO notifications (recipient_id, stream_id, created_at)
             VALUES ($1, $2, $3)",
        )
        .bind(follower)
        .bind(stream.id)
        .bind(stream.started_at)
        .execute(pool)
        .await?;
        done += 1;
        if started.elapsed() > budget {
            break;
        }
    }
    let took = started.elapsed();
    store.complete_jobs(&[job.lease()]).await?;
    store.end_stream(creator).await?;
    Ok(Naive {
        done,
        took,
        finished: done == followers.len() as i64,
    })
}

struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _: &ClaimedJob, _: &LeaseClock) -> Result<(), JobFailure> {
        Ok(())
    }
}

/// No-op jobs claimed and completed per second by `runners` runners sharing the pool.
pub async fn queue_throughput(
    store: &Arc<dyn Store>,
    pool: &PgPool,
    runners: usize,
    jobs: i64,
) -> anyhow::Result<f64> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state, attempts, run_at, created_at)
         SELECT gen_random_uuid(), 'bench_noop', '{}', 'queued', 0, now(), now()
         FROM generate_series(1, $1)",
    )
    .bind(jobs)
    .execute(pool)
    .await?;
    sqlx::raw_sql("ANALYZE jobs").execute(pool).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut handlers = JobHandlers::default();
    handlers.register("bench_noop", Arc::new(Noop));
    let config = JobsConfig {
        concurrency: 64,
        claim_batch: 256,
        poll: Duration::from_millis(10),
        lease: Duration::from_secs(60),
        max_attempts: 3,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..runners)
        .map(|_| {
            let runner = Arc::new(JobRunner::new(
                Arc::clone(store),
                handlers.clone(),
                config.clone(),
                Arc::default(),
            ));
            tokio::spawn(runner.run(stopped.clone()))
        })
        .collect();
    super::until_none(pool, "SELECT count(*) FROM jobs WHERE kind = 'bench_noop'").await?;
    let took = started.elapsed();
    stop.send(true)?;
    for task in tasks {
        task.await?;
    }
    Ok(jobs as f64 / took.as_secs_f64())
}
