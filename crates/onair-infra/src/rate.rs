//! A rate limit every node shares (scale-out): one GCRA bucket in Redis, updated by a
//! script so a check and its take are one atomic step. However many worker processes
//! ask, together they get at most `per_second` tokens a second, plus a second's burst.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::{InfraError, RedisPool};

/// GCRA over Redis' own clock (microseconds): the key holds the theoretical arrival time
/// of the next token, and a second's worth of tokens may be taken ahead of it (the
/// burst). Returns 0 when the tokens are taken, otherwise the microseconds to wait
/// before they can be (taking nothing).
const TAKE: &str = r"
local interval = tonumber(ARGV[1])
local burst = 1000000
local cost = interval * tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + cost - burst - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tat + cost, 'PX', math.ceil((tat + cost - now) / 1000) + 1000)
return 0
";

pub struct SharedRateLimit {
    pool: RedisPool,
    key: String,
    script: redis::Script,
    /// Microseconds per token.
    interval: f64,
}

impl SharedRateLimit {
    pub fn new(pool: RedisPool, key: impl Into<String>, per_second: NonZeroU32) -> Self {
        Self {
            pool,
            key: key.into(),
            script: redis::Script::new(TAKE),
            interval: 1_000_000.0 / f64::from(per_second.get()),
        }
    }

    /// Takes `n` tokens now if the bucket has them; otherwise says how long until it
    /// will, taking nothing. `n` above `per_second` never fits.
    pub async fn try_take(&self, n: u32) -> Result<Duration, InfraError> {
        let wait_us: u64 = self
            .script
            .key(&self.key)
            .arg(self.interval)
            .arg(n)
            .invoke_async(&mut self.pool.get())
            .await?;
        Ok(Duration::from_micros(wait_us))
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
