//! The per-key rate limit contract, in process and on Redis (keys under a random
//! prefix): GCRA with a bucket of `limit` requests refilled one every `window / limit`.

use std::num::NonZeroU32;
use std::time::Duration;

use onair_infra::{MemoryRateLimiter, Quota, RateLimiter, RedisPool, RedisRateLimiter};
use uuid::Uuid;

fn quota() -> Quota {
    Quota::per_minute(NonZeroU32::new(3).unwrap())
}

#[tokio::test]
async fn in_memory() {
    a_bucket_per_key(&MemoryRateLimiter::new(quota())).await;
}

#[tokio::test]
#[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]
async fn on_redis() {
    let pool = RedisPool::connect(&crate::redis_url(), 1).await.unwrap();
    let prefix = format!("onair-test-{}:", Uuid::new_v4().simple());
    let limiter = RedisRateLimiter::new(pool.clone(), &prefix, quota());
    a_bucket_per_key(&limiter).await;
    // Another node's limiter on the same keys shares the buckets.
    let other = RedisRateLimiter::new(pool, prefix, quota());
    assert!(!other.check("alice").await.unwrap().allowed);
}

async fn a_bucket_per_key(limiter: &dyn RateLimiter) {
    assert_eq!(limiter.quota(), quota());
    // 3 a minute: one back every 20 s.
    let interval = Duration::from_secs(20);
    for remaining in [2, 1, 0] {
        let decision = limiter.check("alice").await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
        // Whole again once what was taken has refilled (a second's slack for the clock).
        let taken = interval * (3 - remaining);
        assert!(
            decision.reset <= taken && decision.reset + Duration::from_secs(1) >= taken,
            "{decision:?}"
        );
    }
    let refused = limiter.check("alice").await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // The next one fits once the first taken has refilled.
    assert!(
        refused.reset <= interval && refused.reset + Duration::from_secs(1) >= interval,
        "{refused:?}"
    );
    // A refusal takes nothing, and other keys have buckets of their own.
    assert!(!limiter.check("alice").await.unwrap().allowed);
    assert_eq!(limiter.check("bob").await.unwrap().remaining, 2);
}
