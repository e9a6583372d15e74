//! The viewer-counter contract, in memory (`memory::<case>`) and on Redis
//! (`redis::<case>`, keys under a random prefix, so the shared server is safe), and the
//! rate limit Redis shares between nodes. Redis cases are ignored, and counted so in the
//! closing line, unless ONAIR_TEST_REDIS_URL was set when they were built (the cfg comes
//! from scripts/test-backends.rs). The media store contract, the S3 lifecycle rules, the
//! object store's circuit breaker, the per-key rate limits and the read-through cache are
//! in their own modules.

mod breaker;
mod cache;
mod lifecycle;
mod media_store;
mod rate_limits;

use std::sync::Arc;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use onair_infra::{
    MemoryViewerCounter, RedisPool, RedisViewerCounter, SharedRateLimit, VIEWER_WINDOW_MS,
    ViewerCounter, ViewerCounts,
};
use uuid::Uuid;

/// Declares each listed counter case twice: `memory::name` and `redis::name`.
macro_rules! counter_tests {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let counter = super::Arc::new(super::MemoryViewerCounter::default());
                    super::$name(counter).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test]
                #[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
                async fn $name() {
                    super::$name(super::redis_counter().await).await;
                }
            )+
        }
    };
}

counter_tests!(
    concurrent_viewers_expire_unique_viewers_accumulate,
    unique_viewers_at_scale_stay_close,
);

/// The shared Redis; a case that needs it runs only when the variable was set at build.
fn redis_url() -> String {
    std::env::var("ONAIR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("ONAIR_TEST_REDIS_URL must be set to run this test")
}

/// A Redis counter with keys of its own.
async fn redis_counter() -> Arc<dyn ViewerCounter> {
    let pool = RedisPool::connect(&redis_url(), 2)
        .await
        .expect("connect to Redis");
    let prefix = format!("onair-test-{}:", Uuid::new_v4().simple());
    Arc::new(RedisViewerCounter::new(pool, prefix))
}

fn viewer(n: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

async fn concurrent_viewers_expire_unique_viewers_accumulate(counter: Arc<dyn ViewerCounter>) {
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
    assert_eq!(counts[0].concurrent, 100);
    assert!(
        (97..=103).contains(&counts[0].unique),
        "HLL estimate {}",
        counts[0].unique
    );
    assert_eq!(
        counts[1],
        ViewerCounts {
            concurrent: 1,
            unique: 1
        }
    );
    assert_eq!(counts[2], ViewerCounts::default());

    // Past the window only the viewer who sent a later heartbeat still counts.
    let later = counter
        .counts(t0 + VIEWER_WINDOW_MS + 500, &[stream])
        .await
        .unwrap();
    assert_eq!(later[0].concurrent, 1);
    assert!(later[0].unique >= 97, "unique viewers are kept");
    counter.retain(&[stream]).await.unwrap();
}

async fn unique_viewers_at_scale_stay_close(counter: Arc<dyn ViewerCounter>) {
    let stream = Uuid::now_v7();
    let batch: Vec<_> = (0..20_000).map(|n| (stream, viewer(n))).collect();
    counter.record(1_800_000_000_000, &batch).await.unwrap();
    let counts = counter.counts(1_800_000_000_000, &[stream]).await.unwrap();
    assert_eq!(counts[0].concurrent, 20_000);
    let error = (counts[0].unique as f64 - 20_000.0).abs() / 20_000.0;
    assert!(
        error < 0.05,
        "{} is {:.1}% off",
        counts[0].unique,
        error * 100.0
    );
}

/// How long a take of `tokens` from an empty bucket refilled at `rate` a second waits.
fn refill_time(tokens: u32, rate: NonZeroU32) -> Duration {
    Duration::from_secs_f64(f64::from(tokens) / f64::from(rate.get()))
}

/// Asserts that a take of `tokens` refused on an empty bucket was told to wait what the
/// refill since `emptied` leaves: at most the whole refill time, and no less than it
/// minus the time that has passed (however slow the machine; 5 ms for clock steps).
#[track_caller]
fn assert_refill_wait(wait: Duration, tokens: u32, rate: NonZeroU32, emptied: Instant) {
    let full = refill_time(tokens, rate);
    let least = full.saturating_sub(emptied.elapsed() + Duration::from_millis(5));
    assert!(
        wait > Duration::ZERO && wait >= least && wait <= full,
        "{wait:?} not in {least:?}..={full:?}"
    );
}

#[tokio::test]
#[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
async fn a_shared_rate_limit_holds_across_nodes() {
    let url = redis_url();
    let key = format!("onair-test-{}:rate", Uuid::new_v4().simple());
    let per_second = NonZeroU32::new(1_000).unwrap();
    let a = SharedRateLimit::new(RedisPool::connect(&url, 1).await.unwrap(), &key, per_second);
    let b = SharedRateLimit::new(RedisPool::connect(&url, 1).await.unwrap(), &key, per_second);
    // A second's worth is there at once, whichever node takes it…
    let emptied = Instant::now();
    assert_eq!(a.try_take(600).await.unwrap(), Duration::ZERO);
    assert_eq!(b.try_take(400).await.unwrap(), Duration::ZERO);
    // …then both nodes share the refill: 900 more are 0.9 s of refill away (less what
    // has passed since), a margin for a busy machine.
    let wait = b.try_take(900).await.unwrap();
    assert_refill_wait(wait, 900, per_second, emptied);
    // A refused take takes nothing: the other node is told the same, or less.
    let other = a.try_take(900).await.unwrap();
    assert_refill_wait(other, 900, per_second, emptied);
    assert!(other <= wait, "{other:?} after {wait:?}");
    // More than a second's worth never fits, even once the bucket is full again.
    assert!(a.try_take(1_001).await.unwrap() > Duration::ZERO);
    // Waiting is what `take` does: it returns once the tokens are granted.
    a.take(100).await.unwrap();
}

#[tokio::test]
#[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
async fn a_shared_rate_limit_reports_a_lost_redis_instead_of_waiting() {
    // A Redis of its own, stopped mid-test (never the shared one).
    let mut server = onair_infra::testing::RedisServer::start().await;
    let pool = RedisPool::connect(server.url(), 1).await.unwrap();
    let limit = SharedRateLimit::new(pool, "rate", NonZeroU32::MIN);
    assert_eq!(limit.try_take(1).await.unwrap(), Duration::ZERO);
    server.stop().await;
    // Waiting would never end: 30 s tells the two apart on any machine.
    let lost = tokio::time::timeout(Duration::from_secs(30), limit.take(1)).await;
    assert!(matches!(lost, Ok(Err(_))), "an error, not a wait: {lost:?}");
}
