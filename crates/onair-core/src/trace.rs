//! The W3C `traceparent` of a span (<https://www.w3.org/TR/trace-context/#traceparent-header>):
//! what an outbound request carries and what a job keeps of the request that enqueued
//! it. Read from the current `tracing` span's OpenTelemetry context; when OpenTelemetry
//! is off no span has one, and [`TraceParent::current`] is `None` at the cost of a
//! lookup.

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and job column) value `00-<trace id>-<span id>-<flags>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// The header name.
    pub const HEADER: &'static str = "traceparent";

    /// The current span's, if it is traced (OpenTelemetry on and the span recorded).
    pub fn current() -> Option<Self> {
        let context = tracing::Span::current().context();
        let span = context.span();
        Self::of(span.span_context())
    }

    /// `span`'s, if it is a valid span context.
    pub fn of(span: &SpanContext) -> Option<Self> {
        span.is_valid().then(|| {
            Self(format!(
                "00-{}-{}-{:02x}",
                span.trace_id(),
                span.span_id(),
                span.trace_flags().to_u8()
            ))
        })
    }

    /// Parses a stored or received value; `None` if it is not a valid version-00 one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::span_context_of(value).map(|_| Self(value.to_owned()))
    }

    /// The span it names, as a remote span context (to link to or continue).
    pub fn span_context(&self) -> SpanContext {
        Self::span_context_of(&self.0).expect("a TraceParent is valid")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn span_context_of(value: &str) -> Option<SpanContext> {
        let mut parts = value.split('-');
        let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let context = SpanContext::new(
            TraceId::from_hex(trace).ok()?,
            SpanId::from_hex(span).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        context.is_valid().then_some(context)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<TraceParent> for String {
    fn from(value: TraceParent) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_values() {
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = TraceParent::parse(value).unwrap();
        let span = parsed.span_context();
        assert_eq!(
            span.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(span.is_sampled() && span.is_remote());
        assert_eq!(TraceParent::of(&span).unwrap().as_str(), value);
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-00",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
            "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn no_current_span_context_without_opentelemetry() {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        assert_eq!(TraceParent::current(), None);
    }
}
