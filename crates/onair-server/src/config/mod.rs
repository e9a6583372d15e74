//! Configuration: defaults ← optional TOML file ← environment. Every setting has an
//! `ONAIR_*` variable (`ONAIR_BIND`, `ONAIR_DB_MAX_CONNECTIONS`…); the database and Redis
//! URLs also answer to their conventional names `DATABASE_URL`, `DATABASE_REPLICA_URLS`
//! and `REDIS_URL`. Startup stops with a message naming the bad setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use onair_store::{Backend, DbConfig};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Where the embedded mode keeps its database, generated secret and media.
    pub data_dir: PathBuf,
    /// `sqlite://…` (embedded) or `postgres://…` (scale-out). Default: a SQLite file in
    /// `data_dir`.
    pub database_url: Option<String>,
    /// PostgreSQL read replicas, comma-separated.
    #[serde(deserialize_with = "comma_list")]
    pub database_replica_urls: Vec<String>,
    pub redis_url: Option<String>,
    /// Where HLS is published: `s3://bucket/prefix` (credentials from `AWS_*`),
    /// `file:///dir`; default the media directory under `data_dir`.
    pub object_store_url: Option<String>,
    pub db_max_connections: u32,
    pub db_min_connections: u32,
    pub db_max_lifetime_secs: u64,
    pub db_acquire_timeout_ms: u64,
    pub db_statement_timeout_ms: u64,
    pub redis_pool_size: u32,
    /// Whole-request deadline; a request past it is answered 503.
    pub http_request_timeout_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Root secret: signs access tokens and derives stream keys (at least 32 bytes).
    /// Generated and kept in `data_dir` in embedded mode when unset; required with
    /// PostgreSQL, where every node must share it.
    pub secret_key: Option<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Ingest URL shown to creators next to their stream key.
    pub public_rtmp_url: String,
    /// Built-in RTMP ingest; off when an external media server calls the hooks instead.
    pub rtmp_enabled: bool,
    pub rtmp_bind: SocketAddr,
    /// Concurrent ingests this node accepts (each runs an ffmpeg).
    pub max_ingests: usize,
    /// How long a broadcast waits for its publisher to reconnect before it ends.
    pub reconnect_grace_secs: u64,
    pub ffmpeg_path: PathBuf,
    /// Encoder threads per ingest.
    pub ffmpeg_threads: u32,
    /// Target HLS segment length.
    pub hls_segment_secs: u32,
    /// How often collected heartbeats go to the viewer counter.
    pub viewer_flush_ms: u64,
    /// How often viewer counts are written to the database.
    pub viewer_persist_ms: u64,
    /// Chat sockets this node accepts (review S1); more upgrades get 503.
    pub chat_max_connections: usize,
    /// Writes a chat socket may have waiting for a slow reader before it is dropped.
    pub chat_send_queue: usize,
    /// Messages replayed on join: at most this many, no older than `chat_history_secs`.
    pub chat_history_len: usize,
    pub chat_history_secs: u64,
    /// Per-user chat rate: a burst of this many, then one message per period.
    pub chat_rate_burst: u32,
    pub chat_rate_period_ms: u64,
    /// Enables `/api/hooks/media/*` for SRS, MediaMTX or Ant Media (at least 16 bytes).
    pub media_hook_secret: Option<String>,
    pub migrate_on_start: bool,
    /// Job runner of this process: off for an HTTP-only node (run `onair worker` apart).
    pub jobs_enabled: bool,
    /// Jobs run at once by this process.
    pub jobs_concurrency: usize,
    pub jobs_poll_ms: u64,
    /// How long a worker holds a job before another may take it over.
    pub jobs_lease_secs: u64,
    /// Attempts before a failing job becomes a dead letter.
    pub jobs_max_attempts: i32,
    pub jobs_backoff_base_ms: u64,
    pub jobs_backoff_max_secs: u64,
    /// Followers per go-live fan-out statement (see bench/RESULTS.md for the choice).
    pub notify_batch_size: u32,
    /// Followers per fan-out part (parts run as separate jobs, on any worker).
    pub notify_part_size: u32,
    /// Fan-out parts one process runs at once.
    pub notify_parallel_parts: usize,
    /// A creator going live again within this does not notify their followers again.
    pub notify_cooldown_secs: u64,
    /// Notification rows per second written at most (smooths storms): by the whole
    /// cluster with Redis, by this process without.
    pub notify_rows_per_second: u32,
    /// Deadline of every webhook and push call.
    pub outbound_timeout_ms: u64,
    /// Let webhooks and push endpoints be private addresses (tests, intranets only).
    pub outbound_allow_private: bool,
    /// Failed deliveries in a row after which a webhook is disabled.
    pub webhook_disable_after: i32,
    /// Webhooks one user may register.
    pub webhooks_per_user: u32,
    /// Live notification feeds (SSE connections) this node holds.
    pub notify_max_feeds: usize,
    /// VAPID contact (`mailto:` or `https:`), sent to push services.
    pub vapid_contact: String,
    /// base64url P-256 private key for Web Push; default derived from the secret key.
    pub vapid_private_key: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_replica_urls: Vec::new(),
            redis_url: None,
            object_store_url: None,
            db_max_connections: 25,
            db_min_connections: 5,
            db_max_lifetime_secs: 300,
            db_acquire_timeout_ms: 3_000,
            db_statement_timeout_ms: 3_000,
            redis_pool_size: 20,
            http_request_timeout_secs: 10,
            max_body_bytes: 64 * 1024,
            secret_key: None,
            access_token_ttl_secs: 3_600,
            refresh_token_ttl_secs: 7 * 24 * 3_600,
            public_rtmp_url: "rtmp://127.0.0.1:1935/live".into(),
            rtmp_enabled: true,
            rtmp_bind: SocketAddr::from(([127, 0, 0, 1], 1935)),
            max_ingests: 4,
            reconnect_grace_secs: 60,
            ffmpeg_path: PathBuf::from("ffmpeg"),
            ffmpeg_threads: 2,
            hls_segment_secs: 1,
            media_hook_secret: None,
            viewer_flush_ms: 2_000,
            chat_max_connections: 10_000,
            chat_send_queue: 256,
            chat_history_len: 100,
            chat_history_secs: 300,
            chat_rate_burst: 5,
            chat_rate_period_ms: 1_000,
            viewer_persist_ms: 5_000,
            migrate_on_start: true,
            jobs_enabled: true,
            jobs_concurrency: 8,
            jobs_poll_ms: 500,
            jobs_lease_secs: 30,
            jobs_max_attempts: 8,
            jobs_backoff_base_ms: 1_000,
            jobs_backoff_max_secs: 600,
            notify_batch_size: 2_000,
            notify_part_size: 250_000,
            notify_parallel_parts: 1,
            notify_cooldown_secs: 600,
            notify_rows_per_second: 200_000,
            outbound_timeout_ms: 5_000,
            outbound_allow_private: false,
            webhook_disable_after: 10,
            webhooks_per_user: 25,
            notify_max_feeds: 10_000,
            vapid_contact: "mailto:admin@localhost".into(),
            vapid_private_key: None,
        }
    }
}

impl std::fmt::Debug for Config {
    // URLs and the secret may carry credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.db().map(|db| Backend::of(&db.url)).ok().flatten(),
            )
            .field("replicas", &self.database_replica_urls.len())
            .field("redis", &self.redis_url.is_some())
            .finish_non_exhaustive()
    }
}

/// Accepts `"a,b"` from an environment variable as well as `["a", "b"]` from TOML.
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    Ok(match List::deserialize(deserializer)? {
        List::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        List::Many(v) => v,
    })
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
        let config: Config = figment
            .merge(Env::raw().only(&[
                "DATABASE_URL",
                "DATABASE_REPLICA_URLS",
                "REDIS_URL",
                "OBJECT_STORE_URL",
            ]))
            .merge(Env::prefixed("ONAIR_").ignore(&["CONFIG", "LOG", "LOG_FORMAT"]))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("{setting}: {why}")));
        if let Some(url) = &self.database_url
            && Backend::of(url).is_none()
        {
            return bad(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        if !self.database_replica_urls.is_empty() && self.backend() != Backend::Postgres {
            return bad(
                "DATABASE_REPLICA_URLS",
                "read replicas need a PostgreSQL DATABASE_URL",
            );
        }
        if self
            .database_replica_urls
            .iter()
            .any(|u| Backend::of(u) != Some(Backend::Postgres))
        {
            return bad(
                "DATABASE_REPLICA_URLS",
                "every replica must be a postgres:// URL",
            );
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return bad("REDIS_URL", "must start with redis:// or rediss://");
        }
        if self.db_max_connections == 0 {
            return bad("ONAIR_DB_MAX_CONNECTIONS", "must be at least 1");
        }
        if self.db_min_connections > self.db_max_connections {
            return bad(
                "ONAIR_DB_MIN_CONNECTIONS",
                "must not exceed ONAIR_DB_MAX_CONNECTIONS",
            );
        }
        if self.redis_pool_size == 0 {
            return bad("ONAIR_REDIS_POOL_SIZE", "must be at least 1");
        }
        if self.http_request_timeout_secs == 0
            || self.db_statement_timeout_ms == 0
            || self.db_acquire_timeout_ms == 0
        {
            return bad(
                "timeouts",
                "ONAIR_HTTP_REQUEST_TIMEOUT_SECS, ONAIR_DB_STATEMENT_TIMEOUT_MS and ONAIR_DB_ACQUIRE_TIMEOUT_MS must be positive",
            );
        }
        if self.max_body_bytes < 1024 {
            return bad("ONAIR_MAX_BODY_BYTES", "must be at least 1024");
        }
        if self.access_token_ttl_secs == 0
            || self.refresh_token_ttl_secs <= self.access_token_ttl_secs
        {
            return bad(
                "ONAIR_REFRESH_TOKEN_TTL_SECS",
                "must be longer than a positive ONAIR_ACCESS_TOKEN_TTL_SECS",
            );
        }
        if self.max_ingests == 0 {
            return bad("ONAIR_MAX_INGESTS", "must be at least 1");
        }
        if self.ffmpeg_threads == 0 {
            return bad("ONAIR_FFMPEG_THREADS", "must be at least 1");
        }
        if !(1..=10).contains(&self.hls_segment_secs) {
            return bad("ONAIR_HLS_SEGMENT_SECS", "must be 1 to 10");
        }
        if self
            .media_hook_secret
            .as_ref()
            .is_some_and(|s| s.len() < 16)
        {
            return bad("ONAIR_MEDIA_HOOK_SECRET", "must be at least 16 bytes");
        }
        if self.jobs_concurrency == 0 || self.jobs_poll_ms == 0 || self.jobs_lease_secs == 0 {
            return bad(
                "ONAIR_JOBS_CONCURRENCY",
                "ONAIR_JOBS_CONCURRENCY, ONAIR_JOBS_POLL_MS and ONAIR_JOBS_LEASE_SECS must be positive",
            );
        }
        if self.jobs_max_attempts < 1 {
            return bad("ONAIR_JOBS_MAX_ATTEMPTS", "must be at least 1");
        }
        if !(1..=100_000).contains(&self.notify_batch_size) {
            return bad("ONAIR_NOTIFY_BATCH_SIZE", "must be 1 to 100000");
        }
        if self.notify_parallel_parts == 0 {
            return bad("ONAIR_NOTIFY_PARALLEL_PARTS", "must be at least 1");
        }
        if self.notify_part_size < self.notify_batch_size {
            return bad(
                "ONAIR_NOTIFY_PART_SIZE",
                "must be at least ONAIR_NOTIFY_BATCH_SIZE",
            );
        }
        if self.notify_rows_per_second < self.notify_batch_size {
            return bad(
                "ONAIR_NOTIFY_ROWS_PER_SECOND",
                "must be at least ONAIR_NOTIFY_BATCH_SIZE",
            );
        }
        if self.outbound_timeout_ms == 0 {
            return bad("ONAIR_OUTBOUND_TIMEOUT_MS", "must be positive");
        }
        if self.webhook_disable_after < 1 {
            return bad("ONAIR_WEBHOOK_DISABLE_AFTER", "must be at least 1");
        }
        if !(self.vapid_contact.starts_with("mailto:") || self.vapid_contact.starts_with("https:"))
        {
            return bad("ONAIR_VAPID_CONTACT", "must be a mailto: or https: URL");
        }
        if self.secret_key.as_ref().is_some_and(|s| s.len() < 32) {
            return bad("ONAIR_SECRET_KEY", "must be at least 32 bytes");
        }
        if self.secret_key.is_none() && self.backend() == Backend::Postgres {
            return bad(
                "ONAIR_SECRET_KEY",
                "is required with PostgreSQL: every node must share it",
            );
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.database_url
            .as_deref()
            .and_then(Backend::of)
            .unwrap_or(Backend::Sqlite)
    }

    pub fn db(&self) -> Result<DbConfig, ConfigError> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("onair.db");
                let path = path
                    .to_str()
                    .ok_or_else(|| ConfigError("ONAIR_DATA_DIR: must be valid UTF-8".into()))?;
                format!("sqlite://{path}")
            }
        };
        Ok(DbConfig {
            url,
            replica_urls: self.database_replica_urls.clone(),
            max_connections: self.db_max_connections,
            min_connections: self.db_min_connections,
            max_lifetime: Duration::from_secs(self.db_max_lifetime_secs),
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
        })
    }

    pub fn chat(&self) -> crate::chat::ChatLimits {
        crate::chat::ChatLimits {
            max_connections: self.chat_max_connections,
            rooms: crate::chat::RoomLimits {
                send_queue: self.chat_send_queue,
                history_len: self.chat_history_len,
                history_age: Duration::from_secs(self.chat_history_secs),
            },
            burst: std::num::NonZeroU32::new(self.chat_rate_burst)
                .unwrap_or(std::num::NonZeroU32::MIN),
            refill: Duration::from_millis(self.chat_rate_period_ms),
        }
    }

    pub fn jobs(&self) -> crate::jobs::JobsConfig {
        crate::jobs::JobsConfig {
            concurrency: self.jobs_concurrency,
            claim_batch: u32::try_from(self.jobs_concurrency)
                .unwrap_or(u32::MAX)
                .clamp(8, 256),
            poll: Duration::from_millis(self.jobs_poll_ms),
            lease: Duration::from_secs(self.jobs_lease_secs),
            max_attempts: self.jobs_max_attempts,
            backoff_base: Duration::from_millis(self.jobs_backoff_base_ms),
            backoff_max: Duration::from_secs(self.jobs_backoff_max_secs),
        }
    }

    pub fn notify(&self) -> crate::notifications::NotifyConfig {
        crate::notifications::NotifyConfig {
            batch_size: self.notify_batch_size,
            part_size: self.notify_part_size,
            parallel_parts: self.notify_parallel_parts,
            cooldown: Duration::from_secs(self.notify_cooldown_secs),
            rows_per_second: std::num::NonZeroU32::new(self.notify_rows_per_second)
                .unwrap_or(std::num::NonZeroU32::MIN),
            outbound_timeout: Duration::from_millis(self.outbound_timeout_ms),
            allow_private_targets: self.outbound_allow_private,
            webhook_disable_after: self.webhook_disable_after,
            webhooks_per_user: self.webhooks_per_user,
            max_feeds: self.notify_max_feeds,
            push_retry_after: Duration::from_millis(self.jobs_backoff_base_ms),
            vapid_contact: self.vapid_contact.clone(),
            vapid_private_key: self.vapid_private_key.clone(),
        }
    }

    pub fn media_root(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    pub fn ingest(&self, store: onair_infra::MediaStore) -> onair_media::IngestConfig {
        onair_media::IngestConfig {
            store,
            bind: self.rtmp_bind,
            app: "live".into(),
            max_ingests: self.max_ingests,
            media_root: self.media_root(),
            transcode: onair_media::TranscodeSettings {
                ffmpeg: self.ffmpeg_path.clone(),
                threads: self.ffmpeg_threads,
                segment_seconds: self.hls_segment_secs,
                ..onair_media::TranscodeSettings::default()
            },
        }
    }

    /// The configured secret, or in embedded mode the one kept in `data_dir` (created on
    /// first start, readable only by its owner).
    pub fn resolve_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(secret) = &self.secret_key {
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
        std::fs::create_dir_all(&self.data_dir).map_err(io)?;
        let secret = crate::auth::random_token();
        write_private(&path, &secret).map_err(io)?;
        tracing::info!(path = %path.display(), "generated a new secret key");
        Ok(secret.into_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        let mut config = Config::default();
        change(&mut config);
        config.validate()
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        assert!(with(|_| {}).is_ok());
        assert_eq!(Config::default().backend(), Backend::Sqlite);
    }

    #[test]
    fn bad_settings_are_named() {
        type Change = Box<dyn FnOnce(&mut Config)>;
        let cases: [(&str, Change); 6] = [
            (
                "DATABASE_URL",
                Box::new(|c| c.database_url = Some("mysql://x".into())),
            ),
            (
                "ONAIR_SECRET_KEY",
                Box::new(|c| c.database_url = Some("postgres://x/y".into())),
            ),
            (
                "ONAIR_SECRET_KEY",
                Box::new(|c| c.secret_key = Some("short".into())),
            ),
            (
                "DATABASE_REPLICA_URLS",
                Box::new(|c| c.database_replica_urls = vec!["postgres://r/db".into()]),
            ),
            (
                "ONAIR_DB_MIN_CONNECTIONS",
                Box::new(|c| c.db_min_connections = 30),
            ),
            (
                "REDIS_URL",
                Box::new(|c| c.redis_url = Some("http://x".into())),
            ),
        ];
        for (setting, change) in cases {
            let err = with(change).unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }
}
