use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{DEADLINE, TestApp, assert_error, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    health_readiness_metrics_and_request_ids,
    shutdown_is_graceful,
);

async fn health_readiness_metrics_and_request_ids(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    // Embedded: no Redis to check.
    assert_eq!(
        app.get("/readyz").await,
        (
            StatusCode::OK,
            json!({"status": "ready", "checks": {"database": "up"}})
        )
    );

    app.get("/api/streams").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/api/streams\""), "{metrics}");
    assert!(metrics.contains("db_pool_connections"), "{metrics}");
    // The ceiling the pool-usage alert divides by (deploy/prometheus/alerts.yml).
    assert!(
        metrics.contains("db_pool_max_connections{pool="),
        "{metrics}"
    );
    // The process itself (from /proc).
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(metrics.contains(&format!("\n{name} ")), "{name}: {metrics}");
    }

    assert_error(&app.get("/api/no-such-thing").await, 404, "route_not_found");
    let wrong_method = app
        .client
        .delete(app.url("/api/streams"))
        .send()
        .await
        .unwrap();
    assert_error(
        &crate::support::read(wrong_method).await,
        405,
        "method_not_allowed",
    );
}

async fn read_until(stream: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut read = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0; 4096];
        while !done(&String::from_utf8_lossy(&read)) {
            match stream.read(&mut buffer).await.expect("read") {
                0 => break,
                n => read.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the server answers before the deadline");
    String::from_utf8(read).expect("an HTTP/1.1 answer is text here")
}

async fn shutdown_is_graceful(db: DbConfig) {
    // A grace period that outlasts a busy machine: the shutdown waits only as long as
    // the request takes.
    let long_grace = |config: &mut onair_server::Config| config.http.shutdown_grace_secs = 60;
    let mut app = TestApp::spawn_configured(db.clone(), long_grace).await;
    app.signup("leaver").await;

    // A signup in flight when the shutdown starts: the server has read its head and its
    // handler is reading the body (hyper answers `100 Continue` once it starts to).
    let body = json!({"username": "straggler", "email": "straggler@example.com",
        "password": "correct horse battery"})
    .to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/auth/signup HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        app.addr,
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let interim = read_until(&mut slow, |read| read.contains("\r\n\r\n")).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    slow.write_all(first_half.as_bytes()).await.unwrap();

    app.stop();
    // New connections are refused: the listener is closed…
    let addr = app.addr;
    eventually("new connections to be refused", || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    // …while the request in flight still gets its answer.
    slow.write_all(second_half.as_bytes()).await.unwrap();
    let answer = read_until(&mut slow, |_| false).await;
    assert!(answer.starts_with("HTTP/1.1 201 Created"), "{answer}");
    assert!(answer.contains(r#""username":"straggler""#), "{answer}");
    app.shutdown().await;

    // The answered signup was stored before the server closed its database.
    let store = onair_store::connect(&db).await.unwrap();
    assert!(store.credentials("straggler").await.unwrap().is_some());
    store.close().await;
}
