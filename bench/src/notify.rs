//! Go-live notifications on PostgreSQL (review C1), all in one run:
//! 1. the set-based fan-out at several batch sizes (to choose the default);
//! 2. fan-out time for 10 k, 100 k and 1 M followers, batched, against the naive
//!    per-follower loop the review criticises (naive only while it fits the budget);
//! 3. the go-live request's latency for a creator with 0 followers and for one with 1 M
//!    while that fan-out runs in the same server;
//! 4. queue throughput (no-op jobs claimed and completed) with 1 and 4 runners.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::StreamExt;
use onair_server::Config;
use onair_server::jobs::{JobFailure, JobHandler, JobHandlers, JobRunner, JobsConfig, LeaseClock};
use onair_store::jobs::{ClaimedJob, GoLiveJob, kinds};
use onair_store::{DbConfig, Store, Timestamp};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

pub struct Settings {
    pub max_followers: i64,
    /// Wall time the naive loop may take per size before it is stopped.
    pub naive_budget: Duration,
    pub queue_jobs: i64,
}

pub async fn run(mut db: DbConfig, settings: Settings) -> anyhow::Result<()> {
    db.max_connections = 25;
    let store = onair_store::connect(&db).await?;
    store.migrate().await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url)
        .await?;
    let sizes: Vec<i64> = [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= settings.max_followers)
        .collect();
    let largest = *sizes.last().context("--max-followers below 10 000")?;
    eprintln!("seeding {largest} users and their follows…");
    let seeded = Instant::now();
    seed(&pool, largest, &sizes).await?;
    eprintln!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());

    // 1. Batch sizes, on the 100 k (or largest) creator.
    let sweep_size = sizes
        .iter()
        .copied()
        .find(|&n| n >= 100_000)
        .unwrap_or(largest);
    let mut batch_rows = Vec::new();
    for batch in [100, 500, 1_000, 2_000, 5_000] {
        // One part: the statement's cost alone.
        let (took, _) = batched_fan_out(&store, creator(sweep_size), batch, u32::MAX).await?;
        eprintln!("batch {batch}: {:.2} s", took.as_secs_f64());
        batch_rows.push((batch, took));
    }

    // 2. Batched (default batch and part sizes) against the naive loop.
    let defaults = Config::default();
    let (default_batch, part_size) = (defaults.notify.batch_size, defaults.notify.part_size);
    let mut size_rows = Vec::new();
    let mut naive_fits = true;
    for &n in &sizes {
        let batched = batched_fan_out(&store, creator(n), default_batch, part_size).await?;
        let naive = if naive_fits {
            let outcome = naive_fan_out(&store, &pool, creator(n), settings.naive_budget).await?;
            naive_fits = outcome.finished;
            Some(outcome)
        } else {
            None
        };
        eprintln!("{n} followers: batched {:.2} s", batched.0.as_secs_f64());
        size_rows.push((n, batched, naive));
    }

    // 4. Queue throughput (before the server starts, so no other runner competes), with
    // the fan-outs' leftovers (dirty pages, autovacuum's work) settled first.
    for settle in ["VACUUM ANALYZE", "CHECKPOINT"] {
        sqlx::raw_sql(settle).execute(&pool).await?;
    }
    let mut queue_rows = Vec::new();
    for runners in [1, 4] {
        // Runs vary a lot on a shared machine: three of each, all reported.
        let mut rates = Vec::new();
        for _ in 0..3 {
            let rate = queue_throughput(&store, &pool, runners, settings.queue_jobs).await?;
            eprintln!("{runners} runner(s): {rate:.0} jobs/s");
            rates.push(rate);
        }
        queue_rows.push((runners, rates));
    }

    // 3. Go-live latency through the real server, its workers running.
    let rates = [100_000, 200_000, 400_000, 10_000_000];
    let golive = go_live_latency(&db, &pool, largest, &rates).await?;

    print_tables(
        &batch_rows,
        sweep_size,
        (default_batch, part_size),
        &size_rows,
        &golive,
        &queue_rows,
    );
    pool.close().await;
    store.close().await;
    Ok(())
}

/// The id of the seeded creator with `n` followers.
fn creator(n: i64) -> Uuid {
    Uuid::from_u128(0x00C0_FFEE_0000_0000_0000_0000_0000_0000 + n as u128)
}

/// `largest` follower accounts (`md5('f' || i)`), a creator per size followed by the
/// first `n` of them, and ANALYZE.
async fn seed(pool: &PgPool, largest: i64, sizes: &[i64]) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
         SELECT md5('f' || i)::uuid, 'f' || i, 'f' || i || '@example.com', 'x', now(), now()
         FROM generate_series(1, $1) AS i",
    )
    .bind(largest)
    .execute(pool)
    .await?;
    for &n in sizes {
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
             VALUES ($1, 'creator' || $2, 'creator' || $2 || '@example.com', 'x', now(), now())",
        )
        .bind(creator(n))
        .bind(n)
        .execute(pool)
        .await?;
        follow_all(pool, creator(n), n).await?;
    }
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// The first `n` seeded users follow `creator`, with the follower counter the API
/// would have kept (fan-out planning reads it).
async fn follow_all(pool: &PgPool, creator: Uuid, n: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO follows (follower_id, following_id, created_at)
         SELECT md5('f' || i)::uuid, $1, now() - (i || ' milliseconds')::interval
         FROM generate_series(1, $2) AS i",
    )
    .bind(creator)
    .bind(n)
    .execute(pool)
    .await?;
    sqlx::query("UPDATE users SET follower_count = $2 WHERE id = $1")
        .bind(creator)
        .bind(n)
        .execute(pool)
        .await?;
    Ok(())
}

/// Goes live (which enqueues the job) and runs the fan-out the way a worker process
/// does: the job plans its parts, which run `notify_parallel_parts` at a time (without
/// the rate limit, to show the statements' own speed).
async fn batched_fan_out(
    store: &Arc<dyn Store>,
    creator: Uuid,
    batch: u32,
    part_size: u32,
) -> anyhow::Result<(Duration, usize)> {
    let workers = Config::default().notify.parallel_parts;
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

struct Naive {
    done: i64,
    took: Duration,
    finished: bool,
}

/// Review C1's loop: one INSERT per follower, each its own statement and commit.
async fn naive_fan_out(
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
             VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
        )
        .bind(follower)
        .bind(stream.id)
        .execute(pool)
        .await?;
        done += 1;
        if started.elapsed() > budget {
            break;
        }
    }
    store.complete_jobs(&[job.lease()]).await?;
    store.end_stream(creator).await?;
    Ok(Naive {
        done,
        took: started.elapsed(),
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
async fn queue_throughput(
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
    until_none(pool, "SELECT count(*) FROM jobs WHERE kind = 'bench_noop'").await?;
    let took = started.elapsed();
    stop.send(true)?;
    for task in tasks {
        task.await?;
    }
    Ok(jobs as f64 / took.as_secs_f64())
}

/// Go-live cycles per creator on the API node.
const API_CYCLES: usize = 200;

struct GoLiveLatency {
    /// A creator with no followers, on a node that also runs jobs.
    zero: Vec<Duration>,
    /// Both creators on a node that leaves jobs to workers.
    api_quiet: Vec<Duration>,
    api_popular: Vec<Duration>,
    /// The popular creator while the node fans their go-live out, by rate limit.
    runs: Vec<GoLive>,
}

/// Go-live latency during a fan-out, with the fan-out rate limited to `rate`.
struct GoLive {
    rate: u32,
    busy: Vec<Duration>,
    fan_out: Duration,
}

/// Start/end cycles through the HTTP API: for a creator without followers, then, for
/// each rate limit, for one with `followers` while a fresh server fans that creator's
/// go-live out (measuring only while it runs).
async fn go_live_latency(
    db: &DbConfig,
    pool: &PgPool,
    followers: i64,
    rates: &[u32],
) -> anyhow::Result<GoLiveLatency> {
    let client = reqwest::Client::new();
    let (setup, stop) = crate::serve_on(&db.url, |_| {}).await?;
    let signup = |name: &'static str| {
        let client = client.clone();
        async move {
            let body: Value = client
                .post(format!("http://{setup}/api/auth/signup"))
                .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "benchmark password"}))
                .send()
                .await?
                .json()
                .await?;
            let id: Uuid = body["user"]["id"].as_str().context("signup")?.parse()?;
            anyhow::Ok((
                id,
                body["access_token"].as_str().context("token")?.to_owned(),
            ))
        }
    };
    let (_, quiet) = signup("nobody_follows").await?;
    let (star, popular) = signup("everyone_follows").await?;
    follow_all(pool, star, followers).await?;
    sqlx::raw_sql("VACUUM ANALYZE follows")
        .execute(pool)
        .await?;

    let cycle = |base: std::net::SocketAddr, token: String| {
        let client = client.clone();
        async move {
            let sent = Instant::now();
            let started = client
                .post(format!("http://{base}/api/streams/start"))
                .bearer_auth(&token)
                .json(&json!({"title": "bench"}))
                .send()
                .await?;
            let took = sent.elapsed();
            anyhow::ensure!(started.status().is_success(), "start: {}", started.status());
            let stream: Value = started.json().await?;
            let stream = stream["id"].as_str().context("stream id")?.to_owned();
            let ended = client
                .post(format!("http://{base}/api/streams/end"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(ended.status().is_success(), "end: {}", ended.status());
            anyhow::Ok((took, stream))
        }
    };
    let mut zero = Vec::new();
    for _ in 0..100 {
        zero.push(cycle(setup, quiet.clone()).await?.0);
    }
    drop(stop);

    // The request's own cost: an API node whose fan-outs are left to worker nodes
    // (its runner off), both creators in turn so both see the same machine.
    let (api, stop) = crate::serve_on(&db.url, |config| config.jobs.enabled = false).await?;
    let (mut api_quiet, mut api_popular) = (Vec::new(), Vec::new());
    for _ in 0..API_CYCLES {
        api_quiet.push(cycle(api, quiet.clone()).await?.0);
        api_popular.push(cycle(api, popular.clone()).await?.0);
    }
    drop(stop);
    sqlx::query("DELETE FROM jobs").execute(pool).await?;

    let mut runs = Vec::new();
    for &rate in rates {
        // A fresh go-live for the same audience: forget the last one's cooldown.
        sqlx::query("UPDATE users SET go_live_notified_at = NULL WHERE id = $1")
            .bind(star)
            .execute(pool)
            .await?;
        let (server, stop) =
            crate::serve_on(&db.url, |config| config.notify.rows_per_second = rate).await?;
        let first = Instant::now();
        let (took, fanned) = cycle(server, popular.clone()).await?;
        let mut busy = vec![took];
        // Let this go-live claim the audience before the next ones are measured: their
        // jobs could otherwise be planned first and take the fan-out over.
        let unclaimed = format!(
            "SELECT count(*) FROM users WHERE id = '{star}' AND go_live_notified_at IS NULL"
        );
        until_none(pool, &unclaimed).await?;
        let its_jobs = format!(
            "SELECT count(*) FROM jobs WHERE kind = 'notify_go_live' AND payload LIKE '%{fanned}%'"
        );
        let fanning = || async { anyhow::Ok(count(pool, &its_jobs).await? > 0) };
        // Within the cooldown, later go-lives do not fan out again: every one measured
        // here runs while the first one's rows are being written.
        while fanning().await? && busy.len() < 2_000 {
            busy.push(cycle(server, popular.clone()).await?.0);
        }
        until_none(pool, &its_jobs).await?;
        let fan_out = first.elapsed();
        // The go-lives measured above left cooldown no-op jobs behind: let this server
        // finish them, or the next run's server would take one for a fresh go-live.
        until_none(
            pool,
            "SELECT count(*) FROM jobs WHERE kind = 'notify_go_live' AND state <> 'dead'",
        )
        .await?;
        let notified: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE stream_id = $1::uuid")
                .bind(&fanned)
                .fetch_one(pool)
                .await?;
        anyhow::ensure!(notified == followers, "{notified} of {followers} notified");
        eprintln!("rate {rate}: fan-out {:.2} s", fan_out.as_secs_f64());
        drop(stop);
        runs.push(GoLive {
            rate,
            busy,
            fan_out,
        });
    }
    Ok(GoLiveLatency {
        zero,
        api_quiet,
        api_popular,
        runs,
    })
}

/// The count a benchmark-made `SELECT count(*)` returns.
async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Polls a `SELECT count(*)` every 20 ms until it is 0.
async fn until_none(pool: &PgPool, sql: &str) -> anyhow::Result<()> {
    while count(pool, sql).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_tables(
    batches: &[(u32, Duration)],
    sweep_size: i64,
    (default_batch, part_size): (u32, u32),
    sizes: &[(i64, (Duration, usize), Option<Naive>)],
    golive: &GoLiveLatency,
    queue: &[(usize, Vec<f64>)],
) {
    let s = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!("Fan-out of {sweep_size} followers by batch size\n");
    println!("| batch | seconds | rows/s |\n|---:|---:|---:|");
    for (batch, took) in batches {
        println!(
            "| {batch} | {} | {:.0} |",
            s(*took),
            sweep_size as f64 / took.as_secs_f64()
        );
    }
    println!(
        "\nFan-out time, batched ({default_batch} per statement; parts of {part_size}) vs naive loop (one INSERT per follower)\n"
    );
    println!(
        "| followers | parts | batched s | batched rows/s | naive s | naive rows/s | speed-up |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (n, (batched, parts), naive) in sizes {
        let batched_rate = *n as f64 / batched.as_secs_f64();
        let (naive_s, naive_rate, speedup) = match naive {
            Some(naive) => {
                let rate = naive.done as f64 / naive.took.as_secs_f64();
                let label = if naive.finished {
                    s(naive.took)
                } else {
                    format!("stopped at {} rows after {}", naive.done, s(naive.took))
                };
                (
                    label,
                    format!("{rate:.0}"),
                    format!("{:.0}×", batched_rate / rate),
                )
            }
            None => ("not run (over budget)".into(), "-".into(), "-".into()),
        };
        println!(
            "| {n} | {parts} | {} | {batched_rate:.0} | {naive_s} | {naive_rate} | {speedup} |",
            s(*batched)
        );
    }
    let followers = sizes.last().map_or(0, |row| row.0);
    println!(
        "\nGo-live request (POST /api/streams/start) latency, a creator with 0 followers vs one with {followers}\n"
    );
    println!(
        "| node | creator | rate limit rows/s | fan-out in server s | requests | p50 ms | p95 ms | p99 ms | p95 vs 0 followers |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let row = |node: &str,
               name: String,
               limit: String,
               fan_out: String,
               samples: &[Duration],
               base: &[Duration]| {
        println!(
            "| {node} | {name} | {limit} | {fan_out} | {} | {} | {} | {} | {:.2}× |",
            samples.len(),
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.95)),
            ms(percentile(samples, 0.99)),
            percentile(samples, 0.95).as_secs_f64() / percentile(base, 0.95).as_secs_f64()
        );
    };
    let api = "API (jobs on workers)";
    let (quiet, popular) = (&golive.api_quiet, &golive.api_popular);
    row(
        api,
        "0 followers".into(),
        "-".into(),
        "-".into(),
        quiet,
        quiet,
    );
    row(
        api,
        format!("{followers} followers"),
        "-".into(),
        "-".into(),
        popular,
        quiet,
    );
    let serve = "serve (API + jobs)";
    let zero = &golive.zero;
    row(
        serve,
        "0 followers".into(),
        "-".into(),
        "-".into(),
        zero,
        zero,
    );
    for run in &golive.runs {
        row(
            serve,
            format!("{followers} followers, during its fan-out"),
            run.rate.to_string(),
            s(run.fan_out),
            &run.busy,
            zero,
        );
    }
    println!("\nQueue throughput (no-op jobs, claimed in batches and completed in batches)\n");
    println!("| runners | jobs/s, run 1 | run 2 | run 3 |\n|---:|---:|---:|---:|");
    for (runners, rates) in queue {
        let rates: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
        println!("| {runners} | {} |", rates.join(" | "));
    }
}
