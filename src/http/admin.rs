//! The operator's endpoints on the HTTP listener: `/metrics` for Prometheus, the `/live` and `/ready`
//! probes, and `/log/level`, which only a peer on loopback, or one whose client certificate names a
//! trusted service, may read or change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::insert;
use crate::app::App;
use crate::tls::Peer;

/// The longest log filter accepted.
const MAX_LOG_FILTER_BYTES: usize = 4096;
/// How long a new log filter may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prometheus scrapes this: the OpenMetrics text format.
pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics().render() {
        Ok(text) => {
            let mut response = (StatusCode::OK, text).into_response();
            insert(
                &mut response,
                header::CONTENT_TYPE.as_str(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            );
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Liveness: the process answers.
pub(super) async fn live() -> &'static str {
    "ok\n"
}

/// Readiness: a policy set is loaded and the server is not draining.
pub(super) async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        let mut body = format!("ready {}\n", app.policies.current().revision());
        // Serving, but an issuer's tokens are refused until its keys arrive: say which and why.
        for (issuer, reason) in app.identity.not_ready() {
            body.push_str(&format!("issuer {issuer} has no keys: {reason}\n"));
        }
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    }
}

/// Whether the peer may read and change the log level: [`crate::tls::may_administer`].
fn may_administer(peer: SocketAddr, request: &Request) -> bool {
    crate::tls::may_administer(peer, request.extensions().get::<Peer>())
}

/// The log filter in force; only from loopback (or a trusted service), like changing it.
pub(super) async fn log_level(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !may_administer(peer, &request) {
        return (
            StatusCode::FORBIDDEN,
            "the log level can be read from loopback only\n",
        )
            .into_response();
    }
    match crate::telemetry::log_filter() {
        Some(filter) => (StatusCode::OK, format!("{filter}\n")).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the log filter is not managed by this process\n",
        )
            .into_response(),
    }
}

/// Sets the log filter (a `tracing` filter such as `debug` or `info,gatehouse=trace`); only from
/// loopback, so that only someone on the pod itself can turn logging up. The peer is checked before
/// the body is read, and the body is short and read under a deadline.
pub(super) async fn set_log_level(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !may_administer(peer, &request) {
        return (
            StatusCode::FORBIDDEN,
            "the log level can be changed from loopback only\n",
        )
            .into_response();
    }
    let read = axum::body::to_bytes(request.into_body(), MAX_LOG_FILTER_BYTES);
    let body = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) | Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "the filter must arrive at once and be at most 4096 bytes\n",
            )
                .into_response();
        }
    };
    let filter = String::from_utf8_lossy(&body).trim().to_owned();
    match crate::telemetry::set_log_filter(&filter) {
        Ok(()) => {
            tracing::info!(filter = %filter, "log filter changed");
            (StatusCode::OK, format!("{filter}\n")).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
