//! The read-through cache: one load for concurrent misses, nothing kept that a write
//! overtook, and (on Redis) nodes sharing entries and seeing each other's invalidations,
//! and reads going on when Redis is gone.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use onair_infra::{Cache, Miss, RedisBus, RedisPool, Scope, SharedLayer};
use tokio::sync::Notify;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);

/// A database read that takes a moment, counted.
async fn load(loads: &AtomicUsize, value: &str) -> Result<Option<String>, Infallible> {
    loads.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(Some(value.to_owned()))
}

fn value<E>(outcome: Result<String, Arc<Miss<E>>>) -> String {
    outcome.unwrap_or_else(|_| panic!("a value"))
}

#[tokio::test]
async fn concurrent_misses_load_once_and_invalidation_reloads() {
    let cache = Cache::<String>::local("t", Scope::PerKey, 100, HOUR);
    let loads = AtomicUsize::new(0);
    let got = join_all((0..50).map(|_| cache.get_or_load("k", || load(&loads, "v1")))).await;
    assert!(got.into_iter().all(|v| value(v) == "v1"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "v2")).await),
        "v1"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    cache.invalidate("k").await;
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "v2")).await),
        "v2"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn nothing_found_is_not_kept() {
    let cache = Cache::<String>::local("t", Scope::PerKey, 100, HOUR);
    let missing = cache
        .get_or_load("k", || async { Ok::<_, Infallible>(None) })
        .await;
    assert!(matches!(
        missing.as_ref().map_err(|e| &**e),
        Err(Miss::NotFound)
    ));
    let loads = AtomicUsize::new(0);
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "made")).await),
        "made"
    );
}

#[tokio::test]
async fn a_load_overtaken_by_a_write_is_not_kept() {
    let cache = Arc::new(Cache::<String>::local("t", Scope::Whole, 100, HOUR));
    let read = Arc::new(Notify::new());
    let slow = {
        let (cache, read) = (Arc::clone(&cache), Arc::clone(&read));
        tokio::spawn(async move {
            cache
                .get_or_load("k", || async move {
                    read.notified().await;
                    Ok::<_, Infallible>(Some("before the write".to_owned()))
                })
                .await
                .map_err(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The write lands and invalidates while the read is still on its way back.
    cache.invalidate_all().await;
    read.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), "before the write");
    let loads = AtomicUsize::new(0);
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "after")).await),
        "after"
    );
}

/// A node's cache on Redis, its bus delivering invalidations to it.
async fn node(url: &str, prefix: &str, scope: Scope) -> Arc<Cache<String>> {
    let pool = RedisPool::connect(url, 2).await.unwrap();
    let cell: Arc<OnceLock<Arc<Cache<String>>>> = Arc::default();
    let deliver = Arc::clone(&cell);
    let bus = RedisBus::start(
        url,
        pool.clone(),
        Arc::new(move |_topic: &str, key: &[u8]| {
            if let Some(cache) = deliver.get() {
                cache.forget_local(key);
            }
        }),
    )
    .unwrap();
    let layer = SharedLayer {
        pool: pool.clone(),
        bus: bus.clone(),
        prefix: prefix.to_owned(),
    };
    let cache = Arc::new(Cache::shared("t", scope, 100, (HOUR, HOUR), layer));
    bus.subscribe(cache.topic()).await.unwrap();
    let _ = cell.set(Arc::clone(&cache));
    cache
}

/// Waits until `n` nodes listen on `topic` (a subscription is made in the background).
async fn subscribed(url: &str, topic: &str, n: i64) {
    let pool = RedisPool::connect(url, 1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(topic)
            .query_async(&mut pool.get())
            .await
            .unwrap();
        if count >= n {
            return;
        }
        assert!(Instant::now() < deadline, "nodes never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `key` on `cache` until it shows `expected` (a node hears an invalidation a
/// moment after it was made).
async fn shows(cache: &Cache<String>, key: &str, expected: &str) {
    let loads = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = value(cache.get_or_load(key, || load(&loads, expected)).await);
        if got == expected {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, not {expected}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
#[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
async fn nodes_share_entries_and_invalidations_through_redis() {
    let url = crate::redis_url();
    for scope in [Scope::PerKey, Scope::Whole] {
        let prefix = format!("test:{}:", Uuid::new_v4());
        let (a, b) = (
            node(&url, &prefix, scope).await,
            node(&url, &prefix, scope).await,
        );
        subscribed(&url, a.topic(), 2).await;
        let loads = AtomicUsize::new(0);
        assert_eq!(value(a.get_or_load("k", || load(&loads, "v1")).await), "v1");
        // B finds A's entry in Redis: no second database read.
        assert_eq!(value(b.get_or_load("k", || load(&loads, "x")).await), "v1");
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        // A write on A: B's own copy and the shared entry are both outdated.
        match scope {
            Scope::PerKey => a.invalidate("k").await,
            Scope::Whole => a.invalidate_all().await,
        }
        shows(&b, "k", "v2").await;
        assert_eq!(value(a.get_or_load("k", || load(&loads, "x")).await), "v2");
    }
}

#[tokio::test]
#[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
async fn reads_go_on_without_redis() {
    let mut redis = onair_infra::testing::RedisServer::start().await;
    let cache = node(redis.url(), "test:", Scope::PerKey).await;
    let loads = AtomicUsize::new(0);
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "v1")).await),
        "v1"
    );
    redis.stop().await;
    // The write's invalidation cannot reach Redis; this node forgets at once all the same,
    // and the next read comes from the database.
    cache.invalidate("k").await;
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "v2")).await),
        "v2"
    );
    assert_eq!(
        value(cache.get_or_load("k", || load(&loads, "x")).await),
        "v2"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}
