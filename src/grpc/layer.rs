//! The one layer every RPC goes through: it counts the call in flight, records its latency under the
//! RPC's name, and gives the handler the call's span (a child of the caller's trace) through the
//! request's extensions as a [`CallScope`]. So every RPC, health and reflection included, is treated
//! alike, and a handler cannot forget it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::{Layer, Service};

use crate::telemetry::context::RequestSpan;
use crate::telemetry::metrics::Metrics;

/// Where an RPC's span finds the caller's trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceFrom {
    /// The call's own metadata; the span starts with the call.
    Metadata,
    /// The metadata first, else what the handler finds in the message (Envoy's ext_authz: the
    /// client's request headers); the handler starts the span once it has read the message.
    MetadataOrMessage,
}

/// An RPC as the layer knows it: its path, its name in metrics and its span's name.
#[derive(Debug, Clone, Copy)]
struct Rpc {
    path: &'static str,
    label: &'static str,
    trace: TraceFrom,
}

const fn rpc(path: &'static str, label: &'static str) -> Rpc {
    Rpc {
        path,
        label,
        trace: TraceFrom::Metadata,
    }
}

/// Every RPC served. Metric labels come only from here, so they stay bounded whatever paths callers
/// send; a path not listed is answered by tonic as unimplemented and counted as `unknown`.
const RPCS: [Rpc; 20] = [
    rpc("/gatehouse.v1.Gatehouse/IssueToken", "IssueToken"),
    rpc("/gatehouse.v1.Gatehouse/Verify", "Verify"),
    rpc("/gatehouse.v1.Gatehouse/Check", "Check"),
    rpc("/gatehouse.v1.Gatehouse/CheckBatch", "CheckBatch"),
    rpc("/gatehouse.v1.Gatehouse/AllowedActions", "AllowedActions"),
    rpc("/gatehouse.v1.Gatehouse/Capabilities", "Capabilities"),
    rpc("/gatehouse.v1.Gatehouse/ReloadPolicies", "ReloadPolicies"),
    rpc("/gatehouse.v1.Gatehouse/PolicyStatus", "PolicyStatus"),
    rpc("/gatehouse.v1.Gatehouse/IdentityStatus", "IdentityStatus"),
    rpc(
        "/gatehouse.v1.Gatehouse/ExercisedPermissions",
        "ExercisedPermissions",
    ),
    rpc("/gatehouse.v1.Gatehouse/SuggestPolicy", "SuggestPolicy"),
    // The browser doors' JSON calls (their gRPC-Web calls are the RPCs above).
    rpc("/v1/check", "json/Check"),
    rpc("/v1/check-batch", "json/CheckBatch"),
    rpc("/v1/allowed-actions", "json/AllowedActions"),
    rpc("/v1/capabilities", "json/Capabilities"),
    Rpc {
        path: "/envoy.service.auth.v3.Authorization/Check",
        label: "ext_authz",
        trace: TraceFrom::MetadataOrMessage,
    },
    rpc("/grpc.health.v1.Health/Check", "Health/Check"),
    rpc("/grpc.health.v1.Health/Watch", "Health/Watch"),
    rpc(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "ServerReflectionInfo",
    ),
    rpc(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "ServerReflectionInfo",
    ),
];

/// A path no RPC has.
const UNKNOWN: Rpc = rpc("/unknown", "unknown");

impl Rpc {
    fn of(path: &str) -> Rpc {
        RPCS.iter()
            .find(|rpc| rpc.path == path)
            .copied()
            .unwrap_or(UNKNOWN)
    }

    /// The span's name: the path without its leading slash (`gatehouse.v1.Gatehouse/Check`).
    fn span_name(self) -> &'static str {
        self.path.strip_prefix('/').unwrap_or(self.path)
    }
}

/// What the layer hands the handler: when the call started, and its span.
pub struct CallScope {
    rpc: Rpc,
    started: Instant,
    span: OnceLock<RequestSpan>,
    /// The call's own `traceparent` and `tracestate` metadata, for a span the handler starts.
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl CallScope {
    fn new(rpc: Rpc, headers: &http::HeaderMap) -> CallScope {
        let own = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let scope = CallScope {
            rpc,
            started: Instant::now(),
            span: OnceLock::new(),
            traceparent: own("traceparent"),
            tracestate: own("tracestate"),
        };
        if rpc.trace == TraceFrom::Metadata {
            scope.span();
        }
        scope
    }

    /// A scope for a call that did not come through the layer (never the case when served).
    fn detached() -> CallScope {
        CallScope::new(UNKNOWN, &http::HeaderMap::new())
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// The call's span, a child of the trace in the call's metadata.
    pub fn span(&self) -> &RequestSpan {
        self.span_or(&|_| None)
    }

    /// The call's span, started (on first use) as a child of the trace in the call's metadata, else
    /// of the one `message` finds (a lookup by lower-case header name).
    pub fn span_or<'m>(&'m self, message: &'m dyn Fn(&str) -> Option<&'m str>) -> &'m RequestSpan {
        self.span.get_or_init(|| {
            let header = |name: &str| -> Option<&'m str> {
                let own = match name {
                    "traceparent" => self.traceparent.as_deref(),
                    "tracestate" => self.tracestate.as_deref(),
                    _ => None,
                };
                own.or_else(|| message(name))
            };
            RequestSpan::start(self.rpc.span_name(), &header)
        })
    }
}

/// The scope the layer put in a call's extensions.
pub(super) fn scope_of(extensions: &tonic::Extensions) -> Arc<CallScope> {
    extensions
        .get::<Arc<CallScope>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(CallScope::detached()))
}

/// Gives every call a [`CallScope`] and records it in the metrics.
#[derive(Clone)]
pub struct CallLayer {
    metrics: Arc<Metrics>,
}

impl CallLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        CallLayer { metrics }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> CallService<S> {
        CallService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// See [`CallLayer`].
#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<http::Request<B>> for CallService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let rpc = Rpc::of(request.uri().path());
        let scope = Arc::new(CallScope::new(rpc, request.headers()));
        request.extensions_mut().insert(Arc::clone(&scope));
        let metrics = Arc::clone(&self.metrics);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let in_flight = metrics.start_at(rpc.label, scope.started);
            let response = answer.await;
            drop(in_flight);
            drop(scope);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_one_entry_and_unknown_paths_one_label() {
        for rpc in &RPCS {
            assert_eq!(Rpc::of(rpc.path).label, rpc.label);
        }
        assert_eq!(Rpc::of("/gatehouse.v1.Gatehouse/Nope").label, "unknown");
        assert_eq!(
            Rpc::of("/gatehouse.v1.Gatehouse/Check").span_name(),
            "gatehouse.v1.Gatehouse/Check"
        );
    }
}
