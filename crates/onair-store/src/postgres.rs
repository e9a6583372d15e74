//! Scale-out backend: a PostgreSQL primary for writes and for reads that must see them,
//! and optional read replicas (review S6) for the public read paths, picked round-robin
//! among those the health checks keep in rotation (`replicas`). Every connection carries
//! a `statement_timeout` (review M3) and every pool is bounded (review C4).

use std::str::FromStr;

use async_trait::async_trait;
use log::LevelFilter;
use sqlx::ConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};

use crate::error::StoreError;
use crate::replicas::{ReplicaStatus, Replicas};
use crate::{Backend, DbConfig, PoolStats};

pub(crate) struct PgStore {
    primary: PgPool,
    replicas: Replicas,
}

impl PgStore {
    pub(crate) async fn connect(config: &DbConfig) -> Result<Self, StoreError> {
        let primary = Self::pool_options(config)
            .connect_with(Self::connect_options(config, &config.url, "DATABASE_URL")?)
            .await
            .map_err(StoreError::Unavailable)?;
        // A replica that is down when the node starts only stays out of rotation.
        let mut pools = Vec::with_capacity(config.replica_urls.len());
        for url in &config.replica_urls {
            let options = Self::connect_options(config, url, "DATABASE_REPLICA_URLS")?;
            // Named by address in logs and metrics: the URL may hold a password.
            let name = format!("{}:{}", options.get_host(), options.get_port());
            pools.push((name, Self::pool_options(config).connect_lazy_with(options)));
        }
        let replicas = Replicas::start(&primary, pools, config.replica_policy).await;
        Ok(Self { primary, replicas })
    }

    fn pool_options(config: &DbConfig) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections.min(config.max_connections))
            .max_lifetime(config.max_lifetime)
            .acquire_timeout(config.acquire_timeout)
            // Every acquire's wait as a debug event: `db_pool_acquire_seconds`.
            .acquire_time_level(LevelFilter::Debug)
    }

    fn connect_options(
        config: &DbConfig,
        url: &str,
        setting: &str,
    ) -> Result<PgConnectOptions, StoreError> {
        let timeout_ms = config.statement_timeout.as_millis().to_string();
        Ok(PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("{setting}: {e}")))?
            .application_name("onair")
            .options([("statement_timeout", timeout_ms.as_str())])
            .log_statements(LevelFilter::Trace)
            .log_slow_statements(LevelFilter::Warn, config.slow_statement))
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.primary
    }

    /// A connection for reads that tolerate replication lag (public listings and
    /// profiles): on a replica in rotation, else on the primary (also inside
    /// [`crate::reading_primary`]).
    pub(crate) async fn reader(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        match self.replicas.connection().await {
            Some(connection) => Ok(connection),
            None => Ok(self.primary.acquire().await?),
        }
    }
}

#[async_trait]
impl crate::Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx holds an advisory lock while migrating, so nodes starting together are safe.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.primary)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The primary only: reads leave a replica that is down for the others or the
        // primary, so a replica alone never makes the node unready.
        sqlx::query("SELECT 1").execute(&self.primary).await?;
        Ok(())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        std::iter::once(PoolStats::of("primary", &self.primary))
            .chain(
                self.replicas
                    .pools()
                    .map(|(name, pool)| PoolStats::of(name, pool)),
            )
            .collect()
    }

    fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.replicas.status()
    }

    async fn close(&self) {
        self.replicas.stop().await;
        self.primary.close().await;
    }
}
