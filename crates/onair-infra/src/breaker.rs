//! Circuit breakers for outbound dependencies (webhook hosts, push services, the object
//! store, payment providers): after `failure_threshold` failures in a row a breaker
//! opens and refuses calls at once for `cool_down`; then it lets one probe through
//! (half-open), which closes it on success or opens it again on failure. Refusing fast
//! keeps a dead dependency from holding workers and requests for its whole timeout.
//!
//! Our own small state machine rather than the `failsafe` crate: failsafe's half-open
//! state lets every call through instead of one probe, and its state can only be
//! observed through callbacks, while `/metrics` wants it as a gauge.
//!
//! Metrics: `circuit_breaker_state{dependency,target}` (0 closed, 1 open, 2 half-open),
//! `circuit_breaker_transitions_total{dependency,target,to}` and
//! `circuit_breaker_refused_total{dependency,target}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// What a breaker does with calls, as exported (the gauge's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A call the breaker refused without making it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} {target}: circuit breaker open after repeated failures (next try in {} s)", .retry_after.as_secs().max(1))]
pub struct BreakerOpen {
    pub dependency: &'static str,
    pub target: String,
    /// Until the breaker lets a call through again (at least a probe).
    pub retry_after: Duration,
}

enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One breaker: of one dependency, or of one target of it (a host).
pub struct CircuitBreaker {
    dependency: &'static str,
    target: String,
    settings: BreakerSettings,
    phase: Mutex<Phase>,
}

impl CircuitBreaker {
    pub fn new(
        dependency: &'static str,
        target: impl Into<String>,
        settings: BreakerSettings,
    ) -> Arc<Self> {
        let breaker = Self {
            dependency,
            target: target.into(),
            settings,
            phase: Mutex::new(Phase::Closed { failures: 0 }),
        };
        breaker.export(BreakerState::Closed);
        Arc::new(breaker)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            // Cool-down over: the next call is the probe.
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Permission for one call, or a refusal when open (or half-open with its probe
    /// under way). Report the call's outcome on the permit.
    pub fn try_call(self: &Arc<Self>) -> Result<Permit, BreakerOpen> {
        let mut phase = self.lock();
        let probe = match *phase {
            Phase::Closed { .. } => false,
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    drop(phase);
                    return Err(self.refuse(until - now));
                }
                *phase = Phase::HalfOpen { probing: true };
                drop(phase);
                self.transition(BreakerState::HalfOpen);
                true
            }
            Phase::HalfOpen { probing: false } => {
                *phase = Phase::HalfOpen { probing: true };
                true
            }
            Phase::HalfOpen { probing: true } => {
                drop(phase);
                // The probe decides within its own deadline; ask again after a while.
                return Err(self.refuse(Duration::from_secs(1)));
            }
        };
        Ok(Permit {
            breaker: Arc::clone(self),
            probe,
            reported: false,
        })
    }

    fn refuse(&self, retry_after: Duration) -> BreakerOpen {
        metrics::counter!("circuit_breaker_refused_total", "dependency" => self.dependency, "target" => self.target.clone())
            .increment(1);
        BreakerOpen {
            dependency: self.dependency,
            target: self.target.clone(),
            retry_after,
        }
    }

    fn report(&self, probe: bool, success: bool) {
        let mut phase = self.lock();
        let changed = match (&mut *phase, probe, success) {
            (Phase::Closed { failures }, false, true) => {
                *failures = 0;
                None
            }
            (Phase::Closed { failures }, false, false) => {
                *failures += 1;
                (*failures >= self.settings.failure_threshold).then_some(BreakerState::Open)
            }
            (Phase::HalfOpen { .. }, true, true) => Some(BreakerState::Closed),
            (Phase::HalfOpen { .. }, true, false) => Some(BreakerState::Open),
            // A call let through before the breaker opened, ending late: the breaker has
            // already decided.
            _ => None,
        };
        match changed {
            Some(BreakerState::Closed) => *phase = Phase::Closed { failures: 0 },
            Some(BreakerState::Open) => {
                *phase = Phase::Open {
                    until: Instant::now() + self.settings.cool_down,
                }
            }
            _ => {}
        }
        drop(phase);
        if let Some(state) = changed {
            self.transition(state);
        }
    }

    /// A probe that ended without a verdict (cancelled, or failed for a reason of our
    /// own): the next call probes instead.
    fn release_probe(&self) {
        if let Phase::HalfOpen { probing } = &mut *self.lock() {
            *probing = false;
        }
    }

    fn transition(&self, to: BreakerState) {
        match to {
            BreakerState::Open => {
                tracing::warn!(dependency = self.dependency, target = %self.target, "circuit breaker opened")
            }
            _ => {
                tracing::info!(dependency = self.dependency, target = %self.target, state = to.label(), "circuit breaker changed")
            }
        }
        metrics::counter!("circuit_breaker_transitions_total", "dependency" => self.dependency, "target" => self.target.clone(), "to" => to.label())
            .increment(1);
        self.export(to);
    }

    fn export(&self, state: BreakerState) {
        metrics::gauge!("circuit_breaker_state", "dependency" => self.dependency, "target" => self.target.clone())
            .set(state as u8 as f64);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The state stays consistent whatever panicked while holding the lock.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One permitted call. Dropped without a verdict (the call was cancelled, or never
/// reached the dependency), it counts for nothing.
#[must_use = "report the call's outcome"]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    reported: bool,
}

impl Permit {
    /// The dependency answered (whatever it said).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.report(self.probe, true);
    }

    /// The dependency failed: no answer in time, or an answer that it is unwell.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.report(self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.release_probe();
        }
    }
}

/// One breaker per target of a dependency (per webhook host, per push service), so a
/// broken target does not cut off the others; at most `capacity` are kept, the least
/// recently used going first (a forgotten breaker starts closed again).
#[derive(Clone)]
pub struct Breakers {
    dependency: &'static str,
    settings: BreakerSettings,
    by_target: moka::sync::Cache<String, Arc<CircuitBreaker>>,
}

impl Breakers {
    pub fn new(dependency: &'static str, settings: BreakerSettings, capacity: u64) -> Self {
        Self {
            dependency,
            settings,
            by_target: moka::sync::Cache::new(capacity),
        }
    }

    pub fn get(&self, target: &str) -> Arc<CircuitBreaker> {
        self.by_target.get_with_by_ref(target, || {
            CircuitBreaker::new(self.dependency, target, self.settings)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cool_down_ms: u64) -> Arc<CircuitBreaker> {
        CircuitBreaker::new(
            "test",
            uuid::Uuid::new_v4().to_string(),
            BreakerSettings {
                failure_threshold: threshold,
                cool_down: Duration::from_millis(cool_down_ms),
            },
        )
    }

    #[test]
    fn opens_after_failures_in_a_row_only() {
        let b = breaker(3, 60_000);
        for _ in 0..2 {
            b.try_call().unwrap().failure();
        }
        // A success resets the count.
        b.try_call().unwrap().success();
        for _ in 0..2 {
            b.try_call().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_call().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        let refused = b.try_call().err().expect("open refuses");
        assert!(refused.retry_after > Duration::from_secs(59), "{refused:?}");
        assert!(refused.to_string().contains("circuit breaker open"));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let b = breaker(1, 20);
        b.try_call().unwrap().failure();
        assert!(b.try_call().is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_call().expect("the probe");
        assert!(b.try_call().is_err(), "one probe at a time");
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        assert!(b.try_call().is_err());
        std::thread::sleep(Duration::from_millis(30));
        b.try_call().expect("the next probe").success();
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_call().unwrap().success();
        b.try_call().unwrap().success();
    }

    #[test]
    fn an_abandoned_probe_hands_over_to_the_next_call() {
        let b = breaker(1, 10);
        b.try_call().unwrap().failure();
        std::thread::sleep(Duration::from_millis(20));
        drop(b.try_call().expect("the probe"));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_call().expect("a new probe").success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn late_outcomes_of_calls_before_the_opening_change_nothing() {
        let b = breaker(1, 60_000);
        let late = b.try_call().unwrap();
        b.try_call().unwrap().failure();
        late.success();
        assert_eq!(b.state(), BreakerState::Open);
        // Dropping a permit without a verdict counts for nothing either.
        let b = breaker(2, 60_000);
        drop(b.try_call().unwrap());
        b.try_call().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn targets_have_breakers_of_their_own() {
        let breakers = Breakers::new(
            "test",
            BreakerSettings {
                failure_threshold: 1,
                cool_down: Duration::from_secs(60),
            },
            100,
        );
        breakers.get("down.example").try_call().unwrap().failure();
        assert_eq!(breakers.get("down.example").state(), BreakerState::Open);
        assert_eq!(breakers.get("up.example").state(), BreakerState::Closed);
        assert!(breakers.get("up.example").try_call().is_ok());
    }
}
