//! `envoy.service.auth.v3.Authorization`: Envoy's gRPC external authorization, on our gRPC port.
//!
//! Thin glue around [`crate::authz`]. Every answer, a denial included, is a successful RPC carrying
//! `CheckResponse.status` and an HTTP response for Envoy to send; a gRPC error is reserved for Envoy's
//! own failures, so that `failure_mode_allow` keeps its meaning (it applies to an unreachable or failing
//! authorizer, never to a denial).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use crate::App;
use crate::authz::{
    Allowed, Authorizer, CallBody, Denial, ErrorKind, HeaderLookup, HttpCall, Outcome,
};
use crate::decider::Source;
use crate::telemetry::context::RequestSpan;
use crate::token::unix_now;

/// Envoy marks a body cut at `max_request_bytes` (with `allow_partial_message`) with this header.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// The ext_authz service.
pub struct ExtAuthzService {
    app: Arc<App>,
}

impl ExtAuthzService {
    pub fn new(app: Arc<App>) -> Self {
        ExtAuthzService { app }
    }
}

/// Envoy sends headers as a lower-cased map, or as `header_map` when `encode_raw_headers` is set.
struct EnvoyHeaders<'a> {
    map: &'a HashMap<String, String>,
    raw: &'a [HeaderValue],
}

impl HeaderLookup for EnvoyHeaders<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.map.get(name) {
            return Some(value);
        }
        self.raw
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .and_then(|h| {
                if h.value.is_empty() {
                    std::str::from_utf8(&h.raw_value).ok()
                } else {
                    Some(h.value.as_str())
                }
            })
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let in_flight = self.app.metrics().start("ext_authz");
        let started = in_flight.started();
        let (metadata, _, request) = request.into_parts();
        let http = request
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http);
        let Some(http) = http else {
            let denial = Denial::new(
                ErrorKind::Input,
                "the CheckRequest has no attributes.request.http",
            );
            return Ok(Response::new(denied(&denial, started)));
        };
        let no_headers = Vec::new();
        let headers = EnvoyHeaders {
            map: &http.headers,
            raw: http.header_map.as_ref().map_or(&no_headers, |m| &m.headers),
        };
        let body = if headers
            .header(PARTIAL_BODY_HEADER)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            CallBody::Truncated
        } else if !http.raw_body.is_empty() {
            CallBody::Complete(&http.raw_body)
        } else if !http.body.is_empty() {
            CallBody::Complete(http.body.as_bytes())
        } else {
            CallBody::Absent
        };
        let call = HttpCall {
            method: &http.method,
            path: &http.path,
            headers: &headers,
            body,
        };
        // The proxy's own trace context (gRPC metadata) first, else the client request's headers.
        let header = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .or_else(|| headers.header(key))
        };
        let span = RequestSpan::start("envoy.service.auth.v3.Authorization/Check", &header);
        let policy = self.app.policies.current();
        let authorizer = Authorizer {
            verifier: &self.app.verifier,
            api_key: &self.app.api_key,
            policy: &policy,
            now: unix_now(),
            decider: &self.app.decider,
            source: Source::ExtAuthz,
            span: &span,
            started,
        };
        let response = match authorizer.authorize(&call) {
            Outcome::Allowed(allowed) => ok(&allowed, self.app.strip_authorization),
            Outcome::Denied(denial) => denied(&denial, started),
        };
        Ok(Response::new(response))
    }
}

fn ok(allowed: &Allowed, strip_authorization: bool) -> CheckResponse {
    let mut headers = Vec::new();
    let mut headers_to_remove = Vec::new();
    for (name, value) in allowed.upstream_headers() {
        if value.is_empty() {
            headers_to_remove.push(name.to_owned());
        } else {
            headers.push(header(name, value));
        }
    }
    if strip_authorization {
        headers_to_remove.push("authorization".to_owned());
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: tonic::Code::Ok.into(),
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..OkHttpResponse::default()
        })),
        ..CheckResponse::default()
    }
}

fn denied(denial: &Denial, started: Instant) -> CheckResponse {
    let code = match denial.kind {
        ErrorKind::ApiKey | ErrorKind::Authentication => tonic::Code::Unauthenticated,
        ErrorKind::Input => tonic::Code::InvalidArgument,
        ErrorKind::NotAllowed => tonic::Code::PermissionDenied,
    };
    let mut headers = vec![header("content-type", "application/json")];
    if let Some(revision) = &denial.revision {
        headers.push(header(crate::authz::REVISION_HEADER, revision));
    }
    if let Some(rule) = &denial.rule {
        headers.push(header(crate::authz::RULE_HEADER, rule));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: code.into(),
            message: denial.detail.clone(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(denial.status()),
            }),
            headers,
            body: denial.body(started.elapsed()),
        })),
        ..CheckResponse::default()
    }
}

/// A header that replaces any value the client sent.
fn header(name: &str, value: &str) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    }
}
