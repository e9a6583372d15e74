//! Every rule a setting must follow, checked once at startup (and by `Config::load`).

use onair_store::Backend;

use super::{Config, ConfigError};

type Checked = Result<(), ConfigError>;

/// libx264's presets, fastest first.
const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

fn bad(key: &str, why: &str) -> Checked {
    Err(ConfigError::setting(key, why))
}

/// `bad(key, why)` unless `ok`.
fn check(ok: bool, key: &str, why: &str) -> Checked {
    if ok { Ok(()) } else { bad(key, why) }
}

impl Config {
    pub fn validate(&self) -> Checked {
        check(!self.roles.is_empty(), "roles", "name at least one role")?;
        self.validate_storage()?;
        self.validate_http_and_auth()?;
        self.validate_media()?;
        self.validate_jobs()?;
        self.validate_outbound()?;
        self.validate_processing()?;
        self.validate_cache()?;
        self.validate_payments()
    }

    /// Stripe's keys come as a pair: a secret key without the webhook secret could take
    /// payments it never learns the outcome of.
    fn validate_payments(&self) -> Checked {
        let payments = &self.payments;
        check(
            payments.stripe_secret_key.is_some() == payments.stripe_webhook_secret.is_some(),
            "payments.stripe_webhook_secret",
            "STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are set together (or neither: tipping off)",
        )?;
        check(
            url::Url::parse(&payments.stripe_api_base)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http")),
            "payments.stripe_api_base",
            "must be an http(s) URL",
        )?;
        check(
            (1_000..=30_000).contains(&payments.stripe_timeout_ms),
            "payments.stripe_timeout_ms",
            "must be 1000 to 30000",
        )?;
        check(
            payments.webhook_tolerance_secs > 0,
            "payments.webhook_tolerance_secs",
            "must be positive",
        )
    }

    fn validate_cache(&self) -> Checked {
        let cache = &self.cache;
        for (ttl, key) in [
            (cache.profile_ttl_secs, "cache.profile_ttl_secs"),
            (cache.live_list_ttl_secs, "cache.live_list_ttl_secs"),
            (cache.local_ttl_secs, "cache.local_ttl_secs"),
        ] {
            check(ttl > 0, key, "must be positive")?;
        }
        check(
            cache.local_capacity > 0,
            "cache.local_capacity",
            "must be at least 1",
        )
    }

    /// Deadlines and circuit breakers of outbound calls.
    fn validate_outbound(&self) -> Checked {
        let media = &self.media;
        for (value, key) in [
            (media.s3_timeout_ms, "media.s3_timeout_ms"),
            (media.s3_connect_timeout_ms, "media.s3_connect_timeout_ms"),
            (self.breaker.cool_down_ms, "breaker.cool_down_ms"),
        ] {
            check(value > 0, key, "must be positive")?;
        }
        check(
            self.breaker.failure_threshold > 0,
            "breaker.failure_threshold",
            "must be at least 1",
        )?;
        check(
            self.notify.outbound_breaker_hosts > 0,
            "notify.outbound_breaker_hosts",
            "must be at least 1",
        )
    }

    fn validate_processing(&self) -> Checked {
        let processing = &self.processing;
        check(
            processing.concurrency > 0,
            "processing.concurrency",
            "must be at least 1",
        )?;
        check(
            (1..=64).contains(&processing.threads),
            "processing.threads",
            "must be 1 to 64",
        )?;
        check(
            X264_PRESETS.contains(&processing.preset.as_str()),
            "processing.preset",
            "must be a libx264 preset (ultrafast … veryslow)",
        )?;
        check(
            (1..=30).contains(&processing.segment_secs),
            "processing.segment_secs",
            "must be 1 to 30",
        )?;
        check(
            is_ladder(&processing.ladder),
            "processing.ladder",
            LADDER_RULE,
        )?;
        check(
            (-20..=19).contains(&processing.nice),
            "processing.nice",
            "must be -20 to 19",
        )?;
        check(
            processing.retention_days != Some(0),
            "processing.retention_days",
            "must be at least 1 (unset keeps archives forever)",
        )
    }

    fn validate_storage(&self) -> Checked {
        let db = &self.database;
        if let Some(url) = &db.url {
            check(
                Backend::of(url).is_some(),
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            )?;
        }
        check(
            db.replica_urls.is_empty() || self.backend() == Backend::Postgres,
            "database.replica_urls",
            "read replicas need a PostgreSQL DATABASE_URL",
        )?;
        check(
            db.replica_urls
                .iter()
                .all(|u| Backend::of(u) == Some(Backend::Postgres)),
            "database.replica_urls",
            "every replica must be a postgres:// URL",
        )?;
        check(
            db.max_connections > 0,
            "database.max_connections",
            "must be at least 1",
        )?;
        check(
            db.min_connections <= db.max_connections,
            "database.min_connections",
            "must not exceed ONAIR_DB_MAX_CONNECTIONS",
        )?;
        check(
            db.acquire_timeout_ms > 0,
            "database.acquire_timeout_ms",
            "must be positive",
        )?;
        check(
            db.statement_timeout_ms > 0,
            "database.statement_timeout_ms",
            "must be positive",
        )?;
        check(
            db.slow_query_ms > 0,
            "database.slow_query_ms",
            "must be positive",
        )?;
        check(
            db.replica_max_lag_ms > 0,
            "database.replica_max_lag_ms",
            "must be positive",
        )?;
        check(
            db.replica_check_interval_ms > 0,
            "database.replica_check_interval_ms",
            "must be positive",
        )?;
        if let Some(url) = &self.redis.url {
            check(
                url.starts_with("redis://") || url.starts_with("rediss://"),
                "redis.url",
                "must start with redis:// or rediss://",
            )?;
        }
        check(
            self.redis.response_timeout_ms > 0,
            "redis.response_timeout_ms",
            "must be positive",
        )?;
        check(
            self.redis.connect_timeout_ms > 0,
            "redis.connect_timeout_ms",
            "must be positive",
        )?;
        check(
            self.redis.pool_size > 0,
            "redis.pool_size",
            "must be at least 1",
        )
    }

    fn validate_http_and_auth(&self) -> Checked {
        check(
            self.http.request_timeout_secs > 0,
            "http.request_timeout_secs",
            "must be positive",
        )?;
        check(
            self.http.max_body_bytes >= 1024,
            "http.max_body_bytes",
            "must be at least 1024",
        )?;
        self.trusted_proxies()?;
        let auth = &self.auth;
        check(
            auth.access_token_ttl_secs > 0
                && auth.refresh_token_ttl_secs > auth.access_token_ttl_secs,
            "auth.refresh_token_ttl_secs",
            "must be longer than a positive ONAIR_ACCESS_TOKEN_TTL_SECS",
        )?;
        check(
            auth.session_max_age_secs > 0,
            "auth.session_max_age_secs",
            "must be positive",
        )?;
        check(
            auth.secret_key.as_ref().is_none_or(|s| s.len() >= 32),
            "auth.secret_key",
            "must be at least 32 bytes",
        )?;
        check(
            auth.secret_key.is_some() || self.backend() != Backend::Postgres,
            "auth.secret_key",
            "is required with PostgreSQL: every node must share it",
        )
    }

    fn validate_media(&self) -> Checked {
        let media = &self.media;
        check(
            media.max_ingests > 0,
            "media.max_ingests",
            "must be at least 1",
        )?;
        check(
            media.ffmpeg_threads > 0,
            "media.ffmpeg_threads",
            "must be at least 1",
        )?;
        // Renewed every 3 s (the ingest's re-check): room for a missed renewal or two.
        check(
            media.ingest_lease_secs >= 6,
            "media.ingest_lease_secs",
            "must be at least 6 (renewals come every 3 s)",
        )?;
        check(
            (1..=10).contains(&media.hls_segment_secs),
            "media.hls_segment_secs",
            "must be 1 to 10",
        )?;
        check(
            (100..=1000).contains(&media.hls_part_ms)
                && media.hls_part_ms * 2 <= media.hls_segment_secs * 1000,
            "media.hls_part_ms",
            "must be 100 to 1000, and at most half a segment",
        )?;
        check(is_ladder(&media.ladder), "media.ladder", LADDER_RULE)?;
        // SRT's own bounds (SRTO_PASSPHRASE).
        check(
            media
                .srt_passphrase
                .as_ref()
                .is_none_or(|p| (10..=79).contains(&p.len())),
            "media.srt_passphrase",
            "must be 10 to 79 bytes",
        )?;
        check(
            (20..=8000).contains(&media.srt_latency_ms),
            "media.srt_latency_ms",
            "must be 20 to 8000",
        )?;
        check(
            media.hook_secret.as_ref().is_none_or(|s| s.len() >= 16),
            "media.hook_secret",
            "must be at least 16 bytes",
        )?;
        check(
            self.viewers.flush_ms > 0,
            "viewers.flush_ms",
            "must be positive",
        )?;
        check(
            self.viewers.persist_ms > 0,
            "viewers.persist_ms",
            "must be positive",
        )?;
        check(
            (1..=86_400).contains(&self.viewers.token_ttl_secs),
            "viewers.token_ttl_secs",
            "must be 1 to 86400",
        )?;
        let chat = &self.chat;
        check(
            chat.max_connections > 0,
            "chat.max_connections",
            "must be at least 1",
        )?;
        check(
            chat.max_connections_per_ip > 0,
            "chat.max_connections_per_ip",
            "must be at least 1",
        )?;
        check(chat.send_queue > 0, "chat.send_queue", "must be at least 1")?;
        check(chat.rate_burst > 0, "chat.rate_burst", "must be at least 1")?;
        check(
            chat.rate_period_ms > 0,
            "chat.rate_period_ms",
            "must be positive",
        )
    }

    fn validate_jobs(&self) -> Checked {
        let jobs = &self.jobs;
        check(
            jobs.concurrency > 0,
            "jobs.concurrency",
            "must be at least 1",
        )?;
        check(jobs.poll_ms > 0, "jobs.poll_ms", "must be positive")?;
        check(jobs.lease_secs > 0, "jobs.lease_secs", "must be positive")?;
        check(
            jobs.max_attempts >= 1,
            "jobs.max_attempts",
            "must be at least 1",
        )?;
        let notify = &self.notify;
        check(
            (1..=100_000).contains(&notify.batch_size),
            "notify.batch_size",
            "must be 1 to 100000",
        )?;
        check(
            notify.parallel_parts > 0,
            "notify.parallel_parts",
            "must be at least 1",
        )?;
        check(
            notify.part_size >= notify.batch_size,
            "notify.part_size",
            "must be at least ONAIR_NOTIFY_BATCH_SIZE",
        )?;
        check(
            notify.rows_per_second >= notify.batch_size,
            "notify.rows_per_second",
            "must be at least ONAIR_NOTIFY_BATCH_SIZE",
        )?;
        check(
            notify.outbound_timeout_ms > 0,
            "notify.outbound_timeout_ms",
            "must be positive",
        )?;
        check(
            notify.webhook_disable_after >= 1,
            "notify.webhook_disable_after",
            "must be at least 1",
        )?;
        check(
            notify.vapid_contact.starts_with("mailto:")
                || notify.vapid_contact.starts_with("https:"),
            "notify.vapid_contact",
            "must be a mailto: or https: URL",
        )
    }
}

const LADDER_RULE: &str = "must list heights from 16 to 4320";

/// A rendition ladder: at least one height, each a plausible picture height.
fn is_ladder(heights: &[u32]) -> bool {
    !heights.is_empty() && heights.iter().all(|h| (16..=4320).contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut Config)) -> Checked {
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
    fn bad_settings_are_named_by_variable_and_key() {
        type Change = Box<dyn FnOnce(&mut Config)>;
        let cases: [(&str, Change); 10] = [
            (
                "DATABASE_URL (database.url)",
                Box::new(|c| c.database.url = Some("mysql://x".into())),
            ),
            (
                "ONAIR_SECRET_KEY (auth.secret_key)",
                Box::new(|c| c.database.url = Some("postgres://x/y".into())),
            ),
            (
                "ONAIR_SECRET_KEY",
                Box::new(|c| c.auth.secret_key = Some("short".into())),
            ),
            (
                "DATABASE_REPLICA_URLS",
                Box::new(|c| c.database.replica_urls = vec!["postgres://r/db".into()]),
            ),
            (
                "ONAIR_DB_MIN_CONNECTIONS (database.min_connections)",
                Box::new(|c| c.database.min_connections = 30),
            ),
            (
                "REDIS_URL",
                Box::new(|c| c.redis.url = Some("http://x".into())),
            ),
            (
                "ONAIR_CHAT_MAX_CONNECTIONS (chat.max_connections)",
                Box::new(|c| c.chat.max_connections = 0),
            ),
            (
                "ONAIR_TRUSTED_PROXIES (http.trusted_proxies)",
                Box::new(|c| c.http.trusted_proxies = vec!["10.0.0.0/33".into()]),
            ),
            (
                "ONAIR_NOTIFY_PART_SIZE (notify.part_size)",
                Box::new(|c| c.notify.part_size = 1),
            ),
            (
                "ONAIR_BREAKER_FAILURE_THRESHOLD (breaker.failure_threshold)",
                Box::new(|c| c.breaker.failure_threshold = 0),
            ),
        ];
        for (setting, change) in cases {
            let err = with(change).unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn every_variable_maps_to_a_setting_that_exists() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (var, key) in super::super::env::ONAIR_VARS {
            let mut value = &defaults;
            for part in key.split('.') {
                value = value
                    .get(part)
                    .unwrap_or_else(|| panic!("ONAIR_{var} names {key}, which does not exist"));
            }
        }
    }
}
