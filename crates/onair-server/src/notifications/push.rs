//! Web Push (RFC 8030 with VAPID, RFC 8292, and aes128gcm payloads, RFC 8291): the
//! browser subscribes with our VAPID public key, and each go-live batch's subscribers
//! get an encrypted push through their push service. A push that fails is retried on
//! its own with the queue's backoff (so is one not sent because the push service's
//! circuit breaker is open); a subscription the push service reports gone (404/410) is
//! deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use onair_store::jobs::{ClaimedJob, NewJob, PushBatchJob, PushRetryJob, kinds};
use onair_store::{PushSubscription, Store, StreamView, Timestamp};
use serde::Serialize;
use uuid::Uuid;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::p256::pkcs8::EncodePrivateKey;
use web_push_native::{Auth, WebPushBuilder, p256};

use super::outbound::{CallFailure, Outbound, describe_failure};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};

/// Pushes sent at once by one batch job.
const PUSH_CONCURRENCY: usize = 16;
/// How long a push service keeps trying to reach an offline browser (a go-live is stale
/// after an hour).
const PUSH_TTL: Duration = Duration::from_secs(3600);
/// A push service's VAPID `Authorization` is signed once and reused this long (its token
/// stays valid for `PUSH_TTL`, RFC 8292 allows 24 h): a go-live to many subscribers of one
/// push service signs once, not once per subscriber.
const VAPID_REUSE: Duration = Duration::from_secs(15 * 60);
/// Push services remembered (few in practice: FCM, Mozilla, Apple, Windows).
const VAPID_ORIGINS: u64 = 1_000;

pub struct WebPush {
    outbound: Outbound,
    /// Signs the VAPID tokens (ES256).
    key: EncodingKey,
    public_key: String,
    contact: String,
    /// Signed `Authorization` values by push service origin.
    authorizations: moka::sync::Cache<String, String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The push service no longer knows the subscription.
    Gone,
    Failed(String),
    /// Not sent: the push service's circuit breaker is open. Retried like a failure.
    Refused(String),
}

#[derive(Debug, thiserror::Error)]
#[error("ONAIR_VAPID_PRIVATE_KEY: {0}")]
pub struct VapidKeyError(String);

impl WebPush {
    /// `private_key`: a base64url P-256 private key; by default one derived from the root
    /// secret, so every node signs with the same key.
    pub fn new(
        root_secret: &[u8],
        private_key: Option<&str>,
        contact: String,
        outbound: Outbound,
    ) -> Result<Self, VapidKeyError> {
        let secret = match private_key {
            Some(encoded) => URL_SAFE_NO_PAD
                .decode(encoded.trim())
                .map_err(|e| VapidKeyError(e.to_string()))
                .and_then(|bytes| {
                    p256::SecretKey::from_slice(&bytes).map_err(|e| VapidKeyError(e.to_string()))
                })?,
            // A valid scalar for all but a 2^-32 share of derivations: try the next one.
            None => (0..)
                .find_map(|n| {
                    let seed = crate::secrets::derive_key(root_secret, &format!("vapid-{n}"));
                    p256::SecretKey::from_slice(&seed).ok()
                })
                .expect("some derivation is a valid key"),
        };
        let public_key =
            URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let pkcs8 = secret
            .to_pkcs8_der()
            .map_err(|e| VapidKeyError(e.to_string()))?;
        Ok(Self {
            outbound,
            key: EncodingKey::from_ec_der(pkcs8.as_bytes()),
            public_key,
            contact,
            authorizations: moka::sync::Cache::builder()
                .max_capacity(VAPID_ORIGINS)
                .time_to_live(VAPID_REUSE)
                .build(),
        })
    }

    /// The VAPID public key, base64url, as browsers take it.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub async fn send(&self, subscription: &PushSubscription, payload: &[u8]) -> PushOutcome {
        let request = match self.request(subscription, payload) {
            Ok(request) => request,
            // Keys we accepted at subscribe time cannot fail here; a stored row that
            // does is useless.
            Err(e) => return PushOutcome::Failed(format!("cannot build the push: {e}")),
        };
        let request = reqwest::RequestBuilder::from_parts(self.outbound.client().clone(), request);
        match self.outbound.send(request).await {
            Ok(response) if response.status().is_success() => PushOutcome::Delivered,
            Ok(response)
                if matches!(
                    response.status(),
                    reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE
                ) =>
            {
                PushOutcome::Gone
            }
            Ok(response) => {
                PushOutcome::Failed(format!("push service answered {}", response.status()))
            }
            Err(CallFailure::Open(open)) => PushOutcome::Refused(format!("push not sent: {open}")),
            Err(CallFailure::Unreachable(e)) => {
                PushOutcome::Failed(format!("push service unreachable: {e}"))
            }
        }
    }

    fn request(
        &self,
        subscription: &PushSubscription,
        payload: &[u8],
    ) -> Result<reqwest::Request, String> {
        // Stored before the rules were last tightened, an endpoint may no longer pass them.
        let endpoint = self
            .outbound
            .check_target(&subscription.endpoint)
            .map_err(|e| format!("endpoint refused: {e}"))?;
        let keys = BrowserKeys::parse(&subscription.p256dh, &subscription.auth)?;
        let authorization = self.vapid(&endpoint)?;
        let uri = endpoint.as_str().parse().map_err(|e| format!("{e}"))?;
        let mut request = WebPushBuilder::new(uri, keys.public, keys.auth)
            .with_valid_duration(PUSH_TTL)
            .build(payload.to_vec())
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            reqwest::header::AUTHORIZATION,
            authorization.parse().map_err(|e| format!("{e}"))?,
        );
        reqwest::Request::try_from(request).map_err(|e| describe_failure(&subscription.endpoint, e))
    }

    /// The VAPID `Authorization` (RFC 8292): a JWT naming the push service's origin,
    /// valid for an hour, and our public key; signed once per origin every
    /// [`VAPID_REUSE`].
    fn vapid(&self, endpoint: &url::Url) -> Result<String, String> {
        let origin = endpoint.origin().ascii_serialization();
        if let Some(authorization) = self.authorizations.get(&origin) {
            return Ok(authorization);
        }
        let expires = chrono::Utc::now() + PUSH_TTL;
        let claims = VapidClaims {
            aud: origin.clone(),
            exp: expires.timestamp(),
            sub: &self.contact,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the VAPID token: {e}"))?;
        let authorization = format!("vapid t={token}, k={}", self.public_key);
        self.authorizations.insert(origin, authorization.clone());
        Ok(authorization)
    }
}

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: String,
    exp: i64,
    sub: &'a str,
}

/// The keys a browser's `PushSubscription` carries.
pub(super) struct BrowserKeys {
    public: p256::PublicKey,
    auth: Auth,
}

impl BrowserKeys {
    pub(super) fn parse(p256dh: &str, auth: &str) -> Result<Self, String> {
        let public = URL_SAFE_NO_PAD
            .decode(p256dh.trim_end_matches('='))
            .ok()
            .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or("keys.p256dh must be a base64url P-256 public key")?;
        let auth = URL_SAFE_NO_PAD
            .decode(auth.trim_end_matches('='))
            .ok()
            .filter(|bytes| bytes.len() == 16)
            .ok_or("keys.auth must be 16 bytes, base64url")?;
        let mut secret = Auth::default();
        secret.copy_from_slice(&auth);
        Ok(Self {
            public,
            auth: secret,
        })
    }
}

/// What the service worker receives (JSON, then shown as a notification).
#[derive(Serialize)]
struct PushMessage<'a> {
    title: String,
    body: &'a str,
    /// Where a click leads: the creator's channel page.
    url: String,
    /// Same tag, same notification: a push delivered twice shows once.
    tag: String,
    stream_id: Uuid,
    creator_id: Uuid,
}

fn message(stream: &StreamView) -> Vec<u8> {
    let name = stream
        .owner
        .display_name
        .as_deref()
        .unwrap_or(&stream.owner.username);
    serde_json::to_vec(&PushMessage {
        title: format!("{name} is live"),
        body: &stream.title,
        url: format!("/c/{}", stream.owner.username),
        tag: format!("live-{}", stream.id),
        stream_id: stream.id,
        creator_id: stream.owner.id,
    })
    .expect("push messages serialize")
}

/// Sends one fan-out batch's pushes; each failed one becomes its own retry job.
pub struct PushBatchHandler {
    pub store: Arc<dyn Store>,
    pub push: Arc<WebPush>,
    /// When a failed push is first retried (later retries back off from there).
    pub retry_after: Duration,
}

#[async_trait]
impl JobHandler for PushBatchHandler {
    async fn run(&self, job: &ClaimedJob, lease: &LeaseClock) -> Result<(), JobFailure> {
        let batch: PushBatchJob =
            serde_json::from_str(&job.payload).map_err(JobFailure::payload)?;
        let Some(stream) = self.store.stream(batch.stream_id).await? else {
            return Ok(());
        };
        let payload = message(&stream);
        let targets = self.store.push_targets(&batch).await?;
        let mut unsent: HashSet<Uuid> = targets.iter().map(|target| target.id).collect();
        let (push, payload) = (&self.push, &payload);
        let mut sends = futures_util::stream::iter(targets)
            .map(|target| async move {
                let outcome = push.send(&target, payload).await;
                (target.id, outcome)
            })
            .buffer_unordered(PUSH_CONCURRENCY);
        // Slow push services must not keep the batch past its lease (another worker would
        // send it all again): what is not done within the budget is retried one by one.
        let mut outcomes = Vec::new();
        let _ = tokio::time::timeout(lease.budget(), async {
            while let Some(sent) = sends.next().await {
                outcomes.push(sent);
            }
        })
        .await;
        for (subscription, outcome) in outcomes {
            unsent.remove(&subscription);
            record(&outcome);
            match outcome {
                PushOutcome::Delivered => {}
                PushOutcome::Gone => self.store.delete_push_subscription(subscription).await?,
                PushOutcome::Failed(error) | PushOutcome::Refused(error) => {
                    tracing::info!(%subscription, %error, "push failed; retrying it alone");
                    self.retry(batch.stream_id, subscription, self.retry_after)
                        .await?;
                }
            }
        }
        if !unsent.is_empty() {
            tracing::info!(
                pushes = unsent.len(),
                "push batch out of time; retrying the rest alone"
            );
        }
        for subscription in unsent {
            self.retry(batch.stream_id, subscription, Duration::ZERO)
                .await?;
        }
        Ok(())
    }
}

impl PushBatchHandler {
    /// Queues one subscription's push as a job of its own, due in `after`.
    async fn retry(
        &self,
        stream_id: Uuid,
        subscription_id: Uuid,
        after: Duration,
    ) -> Result<(), JobFailure> {
        let retry = PushRetryJob {
            stream_id,
            subscription_id,
        };
        let mut job = NewJob::now(kinds::PUSH_RETRY, &retry);
        job.run_at = Timestamp::from(chrono::Utc::now() + after);
        Ok(self.store.enqueue(job).await?)
    }
}

/// One push again; its failures go through the queue's backoff and dead letters.
pub struct PushRetryHandler {
    pub store: Arc<dyn Store>,
    pub push: Arc<WebPush>,
}

#[async_trait]
impl JobHandler for PushRetryHandler {
    async fn run(&self, job: &ClaimedJob, _: &LeaseClock) -> Result<(), JobFailure> {
        let retry: PushRetryJob =
            serde_json::from_str(&job.payload).map_err(JobFailure::payload)?;
        let (Some(target), Some(stream)) = (
            self.store.push_subscription(retry.subscription_id).await?,
            self.store.stream(retry.stream_id).await?,
        ) else {
            return Ok(());
        };
        let outcome = self.push.send(&target, &message(&stream)).await;
        record(&outcome);
        match outcome {
            PushOutcome::Delivered => Ok(()),
            PushOutcome::Gone => Ok(self.store.delete_push_subscription(target.id).await?),
            PushOutcome::Failed(error) | PushOutcome::Refused(error) => {
                Err(JobFailure::Retry(error))
            }
        }
    }
}

fn record(outcome: &PushOutcome) {
    let label = match outcome {
        PushOutcome::Delivered => "delivered",
        PushOutcome::Gone => "gone",
        PushOutcome::Failed(_) => "failed",
        PushOutcome::Refused(_) => "refused",
    };
    metrics::counter!("onair_push_deliveries_total", "outcome" => label).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::outbound::Outbound;

    #[test]
    fn a_push_service_s_authorization_is_signed_once_and_reused() {
        let breakers =
            onair_infra::Breakers::new("test", onair_infra::BreakerSettings::default(), 10);
        let outbound = Outbound::new(Duration::from_secs(1), true, vec![], breakers);
        let push = WebPush::new(
            b"a root secret",
            None,
            "mailto:ops@example.com".into(),
            outbound,
        )
        .unwrap();
        let url = |s: &str| url::Url::parse(s).unwrap();
        let first = push.vapid(&url("https://push.example.com/send/a")).unwrap();
        let again = push.vapid(&url("https://push.example.com/send/b")).unwrap();
        let other = push
            .vapid(&url("https://other.example.net/send/a"))
            .unwrap();
        assert_eq!(first, again, "one signature per origin");
        assert_ne!(first, other);
        assert!(first.starts_with("vapid t=") && first.ends_with(push.public_key()));
    }
}
