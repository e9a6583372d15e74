//! `onair`: the whole platform in one binary.
//!
//! `onair` / `onair serve` runs the server (embedded SQLite by default);
//! `onair worker` runs background jobs only (notification fan-out, Web Push, webhooks);
//! `onair migrate` applies database migrations and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onair_server::{Application, Config};
use tracing_subscriber::EnvFilter;

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
    Serve,
    /// Run background jobs only (no HTTP, no ingest); scale them apart from the web nodes.
    Worker,
    /// Apply database migrations, then exit.
    Migrate,
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("ONAIR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("ONAIR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
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
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until(onair_server::shutdown_signal()).await?;
        }
        Command::Worker => {
            onair_server::run_worker(config, onair_server::shutdown_signal()).await?;
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
