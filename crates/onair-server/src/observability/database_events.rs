//! Database figures that sqlx only reports as tracing events (it has no metrics hooks):
//! how long each pool acquire waited (`db_pool_acquire_seconds`, review C4: a pool too
//! small shows as waits before it shows as timeouts) and the statements slower than
//! `database.slow_query_ms` (`db_slow_queries_total`; the warn line with the SQL is
//! logged as well).

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;

pub(super) const POOL_ACQUIRE: &str = "db_pool_acquire_seconds";
const SLOW_QUERIES: &str = "db_slow_queries_total";

const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";
const QUERY_TARGET: &str = "sqlx::query";

/// The layer to add to the process's subscriber. It asks for sqlx's acquire events at
/// debug (one float each) and its statement events at warn, which the store emits only
/// for slow statements, so fast queries cost nothing here.
pub fn database_events<S>() -> impl Layer<S>
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    DatabaseEvents.with_filter(
        Targets::new()
            .with_target(ACQUIRE_TARGET, Level::DEBUG)
            .with_target(QUERY_TARGET, Level::WARN),
    )
}

struct DatabaseEvents;

impl<S: Subscriber> Layer<S> for DatabaseEvents {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        match event.metadata().target() {
            ACQUIRE_TARGET => {
                let mut waited = Seconds("acquired_after_secs", None);
                event.record(&mut waited);
                if let Some(seconds) = waited.1 {
                    metrics::histogram!(POOL_ACQUIRE).record(seconds);
                }
            }
            QUERY_TARGET => metrics::counter!(SLOW_QUERIES).increment(1),
            _ => {}
        }
    }
}

/// The value of one float field of an event.
struct Seconds(&'static str, Option<f64>);

impl Visit for Seconds {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == self.0 {
            self.1 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use onair_store::{DbConfig, connect};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A real pool on an in-memory SQLite database, with every statement "slow". The
    /// subscriber is the process's (SQLite runs statements on a thread of its own), which
    /// no other test of this binary sets.
    #[tokio::test]
    async fn acquires_and_slow_statements_become_metrics() {
        let handle = crate::observability::prometheus();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(database_events()),
        )
        .unwrap();
        let store = connect(&DbConfig {
            url: "sqlite::memory:".into(),
            slow_statement: Duration::ZERO,
            ..DbConfig::default()
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let text = handle.render();
        let count = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        assert!(count("db_pool_acquire_seconds_count") > 0.0, "{text}");
        assert!(
            count("db_pool_acquire_seconds_bucket{le=\"3\"}") > 0.0,
            "{text}"
        );
        assert!(count(SLOW_QUERIES) > 0.0, "{text}");
    }
}
