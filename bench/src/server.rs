//! How the benchmarks start OnAir: the only module that knows `onair_server::Config`'s
//! fields, so a change of its shape is a change here. Child processes are configured
//! through the documented environment variables instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use onair_server::{Application, Config};
use tokio::process::Command;

/// The server's root secret in benchmarks (it signs the cursors the benchmark builds).
pub const SECRET: &str = "benchmark-secret-benchmark-secret-!!";

/// What an in-process PostgreSQL node runs besides the HTTP API.
#[derive(Clone, Copy)]
pub enum Role {
    /// API and job runner (`onair serve`), the fan-out paced at this many rows/s.
    Serve { rows_per_second: u32 },
    /// API only: its jobs are left to `onair worker` processes.
    Api,
}

/// Starts the real server on PostgreSQL at `database_url` (no ingest) in this process;
/// returns its address, and a sender that stops it (dropping it does too).
pub async fn serve_on(
    database_url: &str,
    role: Role,
) -> anyhow::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    serve_with_caches(database_url, role, true).await
}

/// [`serve_on`], with the server-side caches on or off.
pub async fn serve_with_caches(
    database_url: &str,
    role: Role,
    caches: bool,
) -> anyhow::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let mut config = Config::default();
    config.cache.enabled = caches;
    config.http.bind = "127.0.0.1:0".parse()?;
    config.database.url = Some(database_url.to_owned());
    config.auth.secret_key = Some(SECRET.into());
    config.media.rtmp_enabled = false;
    // The load comes from one address at rates no client is allowed.
    config.rate_limit.enabled = false;
    match role {
        Role::Serve { rows_per_second } => config.notify.rows_per_second = rows_per_second,
        Role::Api => config.jobs.enabled = false,
    }
    let app = Application::build(config)
        .await
        .context("starting the server")?;
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}

/// The embedded server (SQLite in `data`) with the built-in RTMP ingest, both on free
/// ports, a publisher's broadcast ending one second after it disconnects, encoding
/// `ladder` below each source.
pub async fn with_ingest(
    data: &Path,
    max_ingests: usize,
    ladder: Vec<u32>,
) -> anyhow::Result<Application> {
    let mut config = Config {
        data_dir: data.to_owned(),
        ..Config::default()
    };
    config.http.bind = "127.0.0.1:0".parse()?;
    config.media.rtmp_bind = "127.0.0.1:0".parse()?;
    config.media.srt_bind = "127.0.0.1:0".parse()?;
    config.auth.secret_key = Some(SECRET.into());
    config.media.max_ingests = max_ingests;
    config.media.ladder = ladder;
    config.media.reconnect_grace_secs = 1;
    config.rate_limit.enabled = false;
    Application::build(config)
        .await
        .context("starting the server")
}

/// The default fan-out settings a worker runs with.
pub struct FanOut {
    pub batch: u32,
    pub part_size: u32,
    pub parallel_parts: usize,
    pub rows_per_second: u32,
}

pub fn default_fan_out() -> FanOut {
    let notify = Config::default().notify;
    FanOut {
        batch: notify.batch_size,
        part_size: notify.part_size,
        parallel_parts: notify.parallel_parts,
        rows_per_second: notify.rows_per_second,
    }
}

/// How often an idle worker looks for jobs another process enqueued.
pub fn default_jobs_poll_ms() -> u64 {
    Config::default().jobs.poll_ms
}

/// Runs the server the way `onair serve` does (configuration from `ONAIR_CONFIG` or
/// ./onair.toml, then the environment) until `shutdown` resolves: the chat benchmark's
/// server processes, which also answer heap questions (see `chat::node`).
pub async fn serve_from_env(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let file = std::env::var_os("ONAIR_CONFIG").map(PathBuf::from);
    let config = Config::load(file.as_deref())?;
    Application::build(config)
        .await?
        .run_until(shutdown)
        .await?;
    Ok(())
}

/// The release `onair` binary built from crates/onair, next to this one.
pub fn onair_binary() -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()?.with_file_name("onair");
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p onair)",
            binary.display()
        );
    }
    Ok(binary)
}

/// `onair worker` — the release binary built from crates/onair, next to this one —
/// running jobs from the PostgreSQL database at `database_url`, its go-live fan-out paced
/// at `rows_per_second`.
pub fn onair_worker(
    database_url: &str,
    data: &Path,
    rows_per_second: u32,
) -> anyhow::Result<Command> {
    let mut command = Command::new(onair_binary()?);
    command
        .arg("worker")
        .env("DATABASE_URL", database_url)
        .env("ONAIR_DATA_DIR", data)
        .env("ONAIR_SECRET_KEY", SECRET)
        .env("ONAIR_NOTIFY_ROWS_PER_SECOND", rows_per_second.to_string())
        .kill_on_drop(true);
    Ok(command)
}
