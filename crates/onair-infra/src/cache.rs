//! Read-through caches (review M4): an in-process layer (moka) in front of the database,
//! and in scale-out a Redis layer shared by every node between the two.
//!
//! Concurrent misses for one key are coalesced: one caller loads, the others wait for its
//! value. A miss that finds nothing is not cached (the thing may be created next).
//!
//! Invalidation is versioned, so a value loaded from the database before a write can never
//! be stored as current after it: every shared entry carries the version of its key (or,
//! for caches invalidated as a whole, of the cache) read *before* the load, and a write
//! bumps that version in Redis. Every node drops its local copy when the invalidation is
//! published on the cache's topic; the local layer's short lifetime bounds what a lost
//! message costs. When Redis cannot be reached, reads go to the database and the
//! invalidations are replayed once it answers again.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{InfraError, RedisBus, RedisPool};

/// How long one Redis call of a cache may take before the cache goes to the database.
const SHARED_DEADLINE: Duration = Duration::from_millis(250);
/// How often invalidations that could not reach Redis are retried.
const REPLAY_PERIOD: Duration = Duration::from_secs(1);

/// What a cache's entries are invalidated by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Each key on its own (a profile).
    PerKey,
    /// All entries at once (the pages of one list).
    Whole,
}

/// A load that found nothing, or failed.
#[derive(Debug, thiserror::Error)]
pub enum Miss<E> {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Failed(E),
}

pub struct Cache<V> {
    name: &'static str,
    /// The bus topic of its invalidations (kept: compared on every message).
    topic: String,
    scope: Scope,
    local: moka::future::Cache<String, V>,
    /// Bumped by every invalidation: a load that overlapped one is not kept locally.
    epoch: AtomicU64,
    shared: Option<Arc<Shared>>,
}

/// Where a scale-out node's caches keep their shared layer.
#[derive(Clone)]
pub struct SharedLayer {
    pub pool: RedisPool,
    /// Carries invalidations to the other nodes.
    pub bus: RedisBus,
    /// Starts every key and topic: deployments (or tests) sharing a Redis stay apart.
    pub prefix: String,
}

/// The Redis layer and how invalidations reach the other nodes.
struct Shared {
    name: &'static str,
    scope: Scope,
    layer: SharedLayer,
    ttl: Duration,
    /// Invalidations Redis has not taken yet (`None`: the whole cache).
    pending: Mutex<HashSet<Option<String>>>,
    replaying: AtomicBool,
}

impl Shared {
    /// Bumps the version the entries are checked against (outliving them, so it never
    /// falls back to a version an old entry carries), then tells the other nodes.
    async fn bump(&self, key: Option<&str>) -> Result<(), InfraError> {
        let version_key = self.version_key(key.unwrap_or_default());
        let keep = self.ttl.as_secs().max(1) * 2;
        let bump = async {
            redis::pipe()
                .atomic()
                .incr(&version_key, 1)
                .ignore()
                .expire(&version_key, keep as i64)
                .ignore()
                .query_async::<()>(&mut self.layer.pool.get())
                .await?;
            self.layer
                .bus
                .publish(&self.key(""), key.unwrap_or_default().as_bytes())
                .await
        };
        tokio::time::timeout(SHARED_DEADLINE, bump)
            .await
            .unwrap_or(Err(InfraError::Timeout))
    }

    /// Retries the invalidations Redis missed until it has taken them all.
    async fn replay(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REPLAY_PERIOD).await;
            let pending: Vec<Option<String>> =
                self.pending.lock().expect("pending lock").drain().collect();
            let mut left = Vec::new();
            for key in pending {
                if self.bump(key.as_deref()).await.is_err() {
                    left.push(key);
                }
            }
            let mut pending = self.pending.lock().expect("pending lock");
            if left.is_empty() && pending.is_empty() {
                self.replaying.store(false, Ordering::Release);
                tracing::info!(cache = self.name, "missed cache invalidations replayed");
                return;
            }
            pending.extend(left);
        }
    }

    /// `<prefix>cache:<name>:<suffix>`; with an empty suffix, the cache's topic.
    fn key(&self, suffix: &str) -> String {
        let Self { name, layer, .. } = self;
        match suffix {
            "" => format!("{}cache:{name}", layer.prefix),
            _ => format!("{}cache:{name}:{suffix}", layer.prefix),
        }
    }

    fn data_key(&self, key: &str) -> String {
        self.key(&format!("d:{key}"))
    }

    fn version_key(&self, key: &str) -> String {
        match self.scope {
            Scope::PerKey => self.key(&format!("v:{key}")),
            Scope::Whole => self.key("v"),
        }
    }
}

impl<V> Cache<V>
where
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// An in-process cache: entries live `ttl`.
    pub fn local(name: &'static str, scope: Scope, capacity: u64, ttl: Duration) -> Self {
        Self {
            name,
            topic: name.to_owned(),
            scope,
            local: local_layer(capacity, ttl),
            epoch: AtomicU64::new(0),
            shared: None,
        }
    }

    /// A cache shared through Redis (entries live `ttl` there) with an in-process layer
    /// of `local_ttl`. The node's cache bus must deliver [`Cache::topic`] to
    /// [`Cache::forget_local`].
    pub fn shared(
        name: &'static str,
        scope: Scope,
        capacity: u64,
        (local_ttl, ttl): (Duration, Duration),
        layer: SharedLayer,
    ) -> Self {
        let shared = Shared {
            name,
            scope,
            layer,
            ttl,
            pending: Mutex::default(),
            replaying: false.into(),
        };
        Self {
            name,
            topic: shared.key(""),
            scope,
            local: local_layer(capacity, local_ttl.min(ttl)),
            epoch: AtomicU64::new(0),
            shared: Some(Arc::new(shared)),
        }
    }

    /// The bus topic this cache's invalidations travel on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The value under `key`, loaded with `load` on a miss (once for concurrent callers).
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, Arc<Miss<E>>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let epoch = self.epoch.load(Ordering::Acquire);
        let entry = self
            .local
            .entry_by_ref(key)
            .or_try_insert_with(self.load_through(key, load))
            .await?;
        if !entry.is_fresh() {
            self.count_hit("local");
        } else if self.epoch.load(Ordering::Acquire) != epoch {
            // Invalidated while it loaded: serve it to this request, keep nothing.
            self.local.invalidate(key).await;
        }
        Ok(entry.into_value())
    }

    /// Drops `key` everywhere: on this node at once, on the others when they hear it.
    pub async fn invalidate(&self, key: &str) {
        debug_assert_eq!(self.scope, Scope::PerKey);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.local.invalidate(key).await;
        self.invalidate_shared(Some(key.to_owned())).await;
    }

    /// Drops every entry everywhere.
    pub async fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.local.invalidate_all();
        self.invalidate_shared(None).await;
    }

    /// Another node invalidated `key` (empty: everything): drops this node's copy.
    pub fn forget_local(&self, key: &[u8]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match std::str::from_utf8(key) {
            Ok(key) if !key.is_empty() && self.scope == Scope::PerKey => {
                // Called from the bus's receive loop, which must not wait.
                let (local, key) = (self.local.clone(), key.to_owned());
                tokio::spawn(async move { local.invalidate(&key).await });
            }
            _ => self.local.invalidate_all(),
        }
    }

    /// The shared layer if it has the current value, else the database (and the shared
    /// layer is filled for the other nodes).
    async fn load_through<E, F, Fut>(&self, key: &str, load: F) -> Result<V, Miss<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let shared = match &self.shared {
            Some(shared) => self.read_shared(shared, key).await,
            None => None,
        };
        let version = match shared {
            Some(Lookup::Current(value)) => {
                self.count_hit("shared");
                return Ok(value);
            }
            Some(Lookup::Stale(version)) => Some(version),
            None => None,
        };
        metrics::counter!("cache_misses_total", "cache" => self.name).increment(1);
        let value = load().await.map_err(Miss::Failed)?.ok_or(Miss::NotFound)?;
        if let (Some(shared), Some(version)) = (&self.shared, version) {
            self.write_shared(shared, key, version, &value).await;
        }
        Ok(value)
    }

    async fn read_shared(&self, shared: &Shared, key: &str) -> Option<Lookup<V>> {
        let mut redis = shared.layer.pool.get();
        let keys = [shared.data_key(key), shared.version_key(key)];
        let read = redis.mget::<_, (Option<Vec<u8>>, Option<u64>)>(&keys);
        let (data, version) = match tokio::time::timeout(SHARED_DEADLINE, read).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return self.shared_failed("read", &e.to_string()),
            Err(_) => return self.shared_failed("read", "timed out"),
        };
        let version = version.unwrap_or(0);
        let current = data.and_then(|data| decode::<V>(&data, version));
        Some(current.map_or(Lookup::Stale(version), Lookup::Current))
    }

    async fn write_shared(&self, shared: &Shared, key: &str, version: u64, value: &V) {
        let Ok(json) = serde_json::to_vec(value) else {
            return;
        };
        let mut data = format!("{version}:").into_bytes();
        data.extend_from_slice(&json);
        let mut redis = shared.layer.pool.get();
        let ttl = shared.ttl.as_secs().max(1);
        let write = redis.set_ex::<_, _, ()>(shared.data_key(key), data, ttl);
        match tokio::time::timeout(SHARED_DEADLINE, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => _ = self.shared_failed::<()>("write", &e.to_string()),
            Err(_) => _ = self.shared_failed::<()>("write", "timed out"),
        }
    }

    async fn invalidate_shared(&self, key: Option<String>) {
        let Some(shared) = &self.shared else { return };
        if let Err(e) = shared.bump(key.as_deref()).await {
            tracing::warn!(cache = self.name, error = %e, "cache invalidation did not reach Redis; replaying it");
            shared.pending.lock().expect("pending lock").insert(key);
            if !shared.replaying.swap(true, Ordering::AcqRel) {
                tokio::spawn(Arc::clone(shared).replay());
            }
        }
    }

    fn count_hit(&self, layer: &'static str) {
        metrics::counter!("cache_hits_total", "cache" => self.name, "layer" => layer).increment(1);
    }

    /// Logs a Redis failure of the shared layer; the caller goes to the database.
    fn shared_failed<T>(&self, what: &'static str, error: &str) -> Option<T> {
        metrics::counter!("cache_shared_errors_total", "cache" => self.name).increment(1);
        tracing::warn!(
            cache = self.name,
            what,
            error,
            "shared cache unavailable; using the database"
        );
        None
    }
}

enum Lookup<V> {
    Current(V),
    /// Absent or outdated; a value loaded now is stored under this version.
    Stale(u64),
}

/// A shared entry is `<version>:<json>`; it is current only under the current version.
fn decode<V: DeserializeOwned>(data: &[u8], version: u64) -> Option<V> {
    let colon = data.iter().position(|&b| b == b':')?;
    let stored: u64 = std::str::from_utf8(&data[..colon]).ok()?.parse().ok()?;
    (stored == version)
        .then(|| serde_json::from_slice(&data[colon + 1..]).ok())
        .flatten()
}

fn local_layer<K, V>(capacity: u64, ttl: Duration) -> moka::future::Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .time_to_live(ttl)
        .build()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn an_entry_is_current_only_under_its_version() {
        assert_eq!(decode::<String>(b"3:\"x\"", 3), Some("x".to_owned()));
        assert_eq!(decode::<String>(b"3:\"x\"", 4), None);
        assert_eq!(decode::<String>(b"garbage", 0), None);
    }
}
