//! Cross-node publish/subscribe on Redis: one channel per topic, subscribed only while
//! this node has a local interest in it. A supervisor task owns the subscriber
//! connection, re-subscribes everything after a reconnect, and hands each message to the
//! node's handler.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::PubSubSink;

use crate::{InfraError, RedisPool};

/// Called with (topic, payload) for every message on a subscribed topic.
pub type Handler = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

#[derive(Clone)]
pub struct RedisBus {
    pool: RedisPool,
    shared: Arc<Shared>,
}

struct Shared {
    topics: Mutex<HashSet<String>>,
    sink: Mutex<Option<PubSubSink>>,
}

impl RedisBus {
    /// Starts the subscriber (it reconnects on its own) and returns the bus.
    pub fn start(url: &str, pool: RedisPool, handler: Handler) -> Result<Self, InfraError> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared {
            topics: Mutex::default(),
            sink: Mutex::default(),
        });
        tokio::spawn(subscriber(client, Arc::clone(&shared), handler));
        Ok(Self { pool, shared })
    }

    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), InfraError> {
        let _: i64 = self.pool.get().publish(topic, payload).await?;
        Ok(())
    }

    /// Whether the subscriber connection is up: while it is not, this node hears nothing
    /// published on the bus, its own messages included.
    pub fn is_listening(&self) -> bool {
        self.shared.sink.lock().expect("sink lock").is_some()
    }

    /// Starts receiving `topic` (no-op if already subscribed). On an error the topic
    /// stays wanted: the supervisor subscribes it when it reconnects.
    pub async fn subscribe(&self, topic: &str) -> Result<(), InfraError> {
        if !self
            .shared
            .topics
            .lock()
            .expect("topics lock")
            .insert(topic.to_owned())
        {
            return Ok(());
        }
        let sink = self.shared.sink.lock().expect("sink lock").clone();
        // Without a connection right now, the supervisor subscribes on reconnect.
        if let Some(mut sink) = sink {
            self.bounded(sink.subscribe(topic)).await?;
        }
        Ok(())
    }

    pub async fn unsubscribe(&self, topic: &str) -> Result<(), InfraError> {
        if !self
            .shared
            .topics
            .lock()
            .expect("topics lock")
            .remove(topic)
        {
            return Ok(());
        }
        let sink = self.shared.sink.lock().expect("sink lock").clone();
        if let Some(mut sink) = sink {
            self.bounded(sink.unsubscribe(topic)).await?;
        }
        Ok(())
    }

    /// The subscriber connection has no response timeout of its own.
    async fn bounded(
        &self,
        call: impl Future<Output = redis::RedisResult<()>>,
    ) -> Result<(), InfraError> {
        tokio::time::timeout(self.pool.deadline(), call)
            .await
            .map_err(|_| InfraError::Timeout)??;
        Ok(())
    }
}

async fn subscriber(client: redis::Client, shared: Arc<Shared>, handler: Handler) {
    loop {
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let topics: Vec<String> = shared
                    .topics
                    .lock()
                    .expect("topics lock")
                    .iter()
                    .cloned()
                    .collect();
                if topics.is_empty() || sink.subscribe(&topics).await.is_ok() {
                    *shared.sink.lock().expect("sink lock") = Some(sink);
                    while let Some(message) = stream.next().await {
                        handler(message.get_channel_name(), message.get_payload_bytes());
                    }
                }
                *shared.sink.lock().expect("sink lock") = None;
                tracing::warn!("Redis subscriber connection lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the Redis subscriber connection"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
