//! OnAir benchmarks. Each scenario runs the real server in this process against a real
//! database, drives it over HTTP with a closed-loop load generator, and compares against a
//! baseline measured in the same run (absolute numbers on shared machines are noise).
//!
//! `cargo run --release -p onair-bench -- foundation`
//! `cargo run --release -p onair-bench -- media`
//! `cargo run --release -p onair-bench -- chat`
//! `cargo build --release -p onair && cargo run --release -p onair-bench -- notify`
//! `cargo run --release -p onair-bench -- archive`
//! `cargo run --release -p onair-bench -- login-flood`
//! `cargo build --release -p onair && cargo run --release -p onair-bench -- platform`
//!
//! Chat's servers, notify's `onair worker` and platform's `onair serve` nodes run as child
//! processes (see each module).

mod archive;
mod chat;
mod glass;
mod load;
mod login;
mod media;
mod nginx;
mod node;
mod notify;
mod platform;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use onair_core::Cursor;
use onair_server::Cursors;
use onair_store::Timestamp;
use onair_store::testing::{SCALE_SEED, with_postgres};
use serde_json::json;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::load::{Report, Target, run, run_at_rate};
use crate::server::{Role, SECRET, default_fan_out, serve_on, serve_with_caches};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// The PostgreSQL server a scenario creates its database on (dropped afterwards).
#[derive(clap::Args)]
struct Postgres {
    #[arg(
        long = "postgres-url",
        env = "ONAIR_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    url: String,
}

#[derive(Subcommand)]
enum Scenario {
    /// Review scale on PostgreSQL (100 k users, 1.1 M follows, 500 live streams): live list,
    /// deep followers page by cursor vs by OFFSET, and a bare route as the ceiling.
    Foundation {
        #[command(flatten)]
        postgres: Postgres,
        /// Seconds of measurement per target (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections of the load generator.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Followers to skip to reach the "deep" page.
        #[arg(long, default_value_t = 50_000)]
        depth: i64,
    },
    /// Chat fan-out: deliveries/s inside the window, delivery latency, and memory per
    /// socket with one room and with all, one node, two nodes sharing Redis and the Node
    /// `ws` baseline (bench/baseline/chat-ws). The OnAir servers are child processes of
    /// this binary (`node`), the baseline a `node` (Node.js) process.
    Chat {
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Messages per second over all rooms.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(
            long,
            env = "ONAIR_BENCH_REDIS_URL",
            default_value = "redis://127.0.0.1:6379"
        )]
        redis_url: String,
        /// Node counts to measure (1: in-process rooms; 2: two nodes sharing Redis).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        nodes: Vec<usize>,
        /// Also run every server at this many messages/s (more than it can deliver): its
        /// deliveries/s are its saturation throughput.
        #[arg(long)]
        saturation_rate: Option<u64>,
        /// Leave out the Node `ws` baseline.
        #[arg(long)]
        no_baseline: bool,
        /// Drive a server already running elsewhere at this WebSocket base URL
        /// (ws://host:port) instead of starting any: no OnAir nodes, no baseline, and no
        /// server memory or CPU figures.
        #[arg(long, conflicts_with_all = ["nodes", "no_baseline"])]
        server: Option<String>,
    },
    /// Go-live notifications on PostgreSQL: fan-out by batch size, batched vs the naive
    /// per-follower loop at 10 k / 100 k / 1 M followers (and the same fan-outs through an
    /// `onair worker`'s job runner), go-live latency on an API node while an `onair worker`
    /// process fans 1 M out and on a `serve` node fanning it out itself, and queue
    /// throughput with 1 and 4 runners. Needs the release `onair` binary
    /// (cargo build --release -p onair).
    Notify {
        #[command(flatten)]
        postgres: Postgres,
        #[arg(long, default_value_t = 1_000_000)]
        max_followers: i64,
        /// Seconds the naive loop may run per size; larger sizes are skipped once one
        /// does not finish.
        #[arg(long, default_value_t = 60)]
        naive_budget_secs: u64,
        /// No-op jobs per queue-throughput run.
        #[arg(long, default_value_t = 50_000)]
        queue_jobs: i64,
        /// Fan-out rate limits (rows/s) of the `onair worker` beside the API node.
        #[arg(long, value_delimiter = ',', default_value = "200000,10000000")]
        worker_rates: Vec<u32>,
        /// Fan-out rate limits (rows/s) of the `serve` node that fans out itself.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "100000,200000,400000,10000000"
        )]
        serve_rates: Vec<u32>,
    },
    /// Built-in ingest on the embedded backend: publish → playable latency over N runs,
    /// and CPU per ingest with 1, 2 and 4 concurrent publishers.
    Media {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Seconds of CPU measurement per concurrency level.
        #[arg(long, default_value_t = 10)]
        cpu_seconds: u64,
    },
    /// Archive processing: the VOD build's realtime factor, and `GET /api/streams` latency
    /// on PostgreSQL while two archives process (default settings and without `nice`)
    /// versus idle.
    Archive {
        #[command(flatten)]
        postgres: Postgres,
        /// Length of the test recording the VODs are built from.
        #[arg(long, default_value_t = 60)]
        recording_secs: u32,
        /// Seconds of load per window (after one second of warm-up).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent connections of the load generator.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Only the default settings (skip one thread and `superfast`).
        #[arg(long)]
        default_only: bool,
    },
    /// Resident memory of a server process before, during and after a flood of
    /// parallel failed logins, password hashing bounded vs not. The servers are child
    /// processes of this binary (`node`).
    LoginFlood {
        #[arg(long, default_value_t = 500)]
        requests: usize,
        /// Seconds after the flood at which "after" is measured.
        #[arg(long, default_value_t = 15)]
        settle_secs: u64,
    },
    /// The whole platform under one mixed load (RTMP publishers, HLS viewers with
    /// heartbeats, chat, API browsing) against real `onair serve` processes on PostgreSQL
    /// and Redis: one node with every role, then a node per role, same load, same run.
    /// Needs the release `onair` binary (cargo build --release -p onair) and ffmpeg.
    Platform {
        #[command(flatten)]
        postgres: Postgres,
        #[arg(
            long,
            env = "ONAIR_BENCH_REDIS_URL",
            default_value = "redis://127.0.0.1:6379/11"
        )]
        redis_url: String,
        /// Seconds of measurement per topology.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Creators live for the whole window (each transcoded: ~a core each here).
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        /// No extra creator going live again and again (stream start under load).
        #[arg(long)]
        no_cycling: bool,
        /// The publishers' test pattern size.
        #[arg(long, default_value = "640x360")]
        size: String,
        /// HLS viewers per live channel.
        #[arg(long, default_value_t = 20)]
        viewers: usize,
        /// Chat readers per live channel.
        #[arg(long, default_value_t = 50)]
        chatters: usize,
        /// Chat messages per second per live channel.
        #[arg(long, default_value_t = 2.0)]
        chat_rate: f64,
        /// API requests per second (live list, channel, stream, profile, archives).
        #[arg(long, default_value_t = 50)]
        api_rate: u32,
    },
    /// A benchmark server (started by `chat` and `login-flood`, not by hand): serves like `onair
    /// serve`, configured from the environment, and answers `heap` on stdin.
    #[command(hide = true)]
    Node,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Foundation {
            postgres,
            seconds,
            concurrency,
            depth,
        } => {
            let settings = load::Settings {
                duration: Duration::from_secs(seconds),
                concurrency,
            };
            with_postgres(&postgres.url, |db| foundation(db, settings, depth)).await
        }
        Scenario::Media { runs, cpu_seconds } => media::run(runs, cpu_seconds).await,
        Scenario::Notify {
            postgres,
            max_followers,
            naive_budget_secs,
            queue_jobs,
            worker_rates,
            serve_rates,
        } => {
            let settings = notify::Settings {
                max_followers,
                naive_budget: Duration::from_secs(naive_budget_secs),
                queue_jobs,
                worker_rates,
                serve_rates,
            };
            with_postgres(&postgres.url, |db| notify::run(db, settings)).await
        }
        Scenario::Chat {
            sockets,
            rooms,
            rate,
            seconds,
            redis_url,
            nodes,
            saturation_rate,
            no_baseline,
            server,
        } => {
            let servers = match server {
                Some(url) => vec![chat::Server::Remote(chat::Endpoint::parse(&url)?)],
                None => nodes
                    .into_iter()
                    .map(|nodes| chat::Server::OnAir { nodes })
                    .chain((!no_baseline).then_some(chat::Server::Baseline))
                    .collect(),
            };
            chat::run(chat::Settings {
                sockets,
                rooms,
                rate,
                saturation_rate,
                seconds,
                redis_url,
                servers,
            })
            .await
        }
        Scenario::Archive {
            postgres,
            recording_secs,
            seconds,
            concurrency,
            default_only,
        } => {
            let settings = archive::Settings {
                recording_secs,
                load: load::Settings {
                    duration: Duration::from_secs(seconds),
                    concurrency,
                },
                variants: !default_only,
            };
            with_postgres(&postgres.url, |db| archive::run(db, settings)).await
        }
        Scenario::LoginFlood {
            requests,
            settle_secs,
        } => {
            let settle = Duration::from_secs(settle_secs);
            login::run(login::Settings { requests, settle }).await
        }
        Scenario::Platform {
            postgres,
            redis_url,
            seconds,
            publishers,
            no_cycling,
            size,
            viewers,
            chatters,
            chat_rate,
            api_rate,
        } => {
            platform::run(platform::Settings {
                postgres_url: postgres.url,
                redis_url,
                seconds,
                publishers,
                cycling: !no_cycling,
                size,
                viewers,
                chatters,
                chat_rate,
                api_rate,
            })
            .await
        }
        Scenario::Node => node::serve().await,
    }
}

async fn foundation(
    mut db: onair_store::DbConfig,
    settings: load::Settings,
    depth: i64,
) -> anyhow::Result<()> {
    db.max_connections = 25;
    eprintln!("seeding (100 k users, ~1.1 M follows, 50 500 streams)…");
    let pool = PgPoolOptions::new()
        .max_connections(25)
        .connect(&db.url)
        .await?;
    let store = onair_store::connect(&db).await?;
    store.migrate().await?;
    store.close().await;
    let started = std::time::Instant::now();
    sqlx::raw_sql(SCALE_SEED).execute(&pool).await?;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());

    let popular: Uuid = sqlx::query_scalar("SELECT md5('0')::uuid")
        .fetch_one(&pool)
        .await?;
    let (at, id): (Timestamp, Uuid) = sqlx::query_as(
        "SELECT created_at, follower_id FROM follows WHERE following_id = $1
         ORDER BY created_at DESC, follower_id DESC OFFSET $2 LIMIT 1",
    )
    .bind(popular)
    .bind(depth - 1)
    .fetch_one(&pool)
    .await?;
    let cursor = Cursors::new(SECRET.as_bytes()).encode(Cursor::new(at.get(), id));

    // The same server twice on the same database: caches on (the default) and off.
    let rows_per_second = default_fan_out().rows_per_second;
    let role = Role::Serve { rows_per_second };
    let (onair, _server) = serve_on(&db.url, role).await?;
    let (uncached, _uncached_server) = serve_with_caches(&db.url, role, false).await?;
    let baseline = spawn_offset_baseline(pool.clone()).await?;

    let live = |base| format!("http://{base}/api/streams");
    let profile = |base| format!("http://{base}/api/users/{popular}");
    let targets = [
        Target::new(
            "bare route (GET /healthz), ceiling",
            format!("http://{onair}/healthz"),
        ),
        Target::new("GET /api/streams (live list), caches off", live(uncached)),
        Target::new("GET /api/streams (live list), caches on", live(onair)),
        Target::new(
            "GET /api/users/{id} (profile), caches off",
            profile(uncached),
        ),
        Target::new("GET /api/users/{id} (profile), caches on", profile(onair)),
        Target::new(
            format!("followers page at depth {depth}, by cursor"),
            format!("http://{onair}/api/users/{popular}/followers?limit=20&cursor={cursor}"),
        ),
        Target::new(
            format!("followers page at depth {depth}, by OFFSET (naive)"),
            format!("http://{baseline}/offset/{popular}/{depth}"),
        ),
    ];
    let before = cache_counts(onair).await?;
    let mut reports = Vec::new();
    for target in &targets {
        eprintln!("measuring {}…", target.name);
        reports.push(run(target, &settings).await?);
    }
    let after = cache_counts(onair).await?;
    let seconds = settings.duration.as_secs();
    let closed = format!(
        "{} connections, {seconds} s per target",
        settings.concurrency
    );
    println!("{}", Report::table(&reports, &closed));

    // The review's SLA point: a fixed 1 000 requests/s, whatever the answers take.
    let rate = 1000;
    let mut at_rate = Vec::new();
    for target in &targets[..3] {
        eprintln!("measuring {} at {rate} req/s…", target.name);
        at_rate.push(run_at_rate(target, rate, settings.duration).await?);
    }
    let open = format!("open loop: {rate} requests/s offered, {seconds} s per target");
    println!("{}", Report::table(&at_rate, &open));
    println!("cache hit ratio while measured (hits / lookups):\n");
    for cache in ["live_pages", "profiles"] {
        let (hits, misses) = (
            after.delta(&before, cache, "hits"),
            after.delta(&before, cache, "misses"),
        );
        println!(
            "- {cache}: {hits} hits, {misses} misses, {:.4}",
            hits as f64 / (hits + misses).max(1) as f64
        );
    }
    pool.close().await;
    Ok(())
}

/// The caches' counters in a server's `/metrics` (the process's, shared by its servers).
struct CacheCounts(String);

impl CacheCounts {
    /// How much `cache_<what>_total` of `cache` grew since `before`, over all layers.
    fn delta(&self, before: &Self, cache: &str, what: &str) -> u64 {
        let sum = |text: &str| -> u64 {
            text.lines()
                .filter(|line| line.starts_with(&format!("cache_{what}_total{{cache=\"{cache}\"")))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        sum(&self.0) - sum(&before.0)
    }
}

async fn cache_counts(server: SocketAddr) -> anyhow::Result<CacheCounts> {
    let text = reqwest::get(format!("http://{server}/metrics"))
        .await?
        .text()
        .await?;
    Ok(CacheCounts(text))
}

/// The review's naive pagination, `OFFSET n`, behind the same kind of HTTP handler: the
/// baseline the cursor page is compared with. Same columns, join and JSON shape.
async fn spawn_offset_baseline(pool: PgPool) -> anyhow::Result<SocketAddr> {
    async fn offset_page(
        State(pool): State<PgPool>,
        Path((user, offset)): Path<(Uuid, i64)>,
    ) -> Result<axum::Json<serde_json::Value>, String> {
        type Row = (Uuid, String, Option<String>, Option<String>, DateTime<Utc>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at
             FROM follows f JOIN users u ON u.id = f.follower_id
             WHERE f.following_id = $1
             ORDER BY f.created_at DESC, f.follower_id DESC
             OFFSET $2 LIMIT 20",
        )
        .bind(user)
        .bind(offset)
        .fetch_all(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let data: Vec<_> = rows
            .into_iter()
            .map(|(id, username, display_name, avatar_url, followed_at)| {
                json!({"user": {"id": id, "username": username, "display_name": display_name,
                    "avatar_url": avatar_url}, "followed_at": followed_at})
            })
            .collect();
        Ok(axum::Json(json!({"data": data})))
    }
    let router = Router::new()
        .route("/offset/{user}/{offset}", axum::routing::get(offset_page))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}
