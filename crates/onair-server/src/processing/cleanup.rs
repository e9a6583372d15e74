//! Removing media: a deleted archive's or clip's objects (`media_delete`, enqueued with
//! the deletion), and archives past the retention period.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use onair_store::jobs::{ClaimedJob, MediaDeleteJob};
use onair_store::{ArchiveStore, StoreError, Timestamp};
use tokio::sync::watch;

use super::{Processing, payload};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};
use crate::shutdown::signalled;

pub(super) struct MediaDeleteHandler(pub(super) Arc<Processing>);

#[async_trait]
impl JobHandler for MediaDeleteHandler {
    async fn run(&self, job: &ClaimedJob, _lease: &LeaseClock) -> Result<(), JobFailure> {
        let MediaDeleteJob { prefixes } = payload(job)?;
        for prefix in &prefixes {
            let removed = self
                .0
                .files
                .delete_prefix(prefix)
                .await
                .map_err(|e| JobFailure::Retry(format!("removing {prefix}: {e}")))?;
            tracing::info!(%prefix, objects = removed, "deleted media removed");
        }
        Ok(())
    }
}

/// Archives deleted per pass of the retention sweep.
const RETENTION_BATCH: u32 = 100;

/// Deletes archives older than `retention` (their objects go through `media_delete`
/// jobs), hourly, until `stop` turns true. Every node may run it: a deletion is one
/// transaction, and an archive deleted twice is simply not found the second time.
pub async fn remove_expired_archives(
    archives: Arc<dyn ArchiveStore>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = signalled(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let cutoff = Timestamp::from(chrono::Utc::now() - retention);
        match expire(archives.as_ref(), cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "archives past the retention period deleted"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
    }
}

async fn expire(archives: &dyn ArchiveStore, cutoff: Timestamp) -> Result<usize, StoreError> {
    let mut deleted = 0;
    loop {
        let batch = archives.expired_archives(cutoff, RETENTION_BATCH).await?;
        for archive in &batch {
            match archives.delete_archive(archive.id, archive.owner.id).await {
                Ok(()) => deleted += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if batch.len() < RETENTION_BATCH as usize {
            return Ok(deleted);
        }
    }
}
