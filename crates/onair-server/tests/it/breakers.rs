//! Circuit breakers of outbound calls, end to end: webhook deliveries to a local host
//! that fails and then recovers open its breaker (deliveries then fail without a
//! request, and the stored error says why without the secret URL), a probe after the
//! cool-down half-opens it and its success closes it, all seen in `/metrics`; another
//! host's deliveries go on meanwhile.

use std::time::Duration;

use onair_server::Config;
use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::notifications::{go_live, quick_jobs, store_of};
use crate::support::{Receiver, TestApp, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    a_failing_webhook_host_opens_its_breaker_then_a_probe_closes_it,
);

/// Long enough for the third attempt to come while open (the test's backoff is short).
const COOL_DOWN: Duration = Duration::from_secs(3);

/// `/hook` fails twice, then answers; its third request (the probe) takes a second, so
/// the half-open state can be seen.
fn recovering(path: &str, n: usize) -> u16 {
    if path == "/hook" && n < 2 { 503 } else { 204 }
}

fn slow_probe(path: &str, n: usize) -> Duration {
    if path == "/hook" && n == 2 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    }
}

/// The value of `metric` for the series whose labels include all of `labels`.
async fn metric(app: &TestApp, metric: &str, labels: &[&str]) -> Option<f64> {
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn state_becomes(app: &TestApp, host: &str, state: f64) {
    let labels = [r#"dependency="webhook""#, host];
    eventually(&format!("{host} in breaker state {state}"), || async {
        (metric(app, "circuit_breaker_state", &labels).await == Some(state)).then_some(())
    })
    .await;
}

async fn a_failing_webhook_host_opens_its_breaker_then_a_probe_closes_it(db: DbConfig) {
    fn config(config: &mut Config) {
        quick_jobs(config);
        config.jobs.max_attempts = 3;
        config.breaker.failure_threshold = 2;
        config.breaker.cool_down_ms = COOL_DOWN.as_millis() as u64;
    }
    let app = TestApp::spawn_configured(db, config).await;
    let failing = Receiver::start_slow(recovering, slow_probe).await;
    let healthy = Receiver::start(recovering).await;
    let store = store_of(&app).await;
    let star = app.signup("star").await;
    let dev = app.signup("dev").await;
    for callback in [failing.url("/hook"), healthy.url("/other")] {
        let (status, body) = app
            .post(
                "/api/webhooks",
                Some(&dev.access),
                json!({"channel_id": star.id, "event": "stream.online", "callback_url": callback, "secret": "webhook-secret-123"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let failing_host = format!(r#"target="{}""#, failing.addr);
    let healthy_host = format!(r#"target="{}""#, healthy.addr);

    go_live(&app, &star).await;
    // Two failures open the breaker; the third attempt is refused without a request
    // and, the last one allowed, leaves a dead letter saying why.
    failing.wait_for("/hook", 2).await;
    let dead = eventually("the refused delivery's dead letter", || async {
        let dead = store
            .dead_jobs(onair_core::Limit::default(), None)
            .await
            .unwrap();
        dead.items.into_iter().next()
    })
    .await;
    let error = dead.last_error.unwrap_or_default();
    assert!(error.contains("circuit breaker open"), "{error}");
    assert!(error.contains(&failing.addr.to_string()), "{error}");
    assert!(
        !error.contains("/hook"),
        "no URL path in job errors: {error}"
    );
    assert_eq!(failing.requests("/hook").len(), 2, "no request while open");
    state_becomes(&app, &failing_host, 1.0).await;
    let refused = metric(
        &app,
        "circuit_breaker_refused_total",
        &[r#"dependency="webhook""#, &failing_host],
    )
    .await;
    assert!(refused >= Some(1.0), "{refused:?}");
    // The other host was not cut off.
    assert_eq!(healthy.wait_for("/other", 1).await.len(), 1);
    state_becomes(&app, &healthy_host, 0.0).await;

    // After the cool-down the delivery, queued again, is the probe: half-open while it
    // runs, closed once it succeeds.
    tokio::time::sleep(COOL_DOWN).await;
    assert!(store.revive_job(dead.id).await.unwrap());
    state_becomes(&app, &failing_host, 2.0).await;
    failing.wait_for("/hook", 3).await;
    state_becomes(&app, &failing_host, 0.0).await;
    let closed = metric(
        &app,
        "circuit_breaker_transitions_total",
        &[r#"dependency="webhook""#, &failing_host, r#"to="closed""#],
    )
    .await;
    assert_eq!(closed, Some(1.0));
}
