//! Embedded backend: one SQLite file in WAL mode. Writes go through a single-connection
//! pool (SQLite allows one writer at a time; queueing in the pool beats retrying on
//! SQLITE_BUSY), reads through a pool of read-only connections that WAL lets run
//! alongside the writer and that see every committed write.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use log::LevelFilter;
use sqlx::ConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::error::StoreError;
use crate::{Backend, DbConfig, PoolStats};

pub(crate) struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn connect(config: &DbConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(config.statement_timeout)
            .foreign_keys(true)
            .log_statements(LevelFilter::Trace)
            .log_slow_statements(LevelFilter::Warn, config.slow_statement);
        if !(config.url.contains(":memory:") || config.url.contains("mode=memory")) {
            create_private(options.get_filename())?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout)
            .acquire_time_level(LevelFilter::Debug)
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(StoreError::Unavailable)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            .acquire_time_level(LevelFilter::Debug)
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { writer, reader })
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A read-only connection: on SQLite it sees every committed write.
    pub(crate) async fn reader(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        Ok(self.reader.acquire().await?)
    }
}

/// Creates the database file (and its directory) when missing, readable by this user
/// only: 0600 in a 0700 directory on Unix. SQLite gives the `-wal` and `-shm` files the
/// database file's mode, so they are private too. Existing files keep their modes.
fn create_private(file: &Path) -> Result<(), StoreError> {
    let failed = |what: &Path, e: std::io::Error| {
        StoreError::Config(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| failed(dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(failed(file, e)),
        _ => Ok(()),
    }
}

#[async_trait]
impl crate::Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        for pool in [&self.writer, &self.reader] {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
        Ok(())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        [("writer", &self.writer), ("reader", &self.reader)]
            .into_iter()
            .map(|(name, pool)| PoolStats::of(name, pool))
            .collect()
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
