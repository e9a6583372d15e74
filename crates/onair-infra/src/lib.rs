//! Infrastructure behind small traits, each with an in-process implementation (embedded
//! mode) and a Redis or object-storage one (scale-out): viewer counting, the media
//! store, rate limits (per client, and one shared by every worker), read-through caches,
//! marks that expire (read-your-writes); and the circuit breakers of outbound dependencies.

mod breaker;
mod bus;
mod cache;
mod marks;
mod media_store;
mod rate;
mod redis_connection;
mod redis_pool;
mod s3;
#[cfg(feature = "testing")]
pub mod testing;
mod viewers;

pub use breaker::{BreakerOpen, BreakerSettings, BreakerState, Breakers, CircuitBreaker, Permit};
pub use bus::{Handler, RedisBus};
pub use cache::{Cache, Miss, Scope, SharedLayer};
pub use marks::RecentMarks;
pub use media_store::{MediaStore, MediaStoreError, StoredObject};
pub use rate::{
    Decision, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter, SharedRateLimit,
};
pub use redis_connection::{RedisConnection, SPAN_TARGET as REDIS_SPAN_TARGET};
pub use redis_pool::{RedisMemory, RedisOptions, RedisPool};
pub use s3::{S3Limits, S3Options};
pub use viewers::{
    MemoryViewerCounter, RedisViewerCounter, VIEWER_WINDOW_MS, ViewerCounter, ViewerCounts,
    ViewerId,
};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: no answer in time")]
    Timeout,
}
