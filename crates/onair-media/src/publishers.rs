//! The publishes this node's ingest is running, by user, so that the application can stop
//! one at once (its stream key rotated, its broadcast ended). An ingest on another node
//! notices the same change when its session re-checks the broadcast (`rtmp.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::Publication;

#[derive(Clone, Default)]
pub struct Publishers(Arc<Mutex<HashMap<Uuid, Running>>>);

struct Running {
    session_id: Uuid,
    stop: Arc<Notify>,
}

impl Publishers {
    /// Disconnects the user's publisher if this node runs it; its ingest slot is freed.
    pub fn stop(&self, user_id: Uuid) {
        if let Some(running) = self.lock().get(&user_id) {
            running.stop.notify_one();
        }
    }

    pub(crate) fn register(&self, publication: &Publication, stop: Arc<Notify>) {
        let running = Running {
            session_id: publication.session_id,
            stop,
        };
        self.lock().insert(publication.user_id, running);
    }

    pub(crate) fn unregister(&self, publication: &Publication) {
        let mut running = self.lock();
        // A newer publish of the same user may have replaced this one.
        if running
            .get(&publication.user_id)
            .is_some_and(|r| r.session_id == publication.session_id)
        {
            running.remove(&publication.user_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
