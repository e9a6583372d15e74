use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::ConnectionManager;

use crate::InfraError;

/// A fixed set of multiplexed, self-reconnecting Redis connections used round-robin
/// (review C4: bounded, 20 per node by default). Each connection pipelines many requests,
/// so a few carry a node's whole load; more spread the socket work.
#[derive(Clone)]
pub struct RedisPool {
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
}

impl RedisPool {
    pub async fn connect(url: &str, size: usize) -> Result<Self, InfraError> {
        let client = redis::Client::open(url)?;
        let mut connections = Vec::with_capacity(size.max(1));
        for _ in 0..size.max(1) {
            connections.push(ConnectionManager::new(client.clone()).await?);
        }
        Ok(Self {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A connection handle (cheap to clone; requests on it are multiplexed).
    pub fn get(&self) -> ConnectionManager {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.connections[n % self.connections.len()].clone()
    }
}
