//! Scale-out backend: a PostgreSQL primary for writes and for reads that must see them,
//! and optional read replicas (review S6) for the public read paths, picked round-robin.
//! Every connection carries a `statement_timeout` (review M3) and every pool is bounded
//! (review C4).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::{Backend, DbConfig, PoolStats};

pub(crate) struct PgStore {
    primary: PgPool,
    replicas: Vec<PgPool>,
    next_replica: AtomicUsize,
}

impl PgStore {
    pub(crate) async fn connect(config: &DbConfig) -> Result<Self, StoreError> {
        let primary = Self::pool(config, &config.url, "DATABASE_URL").await?;
        let mut replicas = Vec::with_capacity(config.replica_urls.len());
        for url in &config.replica_urls {
            replicas.push(Self::pool(config, url, "DATABASE_REPLICA_URLS").await?);
        }
        Ok(Self {
            primary,
            replicas,
            next_replica: AtomicUsize::new(0),
        })
    }

    async fn pool(config: &DbConfig, url: &str, setting: &str) -> Result<PgPool, StoreError> {
        let timeout_ms = config.statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("{setting}: {e}")))?
            .application_name("onair")
            .options([("statement_timeout", timeout_ms.as_str())]);
        PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections.min(config.max_connections))
            .max_lifetime(config.max_lifetime)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.primary
    }

    /// Reads that tolerate replication lag (public listings and profiles).
    pub(crate) fn reader(&self) -> &PgPool {
        if self.replicas.is_empty() {
            return &self.primary;
        }
        let n = self.next_replica.fetch_add(1, Ordering::Relaxed);
        &self.replicas[n % self.replicas.len()]
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
        for pool in std::iter::once(&self.primary).chain(&self.replicas) {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
        Ok(())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        std::iter::once(PoolStats::of("primary", &self.primary))
            .chain(
                self.replicas
                    .iter()
                    .enumerate()
                    .map(|(i, pool)| PoolStats::of(&format!("replica{i}"), pool)),
            )
            .collect()
    }

    async fn close(&self) {
        for pool in &self.replicas {
            pool.close().await;
        }
        self.primary.close().await;
    }
}
