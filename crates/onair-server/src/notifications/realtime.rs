//! New notifications pushed to users connected to the site (an SSE stream per browser
//! tab). Each node keeps its own listeners; a fan-out batch is announced once, with its
//! recipients, on the same Redis bus chat uses (one channel for all nodes, subscribed
//! while the node has listeners), or straight to this node's listeners when embedded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use onair_infra::{InfraError, RedisBus, RedisPool};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

const TOPIC: &str = "onair:notifications";
/// Events a slow listener may fall behind by; past it, it misses them (the inbox has them).
const LISTENER_QUEUE: usize = 32;

#[derive(Serialize, Deserialize)]
struct Announcement {
    recipients: Vec<Uuid>,
    event: String,
}

type Listeners = Mutex<HashMap<Uuid, Vec<(u64, mpsc::Sender<Arc<str>>)>>>;

pub struct Notifier {
    listeners: Arc<Listeners>,
    next_id: std::sync::atomic::AtomicU64,
    bus: Option<RedisBus>,
}

/// A connected user's feed; leaving drops it from the node's listeners.
pub struct Listener {
    pub events: mpsc::Receiver<Arc<str>>,
    user: Uuid,
    id: u64,
    notifier: Weak<Notifier>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(notifier) = self.notifier.upgrade() {
            notifier.remove(self.user, self.id);
        }
    }
}

impl Notifier {
    /// `redis`: the URL and pool of the Redis every node shares (scale-out).
    pub fn new(redis: Option<(&str, RedisPool)>) -> Result<Arc<Self>, InfraError> {
        let listeners: Arc<Listeners> = Arc::default();
        let bus = match redis {
            Some((url, pool)) => {
                let local = Arc::clone(&listeners);
                let deliver = move |_: &str, payload: &[u8]| match serde_json::from_slice::<
                    Announcement,
                >(payload)
                {
                    Ok(a) => deliver(&local, &a.recipients, &Arc::from(a.event)),
                    Err(e) => tracing::warn!(error = %e, "dropped an unreadable notification"),
                };
                Some(RedisBus::start(url, pool, Arc::new(deliver))?)
            }
            None => None,
        };
        Ok(Arc::new(Self {
            listeners,
            next_id: Default::default(),
            bus,
        }))
    }

    /// Starts a feed for `user` on this node. Without Redis it hears this node's
    /// announcements, and the others' once the bus subscribes again.
    pub async fn listen(self: &Arc<Self>, user: Uuid) -> Listener {
        let (sender, events) = mpsc::channel(LISTENER_QUEUE);
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = {
            let mut listeners = self.listeners.lock().expect("listeners lock");
            let first = listeners.is_empty();
            listeners.entry(user).or_default().push((id, sender));
            first
        };
        let listener = Listener {
            events,
            user,
            id,
            notifier: Arc::downgrade(self),
        };
        if first
            && let Some(bus) = &self.bus
            && let Err(error) = bus.subscribe(TOPIC).await
        {
            tracing::warn!(%error, "notification feed without Redis for now");
        }
        listener
    }

    fn remove(&self, user: Uuid, id: u64) {
        let now_empty = {
            let mut listeners = self.listeners.lock().expect("listeners lock");
            if let Some(feeds) = listeners.get_mut(&user) {
                feeds.retain(|(feed, _)| *feed != id);
                if feeds.is_empty() {
                    listeners.remove(&user);
                }
            }
            listeners.is_empty()
        };
        if now_empty && let Some(bus) = self.bus.clone() {
            tokio::spawn(async move {
                if let Err(e) = bus.unsubscribe(TOPIC).await {
                    tracing::warn!(error = %e, "cannot unsubscribe from notifications");
                }
            });
        }
    }

    /// Sends `event` to whichever of `recipients` are connected, on any node.
    pub async fn announce(&self, recipients: Vec<Uuid>, event: String) {
        if recipients.is_empty() {
            return;
        }
        match &self.bus {
            Some(bus) => {
                let announcement = Announcement { recipients, event };
                let payload = serde_json::to_vec(&announcement).expect("announcements serialize");
                // Realtime is best effort (the inbox holds every notification): without
                // Redis, this node's listeners still hear it.
                let listening = bus.is_listening();
                let published = bus.publish(TOPIC, &payload).await;
                if let Err(e) = &published {
                    tracing::warn!(error = %e, "cannot announce notifications across nodes");
                }
                if published.is_err() || !listening {
                    let Announcement { recipients, event } = announcement;
                    deliver(&self.listeners, &recipients, &Arc::from(event));
                }
            }
            None => deliver(&self.listeners, &recipients, &Arc::from(event)),
        }
    }
}

fn deliver(listeners: &Listeners, recipients: &[Uuid], event: &Arc<str>) {
    let listeners = listeners.lock().expect("listeners lock");
    if listeners.is_empty() {
        return;
    }
    for recipient in recipients {
        for (_, feed) in listeners.get(recipient).into_iter().flatten() {
            let _ = feed.try_send(Arc::clone(event));
        }
    }
}
