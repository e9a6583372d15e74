//! `onair`: the whole platform in one binary.
//!
//! `onair` / `onair serve` runs the server (embedded SQLite by default), `--role` picks
//! what a node runs (api, chat, ingest, worker);
//! `onair worker` runs background jobs only (notification fan-out, Web Push, webhooks);
//! `onair migrate` applies database migrations and exits;
//! `onair jobs dead` lists dead-lettered jobs and `onair jobs revive <id>` queues one again.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onair_server::{Application, Config, Role};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(name = "onair", version, about = "OnAir live-streaming platform")]
struct Cli {
    /// TOML configuration file (default: ./onair.toml if present). Environment variables
    /// override it.
    #[arg(long, global = true, env = "ONAIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// What this node runs, comma-separated: api, chat, ingest, worker (default: all,
        /// or ONAIR_ROLE).
        #[arg(long, value_delimiter = ',', value_parser = parse_role)]
        role: Vec<Role>,
    },
    /// Run background jobs only (no HTTP, no ingest); scale them apart from the web nodes.
    Worker,
    /// Apply database migrations, then exit.
    Migrate,
    /// Dead-lettered background jobs.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
}

#[derive(Subcommand)]
enum JobsAction {
    /// List dead jobs, newest first, one JSON object per line.
    Dead {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Queue a dead job again, with a fresh attempt count.
    Revive { id: uuid::Uuid },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("ONAIR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let log = if std::env::var("ONAIR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    // The log has its filter and the database metrics theirs: ONAIR_LOG cannot turn
    // the metrics off, and their debug events are not logged.
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(onair_server::database_events())
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("onair: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve { role: Vec::new() }) {
        Command::Serve { role } => {
            if !role.is_empty() {
                config.roles = role;
            }
            let app = Application::build(config).await?;
            app.run_until(onair_server::shutdown_signal()).await?;
        }
        Command::Worker => {
            onair_server::run_worker(config, onair_server::shutdown_signal()).await?;
        }
        Command::Jobs { action } => {
            let store = onair_store::connect(&config.db()?).await?;
            if config.database.migrate_on_start {
                store.migrate().await?;
            }
            let outcome = jobs(&*store, action).await;
            store.close().await;
            outcome?;
        }
        Command::Migrate => {
            let store = onair_store::connect(&config.db()?).await?;
            store.migrate().await?;
            store.close().await;
            tracing::info!("migrations applied");
        }
    }
    Ok(())
}

async fn jobs(store: &dyn onair_store::Store, action: JobsAction) -> anyhow::Result<()> {
    match action {
        JobsAction::Dead { limit } => {
            let limit = onair_core::Limit::new(Some(limit))?;
            for job in store.dead_jobs(limit, None).await?.items {
                let line = serde_json::json!({
                    "id": job.id,
                    "kind": job.kind,
                    "attempts": job.attempts,
                    "last_error": job.last_error,
                    "created_at": job.created_at.get(),
                    "payload": serde_json::from_str::<serde_json::Value>(&job.payload)
                        .unwrap_or(serde_json::Value::String(job.payload)),
                });
                println!("{line}");
            }
        }
        JobsAction::Revive { id } => {
            anyhow::ensure!(store.revive_job(id).await?, "no dead job {id}");
            println!("job {id} queued again");
        }
    }
    Ok(())
}
