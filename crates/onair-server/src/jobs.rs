//! Runs the durable job queue's jobs (issue 6). A runner claims ready jobs in batches,
//! runs each on its kind's handler with bounded concurrency, completes finished ones in
//! batches, and retries failures with exponential backoff and jitter until
//! `max_attempts`, when they become dead letters. Leases make a crashed worker's jobs
//! run again; handlers are idempotent, so a job may run more than once but its effect
//! happens once. Runners run inside `onair serve` and alone in `onair worker`.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::FutureExt;
use onair_store::jobs::{ClaimedJob, JobLease};
use onair_store::{Store, StoreError, Timestamp};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `[jobs]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    /// Job runner of this process: off for an HTTP-only node (run `onair worker` apart).
    pub enabled: bool,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    pub poll_ms: u64,
    /// How long a worker holds a job before another may take it over.
    pub lease_secs: u64,
    /// Attempts before a failing job becomes a dead letter.
    pub max_attempts: i32,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 8,
            poll_ms: 500,
            lease_secs: 30,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_secs: 600,
        }
    }
}

impl JobsSettings {
    /// What a runner needs of these settings.
    pub fn runner(&self) -> JobsConfig {
        JobsConfig {
            concurrency: self.concurrency,
            claim_batch: u32::try_from(self.concurrency)
                .unwrap_or(u32::MAX)
                .clamp(8, 256),
            poll: Duration::from_millis(self.poll_ms),
            lease: Duration::from_secs(self.lease_secs),
            max_attempts: self.max_attempts,
            backoff_base: self.backoff_base(),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
        }
    }

    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once by this runner.
    pub concurrency: usize,
    /// Jobs taken per claim.
    pub claim_batch: u32,
    /// How often an idle runner looks for work (it is also woken by local enqueues).
    pub poll: Duration,
    /// How long a claim holds a job before another worker may take it.
    pub lease: Duration,
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// How a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Worth another attempt (a timeout, a 5xx, the database unavailable).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (a malformed payload): straight to the dead letters.
    #[error("{0}")]
    Permanent(String),
    /// Another worker holds the job now; this one must leave it alone.
    #[error("lease lost")]
    LeaseLost,
}

impl From<StoreError> for JobFailure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::LeaseLost => Self::LeaseLost,
            other => Self::Retry(other.to_string()),
        }
    }
}

impl JobFailure {
    pub fn payload(err: serde_json::Error) -> Self {
        Self::Permanent(format!("unreadable payload: {err}"))
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, job: &ClaimedJob, lease: &LeaseClock) -> Result<(), JobFailure>;
}

/// What a long job needs to extend its lease as it checkpoints.
pub struct LeaseClock {
    lease: Duration,
}

impl LeaseClock {
    /// A lease deadline starting now.
    pub fn renewed(&self) -> Timestamp {
        Timestamp::from(chrono::Utc::now() + self.lease)
    }

    /// How long a job may work without renewing its lease: half of it, leaving the
    /// rest for finishing up before another worker could take the job over.
    pub fn budget(&self) -> Duration {
        self.lease / 2
    }
}

/// The handler of each job kind.
#[derive(Clone, Default)]
pub struct JobHandlers {
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
}

impl JobHandlers {
    pub fn register(&mut self, kind: &'static str, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(kind, handler);
    }
}

pub struct JobRunner {
    store: Arc<dyn Store>,
    handlers: JobHandlers,
    config: JobsConfig,
    wake: Arc<Notify>,
}

impl JobRunner {
    pub fn new(
        store: Arc<dyn Store>,
        handlers: JobHandlers,
        config: JobsConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            handlers,
            config,
            wake,
        }
    }

    /// Claims and runs jobs until `stop` turns true, then waits for running jobs.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Notify::new());
        let (done, completions) = mpsc::unbounded_channel();
        let completer = tokio::spawn(complete_in_batches(Arc::clone(&self.store), completions));
        let maintenance = tokio::spawn(Arc::clone(&self).maintain());
        // Keep up to a claim batch waiting beyond the running jobs, so a fast handler
        // never waits on a claim round trip.
        let backlog = self.config.concurrency + self.config.claim_batch as usize;
        while !*stop.borrow() {
            let room = backlog.saturating_sub(in_flight.load(Ordering::Acquire));
            if room == 0 {
                tokio::select! {
                    () = finished.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let limit = u32::try_from(room)
                .unwrap_or(u32::MAX)
                .min(self.config.claim_batch);
            let claimed = match self.store.claim_jobs(limit, self.lease_until()).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for job in claimed {
                in_flight.fetch_add(1, Ordering::AcqRel);
                let (runner, slots, in_flight, finished, done) = (
                    Arc::clone(&self),
                    Arc::clone(&slots),
                    Arc::clone(&in_flight),
                    Arc::clone(&finished),
                    done.clone(),
                );
                tokio::spawn(async move {
                    if let Ok(_slot) = slots.acquire().await
                        && let Some(lease) = runner.run_one(job).await
                    {
                        let _ = done.send(lease);
                    }
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    finished.notify_one();
                });
            }
        }
        maintenance.abort();
        // Let running jobs finish; what is not done by then runs again after its lease.
        let all = u32::try_from(self.config.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.config.lease, slots.acquire_many(all)).await;
        drop(done);
        let _ = completer.await;
    }

    fn lease_until(&self) -> Timestamp {
        LeaseClock {
            lease: self.config.lease,
        }
        .renewed()
    }

    /// Runs one job in a span of its own, linked to the span that enqueued it (a job is
    /// its own trace: it runs later, maybe many times, and may outlive the request).
    async fn run_one(&self, job: ClaimedJob) -> Option<JobLease> {
        let span = tracing::info_span!(
            parent: None,
            "job",
            job = %job.id,
            kind = job.kind,
            attempt = job.attempts,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            otel.name = format!("job {}", job.kind),
            otel.kind = "consumer",
            messaging.system = "onair_jobs",
            messaging.operation.type = "process",
            messaging.destination.name = job.kind,
            messaging.message.id = %job.id,
        );
        if let Some(cause) = job.caused_by() {
            span.add_link(cause.span_context());
        }
        crate::telemetry::record_ids(&span);
        self.run_in_span(job).instrument(span).await
    }

    /// Runs one job; returns its lease when it succeeded (to be completed in a batch).
    async fn run_in_span(&self, job: ClaimedJob) -> Option<JobLease> {
        let kind = job.kind.clone();
        let started = Instant::now();
        let outcome = match self.handlers.handlers.get(job.kind.as_str()) {
            Some(handler) => {
                let clock = LeaseClock {
                    lease: self.config.lease,
                };
                // A panicking handler is a failed attempt, not a dead worker.
                AssertUnwindSafe(handler.run(&job, &clock))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(JobFailure::Retry("the handler panicked".into())))
            }
            None => Err(JobFailure::Permanent(format!("no handler for {kind:?}"))),
        };
        metrics::histogram!("onair_job_duration_seconds", "kind" => kind.clone())
            .record(started.elapsed().as_secs_f64());
        let lease = job.lease();
        let settled = match outcome {
            Ok(()) => {
                metrics::counter!("onair_jobs_finished_total", "kind" => kind, "outcome" => "done")
                    .increment(1);
                return Some(lease);
            }
            Err(JobFailure::LeaseLost) => {
                tracing::info!(job = %job.id, kind, "job taken over by another worker");
                return None;
            }
            Err(JobFailure::Retry(error)) if job.attempts < self.config.max_attempts => {
                let delay = backoff(&self.config, job.attempts);
                tracing::warn!(job = %job.id, kind, attempt = job.attempts, %error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
                metrics::counter!("onair_jobs_finished_total", "kind" => kind, "outcome" => "retry")
                    .increment(1);
                let run_at = Timestamp::from(chrono::Utc::now() + delay);
                self.store.retry_job(lease, run_at, &error).await
            }
            Err(failure) => {
                tracing::error!(job = %job.id, kind, attempt = job.attempts, error = %failure, "job dead-lettered");
                metrics::counter!("onair_jobs_finished_total", "kind" => kind, "outcome" => "dead")
                    .increment(1);
                self.store.bury_job(lease, &failure.to_string()).await
            }
        };
        if let Err(e) = settled {
            // The lease runs out and the job runs again: nothing is lost.
            tracing::warn!(job = %job.id, error = %e, "cannot record a job's failure");
        }
        None
    }

    /// Releases expired leases and samples the queue's depth for metrics.
    async fn maintain(self: Arc<Self>) {
        let mut tick = tokio::time::interval((self.config.lease / 2).max(Duration::from_secs(1)));
        let mut seen = HashSet::new();
        loop {
            tick.tick().await;
            match self
                .store
                .release_expired_jobs(self.config.max_attempts)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::warn!(jobs = n, "released jobs of a vanished worker"),
                Err(e) => tracing::warn!(error = %e, "cannot release expired jobs"),
            }
            match self.store.job_stats().await {
                Ok(stats) => record_depth(&stats, &mut seen),
                Err(e) => tracing::warn!(error = %e, "cannot read queue depth"),
            }
        }
    }
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so
/// retries of jobs that failed together spread out.
fn backoff(config: &JobsConfig, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let delay = config
        .backoff_base
        .saturating_mul(1 << exponent)
        .min(config.backoff_max);
    let half = delay / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

fn record_depth(stats: &[onair_store::jobs::JobStat], seen: &mut HashSet<(String, String)>) {
    let now = chrono::Utc::now();
    let mut present = HashSet::new();
    for stat in stats {
        let labels = [("kind", stat.kind.clone()), ("state", stat.state.clone())];
        metrics::gauge!("onair_jobs", &labels).set(stat.count as f64);
        let age = stat
            .oldest
            .map_or(0.0, |t| (now - t.get()).as_seconds_f64().max(0.0));
        metrics::gauge!("onair_jobs_oldest_age_seconds", &labels).set(age);
        present.insert((stat.kind.clone(), stat.state.clone()));
    }
    // A (kind, state) that emptied reads 0, not its last value.
    for (kind, state) in seen.difference(&present) {
        let labels = [("kind", kind.clone()), ("state", state.clone())];
        metrics::gauge!("onair_jobs", &labels).set(0.0);
        metrics::gauge!("onair_jobs_oldest_age_seconds", &labels).set(0.0);
    }
    *seen = present;
}

/// Deletes finished jobs, many per statement.
async fn complete_in_batches(store: Arc<dyn Store>, mut done: mpsc::UnboundedReceiver<JobLease>) {
    let mut batch = Vec::with_capacity(256);
    while done.recv_many(&mut batch, 256).await > 0 {
        if let Err(e) = store.complete_jobs(&batch).await {
            // Their leases run out and they run again; handlers are idempotent.
            tracing::warn!(error = %e, jobs = batch.len(), "cannot complete jobs");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = JobsConfig {
            concurrency: 1,
            claim_batch: 1,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        };
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (30, 60)] {
            let full = Duration::from_secs(full);
            for _ in 0..20 {
                let delay = backoff(&config, attempt);
                assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
            }
        }
    }
}
