//! Persistence for OnAir behind small per-domain traits, with a SQLite backend (embedded
//! default) and a PostgreSQL backend (scale-out, with read replicas). The backend is picked
//! from the database URL. The app root holds one `Arc<dyn Store>`; each part of the app
//! takes the domain traits it uses (`Arc<dyn Store>` upcasts to `Arc<dyn FollowStore>`…).
//!
//! Layout: one module per domain (`users`, `sessions`, `follows`, `stream_keys`,
//! `streams`, `archives`, `clips`, `chat`, `jobs`, `notifications`, `push`, `webhooks`,
//! `tips`, `admin`) holds its trait, its models, its SQL and its implementation for both backends: "how is X stored"
//! is one file. `sqlite` and `postgres` hold only pools, pragmas and migrations;
//! `replicas` the read replicas' health checks and rotation; `sql` the helpers every
//! domain uses (keyset pages, insert-or-delete toggles); `models` the owner columns
//! several domains join in.
//!
//! Both backends share each query's text: SQLite accepts PostgreSQL's `$N` placeholders,
//! row values, `ON CONFLICT` and `RETURNING`. A domain implements its trait with a small
//! macro instantiated at the end of its file for `SqliteStore` and `PgStore`; dialect
//! differences are macro arguments, side by side (`jobs`, `notifications`). Why a macro
//! and not generic functions over the sqlx executor: a generic function must spell out
//! sqlx's `Encode`/`Type`/`Decode` bounds for every value it binds or reads (Rust does not
//! imply them), and a generic trait impl must prove its futures `Send` for any backend;
//! the macro sees the two concrete backends and stays plain SQL. The few functions other
//! domains call are generic, their bounds kept short by `sql::Bind`: a write that causes
//! another domain's rows calls it by name in its own transaction (`streams` calls
//! `notifications::enqueue_go_live`, `webhooks::enqueue_deliveries` and
//! `archives::record_archive`, which enqueue through `jobs::enqueue`; signup calls
//! `sessions::insert_token`).

mod admin;
mod archives;
mod chat;
mod clips;
mod error;
mod follows;
pub mod jobs;
mod models;
mod notifications;
mod postgres;
mod push;
mod replicas;
mod sessions;
mod sql;
mod sqlite;
mod stream_keys;
mod streams;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;
mod tips;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use admin::{AccountStatus, Actor, AdminStore, AuditEntry, Suspension};
pub use archives::{Archive, ArchiveStatus, ArchiveStore, ArchiveVisibility, ReadyArchive};
pub use chat::{
    ActiveBan, ChatSettings, ChatStanding, ChatStore, ModerationEntry, Moderator, NewBan,
};
pub use clips::{Clip, ClipStore, NewClip, ReadyClip};
pub use error::{Conflict, StoreError};
pub use follows::{FollowEntry, FollowStore, UserSummary};
pub use jobs::JobStore;
pub use models::StreamOwner;
pub use notifications::{FanoutBatch, Notification, NotificationStore};
pub use push::{NewPushSubscription, PushStore, PushSubscription};
pub use replicas::{ReplicaPolicy, ReplicaStatus, reading_primary};
pub use sessions::{RefreshRotation, SessionStore};
pub use stream_keys::{StreamKeyRecord, StreamKeyStore};
pub use streams::{StreamPatch, StreamStore, StreamView, ViewerCountUpdate};
pub use timestamp::Timestamp;
pub use tips::{
    Earnings, EventOutcome, NewTip, PaymentChange, PaymentEvent, Tip, TipDirection, TipInsert,
    TipSender, TipStatus, TipStore,
};
pub use users::{Credentials, NewUser, ProfilePatch, UserProfile, UserStore};
pub use webhooks::{NewWebhook, Webhook, WebhookEvent, WebhookStore};

/// Everything the application needs from storage: the app root holds this and hands
/// each part the domain traits it uses.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + FollowStore
    + StreamKeyStore
    + StreamStore
    + ArchiveStore
    + ClipStore
    + ChatStore
    + JobStore
    + NotificationStore
    + PushStore
    + WebhookStore
    + TipStore
    + AdminStore
{
    fn backend(&self) -> Backend;
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Round-trips to the pools writes need (readiness); not to read replicas, whose
    /// loss only moves reads to the primary.
    async fn ping(&self) -> Result<(), StoreError>;
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// Each read replica's lag and whether reads go to it (none on SQLite).
    fn replica_status(&self) -> Vec<ReplicaStatus> {
        Vec::new()
    }
    /// Closes every pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Size of one connection pool, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// `primary`, each replica's `host:port`, or `writer` / `reader` on SQLite.
    pub name: String,
    pub size: u32,
    pub idle: u32,
    /// The configured ceiling, so usage can be alerted on as a share of it.
    pub max: u32,
}

impl PoolStats {
    fn of<DB: sqlx::Database>(name: &str, pool: &sqlx::Pool<DB>) -> Self {
        Self {
            name: name.to_owned(),
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

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
    /// A statement that runs longer is logged (warn, with its SQL) and counted in
    /// `db_slow_queries_total`.
    pub slow_statement: Duration,
    /// When a replica leaves and rejoins the read rotation.
    pub replica_policy: ReplicaPolicy,
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
            slow_statement: Duration::from_millis(100),
            replica_policy: ReplicaPolicy {
                max_lag: Duration::from_secs(1),
                check_interval: Duration::from_millis(500),
            },
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
