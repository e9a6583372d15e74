//! The viewer-counter contract, in memory always and on Redis when ONAIR_TEST_REDIS_URL
//! is set (keys under a random prefix, so the shared server is safe).

use std::sync::Arc;

use std::num::NonZeroU32;
use std::time::Duration;

use onair_infra::{
    MemoryViewerCounter, RedisPool, RedisViewerCounter, SharedRateLimit, VIEWER_WINDOW_MS,
    ViewerCounter, ViewerCounts,
};
use uuid::Uuid;

fn redis_url() -> Option<String> {
    std::env::var("ONAIR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn counters() -> Vec<(&'static str, Arc<dyn ViewerCounter>)> {
    let mut all: Vec<(&'static str, Arc<dyn ViewerCounter>)> =
        vec![("memory", Arc::new(MemoryViewerCounter::default()))];
    if let Some(url) = redis_url() {
        let pool = RedisPool::connect(&url, 2).await.expect("connect to Redis");
        let prefix = format!("onair-test-{}:", Uuid::new_v4().simple());
        all.push(("redis", Arc::new(RedisViewerCounter::new(pool, prefix))));
    }
    all
}

fn viewer(n: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

#[tokio::test]
async fn concurrent_viewers_expire_unique_viewers_accumulate() {
    for (backend, counter) in counters().await {
        let (stream, other) = (Uuid::now_v7(), Uuid::now_v7());
        let t0 = 1_800_000_000_000;
        let batch: Vec<_> = (0..100)
            .map(|n| (stream, viewer(n)))
            .chain([(other, viewer(1))])
            .collect();
        counter.record(t0, &batch).await.unwrap();
        // A repeated heartbeat is the same viewer.
        counter
            .record(t0 + 1_000, &[(stream, viewer(7))])
            .await
            .unwrap();

        let counts = counter
            .counts(t0 + 2_000, &[stream, other, Uuid::now_v7()])
            .await
            .unwrap();
        assert_eq!(counts[0].concurrent, 100, "{backend}");
        assert!(
            (97..=103).contains(&counts[0].unique),
            "{backend}: HLL estimate {}",
            counts[0].unique
        );
        assert_eq!(
            counts[1],
            ViewerCounts {
                concurrent: 1,
                unique: 1
            },
            "{backend}"
        );
        assert_eq!(counts[2], ViewerCounts::default(), "{backend}");

        // Past the window only the viewer who sent a later heartbeat still counts.
        let later = counter
            .counts(t0 + VIEWER_WINDOW_MS + 500, &[stream])
            .await
            .unwrap();
        assert_eq!(later[0].concurrent, 1, "{backend}");
        assert!(later[0].unique >= 97, "{backend}: unique viewers are kept");
        counter.retain(&[stream]).await.unwrap();
    }
}

#[tokio::test]
async fn unique_viewers_at_scale_stay_close() {
    for (backend, counter) in counters().await {
        let stream = Uuid::now_v7();
        let batch: Vec<_> = (0..20_000).map(|n| (stream, viewer(n))).collect();
        counter.record(1_800_000_000_000, &batch).await.unwrap();
        let counts = counter.counts(1_800_000_000_000, &[stream]).await.unwrap();
        assert_eq!(counts[0].concurrent, 20_000, "{backend}");
        let error = (counts[0].unique as f64 - 20_000.0).abs() / 20_000.0;
        assert!(
            error < 0.05,
            "{backend}: {} is {:.1}% off",
            counts[0].unique,
            error * 100.0
        );
    }
}

#[tokio::test]
async fn a_shared_rate_limit_holds_across_nodes() {
    let Some(url) = redis_url() else {
        eprintln!("skipped: ONAIR_TEST_REDIS_URL is not set");
        return;
    };
    let key = format!("onair-test-{}:rate", Uuid::new_v4().simple());
    let per_second = NonZeroU32::new(1_000).unwrap();
    let a = SharedRateLimit::new(RedisPool::connect(&url, 1).await.unwrap(), &key, per_second);
    let b = SharedRateLimit::new(RedisPool::connect(&url, 1).await.unwrap(), &key, per_second);
    // A second's worth is there at once, whichever node takes it…
    assert_eq!(a.try_take(600).await.unwrap(), Duration::ZERO);
    assert_eq!(b.try_take(400).await.unwrap(), Duration::ZERO);
    // …then both nodes share the refill: 500 more are about half a second away.
    let wait = b.try_take(500).await.unwrap();
    assert!(
        wait > Duration::from_millis(250) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    // A refused take takes nothing: the other node is told the same.
    let other = a.try_take(500).await.unwrap();
    assert!(
        other > Duration::from_millis(250) && other <= wait,
        "{other:?} after {wait:?}"
    );
    // More than a second's worth never fits, even once the bucket is full again.
    assert!(a.try_take(1_001).await.unwrap() > Duration::ZERO);
    // Waiting is what `take` does: it returns once the tokens are granted.
    a.take(100).await.unwrap();
}

#[tokio::test]
async fn a_shared_rate_limit_reports_a_lost_redis_instead_of_waiting() {
    if redis_url().is_none() {
        eprintln!("skipped: ONAIR_TEST_REDIS_URL is not set");
        return;
    }
    // A Redis of its own, stopped mid-test (never the shared one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed by scripts/setup");
    let url = format!("redis://127.0.0.1:{port}");
    let mut pool = None;
    for _ in 0..100 {
        if let Ok(connected) = RedisPool::connect(&url, 1).await {
            pool = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limit = SharedRateLimit::new(pool.expect("redis-server started"), "rate", NonZeroU32::MIN);
    assert_eq!(limit.try_take(1).await.unwrap(), Duration::ZERO);
    server.kill().await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(10), limit.take(1)).await;
    assert!(matches!(lost, Ok(Err(_))), "an error, not a wait: {lost:?}");
}
