//! Tracing (issue 16): with an OTLP endpoint, spans reach an in-process collector — the
//! request that starts a broadcast, the webhook job it enqueued linked to it, the SQL
//! statements under the request, the job's outbound call carrying `traceparent` — and the
//! request's log lines name its trace; without one, nothing is traced and the request's
//! log line still names its request id.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use futures_util::FutureExt;
use onair_server::telemetry::Telemetry;
use onair_store::DbConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AttributeValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use crate::notifications::quick_jobs;
use crate::support::{Receiver, Recorded, TestApp, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    requests_jobs_queries_and_calls_are_traced_and_linked,
    nothing_is_traced_without_an_endpoint,
);

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// An OTLP/HTTP collector: keeps every span posted to `/v1/traces`.
async fn collector() -> (String, Shared<Span>) {
    let spans: Shared<Span> = Shared::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |State(spans): State<Shared<Span>>, body: Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut spans = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                    StatusCode::OK
                },
            ),
        )
        .with_state(Arc::clone(&spans));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

/// JSON log lines, as `ONAIR_LOG_FORMAT=json` writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The lines that mention `needle`.
    fn with(&self, needle: &str) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    }
}

/// Logs and, when on, traces of everything this test's thread runs (the test, its
/// server and its jobs run on the test's single-threaded runtime).
///
/// tracing-core registers a callsite with the registering thread's subscriber alone while
/// only one subscriber exists: a callsite first reached on another test's thread (which
/// has none) would be cached as disabled for this one too — the request lines went
/// missing whenever media tests ran beside this one. A second, idle subscriber kept alive
/// makes it ask every subscriber.
fn subscribe(telemetry: &Telemetry, lines: &Lines) -> Subscribed {
    let lines = lines.clone();
    let log = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || lines.clone())
        .with_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let subscriber = tracing_subscriber::registry()
        .with(log)
        .with(telemetry.layer());
    Subscribed {
        _default: tracing::subscriber::set_default(subscriber),
        _other: tracing::Dispatch::new(tracing_subscriber::registry()),
    }
}

struct Subscribed {
    _default: tracing::subscriber::DefaultGuard,
    _other: tracing::Dispatch,
}

/// A creator goes live with a webhook registered for it: returns the webhook's delivery
/// and the response's request id.
async fn go_live_with_webhook(app: &TestApp) -> (Recorded, String) {
    let receiver = Receiver::start(|_, _| 204).await;
    let star = app.signup("star").await;
    let dev = app.signup("dev").await;
    let hook = json!({"channel_id": star.id, "event": "stream.online",
        "callback_url": receiver.url("/hook"), "secret": "webhook-secret-123"});
    let (status, body) = app.post("/api/webhooks", Some(&dev.access), hook).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = app
        .client
        .post(app.url("/api/streams/start"))
        .bearer_auth(&star.access)
        .json(&json!({"title": "Traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let delivery = receiver.wait_for("/hook", 1).await.remove(0);
    (delivery, request_id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AttributeValue> {
    let attribute = span.attributes.iter().find(|a| a.key == key)?;
    attribute.value.as_ref()?.value.as_ref()
}

async fn requests_jobs_queries_and_calls_are_traced_and_linked(db: DbConfig) {
    let (endpoint, spans) = collector().await;
    let telemetry = Telemetry::otlp(Some(&endpoint)).unwrap();
    assert!(telemetry.is_on());
    let lines = Lines::default();
    let _subscribed = subscribe(&telemetry, &lines);
    // The exporter runs on this test's runtime: the provider must be shut down while the
    // runtime still runs, also after a failure (dropped during the unwind, it would wait
    // for its exporter task forever), and a stuck test must fail rather than hang.
    let checked = AssertUnwindSafe(traced_and_linked(db, &telemetry, &spans, &lines));
    let outcome = tokio::time::timeout(Duration::from_secs(60), checked.catch_unwind()).await;
    telemetry.shutdown().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("tracing test still running after 60 s: spans never exported?"),
    }
}

async fn traced_and_linked(
    db: DbConfig,
    telemetry: &Telemetry,
    spans: &Shared<Span>,
    lines: &Lines,
) {
    let postgres = db.url.starts_with("postgres");
    let app = TestApp::spawn_configured(db, quick_jobs).await;
    let (delivery, request_id) = go_live_with_webhook(&app).await;

    let named = |name: &str| {
        let spans = spans.lock().unwrap();
        spans.iter().find(|s| s.name == name).cloned()
    };
    let job = eventually("the job's span to be exported", || async {
        telemetry.flush().await;
        named("job webhook_delivery")
    })
    .await;
    let request = named("POST /api/streams/start").unwrap_or_else(|| {
        let names: Vec<String> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        panic!("no request span among {names:?}")
    });
    let trace = hex(&request.trace_id);
    assert_eq!(
        attribute(&request, "http.route"),
        Some(&AttributeValue::StringValue("/api/streams/start".into()))
    );
    assert_eq!(
        attribute(&request, "http.response.status_code"),
        Some(&AttributeValue::IntValue(201))
    );

    // The job is a trace of its own, linked to the request's.
    assert_ne!(hex(&job.trace_id), trace);
    assert_eq!(job.links.len(), 1, "{job:?}");
    assert_eq!(hex(&job.links[0].trace_id), trace);
    // Its webhook call tells the receiver the job's trace.
    let traceparent = delivery.headers["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{}-", hex(&job.trace_id))),
        "{traceparent}"
    );
    // The call itself is a client span of the job's trace, with the answer's status.
    let call = spans
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.trace_id == job.trace_id && attribute(s, "server.address").is_some())
        .cloned()
        .expect("a span for the webhook call");
    assert!(
        matches!(
            attribute(&call, "http.response.status_code"),
            Some(AttributeValue::IntValue(200..=299))
        ),
        "{call:?}"
    );

    // The request's statements are spans under it. Not with SQLite: sqlx runs its
    // statements on a worker thread of its own, outside the request's span.
    let statements: Vec<Span> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == request.trace_id && attribute(s, "db.query.text").is_some())
        .cloned()
        .collect();
    assert_eq!(
        statements
            .iter()
            .any(|s| s.name == "INSERT" && attribute(s, "db.system.name").is_some()),
        postgres,
        "{statements:?}"
    );

    // The request's log lines name its trace (and its request id).
    let logged = lines.with(&request_id);
    assert!(!logged.is_empty());
    for line in logged {
        assert_eq!(line["spans"][0]["trace_id"], trace, "{line}");
    }
    app.shutdown().await;
}

async fn nothing_is_traced_without_an_endpoint(db: DbConfig) {
    let telemetry = Telemetry::off();
    assert!(!telemetry.is_on());
    let lines = Lines::default();
    let _subscribed = subscribe(&telemetry, &lines);
    let app = TestApp::spawn_configured(db, quick_jobs).await;
    let (delivery, request_id) = go_live_with_webhook(&app).await;
    assert!(!delivery.headers.contains_key("traceparent"));
    let logged = lines.with(&request_id);
    assert!(!logged.is_empty());
    for line in logged {
        assert_eq!(line["spans"][0]["id"], request_id.as_str(), "{line}");
        assert!(line["spans"][0].get("trace_id").is_none(), "{line}");
    }
    app.shutdown().await;
}
