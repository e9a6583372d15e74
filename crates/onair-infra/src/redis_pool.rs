use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::InfraError;
use crate::redis_connection::RedisConnection;

/// How many connections and how long any call may wait for Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisOptions {
    pub size: usize,
    /// Per command: a Redis that does not answer fails the call instead of stalling it.
    pub response_timeout: Duration,
    /// Per connection attempt.
    pub connect_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            size: 20,
            response_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
        }
    }
}

/// A fixed set of multiplexed, self-reconnecting Redis connections used round-robin
/// (review C4: bounded, 20 per node by default). Each connection pipelines many requests,
/// so a few carry a node's whole load; more spread the socket work.
#[derive(Clone)]
pub struct RedisPool {
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    options: RedisOptions,
}

impl RedisPool {
    /// A pool of `size` with the default deadlines.
    pub async fn connect(url: &str, size: usize) -> Result<Self, InfraError> {
        Self::connect_with(
            url,
            RedisOptions {
                size,
                ..RedisOptions::default()
            },
        )
        .await
    }

    /// Opens the connections lazily, so a node starts (degraded) while Redis is down;
    /// only a malformed URL fails here. Each connection reconnects on its own, one
    /// attempt per call while Redis is away: a caller gets an error within the connect
    /// timeout rather than waiting through a backoff.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, InfraError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(options.connect_timeout));
        let connections = (0..options.size.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = Self {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
            options,
        };
        if let Err(error) = pool.ping().await {
            tracing::warn!(%error, "Redis does not answer; starting degraded, retrying on use");
        }
        Ok(pool)
    }

    /// A connection handle (cheap to clone; requests on it are multiplexed), tracing
    /// each command.
    pub fn get(&self) -> RedisConnection {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        RedisConnection(self.connections[n % self.connections.len()].clone())
    }

    /// The longest a single Redis call should take, for what is not sent through
    /// [`Self::get`] (the subscriber connection).
    pub fn deadline(&self) -> Duration {
        self.options.connect_timeout + self.options.response_timeout
    }

    /// One round trip (readiness).
    pub async fn ping(&self) -> Result<(), InfraError> {
        let _: String = redis::cmd("PING").query_async(&mut self.get()).await?;
        Ok(())
    }

    /// The server's memory use, its `maxmemory` (0: none) and the keys it has evicted,
    /// from `INFO memory stats`.
    pub async fn memory(&self) -> Result<RedisMemory, InfraError> {
        let info: redis::InfoDict = redis::cmd("INFO")
            .arg("memory")
            .arg("stats")
            .query_async(&mut self.get())
            .await?;
        let figure = |key: &str| info.get::<u64>(key).unwrap_or_default();
        Ok(RedisMemory {
            used_bytes: figure("used_memory"),
            max_bytes: figure("maxmemory"),
            evicted_keys: figure("evicted_keys"),
        })
    }
}

/// See [`RedisPool::memory`].
#[derive(Debug, Clone, Copy)]
pub struct RedisMemory {
    pub used_bytes: u64,
    pub max_bytes: u64,
    pub evicted_keys: u64,
}
