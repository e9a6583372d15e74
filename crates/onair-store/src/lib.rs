//! Persistence for OnAir behind small per-domain traits, with a SQLite backend (embedded
//! default) and a PostgreSQL backend (scale-out, with read replicas). The backend is picked
//! from the database URL; handlers only ever see `dyn Store`.

mod error;
pub mod jobs;
mod models;
mod notifications;
mod notify_sql;
mod postgres;
mod shared;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;
mod traits;

use std::sync::Arc;
use std::time::Duration;

pub use error::{Conflict, StoreError};
pub use models::{
    Archive, ArchiveStatus, ChatSettings, ChatStanding, Credentials, FollowEntry, ModerationEntry,
    NewArchive, NewBan, NewUser, ProfilePatch, RefreshRotation, StreamKeyRecord, StreamOwner,
    StreamPatch, StreamView, UserProfile, UserSummary, ViewerCountUpdate,
};
pub use notifications::{
    FanoutBatch, NewPushSubscription, NewWebhook, Notification, PushSubscription, Webhook,
    WebhookEvent,
};
pub use timestamp::Timestamp;
pub use traits::{
    ArchiveStore, ChatStore, FollowStore, JobStore, NotificationStore, PoolStats, PushStore,
    SessionStore, Store, StreamKeyStore, StreamStore, UserStore, WebhookStore,
};

/// How to reach the database. Pool sizes and timeouts default to review C4 / M3.
#[derive(Clone)]
pub struct DbConfig {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// PostgreSQL read replicas; reads that tolerate lag are spread across them.
    pub replica_urls: Vec<String>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub max_lifetime: Duration,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/onair.db".into(),
            replica_urls: Vec::new(),
            max_connections: 25,
            min_connections: 5,
            max_lifetime: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(3),
        }
    }
}

impl std::fmt::Debug for DbConfig {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("backend", &Backend::of(&self.url))
            .field("replicas", &self.replica_urls.len())
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens the pools for the backend named by the URL. Does not migrate: call
/// [`Store::migrate`].
pub async fn connect(config: &DbConfig) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of(&config.url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::SqliteStore::connect(config).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::PgStore::connect(config).await?)),
        None => Err(StoreError::Config(
            "DATABASE_URL must start with sqlite:, postgres:// or postgresql://".into(),
        )),
    }
}
