//! The authorization endpoint for proxies that ask over HTTP rather than Envoy's gRPC ext_authz.
//!
//! It has two doors, and each reads the original request from exactly one
//! place, never falling back to another:
//! - under `/authz/`, Envoy's HTTP ext_authz service appends the original path to the configured
//!   prefix (`/authz/api/v1.0/feed/user/1/?api_key=...`) and keeps the original method; the path and
//!   the method are all that is read, whatever headers the client added;
//! - `/authz` itself is asked by nginx `auth_request` (`X-Original-Method` / `X-Original-URI`) or by
//!   Traefik ForwardAuth (`X-Forwarded-Method` / `X-Forwarded-Uri`): `GATEHOUSE_AUTHZ_PROXY` says
//!   which, and only that pair is read. Each proxy sets its own pair and passes the client's other
//!   headers through, so the other pair is client input. A missing, repeated or unreadable header is
//!   a 400.
//!
//! 200 means allowed, with the upstream headers; 401, 403 or 400 carry the error body in the route
//! table's format (Stream's, or RFC 9457 problem details: `settings: route_errors`) with its content
//! type, and the same body in `x-gatehouse-error` (as plain ASCII JSON), because nginx does not pass an
//! `auth_request` response body on.
//! Thin glue around [`crate::authz`] through [`App::authorize`], like the gRPC services.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::insert;
use crate::app::App;
use crate::authz::{CallBody, Denial, ErrorKind, HeaderLookup, HttpCall, Outcome, ProxyHeaders};
use crate::door::Door;
use crate::policy::ErrorFormat;
use crate::telemetry::context::RequestSpan;

/// The largest request body the endpoint reads; a longer one counts as cut short.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long the endpoint waits for a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest original URI accepted.
const MAX_URI_BYTES: usize = 16 * 1024;
/// The prefix of the authorization endpoint.
pub const AUTHZ_PREFIX: &str = "/authz";
/// Envoy's HTTP ext_authz removes the headers named here from the request it lets through.
pub const ENVOY_HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";
/// Carries the error body on denials, for proxies that drop the body (nginx `auth_request`).
pub const ERROR_HEADER: &str = "x-gatehouse-error";

struct Headers<'a>(&'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn header(&self, name: &str) -> Result<Option<&str>, Denial> {
        let mut values = self.0.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Denial::new(
                ErrorKind::Input,
                format!("the {name} header is given more than once"),
            ));
        }
        value.to_str().map(Some).map_err(|_| {
            Denial::new(
                ErrorKind::Input,
                format!("the {name} header is not printable ASCII"),
            )
        })
    }
}

/// Where a request to the endpoint carries the request it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Original {
    /// Envoy's HTTP service: this request's method, and its path under `/authz`.
    Path,
    /// nginx or Traefik: the proxy's own pair of headers.
    Headers(ProxyHeaders),
}

/// Envoy's HTTP service: the original request is this request's method and its path under `/authz`.
pub(super) async fn authorize_from_path(State(app): State<Arc<App>>, request: Request) -> Response {
    authorize(app, request, Original::Path).await
}

/// nginx or Traefik: the original request is in the configured proxy's pair of headers.
pub(super) async fn authorize_from_headers(
    State(app): State<Arc<App>>,
    request: Request,
) -> Response {
    let original = Original::Headers(app.proxy_headers);
    authorize(app, request, original).await
}

async fn authorize(app: Arc<App>, request: Request, original: Original) -> Response {
    let in_flight = app.metrics().start("http_authz");
    let started = in_flight.started();
    if let Some(value) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        app.await_keys(crate::token::bearer_token(value)).await;
    }
    // One set for the decision and the error format, even when a reload lands in between.
    let policy = app.policies.current();
    let format = policy.route_errors();
    let (parts, body) = request.into_parts();
    // A proxy that did not say which request it asks about is refused before its body is read.
    if let Original::Headers(proxy) = original
        && let Err(denial) = original_from_headers(proxy, &parts.headers)
    {
        return denied(&denial, format, started);
    }
    // A body that is too long, or that does not arrive in time, counts as cut short.
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
    {
        Ok(Ok(bytes)) => Some(bytes),
        Ok(Err(_)) | Err(_) => None,
    };
    let received = Received {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: body.as_deref(),
    };
    answer(original, &received, started, format, |call| {
        let header = |key: &str| parts.headers.get(key).and_then(|v| v.to_str().ok());
        let span = RequestSpan::start("gatehouse /authz", &header);
        app.authorize(&policy, Door::Http, &span, started, call)
    })
}

/// A request to the endpoint as received.
pub struct Received<'a> {
    pub method: &'a Method,
    pub uri: &'a axum::http::Uri,
    pub headers: &'a HeaderMap,
    /// The body; `None` when it was cut short (longer than [`MAX_BODY_BYTES`], or late).
    pub body: Option<&'a [u8]>,
}

/// Answers a request to the endpoint: reads the original request from where `original` says, has
/// `authorize` decide it, and writes the outcome as the proxy's answer. Pure, so the live endpoint and
/// offline evaluation (policy test suites, `gatehouse eval --http`) share this one reading and writing.
pub fn answer(
    original: Original,
    received: &Received<'_>,
    started: Instant,
    format: ErrorFormat,
    authorize: impl FnOnce(&HttpCall<'_>) -> Outcome,
) -> Response {
    let read = match original {
        Original::Path => Ok(original_from_path(received.method, received.uri)),
        Original::Headers(proxy) => original_from_headers(proxy, received.headers),
    };
    let (method, target) = match read {
        Ok(original) => original,
        Err(denial) => return denied(&denial, format, started),
    };
    let body = match received.body {
        None => CallBody::Truncated,
        Some([]) => CallBody::Absent,
        Some(bytes) => CallBody::Complete(bytes),
    };
    let outcome = if target.len() > MAX_URI_BYTES {
        Outcome::Denied(Denial::new(
            crate::authz::ErrorKind::Input,
            "the original URI is too long",
        ))
    } else {
        authorize(&HttpCall {
            method: &method,
            path: &target,
            headers: &Headers(received.headers),
            body,
        })
    };
    match outcome {
        Outcome::Allowed(allowed) => {
            let mut response = StatusCode::OK.into_response();
            let mut absent = Vec::new();
            for (name, value) in allowed.upstream_headers() {
                if value.is_empty() {
                    absent.push(name);
                }
                insert(&mut response, name, value);
            }
            // Envoy's HTTP service only overwrites the headers an answer carries: this removes a
            // client's own x-gatehouse-user-id when there is no user (nginx and Traefik replace
            // or drop them themselves, and ignore this header).
            insert(&mut response, ENVOY_HEADERS_TO_REMOVE, &absent.join(","));
            response
        }
        Outcome::Denied(denial) => denied(&denial, format, started),
    }
}

/// The method and request target Envoy's HTTP service asks about.
fn original_from_path(method: &Method, uri: &axum::http::Uri) -> (String, String) {
    let path = uri.path();
    let original = path.strip_prefix(AUTHZ_PREFIX).unwrap_or(path);
    let original = if original.is_empty() { "/" } else { original };
    let target = match uri.query() {
        Some(query) => format!("{original}?{query}"),
        None => original.to_owned(),
    };
    (method.as_str().to_owned(), target)
}

/// The method and request target from the proxy's own pair of headers, each present exactly once.
fn original_from_headers(
    proxy: ProxyHeaders,
    headers: &HeaderMap,
) -> Result<(String, String), Denial> {
    let (method, uri) = proxy.names();
    Ok((only_header(headers, method)?, only_header(headers, uri)?))
}

fn only_header(headers: &HeaderMap, name: &str) -> Result<String, Denial> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Denial::new(
            ErrorKind::Input,
            format!("the proxy must send exactly one {name} header"),
        ));
    };
    value.to_str().map(str::to_owned).map_err(|_| {
        Denial::new(
            ErrorKind::Input,
            format!("the {name} header is not printable ASCII"),
        )
    })
}

fn denied(denial: &Denial, format: ErrorFormat, started: Instant) -> Response {
    let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
    let body = denial.render(format, started.elapsed());
    let mut response = (status, Body::from(Bytes::from(body.text.clone()))).into_response();
    insert(
        &mut response,
        header::CONTENT_TYPE.as_str(),
        body.content_type,
    );
    insert(&mut response, ERROR_HEADER, &ascii_json(&body.text));
    if let Some(rule) = &denial.rule {
        insert(&mut response, crate::authz::RULE_HEADER, rule);
    }
    if let Some(revision) = &denial.revision {
        insert(&mut response, crate::authz::REVISION_HEADER, revision);
    }
    response
}

/// `json` with every character outside printable ASCII written as a `\u` escape: the same JSON value,
/// as a header value every proxy and client reads alike. Raw UTF-8 (a user id such as `zoë`) is
/// obsolete header text that clients decode differently, and DEL is no header byte at all, so the
/// header would be left out.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_path_door_reads_the_path_only() {
        let uri: axum::http::Uri = "/authz/api/v1.0/feed/user/1/?api_key=k".parse().unwrap();
        let (m, t) = original_from_path(&Method::POST, &uri);
        assert_eq!(
            (m.as_str(), t.as_str()),
            ("POST", "/api/v1.0/feed/user/1/?api_key=k")
        );
    }

    #[test]
    fn the_header_door_reads_only_the_configured_pair() {
        let both = headers(&[
            ("x-original-method", b"DELETE"),
            ("x-original-uri", b"/api/x/?a=1"),
            ("x-forwarded-method", b"PUT"),
            ("x-forwarded-uri", b"/api/y/"),
        ]);
        let (m, t) = original_from_headers(ProxyHeaders::Nginx, &both).unwrap();
        assert_eq!((m.as_str(), t.as_str()), ("DELETE", "/api/x/?a=1"));
        let (m, t) = original_from_headers(ProxyHeaders::Traefik, &both).unwrap();
        assert_eq!((m.as_str(), t.as_str()), ("PUT", "/api/y/"));
    }

    #[test]
    fn a_missing_repeated_or_unreadable_header_is_refused_never_replaced() {
        let cases = [
            headers(&[
                ("x-original-method", b"GET"),
                ("x-forwarded-uri", b"/api/y/"),
            ]),
            headers(&[
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/api/x/?x=\xc3\xa9"),
                ("x-forwarded-uri", b"/api/y/"),
            ]),
            headers(&[
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/api/y/"),
                ("x-original-uri", b"/api/x/"),
            ]),
        ];
        for case in cases {
            let denial = original_from_headers(ProxyHeaders::Nginx, &case).unwrap_err();
            assert_eq!(denial.status(), 400, "{case:?}");
        }
    }

    #[test]
    fn the_error_header_is_ascii_json_with_the_bodys_value() {
        let body = serde_json::json!({ "detail": "user 'zoë' \u{7f} 🦀 \"x\"\n" }).to_string();
        let header = ascii_json(&body);
        assert!(HeaderValue::from_str(&header).is_ok(), "{header}");
        assert!(
            header.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "{header}"
        );
        let back: serde_json::Value = serde_json::from_str(&header).unwrap();
        let original: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back, original);
    }
}
