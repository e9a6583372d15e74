//! Stripe's HTTP API, the two calls tipping makes: create a PaymentIntent and retrieve
//! one. Form-encoded requests, API version pinned, a deadline on every call, a circuit
//! breaker in front (review M3: with Stripe down, tipping fails fast and nothing else
//! waits), and retries only where Stripe documents them safe: a request that carries
//! an Idempotency-Key (or a GET), after a connection failure or an answer Stripe marks
//! retryable (`Stripe-Should-Retry`, else 409/429/5xx), with the same key.
//! A call that timed out is not retried here: the request's own deadline would not leave
//! room, and the client's retry (with its Idempotency-Key) resumes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use onair_infra::{BreakerOpen, CircuitBreaker};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

/// The API version our requests and webhook parsing are written against.
const API_VERSION: &str = "2024-06-20";
/// Attempts per call, the first included.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    /// No answer, or Stripe said it is unwell, after the retries.
    #[error("Stripe unreachable: {0}")]
    Unreachable(String),
    /// Stripe refused the API key: a configuration error of ours.
    #[error("Stripe refused our credentials ({0})")]
    Credentials(StatusCode),
    /// Stripe refused the request itself (an amount it does not accept, …).
    #[error("{message}")]
    Refused {
        message: String,
        param: Option<String>,
    },
}

/// The PaymentIntent fields we read.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub client_secret: String,
}

/// What creating a PaymentIntent asks for.
pub struct NewPaymentIntent<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub description: String,
    pub metadata: [(&'static str, String); 3],
}

pub struct Stripe {
    client: reqwest::Client,
    api_base: String,
    secret_key: String,
    breaker: Arc<CircuitBreaker>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    param: Option<String>,
}

impl Stripe {
    pub fn new(
        api_base: &str,
        secret_key: String,
        timeout: Duration,
        breaker: Arc<CircuitBreaker>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .no_proxy()
            .user_agent(concat!("OnAir/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_key,
            breaker,
        }
    }

    /// Whether calls are refused right now (checked before any work is done for one).
    pub fn refusing(&self) -> Option<BreakerOpen> {
        match self.breaker.state() {
            onair_infra::BreakerState::Open => self.breaker.try_call().err(),
            _ => None,
        }
    }

    pub async fn create_payment_intent(
        &self,
        intent: &NewPaymentIntent<'_>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = vec![
            ("amount".to_owned(), intent.amount.to_string()),
            ("currency".to_owned(), intent.currency.to_owned()),
            (
                "automatic_payment_methods[enabled]".to_owned(),
                "true".to_owned(),
            ),
            ("description".to_owned(), intent.description.clone()),
        ];
        for (key, value) in &intent.metadata {
            form.push((format!("metadata[{key}]"), value.clone()));
        }
        self.call(
            Method::POST,
            "/v1/payment_intents",
            Some(form),
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let path = format!("/v1/payment_intents/{id}");
        self.call(Method::GET, &path, None, None).await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Option<Vec<(String, String)>>,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = format!("{}{path}", self.api_base);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(125 << attempt)).await;
            }
            let permit = self.breaker.try_call()?;
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.secret_key)
                .header("stripe-version", API_VERSION);
            if let Some(key) = idempotency_key {
                request = request.header("idempotency-key", key);
            }
            if let Some(form) = &form {
                request = request.form(form);
            }
            let started = Instant::now();
            let (client, request) = request.build_split();
            let outcome = match request {
                Ok(request) => crate::telemetry::execute(&client, request).await,
                Err(error) => Err(error),
            };
            metrics::histogram!("stripe_request_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            let response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    permit.failure();
                    metrics::counter!("stripe_requests_total", "outcome" => "unreachable")
                        .increment(1);
                    let timed_out = error.is_timeout();
                    last = error.without_url().to_string();
                    if timed_out {
                        break;
                    }
                    continue;
                }
            };
            let status = response.status();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .map(|v| v == "true");
            let unwell = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            if unwell {
                permit.failure();
            } else {
                permit.success();
            }
            let retryable = should_retry.unwrap_or(unwell || status == StatusCode::CONFLICT)
                && (idempotency_key.is_some() || method == Method::GET);
            let outcome = if status.is_success() {
                "ok"
            } else if unwell {
                "unwell"
            } else {
                "refused"
            };
            metrics::counter!("stripe_requests_total", "outcome" => outcome).increment(1);
            if status.is_success() {
                return response
                    .json()
                    .await
                    .map_err(|e| StripeError::Unreachable(format!("unreadable answer: {e}")));
            }
            if retryable {
                last = format!("HTTP {status}");
                continue;
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                return Err(StripeError::Credentials(status));
            }
            if unwell {
                return Err(StripeError::Unreachable(format!("HTTP {status}")));
            }
            let detail = response.json::<ErrorEnvelope>().await.ok().map(|e| e.error);
            return Err(StripeError::Refused {
                message: detail
                    .as_ref()
                    .and_then(|d| d.message.clone())
                    .unwrap_or_else(|| format!("Stripe refused the payment (HTTP {status})")),
                param: detail.and_then(|d| d.param),
            });
        }
        Err(StripeError::Unreachable(last))
    }
}
