//! Infrastructure behind small traits, each with an in-process implementation (embedded
//! mode) and a Redis one (scale-out): so far, viewer counting.

mod redis_pool;
mod viewers;

pub use redis_pool::RedisPool;
pub use viewers::{
    MemoryViewerCounter, RedisViewerCounter, VIEWER_WINDOW_MS, ViewerCounter, ViewerCounts,
    ViewerId,
};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}
