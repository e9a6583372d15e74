//! `onair`: the whole platform in one binary.
//!
//! `onair` / `onair serve` runs the server (embedded SQLite by default), `--role` picks
//! what a node runs (api, chat, ingest, worker);
//! `onair worker` runs background jobs only (notification fan-out, Web Push, webhooks);
//! `onair migrate` applies database migrations and exits;
//! `onair jobs dead` lists dead-lettered jobs and `onair jobs revive <id>` queues one again;
//! `onair admin …` creates admins, suspends accounts, ends broadcasts and shows the audit
//! log. Admin actions from here are audited as the `cli` actor.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onair_server::telemetry::Telemetry;
use onair_server::{Admin, AdminCreated, ApiError, AuditEntryDto, DeadJobDto};
use onair_server::{Application, Config, Role};
use onair_store::Actor;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use uuid::Uuid;

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
    /// Operators: admin accounts, suspensions, ending broadcasts, the audit log.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an admin account, or make an existing user an admin. A new account's
    /// password is read from ONAIR_ADMIN_PASSWORD, else from the first line of stdin.
    Create {
        username: String,
        /// Needed for a new account.
        #[arg(long)]
        email: Option<String>,
    },
    /// Make a user an admin.
    Grant { username: String },
    /// Take a user's admin rights away.
    Revoke { username: String },
    /// Suspend an account: revoke its sessions, end its broadcast, refuse its logins.
    Suspend {
        username: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift an account's suspension.
    Unsuspend { username: String },
    /// End a broadcast; its encoder is cut at the ingest's next re-check.
    EndBroadcast {
        stream_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The audit log, newest first, one JSON object per line.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: u32,
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
    Revive { id: Uuid },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Logs (ONAIR_LOG filters them, ONAIR_LOG_FORMAT=json) and, when an OTLP endpoint is
/// set, traces. Each layer has its own filter: ONAIR_LOG does not decide what is traced.
fn init_logging() -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_env("ONAIR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let log = if std::env::var("ONAIR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    // The log has its filter and the database metrics theirs: ONAIR_LOG cannot turn
    // the metrics off, and their debug events are not logged.
    let telemetry = Telemetry::from_env()?;
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(onair_server::database_events())
        .with(telemetry.layer())
        .init();
    Ok(telemetry)
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match init_logging() {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("onair: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse();
    let outcome = run(cli).await;
    // Sends the spans still queued.
    telemetry.shutdown().await;
    match outcome {
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
            with_admin(&config, async |admin| jobs(admin, action).await).await?
        }
        Command::Admin { action } => {
            with_admin(&config, async |admin| admin_command(admin, action).await).await?;
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

/// Runs `command` with the admin service on the configured database (migrated first
/// when the server would migrate it).
async fn with_admin(
    config: &Config,
    command: impl AsyncFnOnce(&Admin) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let store = onair_store::connect(&config.db()?).await?;
    if config.database.migrate_on_start {
        store.migrate().await?;
    }
    let outcome = command(&Admin::new(store.clone(), None)).await;
    store.close().await;
    outcome
}

async fn jobs(admin: &Admin, action: JobsAction) -> anyhow::Result<()> {
    match action {
        JobsAction::Dead { limit } => {
            let limit = onair_core::Limit::new(Some(limit))?;
            for job in admin.dead_jobs(limit, None).await?.items {
                println!("{}", serde_json::to_string(&DeadJobDto::from(job))?);
            }
        }
        JobsAction::Revive { id } => {
            admin.revive_job(Actor::Cli, id).await?;
            println!("job {id} queued again");
        }
    }
    Ok(())
}

async fn admin_command(admin: &Admin, action: AdminAction) -> anyhow::Result<()> {
    let actor = Actor::Cli;
    match action {
        AdminAction::Create { username, email } => {
            match admin
                .create_admin(actor, &username, email.as_deref(), read_password)
                .await?
            {
                AdminCreated::Created(id) => println!("created admin {username} ({id})"),
                AdminCreated::Promoted(id) => println!("{username} ({id}) is now an admin"),
                AdminCreated::AlreadyAdmin(id) => println!("{username} ({id}) is an admin already"),
            }
        }
        AdminAction::Grant { username } => grant(admin, &username, true).await?,
        AdminAction::Revoke { username } => grant(admin, &username, false).await?,
        AdminAction::Suspend { username, reason } => {
            let id = admin.user_id(&username).await?;
            let done = admin.suspend(actor, id, reason.as_deref()).await?;
            println!(
                "suspended {username}: {} session(s) revoked{}",
                done.revoked_sessions,
                done.ended_stream
                    .map(|s| format!(", broadcast {s} ended"))
                    .unwrap_or_default()
            );
        }
        AdminAction::Unsuspend { username } => {
            admin
                .unsuspend(actor, admin.user_id(&username).await?)
                .await?;
            println!("{username} is no longer suspended");
        }
        AdminAction::EndBroadcast { stream_id, reason } => {
            admin
                .end_broadcast(actor, stream_id, reason.as_deref())
                .await?;
            println!("broadcast {stream_id} ended");
        }
        AdminAction::Audit { limit } => {
            let limit = onair_core::Limit::new(Some(limit))?;
            for entry in admin.audit(limit, None).await?.items {
                println!("{}", serde_json::to_string(&AuditEntryDto::from(entry))?);
            }
        }
    }
    Ok(())
}

/// Grants (`admin`) or revokes `username`'s admin rights.
async fn grant(admin: &Admin, username: &str, grant: bool) -> anyhow::Result<()> {
    let id = admin.user_id(username).await?;
    let changed = admin.set_admin(Actor::Cli, id, grant).await?;
    let state = match (grant, changed) {
        (true, true) => "is now an admin",
        (true, false) => "is an admin already",
        (false, true) => "is no longer an admin",
        (false, false) => "was not an admin",
    };
    println!("{username} {state}");
    Ok(())
}

/// A new admin's password: ONAIR_ADMIN_PASSWORD, else the first line of stdin (never an
/// argument, which other users can read in the process list).
fn read_password() -> Result<String, ApiError> {
    if let Ok(password) = std::env::var("ONAIR_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password for the new admin: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|_| ApiError::InvalidBody("could not read the password from stdin".into()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
