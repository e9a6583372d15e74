//! Media jobs: a broadcast's recording into its final VOD (`archive_process`), clips
//! (`clip_cut`), removing deleted media (`media_delete`), and the retention sweep. They
//! run in the job runners of `onair serve` and `onair worker`, never inside a request;
//! ffmpeg runs niced with bounded threads, and a process runs at most `concurrency` of
//! them at once however many job slots it has (review S5).

mod archive;
mod cleanup;
mod clip;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use onair_infra::{MediaStore, MediaStoreError};
use onair_media::{VodError, VodSettings};
use onair_store::jobs::{ClaimedJob, JobLease, kinds};
use onair_store::{ArchiveStore, ClipStore, JobStore, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

use crate::jobs::{JobFailure, JobHandlers, LeaseClock};

pub use cleanup::remove_expired_archives;

/// The `[processing]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Media jobs this process runs at once (each runs one ffmpeg).
    pub concurrency: usize,
    /// ffmpeg threads per job.
    pub threads: u32,
    /// libx264 `-preset` of the encoded renditions and clips.
    pub preset: String,
    /// VOD segment length.
    pub segment_secs: u32,
    /// Heights of the encoded VOD renditions (only those below the source are made).
    pub ladder: Vec<u32>,
    /// `nice` level of ffmpeg (0: normal priority).
    pub nice: i32,
    /// Archives older than this many days are deleted; none: kept forever.
    pub retention_days: Option<u32>,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        let vod = VodSettings::default();
        Self {
            concurrency: 1,
            // One thread: with two, two builds beside the API on a 2-core node took its
            // p95 to 1.6× idle even under nice; with one, 1.3× (bench/RESULTS.md,
            // "archive processing"). Dedicated `onair worker` nodes can raise it.
            threads: 1,
            preset: vod.preset,
            segment_secs: vod.segment_seconds,
            ladder: vod.ladder,
            nice: vod.nice.unwrap_or(0),
            retention_days: None,
        }
    }
}

impl ProcessingConfig {
    fn vod(&self, ffmpeg: PathBuf) -> VodSettings {
        VodSettings {
            ffmpeg,
            threads: self.threads,
            preset: self.preset.clone(),
            segment_seconds: self.segment_secs,
            ladder: self.ladder.clone(),
            nice: (self.nice != 0).then_some(self.nice),
        }
    }
}

/// The storage a media job uses.
#[derive(Clone)]
pub struct ProcessingStores {
    pub archives: Arc<dyn ArchiveStore>,
    pub clips: Arc<dyn ClipStore>,
    pub jobs: Arc<dyn JobStore>,
}

/// What the media jobs share: the stores, where scratch files go, the encoder settings
/// and this process's media-job slots.
pub struct Processing {
    stores: ProcessingStores,
    files: MediaStore,
    /// Scratch directories of running jobs (removed when each ends).
    work_dir: PathBuf,
    vod: VodSettings,
    slots: Semaphore,
    /// The job queue's attempts: the last failure of a job marks its media failed.
    max_attempts: i32,
}

impl Processing {
    pub fn new(
        config: &ProcessingConfig,
        stores: ProcessingStores,
        files: MediaStore,
        (ffmpeg, work_dir): (PathBuf, PathBuf),
        max_attempts: i32,
    ) -> Self {
        Self {
            stores,
            files,
            work_dir,
            vod: config.vod(ffmpeg),
            slots: Semaphore::new(config.concurrency),
            max_attempts,
        }
    }

    /// Adds the media jobs' handlers.
    pub fn register(self: &Arc<Self>, handlers: &mut JobHandlers) {
        let processing = || Arc::clone(self);
        handlers.register(
            kinds::ARCHIVE_PROCESS,
            Arc::new(archive::ArchiveHandler(processing())),
        );
        handlers.register(kinds::CLIP_CUT, Arc::new(clip::ClipHandler(processing())));
        handlers.register(
            kinds::MEDIA_DELETE,
            Arc::new(cleanup::MediaDeleteHandler(processing())),
        );
    }

    /// A media-job slot of this process.
    async fn slot(&self) -> SemaphorePermit<'_> {
        self.slots
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// A fresh scratch directory for one attempt of `job`, removed when dropped.
    async fn scratch(&self, job: JobLease) -> Result<Scratch, VodError> {
        let path = self.work_dir.join(format!("{}-{}", job.id, job.attempt));
        let _ = tokio::fs::remove_dir_all(&path).await;
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| VodError::Failed(format!("scratch directory: {e}")))?;
        Ok(Scratch(path))
    }

    /// What a failed attempt means: `InvalidInput` never succeeds, and the job's last
    /// attempt gives up. `Err` when the job gives up: the caller marks its media failed
    /// with that reason.
    fn failure(&self, job: &ClaimedJob, error: VodError) -> Result<JobFailure, String> {
        let reason = error.to_string();
        let last = matches!(error, VodError::InvalidInput(_)) || job.attempts >= self.max_attempts;
        metrics::counter!("onair_media_job_failures_total", "kind" => job.kind.clone(), "final" => last.to_string())
            .increment(1);
        if last {
            Err(reason)
        } else {
            Ok(JobFailure::Retry(reason))
        }
    }
}

/// A job's scratch directory, removed with what is in it when the job ends.
struct Scratch(PathBuf);

impl Scratch {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a long job writes as it runs: its progress, and at least its lease.
#[async_trait]
trait Checkpoint: Send + Sync {
    async fn save(&self) -> Result<(), StoreError>;
}

/// Runs `work` while `checkpoint` renews the job's claim every `lease.budget()` (and
/// records progress); a failed checkpoint (the lease lost, the media deleted) stops the
/// work — dropping it kills its ffmpeg.
async fn checkpointed<T>(
    lease: &LeaseClock,
    work: impl Future<Output = T> + Send,
    checkpoint: &dyn Checkpoint,
) -> Result<T, StoreError> {
    tokio::pin!(work);
    let every = lease.budget().min(PROGRESS_EVERY);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = tick.tick() => checkpoint.save().await?,
        }
    }
}

/// How often a running job shows its progress (and renews its lease, at least).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Progress 0–1 shared between ffmpeg's progress callback and the checkpoints.
#[derive(Default)]
struct Progress(AtomicU64);

impl Progress {
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn store_failure(error: MediaStoreError) -> VodError {
    VodError::Store(error.to_string())
}

/// Removes what an attempt uploaded under `prefix` (best effort: the lifecycle rules and
/// the next delete catch what is left).
async fn discard(files: &MediaStore, prefix: &str) {
    if let Err(e) = files.delete_prefix(prefix).await {
        tracing::warn!(%prefix, error = %e, "could not remove unpublished media");
    }
}

/// The key of the directory `key` is in.
fn parent(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `live/<stream_id>/`: a broadcast's live HLS and recording.
fn live_prefix(stream_id: Uuid) -> String {
    format!("{}/", onair_media::live_key(stream_id))
}

fn payload<T: serde::de::DeserializeOwned>(job: &ClaimedJob) -> Result<T, JobFailure> {
    serde_json::from_str(&job.payload).map_err(JobFailure::payload)
}

/// Where scratch files of the media jobs go under the data directory.
pub fn work_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("work")
}
