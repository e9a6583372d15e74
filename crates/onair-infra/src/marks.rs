//! Marks that expire after a fixed window: a key marked on one node is seen marked by
//! every node until then (in Redis), or by this process (embedded). The server marks a
//! user who just wrote, so that their reads skip lagging replicas for a moment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::{InfraError, RedisPool};

pub enum RecentMarks {
    /// Each key's expiry; expired keys are swept when the map has doubled since the
    /// last sweep, so it stays within twice the keys marked in a window.
    Memory {
        window: Duration,
        marks: Mutex<(HashMap<String, Instant>, usize)>,
    },
    /// `prefix` + key, set with the window as its expiry.
    Redis {
        window: Duration,
        pool: RedisPool,
        prefix: String,
    },
}

impl RecentMarks {
    pub fn in_process(window: Duration) -> Self {
        Self::Memory {
            window,
            marks: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub fn redis(pool: RedisPool, prefix: impl Into<String>, window: Duration) -> Self {
        Self::Redis {
            window,
            pool,
            prefix: prefix.into(),
        }
    }

    /// Marks `key` for the window from now (a later mark extends it).
    pub async fn mark(&self, key: &str) -> Result<(), InfraError> {
        match self {
            Self::Memory { window, marks } => {
                let now = Instant::now();
                let mut guard = marks.lock().expect("marks lock");
                let (map, swept_len) = &mut *guard;
                map.insert(key.to_owned(), now + *window);
                if map.len() > 2 * (*swept_len).max(512) {
                    map.retain(|_, until| *until > now);
                    *swept_len = map.len();
                }
                Ok(())
            }
            Self::Redis {
                window,
                pool,
                prefix,
            } => {
                let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                let () = pool
                    .get()
                    .pset_ex(format!("{prefix}{key}"), 1u8, ms)
                    .await?;
                Ok(())
            }
        }
    }

    /// Whether `key` was marked within the window.
    pub async fn is_marked(&self, key: &str) -> Result<bool, InfraError> {
        match self {
            Self::Memory { marks, .. } => {
                let guard = marks.lock().expect("marks lock");
                Ok(guard
                    .0
                    .get(key)
                    .is_some_and(|until| *until > Instant::now()))
            }
            Self::Redis { pool, prefix, .. } => {
                Ok(pool.get().exists(format!("{prefix}{key}")).await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_lasts_its_window() {
        let marks = RecentMarks::in_process(Duration::from_millis(100));
        marks.mark("a").await.unwrap();
        assert!(marks.is_marked("a").await.unwrap());
        assert!(!marks.is_marked("b").await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!marks.is_marked("a").await.unwrap());
    }

    #[tokio::test]
    async fn expired_marks_are_swept() {
        let marks = RecentMarks::in_process(Duration::from_millis(1));
        for i in 0..2000 {
            marks.mark(&i.to_string()).await.unwrap();
            if i == 1000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let RecentMarks::Memory { marks, .. } = &marks else {
            unreachable!()
        };
        assert!(marks.lock().unwrap().0.len() < 1100);
    }
}
