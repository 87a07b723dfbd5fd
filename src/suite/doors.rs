//! Request cases evaluated offline, through the doors' own reading of a request and writing of an
//! answer ([`crate::grpc::answer_ext_authz`], [`crate::http::answer`]) and the authorizer, gate and
//! mode handling of the live doors; only the clock, the secret and the recording differ.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest as EnvoyHttpRequest, Request as EnvoyRequest,
};
use serde_json::Value;

use super::{HttpRequest, PrincipalDoc, RouteCase};
use crate::authz::{Authorizer, OfflineGate, Outcome, ProxyHeaders, RULE_HEADER};
use crate::door::Door;
use crate::http::{AUTHZ_PREFIX, ENVOY_HEADERS_TO_REMOVE, ERROR_HEADER, MAX_BODY_BYTES};
use crate::policy::PolicySet;
use crate::token::{ApiSecret, IssueRequest, Issuer, Keyring, Secrets, Verifier, VerifyOptions};

/// The door a request case goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteDoor {
    /// Envoy's gRPC ext_authz: the request with its headers and body (`with_request_body`).
    Envoy,
    /// Envoy's HTTP ext_authz service: the method and `/authz` + path, the headers and the body.
    EnvoyHttp,
    /// nginx `auth_request`: `GET /authz` with `X-Original-Method` / `X-Original-URI`; no body.
    Nginx,
    /// Traefik ForwardAuth: `GET /authz` with `X-Forwarded-Method` / `X-Forwarded-Uri`; no body.
    Traefik,
}

impl SuiteDoor {
    pub const NAMES: [&'static str; 4] = ["envoy", "envoy-http", "nginx", "traefik"];

    pub fn parse(name: &str) -> Option<SuiteDoor> {
        match name {
            "envoy" => Some(SuiteDoor::Envoy),
            "envoy-http" => Some(SuiteDoor::EnvoyHttp),
            "nginx" => Some(SuiteDoor::Nginx),
            "traefik" => Some(SuiteDoor::Traefik),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SuiteDoor::Envoy => "envoy",
            SuiteDoor::EnvoyHttp => "envoy-http",
            SuiteDoor::Nginx => "nginx",
            SuiteDoor::Traefik => "traefik",
        }
    }

    /// The live door whose route mode applies.
    fn door(self) -> Door {
        match self {
            SuiteDoor::Envoy => Door::ExtAuthz,
            SuiteDoor::EnvoyHttp | SuiteDoor::Nginx | SuiteDoor::Traefik => Door::Http,
        }
    }
}

/// What a door answered, as the proxy and the upstream see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The deciding rule the answer names (`x-gatehouse-rule`), if any.
    pub rule: Option<String>,
    /// Why: the decision's sentence, or the denial's detail.
    pub reason: String,
    /// The headers the upstream receives (allowed requests); an empty value: removed.
    pub upstream_headers: BTreeMap<String, String>,
    /// How the rules were weighed, when the request reached them.
    pub explanation: Option<crate::engine::Explanation>,
}

impl Answer {
    pub fn allowed(&self) -> bool {
        self.status == 200
    }
}

/// Evaluates requests against a set with tokens of an ephemeral secret.
pub struct Offline<'a> {
    set: &'a PolicySet,
    issuer: Issuer,
    verifier: Verifier,
    now: i64,
}

impl<'a> Offline<'a> {
    /// With a random secret of its own: the tokens it mints are verified by the real verifier and are
    /// worth nothing anywhere else.
    pub fn new(set: &'a PolicySet, now: i64) -> Self {
        Offline::with_secrets(set, &Secrets::single(ApiSecret::random()), now)
    }

    /// With the app's secrets, so tokens a caller brings verify.
    pub fn with_secrets(set: &'a PolicySet, secrets: &Secrets, now: i64) -> Self {
        let keyring = Keyring::new(secrets.clone());
        Offline {
            set,
            issuer: Issuer::with_keyring(Arc::clone(&keyring)),
            verifier: Verifier::with_keyring(keyring, VerifyOptions::default()),
            now,
        }
    }

    /// `request` as `principal` sends it: a token minted for a user or server principal in
    /// `Authorization` (unless the request has its own), `stream-auth-type: anonymous` for an
    /// anonymous one.
    pub fn with_credentials(
        &self,
        request: &HttpRequest,
        principal: Option<&PrincipalDoc>,
    ) -> Result<HttpRequest, String> {
        let mut request = request.clone();
        let Some(principal) = principal else {
            return Ok(request);
        };
        if principal.anonymous {
            if request.header("stream-auth-type").is_none() {
                request
                    .headers
                    .push(("stream-auth-type".into(), "anonymous".into()));
            }
            return Ok(request);
        }
        if request.header("authorization").is_some() {
            return Ok(request);
        }
        let token = self.mint(principal)?;
        request
            .headers
            .push(("authorization".into(), format!("Bearer {token}")));
        Ok(request)
    }

    fn mint(&self, principal: &PrincipalDoc) -> Result<String, String> {
        principal.to_principal()?;
        if principal.server {
            return self
                .issuer
                .server_token_at(self.now)
                .map_err(|e| e.to_string());
        }
        let mut claims = principal.claims.clone();
        if !principal.channel_roles.is_empty() {
            let roles = principal
                .channel_roles
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            claims.insert("channel_roles".into(), Value::Object(roles));
        }
        let request = IssueRequest {
            user_id: principal.id.clone().unwrap_or_default(),
            expires_in_seconds: 0,
            claims,
            roles: principal.roles.clone(),
            groups: principal.groups.clone(),
        };
        self.issuer
            .issue_at(request, self.now)
            .map(|issued| issued.token)
            .map_err(|e| format!("cannot mint a token for the principal: {e}"))
    }

    /// Sends `request` through `door` and reads the answer.
    pub fn ask(&self, request: &HttpRequest, door: SuiteDoor) -> Answer {
        let gate = OfflineGate::new(&self.verifier, door.door());
        let authorizer = Authorizer {
            api_key: "",
            policy: self.set,
            now: self.now,
            gate: &gate,
        };
        let mut detail = None;
        let authorize = |call: &crate::authz::HttpCall<'_>| {
            let outcome = authorizer.authorize(call);
            if let Outcome::Denied(denial) = &outcome {
                detail = Some(denial.detail.clone());
            }
            outcome
        };
        let started = Instant::now();
        let format = self.set.route_errors();
        let mut answer = match door {
            SuiteDoor::Envoy => {
                let check = check_request(request);
                read_check_response(crate::grpc::answer_ext_authz(
                    &check, started, false, format, authorize,
                ))
            }
            _ => ask_http(request, door, started, format, authorize),
        };
        answer.reason = detail
            .or_else(|| gate.last_reason())
            .unwrap_or_else(|| format!("allowed by {}", answer.rule.as_deref().unwrap_or("")));
        answer.explanation = gate.take_explanation();
        answer
    }

    /// Why `case` does not hold, if it does not.
    pub fn run(&self, case: &RouteCase) -> Result<(), String> {
        let request = self.with_credentials(&case.request, case.principal.as_ref())?;
        let answer = self.ask(&request, case.door);
        let mut wrong = Vec::new();
        if answer.allowed() != case.allowed {
            wrong.push(format!(
                "expected {}, got {}",
                crate::engine::verdict_name(case.allowed),
                crate::engine::verdict_name(answer.allowed())
            ));
        }
        if let Some(status) = case.status.filter(|s| *s != answer.status) {
            wrong.push(format!("expected status {status}, got {}", answer.status));
        }
        if let Some(rule) = case
            .rule
            .as_ref()
            .filter(|r| answer.rule.as_ref() != Some(r))
        {
            let got = answer.rule.as_deref().unwrap_or("no rule");
            wrong.push(format!("expected rule {rule}, got {got}"));
        }
        for (name, value) in &case.upstream_headers {
            let got = answer
                .upstream_headers
                .get(&name.to_ascii_lowercase())
                .map(String::as_str)
                .unwrap_or("");
            if got != value {
                wrong.push(format!(
                    "expected upstream header {name}: '{value}', got '{got}'"
                ));
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let parts = answer
            .explanation
            .as_ref()
            .map(|e| crate::engine::explain_summary(e, case.rule.as_deref()))
            .unwrap_or_default();
        Err(format!(
            "{} (door {}, status {}): {}\n{parts}",
            wrong.join("; "),
            case.door.as_str(),
            answer.status,
            answer.reason
        )
        .trim_end()
        .to_owned())
    }
}

/// The CheckRequest Envoy sends for `request`: headers as its lower-cased map, body as text.
fn check_request(request: &HttpRequest) -> CheckRequest {
    let http = EnvoyHttpRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.iter().cloned().collect(),
        raw_body: request.body.clone().unwrap_or_default(),
        ..EnvoyHttpRequest::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(EnvoyRequest {
                http: Some(http),
                ..EnvoyRequest::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

fn read_check_response(response: CheckResponse) -> Answer {
    let mut answer = Answer {
        status: 403,
        rule: None,
        reason: String::new(),
        upstream_headers: BTreeMap::new(),
        explanation: None,
    };
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            answer.status = 200;
            for removed in ok.headers_to_remove {
                answer.upstream_headers.insert(removed, String::new());
            }
            for header in ok.headers.into_iter().filter_map(|h| h.header) {
                answer.upstream_headers.insert(header.key, header.value);
            }
            answer.rule = answer.upstream_headers.get(RULE_HEADER).cloned();
        }
        Some(HttpResponse::DeniedResponse(denied)) => {
            answer.status = denied
                .status
                .and_then(|s| u16::try_from(s.code).ok())
                .unwrap_or(403);
            answer.rule = denied
                .headers
                .into_iter()
                .filter_map(|h| h.header)
                .find(|h| h.key == RULE_HEADER)
                .map(|h| h.value);
        }
        Some(HttpResponse::ErrorResponse(_)) | None => {}
    }
    answer
}

/// The request the HTTP door receives from the proxy `door` for `request`, and its answer.
fn ask_http(
    request: &HttpRequest,
    door: SuiteDoor,
    started: Instant,
    format: crate::policy::ErrorFormat,
    authorize: impl FnOnce(&crate::authz::HttpCall<'_>) -> Outcome,
) -> Answer {
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let (original, method, uri, body) = match door {
        SuiteDoor::Nginx | SuiteDoor::Traefik => {
            let proxy = if door == SuiteDoor::Nginx {
                ProxyHeaders::Nginx
            } else {
                ProxyHeaders::Traefik
            };
            let (method_name, uri_name) = proxy.names();
            for (name, value) in [(method_name, &request.method), (uri_name, &request.path)] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            }
            let original = crate::http::Original::Headers(proxy);
            (original, Method::GET, Uri::from_static(AUTHZ_PREFIX), None)
        }
        SuiteDoor::Envoy | SuiteDoor::EnvoyHttp => {
            let method = Method::from_bytes(request.method.as_bytes()).unwrap_or(Method::GET);
            let uri = format!("{AUTHZ_PREFIX}{}", request.path)
                .parse::<Uri>()
                .unwrap_or_else(|_| Uri::from_static(AUTHZ_PREFIX));
            let body = request.body.as_deref();
            (crate::http::Original::Path, method, uri, body)
        }
    };
    let received = crate::http::Received {
        method: &method,
        uri: &uri,
        headers: &headers,
        // What a proxy forwards past the endpoint's limit arrives cut short.
        body: match body {
            None => Some(&[]),
            Some(bytes) if bytes.len() <= MAX_BODY_BYTES => Some(bytes),
            Some(_) => None,
        },
    };
    let response = crate::http::answer(original, &received, started, format, authorize);
    read_http_response(&response)
}

fn read_http_response(response: &axum::response::Response) -> Answer {
    let text = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = response.status().as_u16();
    let mut upstream_headers = BTreeMap::new();
    if status == 200 {
        for removed in text(ENVOY_HEADERS_TO_REMOVE).unwrap_or_default().split(',') {
            if !removed.is_empty() {
                upstream_headers.insert(removed.to_owned(), String::new());
            }
        }
        for (name, value) in response.headers() {
            let name = name.as_str();
            if name.starts_with("x-gatehouse-") && name != ERROR_HEADER {
                let value = value.to_str().unwrap_or_default().to_owned();
                upstream_headers.insert(name.to_owned(), value);
            }
        }
    }
    Answer {
        status,
        rule: text(RULE_HEADER),
        reason: String::new(),
        upstream_headers,
        explanation: None,
    }
}
