//! Traces over OpenTelemetry (OTLP/HTTP, protobuf), off unless `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the SDK reads the other standard
//! variables (`OTEL_SERVICE_NAME`, default `onair`; `OTEL_TRACES_SAMPLER[_ARG]`;
//! `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_EXPORTER_OTLP_HEADERS`…).
//!
//! Spans come from `tracing`: the request span (`routes`, named and completed by
//! `observability::track_requests`), each job's span (`jobs`, linked to the span that
//! enqueued it), each Redis command (`onair_infra::redis_pool`), each outbound HTTP call
//! ([`execute`], which sends the W3C `traceparent`), and each SQL statement
//! ([`database`], from sqlx's per-statement event). Request and job spans carry
//! `trace_id`/`span_id` as fields, so every JSON log line inside them names its trace.
//! When off, no layer is installed and these spans are plain `tracing` spans.

mod database;

use std::time::Duration;

use axum::http::HeaderMap;
use onair_core::TraceParent;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::{Instrument, Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

pub use database::database_system;

/// Why tracing could not start (a malformed endpoint or header variable).
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry: {0}")]
pub struct TelemetryError(String);

/// The process's tracer provider when tracing is on. Shut it down on exit
/// ([`Telemetry::shutdown`]) so the spans still queued are sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// As the `OTEL_*` environment says: off unless an OTLP endpoint is set (and
    /// `OTEL_SDK_DISABLED` is not `true`). Call inside the Tokio runtime (the exporter
    /// runs on it).
    pub fn from_env() -> Result<Self, TelemetryError> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        let disabled =
            std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        if disabled
            || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        {
            return Ok(Self::off());
        }
        Self::otlp(None)
    }

    /// No tracing: no exporter, no layer.
    pub fn off() -> Self {
        Self { provider: None }
    }

    /// Exports to `endpoint` (the full URL, `…/v1/traces`), or where the environment says.
    pub fn otlp(endpoint: Option<&str>) -> Result<Self, TelemetryError> {
        let mut exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("onair");
        }
        // Exported from a task on the Tokio runtime: the SDK's default batch processor
        // runs a thread of its own, where the async reqwest client has no runtime.
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build();
        Ok(Self {
            provider: Some(provider),
        })
    }

    pub fn is_on(&self) -> bool {
        self.provider.is_some()
    }

    /// The layers to add to the process's subscriber (none when off): `tracing` spans
    /// at info and above (and Redis commands' debug spans) as OpenTelemetry spans, SQL
    /// statements as client spans. Boxed, not an `Option`: an `Option` layer does not
    /// pass on the dispatch the statement layer needs to find its parent span.
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let Some(provider) = self.provider.as_ref() else {
            return Box::new(tracing_subscriber::layer::Identity::new());
        };
        let tracer = provider.tracer("onair");
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_filter(
                Targets::new()
                    .with_default(Level::INFO)
                    .with_target(onair_infra::REDIS_SPAN_TARGET, Level::DEBUG)
                    .with_target(database::TARGET, tracing::level_filters::LevelFilter::OFF),
            );
        Box::new(spans.and_then(database::layer(tracer)))
    }

    /// Sends the spans ended so far (tests).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "OpenTelemetry: cannot flush spans");
            }
        }
    }

    /// Sends what is queued and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // Blocks until the exporter task (on this runtime) has sent its last batch.
            let stopped = tokio::task::spawn_blocking(move || {
                provider.shutdown_with_timeout(Duration::from_secs(5))
            })
            .await;
            if let Ok(Err(error)) = stopped {
                eprintln!("onair: OpenTelemetry shutdown: {error}");
            }
        }
    }
}

/// Records the span's trace and span ids in its `trace_id` and `span_id` fields (declared
/// empty), so log lines inside it carry them; nothing when it is not traced.
pub(crate) fn record_ids(span: &Span) {
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// Names `span` (its `otel.name`) once it is known. An OpenTelemetry span already started
/// (by [`record_ids`]) is renamed itself: a late `otel.name` no longer reaches it.
pub(crate) fn rename(span: &Span, name: String) {
    span.context().span().update_name(name.clone());
    span.record("otel.name", name);
}

/// Records a response's status on `span`'s OpenTelemetry span, already started (by
/// [`record_ids`]): a late field would reach it as a second attribute, a string, and a
/// late `otel.status_code` not at all.
pub(crate) fn record_status(span: &Span, status: u16, failed: bool) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if failed {
        span.set_status(opentelemetry::trace::Status::error(""));
    }
}

/// Continues the trace of an incoming `traceparent` header in `span` (not yet entered).
pub(crate) fn continue_remote(span: &Span, headers: &HeaderMap) {
    let parent = headers
        .get(TraceParent::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    if let Some(parent) = parent {
        let remote = opentelemetry::Context::new().with_remote_span_context(parent.span_context());
        // Fails only when tracing is off.
        let _ = span.set_parent(remote);
    }
}

/// Sends an outbound request in a client span, telling the receiver its `traceparent`.
pub(crate) async fn execute(
    client: &reqwest::Client,
    mut request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    let url = request.url();
    let span = tracing::info_span!(
        "http.client",
        otel.name = %request.method(),
        otel.kind = "client",
        http.request.method = %request.method(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default(),
        // Without the query, which may carry keys.
        url.path = url.path(),
    );
    if let Some(parent) = span.in_scope(TraceParent::current)
        && let Ok(value) = parent.as_str().parse()
    {
        request.headers_mut().insert(TraceParent::HEADER, value);
    }
    let outcome = client.execute(request).instrument(span.clone()).await;
    match &outcome {
        Ok(response) => record_status(
            &span,
            response.status().as_u16(),
            response.status().is_server_error(),
        ),
        Err(_) => span.set_status(opentelemetry::trace::Status::error("")),
    }
    outcome
}
