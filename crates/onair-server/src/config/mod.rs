//! Configuration: defaults ← optional TOML file ← environment, in sections (`[http]`,
//! `[database]`, `[redis]`, `[auth]`, `[media]`, `[viewers]`, `[chat]`, `[jobs]`,
//! `[notify]`, `[processing]`, `[rate_limit]`, `[cache]`, `[breaker]`, `[payments]`) that deserialize straight into each domain's settings
//! type. Every setting
//! also has an `ONAIR_*` variable whose name predates the sections (`env.rs` maps them);
//! the database, Redis and object-store URLs also answer to their conventional names
//! `DATABASE_URL`, `DATABASE_REPLICA_URLS`, `REDIS_URL` and `OBJECT_STORE_URL`, and Stripe's
//! keys to theirs (`STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`, `STRIPE_PUBLISHABLE_KEY`). Everything
//! is validated once, in [`Config::validate`], and an error names the setting.

mod env;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use onair_infra::{BreakerSettings, RedisOptions};
use onair_store::{Backend, DbConfig, ReplicaPolicy};
use serde::{Deserialize, Serialize};

pub use crate::caches::CacheConfig;
pub use crate::chat::ChatConfig;
pub use crate::jobs::JobsSettings;
pub use crate::media::MediaConfig;
pub use crate::notifications::NotifyConfig;
pub use crate::payments::PaymentsConfig;
pub use crate::processing::ProcessingConfig;
pub use crate::rate_limit::RateLimitConfig;
use crate::rate_limit::TrustedProxies;
use crate::roles::Role;
pub use crate::viewers::ViewerConfig;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded mode keeps its database, generated secret and media.
    pub data_dir: PathBuf,
    /// What this node runs (comma-separated in the environment); every role by default.
    #[serde(deserialize_with = "crate::settings::comma_list")]
    pub roles: Vec<Role>,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub media: MediaConfig,
    pub viewers: ViewerConfig,
    pub chat: ChatConfig,
    pub jobs: JobsSettings,
    pub notify: NotifyConfig,
    pub processing: ProcessingConfig,
    pub rate_limit: RateLimitConfig,
    pub breaker: BreakerConfig,
    pub cache: CacheConfig,
    pub payments: PaymentsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            roles: Role::ALL.to_vec(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            auth: AuthConfig::default(),
            media: MediaConfig::default(),
            viewers: ViewerConfig::default(),
            chat: ChatConfig::default(),
            jobs: JobsSettings::default(),
            notify: NotifyConfig::default(),
            processing: ProcessingConfig::default(),
            rate_limit: RateLimitConfig::default(),
            breaker: BreakerConfig::default(),
            cache: CacheConfig::default(),
            payments: PaymentsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Whole-request deadline; a request past it is answered 503.
    pub request_timeout_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a shutdown waits for open requests, sockets and background work.
    pub shutdown_grace_secs: u64,
    /// When set, `/metrics` is served on this address only (not on `bind`), so it can
    /// stay on a private interface.
    pub metrics_bind: Option<SocketAddr>,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` name the client
    /// (comma-separated in the environment); from anyone else those headers are ignored.
    #[serde(deserialize_with = "crate::settings::comma_list")]
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 10,
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 10,
            metrics_bind: None,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` (embedded) or `postgres://…` (scale-out). Default: a SQLite file in
    /// `data_dir`.
    pub url: Option<String>,
    /// PostgreSQL read replicas (comma-separated in the environment).
    #[serde(deserialize_with = "crate::settings::comma_list")]
    pub replica_urls: Vec<String>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub max_lifetime_secs: u64,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// Statements slower than this are logged and counted (`db_slow_queries_total`).
    pub slow_query_ms: u64,
    pub migrate_on_start: bool,
    /// A replica further behind than this (or not answering) serves no reads until it
    /// catches up; a user's reads stay on the primary for a moment after they write.
    pub replica_max_lag_ms: u64,
    /// How often each replica's lag is measured.
    pub replica_check_interval_ms: u64,
}

impl DatabaseConfig {
    /// How read replicas are judged.
    pub fn replica_policy(&self) -> ReplicaPolicy {
        ReplicaPolicy {
            max_lag: Duration::from_millis(self.replica_max_lag_ms),
            check_interval: Duration::from_millis(self.replica_check_interval_ms),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            replica_urls: Vec::new(),
            max_connections: 25,
            min_connections: 5,
            max_lifetime_secs: 300,
            acquire_timeout_ms: 3_000,
            statement_timeout_ms: 3_000,
            slow_query_ms: 100,
            migrate_on_start: true,
            replica_max_lag_ms: 1_000,
            replica_check_interval_ms: 500,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Scale-out: Redis shared by every node (chat, viewer counts, rate limits).
    pub url: Option<String>,
    pub pool_size: u32,
    /// Deadlines of every Redis call: a Redis that is down or stalled costs a request
    /// at most this, then the node serves degraded.
    pub response_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 20,
            response_timeout_ms: 500,
            connect_timeout_ms: 500,
        }
    }
}

impl RedisConfig {
    pub fn options(&self) -> RedisOptions {
        RedisOptions {
            size: self.pool_size as usize,
            response_timeout: Duration::from_millis(self.response_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        }
    }
}

/// The `[breaker]` settings: the circuit breakers of every outbound dependency (the
/// object store, each webhook host, each push service).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failures in a row that open a breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets one probe through.
    pub cool_down_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let defaults = BreakerSettings::default();
        Self {
            failure_threshold: defaults.failure_threshold,
            cool_down_ms: defaults.cool_down.as_millis() as u64,
        }
    }
}

impl BreakerConfig {
    pub fn settings(&self) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: self.failure_threshold,
            cool_down: Duration::from_millis(self.cool_down_ms),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Root secret: signs access tokens and derives stream keys (at least 32 bytes).
    /// Generated and kept in `data_dir` in embedded mode when unset; required with
    /// PostgreSQL, where every node must share it.
    pub secret_key: Option<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Password hashes computed at once (19 MiB each); 0: one per core.
    pub max_concurrent_hashes: usize,
    /// A login's absolute lifetime: its refresh tokens stop working this long after it,
    /// however often they were rotated.
    pub session_max_age_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            access_token_ttl_secs: 3_600,
            refresh_token_ttl_secs: 7 * 24 * 3_600,
            max_concurrent_hashes: 0,
            session_max_age_secs: 30 * 24 * 3_600,
        }
    }
}

impl std::fmt::Debug for Config {
    // URLs and the secret may carry credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.http.bind)
            .field("data_dir", &self.data_dir)
            .field("database", &self.backend())
            .field("replicas", &self.database.replica_urls.len())
            .field("redis", &self.redis.url.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads from `file` (if given, it must exist), `onair.toml` (if present) and the
    /// environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        figment = match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("onair.toml")),
        };
        let plain: Vec<&str> = env::PLAIN_VARS.iter().map(|(var, _)| *var).collect();
        let config: Config = figment
            .merge(Env::raw().only(&plain).map(|var| {
                let key = env::PLAIN_VARS
                    .iter()
                    .find(|(name, _)| var == *name)
                    .map_or("", |(_, key)| key);
                key.into()
            }))
            .merge(
                Env::prefixed("ONAIR_")
                    .filter(|var| {
                        !env::IGNORED_PREFIXES
                            .iter()
                            .any(|p| var.as_str().to_ascii_uppercase().starts_with(p))
                    })
                    .map(|var| env::key_of(var.as_str()).into()),
            )
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether this node runs `role`.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn backend(&self) -> Backend {
        self.database
            .url
            .as_deref()
            .and_then(Backend::of)
            .unwrap_or(Backend::Sqlite)
    }

    pub fn db(&self) -> Result<DbConfig, ConfigError> {
        let database = &self.database;
        let url = match &database.url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("onair.db");
                let path = path
                    .to_str()
                    .ok_or_else(|| ConfigError::setting("data_dir", "must be valid UTF-8"))?;
                format!("sqlite://{path}")
            }
        };
        Ok(DbConfig {
            url,
            replica_urls: database.replica_urls.clone(),
            max_connections: database.max_connections,
            min_connections: database.min_connections,
            max_lifetime: Duration::from_secs(database.max_lifetime_secs),
            acquire_timeout: Duration::from_millis(database.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(database.statement_timeout_ms),
            slow_statement: Duration::from_millis(database.slow_query_ms),
            replica_policy: database.replica_policy(),
        })
    }

    /// `http.trusted_proxies`, read.
    pub(crate) fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(&self.http.trusted_proxies)
            .map_err(|why| ConfigError::setting("http.trusted_proxies", &why))
    }

    pub fn media_root(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    /// Creates `data_dir` when missing, readable by this user only (0700 on Unix): it
    /// holds the database, the generated secret and media not yet published.
    pub fn create_data_dir(&self) -> Result<(), ConfigError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.data_dir)
            .map_err(|e| ConfigError(format!("cannot create {}: {e}", self.data_dir.display())))
    }

    /// The configured secret, or in embedded mode the one kept in `data_dir` (created on
    /// first start, readable only by its owner).
    pub fn resolve_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(secret) = &self.auth.secret_key {
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("secret_key");
        let io = |e: std::io::Error| {
            ConfigError(format!(
                "ONAIR_SECRET_KEY unset and {}: {e}",
                path.display()
            ))
        };
        match std::fs::read_to_string(&path) {
            Ok(secret) if secret.trim().len() >= 32 => {
                return Ok(secret.trim().as_bytes().to_vec());
            }
            Ok(_) => {
                return Err(ConfigError(format!(
                    "{} is shorter than 32 bytes",
                    path.display()
                )));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            Err(_) => {}
        }
        let secret = crate::secrets::random_token();
        write_private(&path, &secret).map_err(io)?;
        tracing::info!(path = %path.display(), "generated a new secret key");
        Ok(secret.into_bytes())
    }
}

impl ConfigError {
    /// A bad value of `key` (`section.setting`), named as the operator set it.
    fn setting(key: &str, why: &str) -> Self {
        Self(format!("{}: {why}", env::describe(key)))
    }
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
