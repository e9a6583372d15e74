//! `archive_process`: a broadcast's recording as streamed into its final VOD — the
//! source copied and lower renditions encoded, a thumbnail and the exact duration —
//! published under a fresh prefix and switched to `ready` in one update, after which
//! the live spool it came from is removed.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use onair_media::{VodError, VodOutput, build_vod, fetch_recording};
use onair_store::jobs::{ArchiveJob, ClaimedJob, JobLease};
use onair_store::{Archive, ArchiveStatus, ArchiveStore, ReadyArchive, StoreError};
use uuid::Uuid;

use super::{
    Checkpoint, Processing, Progress, checkpointed, discard, live_prefix, payload, store_failure,
};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};

pub(super) struct ArchiveHandler(pub(super) Arc<Processing>);

/// The rendition the VOD is built from: the publisher's own encoding.
const SOURCE: &str = "source";

#[async_trait]
impl JobHandler for ArchiveHandler {
    async fn run(&self, job: &ClaimedJob, lease: &LeaseClock) -> Result<(), JobFailure> {
        let processing = &self.0;
        let ArchiveJob { archive_id, .. } = payload(job)?;
        let archives = &processing.stores.archives;
        // Deleted meanwhile, or published by an earlier attempt that lost its lease late.
        let Some(archive) = archives.archive(archive_id).await? else {
            return Ok(());
        };
        if archive.status == ArchiveStatus::Ready {
            return Ok(());
        }
        let checkpoint = ArchiveCheckpoint {
            archives: Arc::clone(archives),
            job: job.lease(),
            archive_id,
            progress: Arc::default(),
            lease,
        };
        let version = Uuid::now_v7();
        let prefix = format!("vod/{archive_id}/{version}/");
        let work = Arc::clone(processing).publish(
            job.lease(),
            archive.clone(),
            prefix.clone(),
            Arc::clone(&checkpoint.progress),
        );
        let published = match checkpointed(lease, work, &checkpoint).await {
            Ok(published) => published,
            Err(stopped) => {
                discard(&processing.files, &prefix).await;
                return match stopped {
                    // Deleted while it was processed: nothing left to do.
                    StoreError::NotFound => Ok(()),
                    other => Err(other.into()),
                };
            }
        };
        let vod = match published {
            Ok(vod) => vod,
            Err(error) => {
                discard(&processing.files, &prefix).await;
                return Err(match processing.failure(job, error) {
                    Ok(retry) => retry,
                    Err(reason) => {
                        archives.archive_failed(archive_id, &reason).await?;
                        JobFailure::Permanent(reason)
                    }
                });
            }
        };
        let ready = ReadyArchive {
            playlist_path: format!("{prefix}{}", onair_media::MASTER_PLAYLIST),
            thumbnail_path: Some(format!("{prefix}thumbnail.jpg")),
            duration_ms: (vod.duration_secs * 1000.0).round() as i64,
            size_bytes: i64::try_from(vod.bytes).unwrap_or(i64::MAX),
        };
        match archives.archive_ready(job.lease(), archive_id, ready).await {
            Ok(true) => {
                // The VOD replaces the recording as streamed.
                discard(&processing.files, &live_prefix(archive.stream_id)).await;
                Ok(())
            }
            Ok(false) => {
                discard(&processing.files, &prefix).await;
                Ok(())
            }
            Err(e) => {
                discard(&processing.files, &prefix).await;
                Err(e.into())
            }
        }
    }
}

/// The processing's progress, written with the lease it renews.
struct ArchiveCheckpoint<'a> {
    archives: Arc<dyn ArchiveStore>,
    job: JobLease,
    archive_id: Uuid,
    progress: Arc<Progress>,
    lease: &'a LeaseClock,
}

#[async_trait]
impl Checkpoint for ArchiveCheckpoint<'_> {
    async fn save(&self) -> Result<(), StoreError> {
        let until = self.lease.renewed();
        self.archives
            .archive_progress(self.job, self.archive_id, self.progress.get(), until)
            .await
    }
}

impl Processing {
    /// Builds `archive`'s VOD in a scratch directory and uploads it under `prefix`.
    async fn publish(
        self: Arc<Self>,
        job: JobLease,
        archive: Archive,
        prefix: String,
        progress: Arc<Progress>,
    ) -> Result<VodOutput, VodError> {
        let _slot = self.slot().await;
        let scratch = self.scratch(job).await?;
        let input =
            fetch_recording(&self.files, archive.stream_id, SOURCE, &scratch.join("in")).await?;
        let output = scratch.join("out");
        let started = Instant::now();
        let vod = build_vod(&self.vod, &input, &output, &mut |p| progress.set(p)).await?;
        let took = started.elapsed().as_secs_f64();
        metrics::histogram!("onair_archive_processing_seconds").record(took);
        if took > 0.0 {
            metrics::histogram!("onair_archive_processing_realtime_factor")
                .record(vod.duration_secs / took);
        }
        self.files
            .upload_dir(&output, prefix.trim_end_matches('/'))
            .await
            .map_err(store_failure)?;
        metrics::counter!("onair_media_published_bytes_total", "kind" => "vod")
            .increment(vod.bytes);
        tracing::info!(
            archive = %archive.id,
            seconds = vod.duration_secs,
            renditions = ?vod.renditions,
            took_secs = took,
            "archive processed"
        );
        Ok(vod)
    }
}
