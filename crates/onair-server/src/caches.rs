//! The node's read caches (review M4, S3): public profiles (an hour) and the first pages
//! of the live list (30 s), in process in the embedded mode and shared through Redis in
//! scale-out (`onair_infra::Cache`). Writes that change what they show invalidate them
//! explicitly: a follow the two profiles, a profile edit or a broadcast starting, ending,
//! going offline or being retitled the owner's profile and the live list (which shows
//! owners' names and pictures). Viewer counts in the list are as fresh as the list's
//! lifetime. A miss reads the primary: a replica may not have replayed the write whose
//! invalidation caused it, and its stale answer would be kept for the whole lifetime.

use std::sync::Arc;
use std::time::Duration;

use onair_core::Username;
use onair_infra::{Cache, Handler, Miss, RedisBus, RedisPool, Scope, SharedLayer};
use onair_store::{StoreError, UserProfile, UserStore, reading_primary};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Off, every read goes to the database (for comparisons).
    pub enabled: bool,
    /// How long a public profile is kept.
    pub profile_ttl_secs: u64,
    /// How long a first page of the live list is kept.
    pub live_list_ttl_secs: u64,
    /// Scale-out: how long a node keeps its own copy of a shared entry. Invalidations
    /// reach every node at once through Redis; this bounds what a lost one costs.
    pub local_ttl_secs: u64,
    /// Entries per cache kept in process.
    pub local_capacity: u64,
    /// Scale-out: starts every Redis key and topic of the caches, so deployments sharing
    /// a Redis stay apart.
    pub key_prefix: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            profile_ttl_secs: 3600,
            live_list_ttl_secs: 30,
            local_ttl_secs: 30,
            local_capacity: 50_000,
            key_prefix: "onair:".into(),
        }
    }
}

/// Hears that a channel changed once the caches have forgotten it (the chat tells the
/// pages watching the channel, which then read it again instead of polling). Must not
/// wait: the change is on a request's or a publish's path.
pub trait ChannelListener: Send + Sync {
    fn channel_changed(&self, channel: Uuid);
}

pub struct Caches {
    /// Told of every channel change, after the caches forget it.
    listener: Arc<dyn ChannelListener>,
    /// Public profiles by user id.
    profiles: Option<Cache<UserProfile>>,
    /// Usernames never change and accounts are never reused: a name's id is kept locally.
    user_ids: moka::future::Cache<String, Uuid>,
    /// Rendered first pages of the live list, by sort and size.
    live_pages: Option<Cache<String>>,
}

impl Caches {
    /// The caches, and in scale-out the bus subscription their invalidations arrive on.
    pub async fn new(
        config: &CacheConfig,
        redis: Option<(&str, RedisPool)>,
        listener: Arc<dyn ChannelListener>,
    ) -> Result<Arc<Self>, onair_infra::InfraError> {
        let profile_ttl = Duration::from_secs(config.profile_ttl_secs);
        let list_ttl = Duration::from_secs(config.live_list_ttl_secs);
        let user_ids = moka::future::Cache::new(config.local_capacity);
        if !config.enabled {
            return Ok(Arc::new(Self {
                listener,
                profiles: None,
                user_ids,
                live_pages: None,
            }));
        }
        let capacity = config.local_capacity;
        let Some((url, pool)) = redis else {
            return Ok(Arc::new(Self {
                listener,
                profiles: Some(Cache::local(
                    "profiles",
                    Scope::PerKey,
                    capacity,
                    profile_ttl,
                )),
                user_ids,
                live_pages: Some(Cache::local("live_pages", Scope::Whole, capacity, list_ttl)),
            }));
        };
        // The bus delivers each cache's invalidations to it once the caches exist.
        let caches: Arc<std::sync::OnceLock<Arc<Self>>> = Arc::default();
        let deliver = Arc::clone(&caches);
        let handler: Handler = Arc::new(move |topic, key| {
            if let Some(caches) = deliver.get() {
                caches.forget_local(topic, key);
            }
        });
        let bus = RedisBus::start(url, pool.clone(), handler)?;
        let layer = SharedLayer {
            pool,
            bus: bus.clone(),
            prefix: config.key_prefix.clone(),
        };
        let local_ttl = Duration::from_secs(config.local_ttl_secs);
        let this = Arc::new(Self {
            listener,
            profiles: Some(Cache::shared(
                "profiles",
                Scope::PerKey,
                capacity,
                (local_ttl, profile_ttl),
                layer.clone(),
            )),
            user_ids,
            live_pages: Some(Cache::shared(
                "live_pages",
                Scope::Whole,
                capacity,
                (local_ttl, list_ttl),
                layer,
            )),
        });
        for cache in this.topics() {
            bus.subscribe(&cache).await?;
        }
        let _ = caches.set(Arc::clone(&this));
        Ok(this)
    }

    /// A public profile, cached.
    pub async fn profile(
        &self,
        users: &dyn UserStore,
        id: Uuid,
    ) -> Result<Option<UserProfile>, ApiError> {
        let Some(cache) = &self.profiles else {
            return Ok(users.profile(id).await?);
        };
        found(
            cache
                .get_or_load(&id.to_string(), || reading_primary(users.profile(id)))
                .await,
        )
    }

    /// A public profile by username, cached like [`Caches::profile`].
    pub async fn profile_by_username(
        &self,
        users: &dyn UserStore,
        username: &Username,
    ) -> Result<Option<UserProfile>, ApiError> {
        if let Some(id) = self.user_ids.get(username.as_str()).await {
            return self.profile(users, id).await;
        }
        let profile = users.profile_by_username(username).await?;
        if let Some(profile) = &profile {
            self.user_ids
                .insert(username.as_str().to_owned(), profile.id)
                .await;
        }
        Ok(profile)
    }

    /// A first page of the live list as rendered by `render` (its JSON body), cached
    /// under `key` (what selects the page: sort and size).
    pub async fn live_page<F, Fut>(&self, key: &str, render: F) -> Result<String, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, StoreError>>,
    {
        let Some(cache) = &self.live_pages else {
            return Ok(render().await?);
        };
        let rendered = cache
            .get_or_load(key, || async { reading_primary(render()).await.map(Some) })
            .await;
        found(rendered)?.ok_or(ApiError::Internal)
    }

    /// `user`'s follower or following count changed.
    pub async fn profile_changed(&self, user: Uuid) {
        if let Some(cache) = &self.profiles {
            cache.invalidate(&user.to_string()).await;
        }
    }

    /// `user`'s profile or broadcast changed (an edit; a broadcast starting, ending,
    /// going offline or retitled): their profile shows it, and the live list; then the
    /// listener hears of it.
    pub async fn channel_changed(&self, user: Uuid) {
        self.profile_changed(user).await;
        if let Some(cache) = &self.live_pages {
            cache.invalidate_all().await;
        }
        self.listener.channel_changed(user);
    }

    fn topics(&self) -> Vec<String> {
        let profiles = self.profiles.as_ref().map(Cache::topic);
        let pages = self.live_pages.as_ref().map(Cache::topic);
        profiles
            .into_iter()
            .chain(pages)
            .map(str::to_owned)
            .collect()
    }

    fn forget_local(&self, topic: &str, key: &[u8]) {
        if let Some(cache) = self.profiles.as_ref().filter(|c| c.topic() == topic) {
            cache.forget_local(key);
        }
        if let Some(cache) = self.live_pages.as_ref().filter(|c| c.topic() == topic) {
            cache.forget_local(key);
        }
    }
}

/// A cached read's outcome: found, not found, or the database's failure.
fn found<V>(outcome: Result<V, Arc<Miss<StoreError>>>) -> Result<Option<V>, ApiError> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(miss) => match &*miss {
            Miss::NotFound => Ok(None),
            Miss::Failed(error) => Err(error.into()),
        },
    }
}
