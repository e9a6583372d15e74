//! Request metrics and logs, `/metrics`, `/healthz` and `/readyz` (review C5), which
//! tells a degraded node (Redis down, still serving) from one that cannot serve.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use onair_infra::RedisPool;
use onair_store::Store;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, Json};

mod database_events;

pub use database_events::database_events;

const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// The process-wide Prometheus recorder (installed once, shared by every app instance in
/// the process, e.g. in tests).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_DURATION.into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full("chat_delivery_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(database_events::POOL_ACQUIRE.into()),
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 3.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's): then ours
        // still renders whatever is recorded through it, which is nothing; say so.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Records the latency of every request by route template (never the raw path, which
/// would explode label cardinality), method and status; and names the request's span
/// (`routes`) by them.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>();
    let span = tracing::Span::current();
    if let Some(route) = matched {
        span.record("http.route", route.as_str());
        crate::telemetry::rename(&span, format!("{} {}", request.method(), route.as_str()));
    }
    let route = matched.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    crate::telemetry::record_status(&span, status.as_u16(), status.is_server_error());
    metrics::histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => status.as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Answers 503 `timeout` when a request runs past the deadline (review M3).
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// `/healthz`, `/readyz`, and `/metrics` unless it has a listener of its own.
pub fn router<S>(with_metrics: bool) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Readiness>: FromRef<S>,
{
    let probes = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz));
    if with_metrics {
        probes.routes(routes!(metrics_endpoint))
    } else {
        probes
    }
}

/// What the metrics listener (`http.metrics_bind`) serves: `/metrics` and nothing else.
pub fn metrics_only(readiness: Arc<Readiness>) -> Router {
    let (routes, _) = OpenApiRouter::new()
        .routes(routes!(metrics_endpoint))
        .split_for_parts();
    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .with_state(readiness)
        .layer(axum::middleware::from_fn(crate::web::security_headers))
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// What readiness checks: the database, without which nothing is served, and Redis
/// when configured, without which the node still serves, degraded (chat node-local,
/// rate limits per `rate_limit.fail_open`).
#[derive(Clone)]
pub struct Readiness {
    pub store: Arc<dyn Store>,
    pub redis: Option<RedisPool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    /// Every dependency answers.
    Ready,
    /// A dependency the node can serve without (Redis) does not answer.
    Degraded,
}

#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Check {
    Up,
    Down,
}

/// Each dependency's state.
#[derive(Serialize, ToSchema)]
struct Checks {
    database: Check,
    /// Absent in embedded mode (no Redis configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Check>,
}

#[derive(Serialize, ToSchema)]
struct ReadyBody {
    status: ReadyStatus,
    checks: Checks,
}

/// Readiness: 200 while the primary database answers (a read replica's loss moves reads
/// elsewhere), `degraded` naming what else does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "`ready`, or `degraded` when Redis does not answer (served without it)", body = ReadyBody),
        (status = 503, description = "`service_unavailable`: a database does not answer", body = ErrorBody)))]
async fn readyz(State(readiness): State<Arc<Readiness>>) -> Result<Json<ReadyBody>, ApiError> {
    let redis = async {
        let pool = readiness.redis.as_ref()?;
        Some(match pool.ping().await {
            Ok(()) => Check::Up,
            Err(error) => {
                tracing::warn!(%error, "readiness: Redis does not answer");
                Check::Down
            }
        })
    };
    let (database, redis) = tokio::join!(readiness.store.ping(), redis);
    database.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable
    })?;
    let status = if redis == Some(Check::Down) {
        ReadyStatus::Degraded
    } else {
        ReadyStatus::Ready
    };
    Ok(Json(ReadyBody {
        status,
        checks: Checks {
            database: Check::Up,
            redis,
        },
    }))
}

/// Prometheus metrics: request latency per route and status, database pool usage and
/// waits, slow queries, read replicas' lag and rotation, Redis memory and evictions, the
/// process's CPU, memory and open files.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_endpoint(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    let store = &readiness.store;
    for pool in store.pool_stats() {
        let in_use = pool.size.saturating_sub(pool.idle);
        metrics::gauge!("db_pool_connections", "pool" => pool.name.clone(), "state" => "idle")
            .set(pool.idle);
        metrics::gauge!("db_pool_connections", "pool" => pool.name.clone(), "state" => "in_use")
            .set(in_use);
        metrics::gauge!("db_pool_max_connections", "pool" => pool.name).set(pool.max);
    }
    record_process();
    for replica in store.replica_status() {
        // NaN: a replica that did not answer has no lag to tell.
        let lag = replica.lag.map_or(f64::NAN, |lag| lag.as_secs_f64());
        metrics::gauge!("db_replica_lag_seconds", "replica" => replica.name.clone()).set(lag);
        metrics::gauge!("db_replica_in_rotation", "replica" => replica.name)
            .set(f64::from(u8::from(replica.in_rotation)));
    }
    if let Some(redis) = &readiness.redis {
        record_redis(redis).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        prometheus().render(),
    )
}

/// Redis's memory against its `maxmemory`, and its evictions, under redis_exporter's
/// names (so its alerts work without one). Every node reports the Redis it uses.
async fn record_redis(redis: &RedisPool) {
    match redis.memory().await {
        Ok(memory) => {
            metrics::gauge!("redis_memory_used_bytes").set(memory.used_bytes as f64);
            metrics::gauge!("redis_memory_max_bytes").set(memory.max_bytes as f64);
            metrics::counter!("redis_evicted_keys_total").absolute(memory.evicted_keys);
        }
        Err(error) => tracing::debug!(%error, "metrics: Redis INFO failed"),
    }
}

/// The process's CPU time, resident memory and open files, read from `/proc` (Linux;
/// elsewhere nothing is recorded), under the names Prometheus's client libraries use.
/// Read when scraped: ten lines of `/proc` parsing, where the `metrics-process` crate
/// would bring bindgen and a platform layer per OS into the build.
fn record_process() {
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, fields)) = stat.rsplit_once(')')
    {
        // proc(5): after the command name come field 3 (state) …, 14 utime, 15 stime,
        // in clock ticks of USER_HZ, which is 100 on every Linux ABI.
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(14), ticks(15)) {
            metrics::gauge!("process_cpu_seconds_total").set((user + system) / 100.0);
        }
    }
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        });
    if let Some(kb) = rss_kb {
        metrics::gauge!("process_resident_memory_bytes").set(kb * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
}
