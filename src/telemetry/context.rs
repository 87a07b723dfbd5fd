//! Request spans and W3C trace context. A request's span joins the caller's trace when the request
//! carries a `traceparent` (gRPC metadata or HTTP headers), and the decision log records the trace id.
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`: a request span
//! is one span with a handful of attributes, and going straight to the SDK keeps an unsampled span
//! (the sampler decides at start) to a few hundred nanoseconds. With no OTLP export configured there
//! is no tracer and a span is nothing at all.

use std::sync::{Mutex, OnceLock, PoisonError};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, Span};

/// The tracer request spans are made with; set once, when OTLP export is configured.
/// The SDK's own tracer rather than the global boxed one: no allocation for a span that is not sampled.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Makes request spans go to `tracer` (the OTLP pipeline's).
pub(super) fn set_tracer(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// Looks headers up by lower-case name.
struct Lookup<'f, 'h>(&'f dyn Fn(&str) -> Option<&'h str>);

impl Extractor for Lookup<'_, '_> {
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

/// A trace id as the number whose 32 hex digits are its W3C form.
fn trace_id_number(id: opentelemetry::trace::TraceId) -> u128 {
    u128::from_be_bytes(id.to_bytes())
}

/// The span of one request (a server span), ended when dropped.
pub struct RequestSpan {
    span: Option<Mutex<Span>>,
    trace_id: Option<u128>,
}

impl RequestSpan {
    /// Starts the span for `name`, as a child of the trace in `header` (a lookup of the request's
    /// headers) when there is one.
    pub fn start<'h>(name: &'static str, header: &dyn Fn(&str) -> Option<&'h str>) -> RequestSpan {
        let parent = header("traceparent")
            .map(|_| TraceContextPropagator::new().extract(&Lookup(header)))
            .filter(|cx| cx.span().span_context().is_valid());
        let remote_trace_id = parent
            .as_ref()
            .map(|cx| trace_id_number(cx.span().span_context().trace_id()));
        let Some(tracer) = TRACER.get() else {
            return RequestSpan {
                span: None,
                trace_id: remote_trace_id,
            };
        };
        let builder = tracer.span_builder(name).with_kind(SpanKind::Server);
        let span = match &parent {
            Some(cx) => builder.start_with_context(tracer, cx),
            None => builder.start_with_context(tracer, &Context::new()),
        };
        let own = span.span_context();
        let trace_id =
            remote_trace_id.or_else(|| own.is_valid().then(|| trace_id_number(own.trace_id())));
        RequestSpan {
            span: Some(Mutex::new(span)),
            trace_id,
        }
    }

    /// The W3C trace id the request belongs to, when it has one.
    pub fn trace_id(&self) -> Option<u128> {
        self.trace_id
    }

    /// Sets an attribute; nothing when there is no tracer or the span is not sampled.
    pub fn set(&self, key: &'static str, value: impl Into<Value>) {
        if let Some(span) = &self.span {
            let mut span = span.lock().unwrap_or_else(PoisonError::into_inner);
            if span.is_recording() {
                span.set_attribute(KeyValue::new(key, value));
            }
        }
    }

    /// Whether attributes would be kept, so callers can skip building them.
    pub fn is_recording(&self) -> bool {
        self.span.as_ref().is_some_and(|span| {
            span.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_recording()
        })
    }
}
