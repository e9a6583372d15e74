//! `clip_cut`: a range of a broadcast — from its processed VOD once there is one, else
//! from the recording as streamed — cut into its own HLS playlist,
//! `clips/<id>/index.m3u8` with its segments beside it, and a thumbnail (see
//! `onair_media::cut_clip`). Only the segments around the range are fetched.

use std::sync::Arc;

use async_trait::async_trait;
use onair_media::{ClipOutput, ClipRange, VodError, cut_clip, fetch_playlist};
use onair_store::jobs::{ClaimedJob, ClipJob, JobLease};
use onair_store::{ArchiveStatus, Clip, JobStore, ReadyClip, StoreError};

use super::{Checkpoint, Processing, checkpointed, discard, parent, payload, store_failure};
use crate::jobs::{JobFailure, JobHandler, LeaseClock};

pub(super) struct ClipHandler(pub(super) Arc<Processing>);

#[async_trait]
impl JobHandler for ClipHandler {
    async fn run(&self, job: &ClaimedJob, lease: &LeaseClock) -> Result<(), JobFailure> {
        let processing = &self.0;
        let ClipJob { clip_id } = payload(job)?;
        let clips = &processing.stores.clips;
        let Some(clip) = clips.clip(clip_id).await? else {
            return Ok(());
        };
        if clip.status == ArchiveStatus::Ready {
            return Ok(());
        }
        let prefix = format!("clips/{clip_id}/");
        let work = Arc::clone(processing).cut(job.lease(), clip, prefix.clone());
        let checkpoint = LeaseCheckpoint {
            jobs: Arc::clone(&processing.stores.jobs),
            job: job.lease(),
            lease,
        };
        let cut = match checkpointed(lease, work, &checkpoint).await {
            Ok(Ok(cut)) => cut,
            Ok(Err(error)) => {
                discard(&processing.files, &prefix).await;
                return Err(match processing.failure(job, error) {
                    Ok(retry) => retry,
                    Err(reason) => {
                        clips.clip_failed(clip_id, &reason).await?;
                        JobFailure::Permanent(reason)
                    }
                });
            }
            Err(e) => {
                discard(&processing.files, &prefix).await;
                return Err(e.into());
            }
        };
        let ready = ReadyClip {
            playlist_path: format!("{prefix}index.m3u8"),
            thumbnail_path: Some(format!("{prefix}thumbnail.jpg")),
            duration_secs: cut.duration_secs,
            size_bytes: i64::try_from(cut.bytes).unwrap_or(i64::MAX),
        };
        match clips.clip_ready(job.lease(), clip_id, ready).await {
            Ok(true) => Ok(()),
            // Deleted while it was cut (its media_delete may have run before the upload).
            Ok(false) | Err(StoreError::NotFound) => {
                discard(&processing.files, &prefix).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A clip has no progress to show: its checkpoints only keep the lease.
struct LeaseCheckpoint<'a> {
    jobs: Arc<dyn JobStore>,
    job: JobLease,
    lease: &'a LeaseClock,
}

#[async_trait]
impl Checkpoint for LeaseCheckpoint<'_> {
    async fn save(&self) -> Result<(), StoreError> {
        self.jobs.extend_lease(self.job, self.lease.renewed()).await
    }
}

impl Processing {
    /// Cuts `clip` in a scratch directory and uploads it under `prefix`.
    async fn cut(
        self: Arc<Self>,
        job: JobLease,
        clip: Clip,
        prefix: String,
    ) -> Result<ClipOutput, VodError> {
        let _slot = self.slot().await;
        let scratch = self.scratch(job).await?;
        let range = ClipRange {
            start_secs: clip.start_secs,
            duration_secs: clip.duration_secs,
        };
        let source = self.clip_source(&clip).await?;
        let fetched =
            fetch_playlist(&self.files, &source, &scratch.join("in"), Some(range)).await?;
        let local = ClipRange {
            start_secs: range.start_secs - fetched.offset_secs,
            ..range
        };
        let output = scratch.join("out");
        let cut = cut_clip(&self.vod, &fetched.playlist, local, &output).await?;
        self.files
            .upload_dir(&output, prefix.trim_end_matches('/'))
            .await
            .map_err(store_failure)?;
        metrics::counter!("onair_media_published_bytes_total", "kind" => "clip")
            .increment(cut.bytes);
        Ok(cut)
    }

    /// The media playlist a clip is cut from: the VOD's source rendition once its
    /// archive is ready (the recording as streamed is gone then), else the recording.
    async fn clip_source(&self, clip: &Clip) -> Result<String, VodError> {
        let recording = onair_media::recording_key(clip.stream_id, "source");
        let Some(archive_id) = clip.archive_id else {
            return Ok(recording);
        };
        let archive = self
            .stores
            .archives
            .archive(archive_id)
            .await
            .map_err(|e| VodError::Store(e.to_string()))?
            .ok_or_else(|| VodError::InvalidInput("the archive was deleted".into()))?;
        Ok(match (archive.status, archive.playlist_path.as_deref()) {
            (ArchiveStatus::Ready, Some(master)) => format!("{}/source/index.m3u8", parent(master)),
            _ => recording,
        })
    }
}
