//! Viewer counts (review S4). Concurrent viewers are the distinct viewers seen in the last
//! 30 s; unique viewers over a broadcast are a HyperLogLog estimate. Callers batch
//! heartbeats and hand them over in bulk: no backend is touched per heartbeat.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cardinality_estimator::CardinalityEstimator;
use uuid::Uuid;

use crate::{InfraError, RedisPool};

/// A viewer is counted as watching for this long after its last heartbeat.
pub const VIEWER_WINDOW_MS: i64 = 30_000;

/// An opaque, already-hashed viewer identity (never the raw client id).
pub type ViewerId = [u8; 16];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerCounts {
    pub concurrent: u64,
    pub unique: u64,
}

#[async_trait]
pub trait ViewerCounter: Send + Sync {
    /// Records that each viewer was watching its stream at `now_ms` (Unix milliseconds).
    async fn record(&self, now_ms: i64, seen: &[(Uuid, ViewerId)]) -> Result<(), InfraError>;
    /// Counts for each of `streams`, in order, as of `now_ms`.
    async fn counts(&self, now_ms: i64, streams: &[Uuid]) -> Result<Vec<ViewerCounts>, InfraError>;
    /// Forgets every stream not in `live` (their counts are final).
    async fn retain(&self, live: &[Uuid]) -> Result<(), InfraError>;
}

#[derive(Default)]
struct StreamViewers {
    last_seen: HashMap<ViewerId, i64>,
    unique: CardinalityEstimator<ViewerId>,
}

/// Embedded mode: everything in this process.
#[derive(Default)]
pub struct MemoryViewerCounter {
    streams: Mutex<HashMap<Uuid, StreamViewers>>,
}

#[async_trait]
impl ViewerCounter for MemoryViewerCounter {
    async fn record(&self, now_ms: i64, seen: &[(Uuid, ViewerId)]) -> Result<(), InfraError> {
        let mut streams = self.streams.lock().expect("viewer map lock");
        for (stream, viewer) in seen {
            let entry = streams.entry(*stream).or_default();
            entry.last_seen.insert(*viewer, now_ms);
            entry.unique.insert(viewer);
        }
        Ok(())
    }

    async fn counts(&self, now_ms: i64, streams: &[Uuid]) -> Result<Vec<ViewerCounts>, InfraError> {
        let mut known = self.streams.lock().expect("viewer map lock");
        Ok(streams
            .iter()
            .map(|stream| match known.get_mut(stream) {
                Some(viewers) => {
                    viewers
                        .last_seen
                        .retain(|_, at| now_ms - *at <= VIEWER_WINDOW_MS);
                    ViewerCounts {
                        concurrent: viewers.last_seen.len() as u64,
                        unique: viewers.unique.estimate() as u64,
                    }
                }
                None => ViewerCounts::default(),
            })
            .collect())
    }

    async fn retain(&self, live: &[Uuid]) -> Result<(), InfraError> {
        self.streams
            .lock()
            .expect("viewer map lock")
            .retain(|id, _| live.contains(id));
        Ok(())
    }
}

/// Scale-out mode: every node's heartbeats meet in Redis. Per stream, a sorted set of
/// viewers scored by last-seen time (concurrent = members inside the window) and a
/// HyperLogLog (PFADD/PFCOUNT) of everyone who watched.
pub struct RedisViewerCounter {
    pool: RedisPool,
    prefix: String,
}

/// Keys outlive a broadcast by an hour, then Redis drops them on its own.
const KEY_TTL_SECS: i64 = 3_600;

impl RedisViewerCounter {
    /// `prefix` namespaces the keys (e.g. `onair:`), so deployments and tests can share
    /// a Redis.
    pub fn new(pool: RedisPool, prefix: impl Into<String>) -> Self {
        Self {
            pool,
            prefix: prefix.into(),
        }
    }

    fn keys(&self, stream: &Uuid) -> (String, String) {
        (
            format!("{}viewers:{stream}:active", self.prefix),
            format!("{}viewers:{stream}:unique", self.prefix),
        )
    }
}

#[async_trait]
impl ViewerCounter for RedisViewerCounter {
    async fn record(&self, now_ms: i64, seen: &[(Uuid, ViewerId)]) -> Result<(), InfraError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut by_stream: HashMap<Uuid, Vec<&ViewerId>> = HashMap::new();
        for (stream, viewer) in seen {
            by_stream.entry(*stream).or_default().push(viewer);
        }
        let mut pipe = redis::pipe();
        for (stream, viewers) in &by_stream {
            let (active, unique) = self.keys(stream);
            let members: Vec<(i64, &[u8])> = viewers.iter().map(|v| (now_ms, &v[..])).collect();
            pipe.zadd_multiple(&active, &members).ignore();
            pipe.pfadd(&unique, viewers.iter().map(|v| &v[..]).collect::<Vec<_>>())
                .ignore();
            pipe.expire(&active, KEY_TTL_SECS).ignore();
            pipe.expire(&unique, KEY_TTL_SECS).ignore();
        }
        pipe.query_async::<()>(&mut self.pool.get()).await?;
        Ok(())
    }

    async fn counts(&self, now_ms: i64, streams: &[Uuid]) -> Result<Vec<ViewerCounts>, InfraError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for stream in streams {
            let (active, unique) = self.keys(stream);
            pipe.zrembyscore(&active, "-inf", now_ms - VIEWER_WINDOW_MS - 1)
                .ignore();
            pipe.zcard(&active);
            pipe.pfcount(&unique);
        }
        let raw: Vec<u64> = pipe.query_async(&mut self.pool.get()).await?;
        Ok(raw
            .chunks(2)
            .map(|pair| ViewerCounts {
                concurrent: pair[0],
                unique: pair[1],
            })
            .collect())
    }

    async fn retain(&self, _live: &[Uuid]) -> Result<(), InfraError> {
        // Keys expire on their own; other nodes may still be counting them.
        Ok(())
    }
}
