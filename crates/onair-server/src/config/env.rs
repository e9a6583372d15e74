//! Where each setting comes from in the environment. Every variable keeps the name it
//! had before settings were grouped in sections; this table is the one mapping between
//! the two (the README prints it).

/// `ONAIR_<NAME>` ↔ `section.key` in `onair.toml`.
pub(super) const ONAIR_VARS: &[(&str, &str)] = &[
    ("DATA_DIR", "data_dir"),
    ("ROLE", "roles"),
    ("BIND", "http.bind"),
    ("HTTP_REQUEST_TIMEOUT_SECS", "http.request_timeout_secs"),
    ("MAX_BODY_BYTES", "http.max_body_bytes"),
    ("SHUTDOWN_GRACE_SECS", "http.shutdown_grace_secs"),
    ("METRICS_BIND", "http.metrics_bind"),
    ("TRUSTED_PROXIES", "http.trusted_proxies"),
    ("DATABASE_URL", "database.url"),
    ("DATABASE_REPLICA_URLS", "database.replica_urls"),
    ("DB_MAX_CONNECTIONS", "database.max_connections"),
    ("DB_MIN_CONNECTIONS", "database.min_connections"),
    ("DB_MAX_LIFETIME_SECS", "database.max_lifetime_secs"),
    ("DB_ACQUIRE_TIMEOUT_MS", "database.acquire_timeout_ms"),
    ("DB_STATEMENT_TIMEOUT_MS", "database.statement_timeout_ms"),
    ("DB_SLOW_QUERY_MS", "database.slow_query_ms"),
    ("MIGRATE_ON_START", "database.migrate_on_start"),
    ("DB_REPLICA_MAX_LAG_MS", "database.replica_max_lag_ms"),
    (
        "DB_REPLICA_CHECK_INTERVAL_MS",
        "database.replica_check_interval_ms",
    ),
    ("REDIS_URL", "redis.url"),
    ("REDIS_POOL_SIZE", "redis.pool_size"),
    ("REDIS_RESPONSE_TIMEOUT_MS", "redis.response_timeout_ms"),
    ("REDIS_CONNECT_TIMEOUT_MS", "redis.connect_timeout_ms"),
    ("SECRET_KEY", "auth.secret_key"),
    ("ACCESS_TOKEN_TTL_SECS", "auth.access_token_ttl_secs"),
    ("REFRESH_TOKEN_TTL_SECS", "auth.refresh_token_ttl_secs"),
    ("MAX_CONCURRENT_HASHES", "auth.max_concurrent_hashes"),
    ("SESSION_MAX_AGE_SECS", "auth.session_max_age_secs"),
    ("OBJECT_STORE_URL", "media.object_store_url"),
    ("S3_ENDPOINT", "media.s3_endpoint"),
    ("S3_REGION", "media.s3_region"),
    ("S3_ACCESS_KEY_ID", "media.s3_access_key_id"),
    ("S3_SECRET_ACCESS_KEY", "media.s3_secret_access_key"),
    ("S3_ALLOW_HTTP", "media.s3_allow_http"),
    ("S3_TIMEOUT_MS", "media.s3_timeout_ms"),
    ("S3_CONNECT_TIMEOUT_MS", "media.s3_connect_timeout_ms"),
    ("S3_MAX_RETRIES", "media.s3_max_retries"),
    ("S3_RETRY_TIMEOUT_MS", "media.s3_retry_timeout_ms"),
    ("PUBLIC_RTMP_URL", "media.public_rtmp_url"),
    ("RTMP_ENABLED", "media.rtmp_enabled"),
    ("RTMP_BIND", "media.rtmp_bind"),
    ("PUBLIC_SRT_URL", "media.public_srt_url"),
    ("SRT_ENABLED", "media.srt_enabled"),
    ("SRT_BIND", "media.srt_bind"),
    ("SRT_PASSPHRASE", "media.srt_passphrase"),
    ("SRT_LATENCY_MS", "media.srt_latency_ms"),
    ("MAX_INGESTS", "media.max_ingests"),
    ("RECONNECT_GRACE_SECS", "media.reconnect_grace_secs"),
    ("INGEST_LEASE_SECS", "media.ingest_lease_secs"),
    ("FFMPEG_PATH", "media.ffmpeg_path"),
    ("FFMPEG_THREADS", "media.ffmpeg_threads"),
    ("HLS_SEGMENT_SECS", "media.hls_segment_secs"),
    ("HLS_PART_MS", "media.hls_part_ms"),
    ("LIVE_LADDER", "media.ladder"),
    ("MEDIA_HOOK_SECRET", "media.hook_secret"),
    ("STORAGE_QUOTA_BYTES", "media.storage_quota_bytes"),
    ("VIEWER_FLUSH_MS", "viewers.flush_ms"),
    ("VIEWER_PERSIST_MS", "viewers.persist_ms"),
    ("VIEWER_TOKEN_TTL_SECS", "viewers.token_ttl_secs"),
    ("CHAT_MAX_CONNECTIONS", "chat.max_connections"),
    ("CHAT_MAX_CONNECTIONS_PER_IP", "chat.max_connections_per_ip"),
    ("CHAT_SEND_QUEUE", "chat.send_queue"),
    ("CHAT_HISTORY_LEN", "chat.history_len"),
    ("CHAT_HISTORY_SECS", "chat.history_secs"),
    ("CHAT_RATE_BURST", "chat.rate_burst"),
    ("CHAT_RATE_PERIOD_MS", "chat.rate_period_ms"),
    ("JOBS_ENABLED", "jobs.enabled"),
    ("JOBS_CONCURRENCY", "jobs.concurrency"),
    ("JOBS_POLL_MS", "jobs.poll_ms"),
    ("JOBS_LEASE_SECS", "jobs.lease_secs"),
    ("JOBS_MAX_ATTEMPTS", "jobs.max_attempts"),
    ("JOBS_BACKOFF_BASE_MS", "jobs.backoff_base_ms"),
    ("JOBS_BACKOFF_MAX_SECS", "jobs.backoff_max_secs"),
    ("NOTIFY_BATCH_SIZE", "notify.batch_size"),
    ("NOTIFY_PART_SIZE", "notify.part_size"),
    ("NOTIFY_PARALLEL_PARTS", "notify.parallel_parts"),
    ("NOTIFY_COOLDOWN_SECS", "notify.cooldown_secs"),
    ("NOTIFY_ROWS_PER_SECOND", "notify.rows_per_second"),
    ("NOTIFY_MAX_FEEDS", "notify.max_feeds"),
    ("NOTIFY_MAX_FEEDS_PER_IP", "notify.max_feeds_per_ip"),
    ("OUTBOUND_TIMEOUT_MS", "notify.outbound_timeout_ms"),
    ("OUTBOUND_ALLOW_PRIVATE", "notify.outbound_allow_private"),
    ("OUTBOUND_PORTS", "notify.outbound_ports"),
    ("OUTBOUND_BREAKER_HOSTS", "notify.outbound_breaker_hosts"),
    ("BREAKER_FAILURE_THRESHOLD", "breaker.failure_threshold"),
    ("BREAKER_COOL_DOWN_MS", "breaker.cool_down_ms"),
    ("WEBHOOK_DISABLE_AFTER", "notify.webhook_disable_after"),
    ("WEBHOOKS_PER_USER", "notify.webhooks_per_user"),
    (
        "PUSH_SUBSCRIPTIONS_PER_USER",
        "notify.push_subscriptions_per_user",
    ),
    ("VAPID_CONTACT", "notify.vapid_contact"),
    ("VAPID_PRIVATE_KEY", "notify.vapid_private_key"),
    ("PROCESSING_CONCURRENCY", "processing.concurrency"),
    ("VOD_THREADS", "processing.threads"),
    ("VOD_PRESET", "processing.preset"),
    ("VOD_SEGMENT_SECS", "processing.segment_secs"),
    ("VOD_LADDER", "processing.ladder"),
    ("VOD_NICE", "processing.nice"),
    ("ARCHIVE_RETENTION_DAYS", "processing.retention_days"),
    ("RATE_LIMIT_ENABLED", "rate_limit.enabled"),
    ("RATE_LIMIT_FAIL_OPEN", "rate_limit.fail_open"),
    ("RATE_LIMIT_KEY_PREFIX", "rate_limit.key_prefix"),
    ("RATE_LIMIT_USER_PER_MINUTE", "rate_limit.user_per_minute"),
    (
        "RATE_LIMIT_ANONYMOUS_PER_MINUTE",
        "rate_limit.anonymous_per_minute",
    ),
    (
        "RATE_LIMIT_AUTH_IP_PER_MINUTE",
        "rate_limit.auth_ip_per_minute",
    ),
    (
        "RATE_LIMIT_AUTH_ACCOUNT_PER_MINUTE",
        "rate_limit.auth_account_per_minute",
    ),
    (
        "RATE_LIMIT_HEARTBEAT_PER_MINUTE",
        "rate_limit.heartbeat_per_minute",
    ),
    (
        "RATE_LIMIT_REGISTRATION_PER_MINUTE",
        "rate_limit.registration_per_minute",
    ),
    ("CACHE_ENABLED", "cache.enabled"),
    ("CACHE_PROFILE_TTL_SECS", "cache.profile_ttl_secs"),
    ("CACHE_LIVE_LIST_TTL_SECS", "cache.live_list_ttl_secs"),
    ("CACHE_LOCAL_TTL_SECS", "cache.local_ttl_secs"),
    ("CACHE_LOCAL_CAPACITY", "cache.local_capacity"),
    ("CACHE_KEY_PREFIX", "cache.key_prefix"),
    ("STRIPE_SECRET_KEY", "payments.stripe_secret_key"),
    ("STRIPE_WEBHOOK_SECRET", "payments.stripe_webhook_secret"),
    ("STRIPE_PUBLISHABLE_KEY", "payments.stripe_publishable_key"),
    ("STRIPE_API_BASE", "payments.stripe_api_base"),
    ("STRIPE_TIMEOUT_MS", "payments.stripe_timeout_ms"),
    (
        "STRIPE_WEBHOOK_TOLERANCE_SECS",
        "payments.webhook_tolerance_secs",
    ),
    ("TIP_CURRENCIES", "payments.currencies"),
];

/// Conventional names that are read without the `ONAIR_` prefix too.
pub(super) const PLAIN_VARS: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("DATABASE_REPLICA_URLS", "database.replica_urls"),
    ("REDIS_URL", "redis.url"),
    ("OBJECT_STORE_URL", "media.object_store_url"),
    ("STRIPE_SECRET_KEY", "payments.stripe_secret_key"),
    ("STRIPE_WEBHOOK_SECRET", "payments.stripe_webhook_secret"),
    ("STRIPE_PUBLISHABLE_KEY", "payments.stripe_publishable_key"),
];

/// `ONAIR_*` variables that are not settings: the CLI's, and those of tests and
/// benchmarks run from the same shell.
pub(super) const IGNORED_PREFIXES: &[&str] =
    &["CONFIG", "LOG", "ADMIN_PASSWORD", "TEST_", "BENCH_"];

/// How an error names a setting: its variable and its place in the file.
pub(super) fn describe(key: &str) -> String {
    match ONAIR_VARS.iter().find(|(_, path)| *path == key) {
        Some((var, _)) if PLAIN_VARS.iter().any(|(plain, _)| plain == var) => {
            format!("{var} ({key})")
        }
        Some((var, _)) => format!("ONAIR_{var} ({key})"),
        None => key.to_owned(),
    }
}

/// The section key of an `ONAIR_` variable (without the prefix), or the name itself,
/// lowercased, so that an unknown variable is reported as an unknown setting.
pub(super) fn key_of(var: &str) -> String {
    ONAIR_VARS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(var))
        .map_or_else(|| var.to_ascii_lowercase(), |(_, key)| (*key).to_owned())
}

// figment's `Jail` takes closures returning `figment::Result`, whose error is large.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use crate::config::Config;
    use crate::roles::Role;

    #[test]
    fn variables_keep_their_names_and_fill_sections() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "onair.toml",
                "[notify]\nbatch_size = 10\n[chat]\nhistory_len = 7\n",
            )?;
            jail.set_env("ONAIR_CHAT_MAX_CONNECTIONS", "42");
            jail.set_env("ONAIR_DB_MAX_CONNECTIONS", "9");
            jail.set_env("ONAIR_NOTIFY_BATCH_SIZE", "20");
            jail.set_env("ONAIR_MEDIA_HOOK_SECRET", "0123456789abcdef");
            jail.set_env("REDIS_URL", "redis://127.0.0.1:6379");
            jail.set_env("ONAIR_METRICS_BIND", "127.0.0.1:9090");
            jail.set_env("ONAIR_TEST_POSTGRES_URL", "ignored: a test setting");
            jail.set_env(
                "ONAIR_ADMIN_PASSWORD",
                "ignored: read by `onair admin create`",
            );
            jail.set_env("ONAIR_RATE_LIMIT_ENABLED", "false");
            jail.set_env("ONAIR_RATE_LIMIT_AUTH_ACCOUNT_PER_MINUTE", "3");
            jail.set_env("ONAIR_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1");
            jail.set_env("ONAIR_OUTBOUND_PORTS", "443, 8443");
            jail.set_env("ONAIR_BREAKER_COOL_DOWN_MS", "1500");
            jail.set_env("ONAIR_ROLE", "api, chat");
            let config = Config::load(None).expect("loads");
            assert_eq!(config.roles, [Role::Api, Role::Chat]);
            assert_eq!(config.chat.max_connections, 42);
            assert_eq!(config.chat.history_len, 7, "from the file");
            assert_eq!(config.notify.batch_size, 20, "the environment wins");
            assert_eq!(config.database.max_connections, 9);
            assert_eq!(
                config.media.hook_secret.as_deref(),
                Some("0123456789abcdef")
            );
            assert_eq!(config.redis.url.as_deref(), Some("redis://127.0.0.1:6379"));
            assert_eq!(
                config.http.metrics_bind,
                Some(([127, 0, 0, 1], 9090).into())
            );
            assert!(!config.rate_limit.enabled);
            assert_eq!(config.rate_limit.auth_account_per_minute.get(), 3);
            assert_eq!(config.http.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
            assert_eq!(config.notify.outbound_ports, [443, 8443]);
            assert_eq!(
                config.breaker.settings().cool_down,
                std::time::Duration::from_millis(1500)
            );
            jail.set_env("ONAIR_OUTBOUND_PORTS", "8443");
            let config = Config::load(None).expect("loads one port");
            assert_eq!(config.notify.outbound_ports, [8443]);
            Ok(())
        });
    }

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        Jail::expect_with(|jail| {
            jail.set_env("ONAIR_CHAT_MAX_CONECTIONS", "42");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("chat_max_conections"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ONAIR_ROLE", "api,web");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("unknown role \"web\""), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ONAIR_JOBS_CONCURRENCY", "0");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("ONAIR_JOBS_CONCURRENCY (jobs.concurrency)"),
                "{err}"
            );
            Ok(())
        });
    }
}
