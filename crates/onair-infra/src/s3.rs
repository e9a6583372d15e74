//! S3 settings for the media store: where it is and how to reach it (overriding the
//! standard `AWS_*` variables), and how long it may take ([`S3Limits`]).

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, RetryConfig};

use crate::breaker::BreakerSettings;

/// S3 settings given explicitly; each one that is set overrides its standard `AWS_*`
/// variable (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), which stay the production default.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// An S3-compatible service (MinIO, R2, moto): `http(s)://host:port`, path-style.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain HTTP to the endpoint (a local test server); HTTPS only otherwise.
    pub allow_http: Option<bool>,
    pub limits: S3Limits,
}

/// How long S3 may take, and when to stop asking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Limits {
    /// Deadline of each HTTP request (a part of a multipart upload is one).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a failed request (object_store backs off between them), all within
    /// `retry_timeout` of the first try.
    pub max_retries: usize,
    pub retry_timeout: Duration,
    /// The store's circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for S3Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            breaker: BreakerSettings::default(),
        }
    }
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_http", &self.allow_http)
            .field("limits", &self.limits)
            .finish()
    }
}

impl S3Options {
    pub(crate) fn builder(&self, url: &str) -> AmazonS3Builder {
        let limits = &self.limits;
        let millis = |d: Duration| format!("{}ms", d.as_millis());
        // Set key by key: `with_client_options` would drop the client settings read from
        // the `AWS_*` variables.
        let mut builder = AmazonS3Builder::from_env()
            .with_url(url)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                millis(limits.timeout),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                millis(limits.connect_timeout),
            )
            .with_retry(RetryConfig {
                max_retries: limits.max_retries,
                retry_timeout: limits.retry_timeout,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(allow) = self.allow_http {
            builder = builder.with_allow_http(allow);
        }
        builder
    }
}
