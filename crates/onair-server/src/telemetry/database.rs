//! A client span per SQL statement, made from the event sqlx emits when a statement ends
//! (target `sqlx::query`: its text, rows and elapsed time), under the span that ran it.
//! One place covers every query of every domain, transactions and migrations included,
//! with nothing added to the store; and when tracing is off nothing asks for the event,
//! which sqlx then does not build.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use onair_store::Backend;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

pub(super) const TARGET: &str = "sqlx::query";

static SYSTEM: OnceLock<&'static str> = OnceLock::new();

/// Names the database in the spans (`db.system.name`); the first store connected wins.
pub fn database_system(backend: Backend) {
    let _ = SYSTEM.set(match backend {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    });
}

pub(super) fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    Statements {
        tracer,
        dispatch: OnceLock::new(),
    }
    .with_filter(Targets::new().with_target(TARGET, Level::TRACE))
}

struct Statements {
    tracer: SdkTracer,
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<S: Subscriber + for<'span> LookupSpan<'span>> Layer<S> for Statements {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Only under a traced (and sampled) span: a statement alone is no trace.
        let Some(id) = ctx.current_span().id().cloned() else {
            return;
        };
        let Some(dispatch) = self.dispatch.get().and_then(|d| d.upgrade()) else {
            return;
        };
        let Some(parent) = tracing_opentelemetry::get_otel_context(&id, &dispatch) else {
            return;
        };
        if !parent.span().span_context().is_sampled() {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        let end = SystemTime::now();
        let start = end - Duration::from_secs_f64(statement.elapsed_secs.max(0.0));
        // sqlx sends the first words as `summary` and the full text only when longer.
        let text = if statement.text.trim().is_empty() {
            statement.summary.trim_end_matches(" …").to_owned()
        } else {
            statement.text.trim().to_owned()
        };
        let operation = text
            .split_whitespace()
            .next()
            .unwrap_or("SQL")
            .to_ascii_uppercase();
        let mut attributes = vec![
            KeyValue::new("db.operation.name", operation.clone()),
            KeyValue::new("db.query.text", text),
            KeyValue::new("db.response.returned_rows", statement.rows_returned as i64),
            KeyValue::new("db.response.affected_rows", statement.rows_affected as i64),
        ];
        if let Some(system) = SYSTEM.get() {
            attributes.push(KeyValue::new("db.system.name", *system));
        }
        let mut span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

/// The fields of sqlx's statement event.
#[derive(Default)]
struct Statement {
    summary: String,
    text: String,
    rows_returned: u64,
    rows_affected: u64,
    elapsed_secs: f64,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.text),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_returned" => self.rows_returned = value,
            "rows_affected" => self.rows_affected = value,
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}
