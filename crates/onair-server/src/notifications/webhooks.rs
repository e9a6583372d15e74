//! Outbound webhooks, in the manner of Twitch EventSub: a user registers a callback for
//! `stream.online` or `stream.offline` of a channel; each event is delivered as a job
//! (enqueued with the change itself), retried with the queue's backoff, and a webhook
//! that keeps failing is disabled. While its host's circuit breaker is open a delivery
//! is not attempted: the job fails at once and is retried with the same backoff, and
//! since nothing was sent, it does not count towards disabling the webhook.
//!
//! Every delivery is signed. Headers:
//! - `OnAir-Message-Id`: the same for every retry of one delivery (drop duplicates);
//! - `OnAir-Message-Timestamp`: when this attempt was sent, RFC 3339 (drop old ones);
//! - `OnAir-Message-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the webhook's
//!   secret, over the id, the timestamp and the raw body, concatenated;
//! - `OnAir-Subscription-Type`: the event.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use onair_store::jobs::{ClaimedJob, WebhookJob};
use onair_store::{Store, StreamView, Webhook, WebhookEvent};
use serde_json::json;
use sha2::Sha256;

use super::outbound::{CallFailure, Outbound};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};

/// `sha256=<hex>` over `message_id || timestamp || body`.
pub fn signature(secret: &str, message_id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message_id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookHandler {
    pub store: Arc<dyn Store>,
    pub outbound: Outbound,
    /// Failed deliveries in a row that disable a webhook.
    pub disable_after: i32,
}

#[async_trait]
impl JobHandler for WebhookHandler {
    async fn run(&self, job: &ClaimedJob, _: &LeaseClock) -> Result<(), JobFailure> {
        let delivery: WebhookJob =
            serde_json::from_str(&job.payload).map_err(JobFailure::payload)?;
        let (Some(hook), Some(stream)) = (
            self.store.webhook(delivery.webhook_id).await?,
            self.store.stream(delivery.stream_id).await?,
        ) else {
            return Ok(());
        };
        if hook.disabled_at.is_some() {
            return Ok(());
        }
        let body = serde_json::to_vec(&payload(&hook, &stream, delivery.occurred_at))
            .expect("webhook bodies serialize");
        let message_id = job.id.to_string();
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        // Stored before the rules were last tightened, a URL may no longer pass them.
        let sent = match self.outbound.check_target(&hook.callback_url) {
            Ok(url) => Ok(self
                .outbound
                .send(
                    self.outbound
                        .client()
                        .post(url)
                        .header("content-type", "application/json")
                        .header("onair-message-id", &message_id)
                        .header("onair-message-timestamp", &timestamp)
                        .header(
                            "onair-message-signature",
                            signature(&hook.secret, &message_id, &timestamp, &body),
                        )
                        .header("onair-subscription-type", hook.event.as_str())
                        .body(body),
                )
                .await),
            Err(e) => Err(e),
        };
        let failure = match sent {
            Ok(Ok(response)) if response.status().is_success() => None,
            Ok(Ok(response)) => Some(format!("callback answered {}", response.status())),
            Ok(Err(CallFailure::Open(open))) => {
                metrics::counter!("onair_webhook_deliveries_total", "outcome" => "refused")
                    .increment(1);
                return Err(JobFailure::Retry(format!("callback not called: {open}")));
            }
            Ok(Err(CallFailure::Unreachable(e))) => Some(format!("callback unreachable: {e}")),
            Err(e) => Some(format!("callback_url refused: {e}")),
        };
        let outcome = if failure.is_some() {
            "failed"
        } else {
            "delivered"
        };
        metrics::counter!("onair_webhook_deliveries_total", "outcome" => outcome).increment(1);
        let disabled = self
            .store
            .record_webhook_delivery(hook.id, failure.is_none(), self.disable_after)
            .await?;
        match failure {
            None => Ok(()),
            Some(error) if disabled => {
                tracing::warn!(webhook = %hook.id, %error, "webhook disabled after repeated failures");
                Ok(())
            }
            Some(error) => Err(JobFailure::Retry(error)),
        }
    }
}

fn payload(hook: &Webhook, stream: &StreamView, at: DateTime<Utc>) -> serde_json::Value {
    let owner = &stream.owner;
    let name = owner.display_name.as_deref().unwrap_or(&owner.username);
    let event = match hook.event {
        WebhookEvent::StreamOnline => json!({
            "id": stream.id,
            "broadcaster_user_id": owner.id,
            "broadcaster_user_login": owner.username,
            "broadcaster_user_name": name,
            "type": "live",
            "title": stream.title,
            "category": stream.category,
            "started_at": at,
        }),
        WebhookEvent::StreamOffline => json!({
            "id": stream.id,
            "broadcaster_user_id": owner.id,
            "broadcaster_user_login": owner.username,
            "broadcaster_user_name": name,
            "ended_at": at,
        }),
    };
    json!({
        "subscription": {
            "id": hook.id,
            "type": hook.event.as_str(),
            "channel_id": hook.channel_id,
            "created_at": hook.created_at.get(),
        },
        "event": event,
    })
}
