//! The HTTP listener (`GATEHOUSE_HTTP_LISTEN`): the authorization endpoint for proxies that ask over
//! HTTP rather than Envoy's gRPC ext_authz.
//!
//! `/authz` serves three callers with one handler:
//! - Envoy's HTTP ext_authz service appends the original path to the configured prefix
//!   (`/authz/api/v1.0/feed/user/1/?api_key=...`) and keeps the original method;
//! - nginx `auth_request` sends a subrequest to `/authz` with `X-Original-Method` / `X-Original-URI`
//!   set in its configuration;
//! - Traefik ForwardAuth sends `X-Forwarded-Method` / `X-Forwarded-Uri`.
//!
//! 200 means allowed, with the upstream headers; 401, 403 or 400 carry Stream's error body, and the same
//! body in `x-gatehouse-error`, because nginx does not pass an `auth_request` response body on.
//! Thin glue around [`crate::authz`], like the gRPC services.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use crate::App;
use crate::authz::{Authorizer, CallBody, Denial, HeaderLookup, HttpCall, Outcome};
use crate::decider::Source;
use crate::telemetry::context::RequestSpan;
use crate::token::unix_now;

/// The largest request body the endpoint reads; a longer one counts as cut short.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long the endpoint waits for a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest original URI accepted.
const MAX_URI_BYTES: usize = 16 * 1024;
/// The prefix of the authorization endpoint.
pub const AUTHZ_PREFIX: &str = "/authz";
/// Carries the error body on denials, for proxies that drop the body (nginx `auth_request`).
pub const ERROR_HEADER: &str = "x-gatehouse-error";

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(AUTHZ_PREFIX, any(authorize))
        .route("/authz/", any(authorize))
        .route("/authz/{*original}", any(authorize))
        .route("/metrics", get(metrics))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/log/level", get(log_level).put(set_log_level))
        .with_state(app)
}

/// Prometheus scrapes this: the OpenMetrics text format.
async fn metrics(State(app): State<Arc<App>>) -> Response {
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
async fn live() -> &'static str {
    "ok\n"
}

/// Readiness: a policy set is loaded and the server is not draining.
async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        (
            StatusCode::OK,
            format!("ready {}\n", app.policies.current().revision()),
        )
            .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    }
}

/// The log filter in force.
async fn log_level() -> Response {
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
/// loopback, so that only someone on the pod itself can turn logging up.
async fn set_log_level(ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    if !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "the log level can be changed from loopback only\n",
        )
            .into_response();
    }
    let filter = String::from_utf8_lossy(&body).trim().to_owned();
    match crate::telemetry::set_log_filter(&filter) {
        Ok(()) => {
            tracing::info!(filter = %filter, "log filter changed");
            (StatusCode::OK, format!("{filter}\n")).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

struct Headers<'a>(&'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn authorize(State(app): State<Arc<App>>, request: Request) -> Response {
    let in_flight = app.metrics().start("http_authz");
    let started = in_flight.started();
    let (parts, body) = request.into_parts();
    let (method, target) = original_request(&parts.method, &parts.uri, &parts.headers);
    // A body that is too long, or that does not arrive in time, counts as cut short.
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
    {
        Ok(Ok(bytes)) => Some(bytes),
        Ok(Err(_)) | Err(_) => None,
    };
    let call_body = match &body {
        None => CallBody::Truncated,
        Some(bytes) if bytes.is_empty() => CallBody::Absent,
        Some(bytes) => CallBody::Complete(bytes),
    };
    let outcome = if target.len() > MAX_URI_BYTES {
        Outcome::Denied(Denial::new(
            crate::authz::ErrorKind::Input,
            "the original URI is too long",
        ))
    } else {
        let call = HttpCall {
            method: &method,
            path: &target,
            headers: &Headers(&parts.headers),
            body: call_body,
        };
        let header = |key: &str| parts.headers.get(key).and_then(|v| v.to_str().ok());
        let span = RequestSpan::start("gatehouse /authz", &header);
        let policy = app.policies.current();
        Authorizer {
            verifier: &app.verifier,
            api_key: &app.api_key,
            policy: &policy,
            now: unix_now(),
            decider: &app.decider,
            source: Source::Http,
            span: &span,
            started,
        }
        .authorize(&call)
    };
    match outcome {
        Outcome::Allowed(allowed) => {
            let mut response = StatusCode::OK.into_response();
            for (name, value) in allowed.upstream_headers() {
                insert(&mut response, name, value);
            }
            response
        }
        Outcome::Denied(denial) => denied(&denial, started),
    }
}

/// The method and request target the proxy is asking about.
fn original_request(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> (String, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let method = header("x-original-method")
        .or_else(|| header("x-forwarded-method"))
        .unwrap_or(method.as_str())
        .to_owned();
    if let Some(target) = header("x-original-uri").or_else(|| header("x-forwarded-uri")) {
        return (method, target.to_owned());
    }
    let path = uri.path();
    let original = path.strip_prefix(AUTHZ_PREFIX).unwrap_or(path);
    let original = if original.is_empty() { "/" } else { original };
    let target = match uri.query() {
        Some(query) => format!("{original}?{query}"),
        None => original.to_owned(),
    };
    (method, target)
}

fn denied(denial: &Denial, started: Instant) -> Response {
    let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
    let body = denial.body(started.elapsed());
    let mut response = (status, Body::from(Bytes::from(body.clone()))).into_response();
    insert(
        &mut response,
        header::CONTENT_TYPE.as_str(),
        "application/json",
    );
    insert(&mut response, ERROR_HEADER, &body);
    if let Some(rule) = &denial.rule {
        insert(&mut response, crate::authz::RULE_HEADER, rule);
    }
    if let Some(revision) = &denial.revision {
        insert(&mut response, crate::authz::REVISION_HEADER, revision);
    }
    response
}

/// Sets a header; values that are not valid header text (never expected) and empty values are left out.
fn insert(response: &mut Response, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_request_comes_from_headers_or_the_path() {
        let uri: axum::http::Uri = "/authz/api/v1.0/feed/user/1/?api_key=k".parse().unwrap();
        let (m, t) = original_request(&Method::POST, &uri, &HeaderMap::new());
        assert_eq!(
            (m.as_str(), t.as_str()),
            ("POST", "/api/v1.0/feed/user/1/?api_key=k")
        );

        let mut headers = HeaderMap::new();
        headers.insert("x-original-method", HeaderValue::from_static("DELETE"));
        headers.insert("x-original-uri", HeaderValue::from_static("/api/x/?a=1"));
        let uri: axum::http::Uri = "/authz".parse().unwrap();
        let (m, t) = original_request(&Method::GET, &uri, &headers);
        assert_eq!((m.as_str(), t.as_str()), ("DELETE", "/api/x/?a=1"));

        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-method", HeaderValue::from_static("PUT"));
        headers.insert("x-forwarded-uri", HeaderValue::from_static("/api/y/"));
        let (m, t) = original_request(&Method::GET, &uri, &headers);
        assert_eq!((m.as_str(), t.as_str()), ("PUT", "/api/y/"));
    }
}
