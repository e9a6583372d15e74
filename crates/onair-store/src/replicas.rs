//! Read replicas' health (review S6). A background check per replica measures how stale
//! it can be and keeps it in the read rotation only while that is within
//! `replica_max_lag`; a replica that does not answer leaves too, and every one comes back
//! at its first good check. With no replica in rotation, reads go to the primary.
//!
//! The lag is the smallest of two upper bounds on the age of the oldest write a replica
//! has not replayed yet:
//! - the last moment the primary was seen at a WAL position the replica has replayed
//!   (the checker samples the primary's flushed LSN each round): every commit before it
//!   is visible. This one is right when the primary is idle (the replica caught up) and
//!   right after a long idle spell, which the second is not;
//! - the time since the last transaction the replica replayed committed: any missing
//!   commit came after it. This one is tight under steady writes, where the first is
//!   coarse (a round).
//!
//! A request can also ask for the primary ([`reading_primary`]): the server does for
//! writes and for a user who wrote within the last moments (read-your-writes).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};
use tokio::task::AbortHandle;

tokio::task_local! {
    static PRIMARY_READS: ();
}

/// Runs `body` with every read it makes on the primary, never on a replica: for a caller
/// that must see writes made just before (its own, or another node's it knows of). On
/// SQLite every read sees every committed write anyway.
pub async fn reading_primary<F: Future>(body: F) -> F::Output {
    PRIMARY_READS.scope((), body).await
}

fn primary_requested() -> bool {
    PRIMARY_READS.try_with(|_| ()).is_ok()
}

/// How long a read waits for a replica's connection before it goes to the primary: a
/// replica that is down makes its pool retry until its acquire timeout, and reads should
/// not wait for that while the health check has not noticed yet.
const REPLICA_ACQUIRE: Duration = Duration::from_millis(200);
/// How far back the primary's positions are remembered: past this, the commit-time bound
/// alone says how stale a replica is (it is far out of rotation then anyway).
const HISTORY: Duration = Duration::from_secs(60);

/// One replica's state, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// Its `host:port` (never the URL: it may hold a password).
    pub name: String,
    /// How stale its reads can be; `None` when it did not answer or is not a standby.
    pub lag: Option<Duration>,
    pub in_rotation: bool,
}

/// How replicas are judged.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaPolicy {
    /// Beyond this a replica leaves the rotation; a check slower than this fails.
    pub max_lag: Duration,
    pub check_interval: Duration,
}

struct Replica {
    name: String,
    pool: PgPool,
    /// Microseconds; `u64::MAX` when unknown.
    lag_us: AtomicU64,
    in_rotation: AtomicBool,
}

/// The replicas, their checkers, and the round-robin among those in rotation.
pub(crate) struct Replicas {
    members: Vec<Arc<Replica>>,
    next: AtomicUsize,
    checkers: Vec<AbortHandle>,
}

impl Replicas {
    /// Checks each replica once (so a node starts reading from the healthy ones), then
    /// keeps checking each in the background until [`Replicas::stop`] or drop.
    pub(crate) async fn start(
        primary: &PgPool,
        pools: Vec<(String, PgPool)>,
        policy: ReplicaPolicy,
    ) -> Self {
        let mut members = Vec::with_capacity(pools.len());
        let mut checkers = Vec::with_capacity(pools.len());
        for (name, pool) in pools {
            let replica = Arc::new(Replica {
                name,
                pool,
                lag_us: AtomicU64::new(u64::MAX),
                in_rotation: AtomicBool::new(false),
            });
            let mut history = PrimaryHistory::default();
            replica.check(primary, &mut history, policy).await;
            let task = tokio::spawn(Arc::clone(&replica).watch(primary.clone(), history, policy));
            checkers.push(task.abort_handle());
            members.push(replica);
        }
        Self {
            members,
            next: AtomicUsize::new(0),
            checkers,
        }
    }

    /// A connection to the next replica in rotation, or `None` (then read on the primary).
    pub(crate) async fn connection(&self) -> Option<PoolConnection<Postgres>> {
        if self.members.is_empty() || primary_requested() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.members.len() {
            let replica = &self.members[(start + k) % self.members.len()];
            if !replica.in_rotation.load(Ordering::Relaxed) {
                continue;
            }
            match tokio::time::timeout(REPLICA_ACQUIRE, replica.pool.acquire()).await {
                Ok(Ok(connection)) => return Some(connection),
                Ok(Err(error)) => replica.leave(&format!("unreachable: {error}")),
                Err(_) => {
                    tracing::debug!(replica = %replica.name, "replica busy: reading on the primary")
                }
            }
        }
        None
    }

    pub(crate) fn pools(&self) -> impl Iterator<Item = (&str, &PgPool)> {
        self.members.iter().map(|r| (r.name.as_str(), &r.pool))
    }

    pub(crate) fn status(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .map(|r| ReplicaStatus {
                name: r.name.clone(),
                lag: match r.lag_us.load(Ordering::Relaxed) {
                    u64::MAX => None,
                    us => Some(Duration::from_micros(us)),
                },
                in_rotation: r.in_rotation.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops the checkers and closes the replicas' pools.
    pub(crate) async fn stop(&self) {
        self.checkers.iter().for_each(AbortHandle::abort);
        for replica in &self.members {
            replica.pool.close().await;
        }
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.checkers.iter().for_each(AbortHandle::abort);
    }
}

impl Replica {
    async fn watch(
        self: Arc<Self>,
        primary: PgPool,
        mut history: PrimaryHistory,
        policy: ReplicaPolicy,
    ) {
        let mut rounds = tokio::time::interval(policy.check_interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rounds.tick().await; // the first tick is immediate: `start` has just checked
        loop {
            rounds.tick().await;
            self.check(&primary, &mut history, policy).await;
        }
    }

    async fn check(&self, primary: &PgPool, history: &mut PrimaryHistory, policy: ReplicaPolicy) {
        // A primary that does not answer adds no sample: the replica is judged against
        // the positions already seen.
        if let Ok(Ok(lsn)) = tokio::time::timeout(policy.max_lag, primary_lsn(primary)).await {
            history.record(Instant::now(), lsn);
        }
        let verdict = match tokio::time::timeout(policy.max_lag, self.replay_position()).await {
            Ok(Ok(Some((replayed, since_commit)))) => history
                .lag(Instant::now(), replayed, since_commit)
                .ok_or_else(|| "lag unknown: nothing replayed yet".to_owned()),
            Ok(Ok(None)) => Err("not a standby (promoted?)".to_owned()),
            Ok(Err(error)) => Err(format!("unreachable: {error}")),
            Err(_) => Err("no answer within replica_max_lag".to_owned()),
        };
        let lag_us = verdict.as_ref().map_or(u64::MAX, |lag| {
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX)
        });
        self.lag_us.store(lag_us, Ordering::Relaxed);
        match verdict {
            Ok(lag) if lag <= policy.max_lag => {
                if !self.in_rotation.swap(true, Ordering::Relaxed) {
                    tracing::info!(replica = %self.name, lag_ms = lag.as_millis(), "replica in rotation");
                }
            }
            Ok(lag) => self.leave(&format!("{lag:?} behind, over replica_max_lag")),
            Err(why) => self.leave(&why),
        }
    }

    /// Takes the replica out of rotation until a check finds it healthy.
    fn leave(&self, why: &str) {
        if self.in_rotation.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %self.name, "replica out of rotation: {why}");
        }
    }

    /// The replica's replayed LSN and the seconds since the last replayed transaction
    /// committed (`None` before any); `None` on a server that is not a standby.
    async fn replay_position(&self) -> Result<Option<(i64, Option<f64>)>, sqlx::Error> {
        let (lsn, since_commit): (Option<i64>, Option<f64>) = sqlx::query_as(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint, \
             EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(lsn.map(|lsn| (lsn, since_commit)))
    }
}

/// How far the primary has flushed WAL: what a replica can have received.
async fn primary_lsn(primary: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::bigint")
        .fetch_one(primary)
        .await
}

/// The primary's flushed positions, each with the last time it was seen current.
#[derive(Debug, Default)]
struct PrimaryHistory {
    samples: VecDeque<(i64, Instant)>,
}

impl PrimaryHistory {
    fn record(&mut self, at: Instant, lsn: i64) {
        match self.samples.back_mut() {
            Some((last, seen)) if *last == lsn => *seen = at,
            _ => self.samples.push_back((lsn, at)),
        }
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|(_, seen)| at.duration_since(*seen) > HISTORY)
        {
            self.samples.pop_front();
        }
    }

    /// How stale a replica that has replayed up to `replayed` can be at `now`: the
    /// smaller of the time since the primary was last seen at or before `replayed`, and
    /// `since_commit` (seconds since the last replayed transaction committed). `None`
    /// when neither is known.
    fn lag(&self, now: Instant, replayed: i64, since_commit: Option<f64>) -> Option<Duration> {
        let caught_up = self
            .samples
            .iter()
            .rev()
            .find(|(lsn, _)| *lsn <= replayed)
            .map(|(_, seen)| now.saturating_duration_since(*seen));
        let since_commit = since_commit
            .filter(|s| s.is_finite())
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        match (caught_up, since_commit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_caught_up_replica_has_no_lag() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, 100);
        history.record(t0 + Duration::from_secs(30), 100);
        // Its last replayed commit is an hour old, but nothing is missing.
        let now = t0 + Duration::from_secs(30) + Duration::from_millis(2);
        assert_eq!(
            history.lag(now, 100, Some(3600.0)),
            Some(Duration::from_millis(2))
        );
    }

    #[test]
    fn a_write_after_idle_is_bounded_by_the_last_caught_up_sample() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, 100);
        history.record(t0 + Duration::from_millis(500), 200);
        let now = t0 + Duration::from_millis(2500);
        // Stuck before the write: 2.5 s since the primary was last at what it replayed,
        // although its last commit is an hour old.
        assert_eq!(
            history.lag(now, 100, Some(3600.0)),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn under_steady_writes_the_commit_time_is_tighter() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, 100);
        history.record(t0 + Duration::from_millis(500), 200);
        let now = t0 + Duration::from_millis(510);
        assert_eq!(
            history.lag(now, 150, Some(0.05)),
            Some(Duration::from_millis(50))
        );
        // Replayed nothing known and never a commit: unknown.
        assert_eq!(history.lag(now, 50, None), None);
    }

    #[test]
    fn old_positions_are_forgotten() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, 1);
        history.record(t0 + Duration::from_secs(1), 2);
        history.record(t0 + HISTORY + Duration::from_secs(2), 3);
        assert_eq!(history.samples.len(), 1);
    }
}
