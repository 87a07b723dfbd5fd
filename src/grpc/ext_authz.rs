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
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use super::layer::scope_of;
use crate::app::App;
use crate::authz::{Allowed, CallBody, Denial, ErrorKind, HeaderLookup, HttpCall, Outcome};
use crate::door::Door;
use crate::policy::ErrorFormat;

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

/// Envoy sends headers either as a lower-cased map or, when `encode_raw_headers` is set, as
/// `header_map`; the request says which by carrying a `header_map`, and only that one is read.
enum EnvoyHeaders<'a> {
    Map(&'a HashMap<String, String>),
    Raw(&'a [HeaderValue]),
}

impl HeaderLookup for EnvoyHeaders<'_> {
    fn header(&self, name: &str) -> Result<Option<&str>, Denial> {
        match self {
            EnvoyHeaders::Map(map) => Ok(map.get(name).map(String::as_str)),
            EnvoyHeaders::Raw(raw) => {
                let mut found = raw.iter().filter(|h| h.key.eq_ignore_ascii_case(name));
                let Some(header) = found.next() else {
                    return Ok(None);
                };
                if found.next().is_some() {
                    return Err(Denial::new(
                        ErrorKind::Input,
                        format!("the {name} header is given more than once"),
                    ));
                }
                match (header.value.is_empty(), header.raw_value.is_empty()) {
                    (_, true) => Ok(Some(header.value.as_str())),
                    (true, false) => {
                        std::str::from_utf8(&header.raw_value)
                            .map(Some)
                            .map_err(|_| {
                                Denial::new(
                                    ErrorKind::Input,
                                    format!("the {name} header is not UTF-8"),
                                )
                            })
                    }
                    (false, false) => Err(Denial::new(
                        ErrorKind::Input,
                        format!("the {name} header has both a value and a raw value"),
                    )),
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let (_, extensions, request) = request.into_parts();
        let scope = scope_of(&extensions);
        let started = scope.started();
        let authorization = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .and_then(|h| h.headers.get("authorization"));
        if let Some(value) = authorization {
            self.app.await_keys(crate::token::bearer_token(value)).await;
        }
        // One set for the decision and the error format, even when a reload lands in between.
        let policy = self.app.policies.current();
        let format = policy.route_errors();
        let response = answer(
            &request,
            started,
            self.app.strip_authorization,
            format,
            |call| {
                // The proxy's own trace context (gRPC metadata) first, else the client request's headers.
                let from_message = |key: &str| call.headers.header(key).ok().flatten();
                let span = scope.span_or(&from_message);
                self.app
                    .authorize(&policy, Door::ExtAuthz, span, started, call)
            },
        );
        Ok(Response::new(response))
    }
}

/// Answers Envoy's `request`: reads it as an [`HttpCall`], has `authorize` decide it and writes the
/// outcome as Envoy's response. Pure, so the live service and offline evaluation (policy test suites,
/// `gatehouse eval --http`) read requests and write answers through this one function.
pub fn answer(
    request: &CheckRequest,
    started: Instant,
    strip_authorization: bool,
    format: ErrorFormat,
    authorize: impl FnOnce(&HttpCall<'_>) -> Outcome,
) -> CheckResponse {
    let http = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let Some(http) = http else {
        let denial = Denial::new(
            ErrorKind::Input,
            "the CheckRequest has no attributes.request.http",
        );
        return denied(&denial, format, started);
    };
    let headers = match &http.header_map {
        Some(map) => EnvoyHeaders::Raw(&map.headers),
        None => EnvoyHeaders::Map(&http.headers),
    };
    let body = match body(http, &headers) {
        Ok(body) => body,
        Err(denial) => return denied(&denial, format, started),
    };
    let call = HttpCall {
        method: &http.method,
        path: &http.path,
        headers: &headers,
        body,
    };
    match authorize(&call) {
        Outcome::Allowed(allowed) => ok(&allowed, strip_authorization),
        Outcome::Denied(denial) => denied(&denial, format, started),
    }
}

/// The request body as Envoy forwarded it: as bytes (`pack_as_bytes`) or as text, never both.
fn body<'a>(http: &'a HttpRequest, headers: &EnvoyHeaders<'_>) -> Result<CallBody<'a>, Denial> {
    let partial = headers
        .header(PARTIAL_BODY_HEADER)?
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(
        match (partial, http.raw_body.is_empty(), http.body.is_empty()) {
            (true, _, _) => CallBody::Truncated,
            (false, true, true) => CallBody::Absent,
            (false, false, true) => CallBody::Complete(&http.raw_body),
            (false, true, false) => CallBody::Complete(http.body.as_bytes()),
            (false, false, false) => {
                return Err(Denial::new(
                    ErrorKind::Input,
                    "the CheckRequest carries the body both as bytes and as text",
                ));
            }
        },
    )
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

fn denied(denial: &Denial, format: ErrorFormat, started: Instant) -> CheckResponse {
    let code = match denial.kind {
        ErrorKind::ApiKey | ErrorKind::Authentication => tonic::Code::Unauthenticated,
        ErrorKind::Input => tonic::Code::InvalidArgument,
        ErrorKind::NotAllowed => tonic::Code::PermissionDenied,
    };
    let body = denial.render(format, started.elapsed());
    let mut headers = vec![header("content-type", body.content_type)];
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
            body: body.text,
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
