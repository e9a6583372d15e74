//! Rate limits, all GCRA (a bucket of `limit` units refilled one every
//! `window / limit`): keyed per-client limits ([`RateLimiter`]) in process (embedded) or
//! in Redis (scale-out, every node sharing each key's bucket), and one bucket every worker
//! process shares ([`SharedRateLimit`]). In Redis a check and its take are one script:
//! one atomic round trip, on Redis' own clock so nodes' clocks never disagree.

use std::num::NonZeroU32;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use crate::{InfraError, RedisPool};

/// GCRA in microseconds. KEYS[1] holds the theoretical arrival time (TAT) of the next
/// unit; units up to ARGV[2] µs ahead of it may be taken at once (the burst). ARGV[1]: µs
/// per unit; ARGV[3]: units to take. Returns {wait, remaining, reset}: µs until the units
/// would fit (0: taken now), whole units left, µs until the bucket is full again.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = interval * tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + cost - burst - now
if wait <= 0 then
  wait = 0
  tat = tat + cost
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {math.ceil(wait), math.floor((burst - (tat - now)) / interval), math.ceil(tat - now)}
";

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// What the script answered, in microseconds and units.
struct Taken {
    wait_us: u64,
    remaining: u32,
    reset_us: u64,
}

async fn gcra(
    pool: &RedisPool,
    key: &str,
    interval_us: f64,
    burst_us: f64,
    units: u32,
) -> Result<Taken, InfraError> {
    let (wait_us, remaining, reset_us): (u64, u32, u64) = SCRIPT
        .key(key)
        .arg(interval_us)
        .arg(burst_us)
        .arg(units)
        .invoke_async(&mut pool.get())
        .await?;
    Ok(Taken {
        wait_us,
        remaining,
        reset_us,
    })
}

/// `limit` requests per `window`: all at once, or spread out as the bucket refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: NonZeroU32,
    pub window: Duration,
}

impl Quota {
    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// How long the bucket takes to get one unit back.
    fn interval(&self) -> Duration {
        self.window / self.limit.get()
    }
}

/// What a check answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request fits the quota (and was counted).
    pub allowed: bool,
    /// Requests that would fit right now.
    pub remaining: u32,
    /// When allowed, until the quota is whole again; when refused, until the next request
    /// fits.
    pub reset: Duration,
}

/// A quota per key (a user, a client address): every key has its own bucket.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    fn quota(&self) -> Quota;
    /// Counts one request of `key` if it fits.
    async fn check(&self, key: &str) -> Result<Decision, InfraError>;
}

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Embedded mode: governor's keyed GCRA in this process. Keys whose bucket is full again
/// are forgotten once a window, on the next check: memory follows the active clients.
pub struct MemoryRateLimiter {
    quota: Quota,
    limiter: Keyed,
    swept: Mutex<Instant>,
}

impl MemoryRateLimiter {
    pub fn new(quota: Quota) -> Self {
        let governed = governor::Quota::with_period(quota.interval())
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
            .allow_burst(quota.limit);
        Self {
            quota,
            limiter: governor::RateLimiter::keyed(governed).with_middleware(),
            swept: Mutex::new(Instant::now()),
        }
    }

    /// A sweep is O(keys): at most one a window, and never two at once.
    fn sweep(&self) {
        let Ok(mut swept) = self.swept.try_lock() else {
            return;
        };
        if swept.elapsed() >= self.quota.window {
            *swept = Instant::now();
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    fn quota(&self) -> Quota {
        self.quota
    }

    async fn check(&self, key: &str) -> Result<Decision, InfraError> {
        self.sweep();
        Ok(match self.limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    // governor keeps the arrival time to itself: this is within one
                    // refill of it.
                    reset: self.quota.interval() * (self.quota.limit.get() - remaining),
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                remaining: 0,
                reset: not_until.wait_time_from(DefaultClock::default().now()),
            },
        })
    }
}

/// Scale-out: each key's bucket in Redis, shared by every node, expiring once full.
pub struct RedisRateLimiter {
    pool: RedisPool,
    prefix: String,
    quota: Quota,
}

impl RedisRateLimiter {
    /// Buckets live at `prefix` + key.
    pub fn new(pool: RedisPool, prefix: impl Into<String>, quota: Quota) -> Self {
        Self {
            pool,
            prefix: prefix.into(),
            quota,
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn quota(&self) -> Quota {
        self.quota
    }

    async fn check(&self, key: &str) -> Result<Decision, InfraError> {
        let interval = self.quota.interval().as_secs_f64() * 1e6;
        let burst = self.quota.window.as_secs_f64() * 1e6;
        let key = format!("{}{key}", self.prefix);
        let taken = gcra(&self.pool, &key, interval, burst, 1).await?;
        let allowed = taken.wait_us == 0;
        Ok(Decision {
            allowed,
            remaining: taken.remaining,
            reset: Duration::from_micros(if allowed {
                taken.reset_us
            } else {
                taken.wait_us
            }),
        })
    }
}

/// One bucket every node shares: however many worker processes ask, together they get at
/// most `per_second` tokens a second, plus a second's burst.
pub struct SharedRateLimit {
    pool: RedisPool,
    key: String,
    /// Microseconds per token.
    interval: f64,
}

impl SharedRateLimit {
    pub fn new(pool: RedisPool, key: impl Into<String>, per_second: NonZeroU32) -> Self {
        Self {
            pool,
            key: key.into(),
            interval: 1_000_000.0 / f64::from(per_second.get()),
        }
    }

    /// Takes `n` tokens now if the bucket has them; otherwise says how long until it
    /// will, taking nothing. `n` above `per_second` never fits.
    pub async fn try_take(&self, n: u32) -> Result<Duration, InfraError> {
        let taken = gcra(&self.pool, &self.key, self.interval, 1_000_000.0, n).await?;
        Ok(Duration::from_micros(taken.wait_us))
    }

    /// Waits until `n` tokens are taken; `n` must not exceed `per_second`, which would
    /// never fit (callers validate their batch against the rate at startup).
    pub async fn take(&self, n: u32) -> Result<(), InfraError> {
        loop {
            let wait = self.try_take(n).await?;
            if wait.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_keys_are_forgotten_once_a_window() {
        let quota = Quota {
            limit: NonZeroU32::new(2).unwrap(),
            window: Duration::from_millis(20),
        };
        let limiter = MemoryRateLimiter::new(quota);
        for key in ["a", "b", "c"] {
            assert!(limiter.check(key).await.unwrap().allowed);
        }
        assert_eq!(limiter.limiter.len(), 3);
        tokio::time::sleep(Duration::from_millis(40)).await;
        // The next check sweeps the buckets that are full again, then adds its own.
        assert!(limiter.check("d").await.unwrap().allowed);
        assert_eq!(limiter.limiter.len(), 1);
    }
}
