//! A pooled Redis connection that runs each command (or pipeline) in a client span named
//! by the command, with OpenTelemetry's attribute names. The spans are at debug level
//! under [`SPAN_TARGET`]: only a subscriber asking for them (the OpenTelemetry layer)
//! pays for them.

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};
use tracing::Instrument;

/// The target of the command spans.
pub const SPAN_TARGET: &str = "onair_infra::redis";

/// What [`crate::RedisPool::get`] hands out: cheap to clone, requests multiplexed.
#[derive(Clone)]
pub struct RedisConnection(pub(crate) ConnectionManager);

/// The command's name (its first argument), upper-cased.
fn name_of(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => "UNKNOWN".to_owned(),
    }
}

fn span(operation: &str, batch: usize) -> tracing::Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "redis",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = operation,
        db.operation.batch.size = batch,
    )
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let span = if tracing::enabled!(target: SPAN_TARGET, tracing::Level::DEBUG) {
            span(&name_of(cmd), 1)
        } else {
            tracing::Span::none()
        };
        self.0.req_packed_command(cmd).instrument(span).boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let span = if tracing::enabled!(target: SPAN_TARGET, tracing::Level::DEBUG) {
            span("PIPELINE", pipeline.len())
        } else {
            tracing::Span::none()
        };
        self.0
            .req_packed_commands(pipeline, offset, count)
            .instrument(span)
            .boxed()
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
