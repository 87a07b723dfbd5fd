//! W3C trace context: a request's span joins the caller's trace when the request carries a
//! `traceparent` (gRPC metadata or HTTP headers), and the decision log records the trace id.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span fields every request span declares, filled in by the decider.
#[macro_export]
macro_rules! request_span {
    ($name:expr) => {
        tracing::span!(
            target: "gatehouse::request",
            tracing::Level::TRACE,
            "request",
            otel.name = $name,
            otel.kind = "server",
            action = tracing::field::Empty,
            resource.kind = tracing::field::Empty,
            decision = tracing::field::Empty,
            rule = tracing::field::Empty,
            revision = tracing::field::Empty,
            principal.kind = tracing::field::Empty,
            dry_run = tracing::field::Empty,
            items = tracing::field::Empty,
        )
    };
}

/// Looks headers up by lower-case name.
struct Lookup<'a>(&'a dyn Fn(&str) -> Option<&'a str>);

impl Extractor for Lookup<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        ["traceparent", "tracestate"]
            .into_iter()
            .filter(|k| (self.0)(k).is_some())
            .collect()
    }
}

/// Makes `span` a child of the trace in `header` (a lookup of the request's headers), and returns
/// the trace id the request belongs to: the caller's, or the span's own when OTel is on, else empty.
/// Call it before the span is first entered: entering starts the OpenTelemetry span, after which
/// its parent can no longer change.
pub fn join_trace<'a>(span: &Span, header: &'a dyn Fn(&str) -> Option<&'a str>) -> String {
    if header("traceparent").is_some() {
        let parent = TraceContextPropagator::new().extract(&Lookup(header));
        let remote = parent.span().span_context().clone();
        if remote.is_valid() {
            let _ = span.set_parent(parent);
            return remote.trace_id().to_string();
        }
    }
    if span.is_disabled() {
        return String::new();
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        own.trace_id().to_string()
    } else {
        String::new()
    }
}
