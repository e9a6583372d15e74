//! The go-live request (`POST /api/streams/start`, then `/end`) through the real server:
//! for a creator without followers, and for one with `followers` while that creator's
//! go-live fans out — on an API node with a separate `onair worker` process doing the
//! fan-out, and on a `serve` node doing it itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::worker::{Watched, Worker, watch};
use super::{Settings, all_notified, follow_all, forget_cooldown, no_go_live_jobs, until_none};
use crate::server::{Role, default_fan_out, serve_on};

/// Go-live cycles of the quiet creator on an idle node (the baselines).
const BASELINE_CYCLES: usize = 200;
/// At most this many cycles per creator are measured during one fan-out.
const MAX_BUSY_CYCLES: usize = 2_000;

pub struct GoLiveLatency {
    /// The quiet creator on a node that also runs jobs, nothing fanning out.
    pub serve_zero: Vec<Duration>,
    /// The quiet creator on the API node, nothing fanning out.
    pub api_zero: Vec<Duration>,
    /// Both creators on the API node while an `onair worker` fans out, by rate limit.
    pub api: Vec<Busy>,
    /// The popular creator on a `serve` node fanning out itself, by rate limit.
    pub serve: Vec<Busy>,
}

/// Go-lives measured while the popular creator's first go-live fans out at `rate`.
pub struct Busy {
    pub rate: u32,
    /// That fan-out, from its go-live request.
    pub fan_out: Watched,
    pub popular: Vec<Duration>,
    /// The quiet creator, taking turns with the popular one (API node only).
    pub quiet: Vec<Duration>,
}

/// A creator able to call the API.
struct Account {
    id: Uuid,
    token: String,
}

struct Api {
    client: reqwest::Client,
    base: SocketAddr,
}

impl Api {
    /// A node of `role` in this process; it stops when the returned sender is dropped.
    async fn start(
        client: &reqwest::Client,
        database_url: &str,
        role: Role,
    ) -> anyhow::Result<(Self, tokio::sync::oneshot::Sender<()>)> {
        let (base, stop) = serve_on(database_url, role).await?;
        let client = client.clone();
        Ok((Self { client, base }, stop))
    }

    async fn signup(&self, name: &str) -> anyhow::Result<Account> {
        let body: Value = self
            .client
            .post(format!("http://{}/api/auth/signup", self.base))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "benchmark password"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Account {
            id: body["user"]["id"].as_str().context("signup")?.parse()?,
            token: body["access_token"].as_str().context("token")?.to_owned(),
        })
    }

    /// Goes live and ends: the start request's latency and the stream's id.
    async fn cycle(&self, who: &Account) -> anyhow::Result<(Duration, Uuid)> {
        let sent = Instant::now();
        let started = self
            .client
            .post(format!("http://{}/api/streams/start", self.base))
            .bearer_auth(&who.token)
            .json(&json!({"title": "bench"}))
            .send()
            .await?;
        let took = sent.elapsed();
        anyhow::ensure!(started.status().is_success(), "start: {}", started.status());
        let stream: Value = started.json().await?;
        let stream = stream["id"].as_str().context("stream id")?.parse()?;
        let ended = self
            .client
            .post(format!("http://{}/api/streams/end", self.base))
            .bearer_auth(&who.token)
            .send()
            .await?;
        anyhow::ensure!(ended.status().is_success(), "end: {}", ended.status());
        Ok((took, stream))
    }

    async fn cycles(&self, who: &Account, n: usize) -> anyhow::Result<Vec<Duration>> {
        let mut took = Vec::with_capacity(n);
        for _ in 0..n {
            took.push(self.cycle(who).await?.0);
        }
        Ok(took)
    }

    /// The popular creator goes live; then, until that go-live's fan-out is done, go-lives
    /// of the popular creator (and of the quiet one, taking turns, if `quiet` is given)
    /// are measured. Within the cooldown they do not fan out again.
    async fn during_fan_out(
        &self,
        pool: &PgPool,
        popular: &Account,
        followers: i64,
        quiet: Option<&Account>,
        rate: u32,
    ) -> anyhow::Result<Busy> {
        forget_cooldown(pool, popular.id).await?;
        let first = Instant::now();
        let (took, fanned) = self.cycle(popular).await?;
        let watching = tokio::spawn({
            let pool = pool.clone();
            async move { watch(&pool, fanned, first).await }
        });
        // Let this go-live claim the audience before the next ones are measured: their
        // jobs could otherwise be planned first and take the fan-out over.
        let unclaimed = format!(
            "SELECT count(*) FROM users WHERE id = '{}' AND go_live_notified_at IS NULL",
            popular.id
        );
        until_none(pool, &unclaimed).await?;
        let (mut popular_took, mut quiet_took) = (vec![took], Vec::new());
        while !watching.is_finished() && popular_took.len() < MAX_BUSY_CYCLES {
            popular_took.push(self.cycle(popular).await?.0);
            if let Some(quiet) = quiet {
                quiet_took.push(self.cycle(quiet).await?.0);
            }
        }
        let fan_out = watching.await??;
        all_notified(pool, fanned, followers).await?;
        // The go-lives measured above left cooldown no-op jobs behind: let them finish, or
        // the next run's runner would take one for a fresh go-live.
        no_go_live_jobs(pool).await?;
        eprintln!(
            "rate {rate}: picked up after {:.2} s, fan-out {:.2} s",
            fan_out.picked_up.as_secs_f64(),
            fan_out.fan_out.as_secs_f64()
        );
        Ok(Busy {
            rate,
            fan_out,
            popular: popular_took,
            quiet: quiet_took,
        })
    }
}

pub async fn go_live_latency(
    database_url: &str,
    pool: &PgPool,
    followers: i64,
    settings: &Settings,
) -> anyhow::Result<GoLiveLatency> {
    let client = reqwest::Client::new();
    let default_rate = default_fan_out().rows_per_second;
    let serve = Role::Serve {
        rows_per_second: default_rate,
    };
    let (setup, stop) = Api::start(&client, database_url, serve).await?;
    let quiet = setup.signup("nobody_follows").await?;
    let popular = setup.signup("everyone_follows").await?;
    follow_all(pool, popular.id, followers).await?;
    // The baselines must not pay for writing that audience (dirty pages, autovacuum).
    super::settle(pool).await?;
    let serve_zero = setup.cycles(&quiet, BASELINE_CYCLES).await?;
    no_go_live_jobs(pool).await?;
    drop(stop);

    // An API node (its runner off) with an `onair worker` process fanning out beside it.
    let (api, stop) = Api::start(&client, database_url, Role::Api).await?;
    let api_zero = api.cycles(&quiet, BASELINE_CYCLES).await?;
    // Its go-lives' jobs wait for a worker: the first one takes them all.
    let mut api_runs = Vec::new();
    for &rate in &settings.worker_rates {
        let worker = Worker::start(database_url, rate).await?;
        no_go_live_jobs(pool).await?;
        api_runs.push(
            api.during_fan_out(pool, &popular, followers, Some(&quiet), rate)
                .await?,
        );
        drop(worker);
    }
    drop(stop);

    // `serve` nodes, each fresh, fanning out themselves.
    let mut serve_runs = Vec::new();
    for &rate in &settings.serve_rates {
        let role = Role::Serve {
            rows_per_second: rate,
        };
        let (node, stop) = Api::start(&client, database_url, role).await?;
        serve_runs.push(
            node.during_fan_out(pool, &popular, followers, None, rate)
                .await?,
        );
        drop(stop);
    }
    Ok(GoLiveLatency {
        serve_zero,
        api_zero,
        api: api_runs,
        serve: serve_runs,
    })
}
