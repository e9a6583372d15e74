//! Go-live notifications on PostgreSQL (review C1), all in one run:
//! 1. the set-based fan-out at several batch sizes (to choose the default);
//! 2. fan-out time for 10 k, 100 k and 1 M followers, batched, against the naive
//!    per-follower loop the review criticises (naive only while it fits the budget), both
//!    committing without waiting for the disk, so the ratio is batching alone;
//! 3. queue throughput (no-op jobs claimed and completed) with 1 and 4 runners;
//! 4. the same fan-outs through the job runner of an `onair worker` process;
//! 5. the go-live request's latency on an API node while a separate `onair worker`
//!    process fans a 1 M go-live out, and on a `serve` node fanning it out itself.
//!
//! Steps 1–3 call the store directly; no server runs, so nothing else claims their jobs.

mod golive;
mod report;
mod store_level;
mod worker;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use onair_store::DbConfig;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::server::default_fan_out;

pub struct Settings {
    pub max_followers: i64,
    /// Wall time the naive loop may take per size before it is stopped.
    pub naive_budget: Duration,
    pub queue_jobs: i64,
    /// Fan-out rate limits of the `onair worker` beside the API node.
    pub worker_rates: Vec<u32>,
    /// Fan-out rate limits of the `serve` node that fans out itself.
    pub serve_rates: Vec<u32>,
}

/// A fan-out rate limit far above what this machine writes: no pacing.
const UNPACED: u32 = 10_000_000;

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
        let (took, _) =
            store_level::batched_fan_out(&store, creator(sweep_size), batch, u32::MAX).await?;
        eprintln!("batch {batch}: {:.2} s", took.as_secs_f64());
        batch_rows.push((batch, took));
    }

    // 2. Batched (default batch and part sizes) against the naive loop.
    let defaults = default_fan_out();
    let naive_pool = store_level::naive_pool(&db.url).await?;
    let mut size_rows = Vec::new();
    let mut naive_fits = true;
    for &n in &sizes {
        let batched =
            store_level::batched_fan_out(&store, creator(n), defaults.batch, defaults.part_size)
                .await?;
        let naive = if naive_fits {
            let outcome =
                store_level::naive_fan_out(&store, &naive_pool, creator(n), settings.naive_budget)
                    .await?;
            naive_fits = outcome.finished;
            Some(outcome)
        } else {
            None
        };
        eprintln!("{n} followers: batched {:.2} s", batched.0.as_secs_f64());
        size_rows.push((n, batched, naive));
    }
    naive_pool.close().await;

    // 3. Queue throughput (before any server or worker runs, so no other runner competes),
    // with the fan-outs' leftovers (dirty pages, autovacuum's work) settled first.
    settle(&pool).await?;
    let mut queue_rows = Vec::new();
    for runners in [1, 4] {
        // Runs vary a lot on a shared machine: three of each, all reported.
        let mut rates = Vec::new();
        for _ in 0..3 {
            let rate =
                store_level::queue_throughput(&store, &pool, runners, settings.queue_jobs).await?;
            eprintln!("{runners} runner(s): {rate:.0} jobs/s");
            rates.push(rate);
        }
        queue_rows.push((runners, rates));
    }

    // 4. The same fan-outs through an `onair worker`'s job runner, unpaced.
    let runner_rows = worker::runner_fan_outs(&db.url, &store, &pool, &sizes).await?;

    // 5. Go-live latency through the real server.
    let golive = golive::go_live_latency(&db.url, &pool, largest, &settings).await?;

    report::print_tables(&report::Tables {
        batches: &batch_rows,
        sweep_size,
        defaults: &defaults,
        sizes: &size_rows,
        runner: &runner_rows,
        golive: &golive,
        queue: &queue_rows,
    });
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

/// Lets the previous step's leftovers (dirty pages, autovacuum's work) settle.
async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
        sqlx::raw_sql(statement).execute(pool).await?;
    }
    Ok(())
}

/// A fresh go-live of `creator` fans out again: forget the last one's cooldown.
async fn forget_cooldown(pool: &PgPool, creator: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET go_live_notified_at = NULL WHERE id = $1")
        .bind(creator)
        .execute(pool)
        .await?;
    Ok(())
}

/// The go-live jobs of `stream` not yet finished: (all, running).
async fn go_live_jobs(pool: &PgPool, stream: Uuid) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'running') FROM jobs
         WHERE kind = 'notify_go_live' AND state <> 'dead' AND payload LIKE '%' || $1 || '%'",
    )
    .bind(stream.to_string())
    .fetch_one(pool)
    .await?)
}

/// Waits until every go-live job (of any stream) is finished.
async fn no_go_live_jobs(pool: &PgPool) -> anyhow::Result<()> {
    until_none(
        pool,
        "SELECT count(*) FROM jobs WHERE kind = 'notify_go_live' AND state <> 'dead'",
    )
    .await
}

/// Checks that every follower of `stream`'s creator got its notification.
async fn all_notified(pool: &PgPool, stream: Uuid, followers: i64) -> anyhow::Result<()> {
    let notified: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE stream_id = $1")
            .bind(stream)
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(notified == followers, "{notified} of {followers} notified");
    Ok(())
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
