//! Route matching and the translation of a proxied HTTP request into a decision, on the built-in
//! Stream Feeds set (`policies/stream-feeds/routes.yaml`).
//!
//! Each input is one request (method, path, query, credentials, headers, body), drawn by
//! `arbitrary`: paths are the table's own templates with fuzzed values filled in, or raw text. An
//! input that starts with a request line (`GET /api/v1.0/feed/user/u1/?api_key=...` and a newline)
//! takes its method and path from that line, so the seeds can be real requests.
//!
//! Invariants:
//! - `RouteTable::find` agrees with the reference matcher in `gatehouse_fuzz::routes` (refusal, the
//!   winning route, its captures) and ignores the query string;
//! - `Authorizer::authorize` never panics; what it allows went through a route, and unless the
//!   route is public it carried the app's api_key and a credential that verifies (or said
//!   `stream-auth-type: anonymous`);
//! - the three doors decide alike: the Authorizer called directly, Envoy's gRPC ext_authz `Check`
//!   (the CheckRequest -> HttpCall translation in `gatehouse::grpc`) and the HTTP `/authz` endpoint
//!   (nginx style, `X-Original-Method` / `X-Original-URI`): same allow or deny, same HTTP status,
//!   same deciding rule.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use arbitrary::Arbitrary;
use axum::body::Body;
use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use gatehouse::App;
use gatehouse::authz::{CallBody, Denial, HeaderLookup, HttpCall, Outcome, RULE_HEADER};
use gatehouse::config::Config;
use gatehouse::door::Door;
use gatehouse::grpc::ExtAuthzService;
use gatehouse::telemetry::context::RequestSpan;
use gatehouse_fuzz::token::{SECRET, sign};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tower::ServiceExt as _;

const API_KEY: &str = "fuzz-api-key";

struct Harness {
    app: Arc<App>,
    runtime: tokio::runtime::Runtime,
    ext_authz: ExtAuthzService,
    router: axum::Router,
    /// Credentials: user tokens with and without roles, server and scope tokens, expired and
    /// wrongly signed ones.
    tokens: Vec<String>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let secret = std::str::from_utf8(SECRET).expect("the fuzz secret is text");
    let env = |name: &str| -> Option<String> {
        match name {
            "GATEHOUSE_API_SECRET" => Some(secret.to_owned()),
            "GATEHOUSE_API_KEY" => Some(API_KEY.to_owned()),
            "GATEHOUSE_DECISION_LOG_RING" => Some("64".to_owned()),
            _ => None,
        }
    };
    let config = Config::load_with(None, &env).expect("the fuzz configuration loads");
    let app = Arc::new(App::from_config(&config).expect("the app starts"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let header = json!({"alg": "HS256", "typ": "JWT"}).to_string();
    let tokens = [
        json!({"user_id": "u0"}),
        json!({"user_id": "u1", "roles": ["admin"]}),
        json!({"user_id": "u2", "role": "admin", "groups": ["g0"]}),
        json!({"server": true}),
        json!({"resource": "*", "action": "*", "feed_id": "*"}),
        json!({"resource": "feed", "action": "read", "feed_id": "useru0"}),
        json!({"resource": "*", "action": "*", "user_id": "u1"}),
        json!({"user_id": "u0", "exp": 1000}),
        json!({"user_id": "u0", "nbf": 4_000_000_000_i64}),
    ]
    .iter()
    .map(|claims| sign(&header, &claims.to_string()))
    .chain([
        "not-a-token".to_owned(),
        format!("{}x", sign(&header, &json!({"user_id": "u0"}).to_string())),
    ])
    .collect();
    Harness {
        ext_authz: ExtAuthzService::new(Arc::clone(&app)),
        router: gatehouse::http::router(Arc::clone(&app)),
        app,
        runtime,
        tokens,
    }
});

#[derive(Debug, Arbitrary)]
enum PathChoice {
    Template {
        route: u8,
        fills: Vec<Fill>,
        trailing_slash: bool,
    },
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Fill {
    User(u8),
    Group(u8),
    Text(String),
    Encoded(u8),
    Empty,
}

impl Fill {
    fn text(&self) -> String {
        match self {
            Fill::User(n) => format!("u{}", n % 3),
            Fill::Group(n) => {
                ["user", "timeline", "notification", "aggregated"][usize::from(n % 4)].to_owned()
            }
            Fill::Text(text) => text.chars().take(40).collect(),
            Fill::Encoded(n) => [
                "%75%30", "a%2Fb", "%2e%2e", "%zz", "%C3%A9", "%ff", "a%5cb", ".",
            ][usize::from(n % 8)]
            .to_owned(),
            Fill::Empty => String::new(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Credential {
    None,
    Token { index: u8, bearer: u8 },
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum BodyChoice {
    Absent,
    Truncated,
    Json(JsonBody),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum JsonBody {
    Actor(u8),
    Activities(Vec<u8>),
    UserId(u8),
    Drawn(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    method_text: String,
    path: PathChoice,
    query: Vec<(u8, String)>,
    api_key: u8,
    credential: Credential,
    auth_type: Option<u8>,
    headers: Vec<(u8, String)>,
    body: BodyChoice,
    raw_envoy_headers: bool,
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "HEAD",
];
const QUERY_KEYS: &[&str] = &["foreign_id", "user_id", "id", "api_key", "limit", "ids"];
const HEADERS: &[&str] = &[
    "x-user",
    "content-type",
    "x-request-id",
    "traceparent",
    "stream-auth-type",
    "authorization",
];

struct Headers(Vec<(String, String)>);

impl HeaderLookup for Headers {
    fn header(&self, name: &str) -> Result<Option<&str>, Denial> {
        Ok(self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str()))
    }
}

/// What a door answered: allowed, the HTTP status, the deciding rule.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    allowed: bool,
    status: u16,
    rule: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(end) if data.first().is_some_and(u8::is_ascii_uppercase) => {
            (std::str::from_utf8(&data[..end]).ok(), &data[end + 1..])
        }
        _ => (None, data),
    };
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(rest)) else {
        return;
    };
    let line = line.and_then(|line| line.split_once(' '));
    run(line, &input);
});

fn run(line: Option<(&str, &str)>, input: &Input) {
    let h = &*HARNESS;
    let policy = h.app.policies.current();
    let routes = policy.routes().routes();

    let method = if let Some((method, _)) = line {
        method.to_owned()
    } else if input.method < 200 {
        METHODS[usize::from(input.method) % METHODS.len()].to_owned()
    } else {
        input.method_text.chars().take(16).collect()
    };
    let mut path = match &input.path {
        _ if line.is_some() => line.map(|(_, path)| path.to_owned()).unwrap_or_default(),
        PathChoice::Template {
            route,
            fills,
            trailing_slash,
        } => {
            let Some(route) = routes.get(usize::from(*route) % routes.len().max(1)) else {
                return;
            };
            let fills: Vec<String> = fills.iter().take(8).map(Fill::text).collect();
            gatehouse_fuzz::routes::path_for(route.template(), &fills, *trailing_slash)
        }
        PathChoice::Raw(text) => text.chars().take(4096).collect(),
    };
    let mut query: Vec<String> = input
        .query
        .iter()
        .take(4)
        .map(|(k, v)| {
            let v: String = v.chars().take(32).collect();
            format!("{}={}", QUERY_KEYS[usize::from(*k) % QUERY_KEYS.len()], v)
        })
        .collect();
    match input.api_key % 4 {
        0 | 1 => query.insert(0, format!("api_key={API_KEY}")),
        2 => query.push("api_key=wrong".to_owned()),
        _ => {}
    }
    if !query.is_empty() && !path.contains('?') {
        path = format!("{path}?{}", query.join("&"));
    }

    check_find(routes, &method, &path);

    let mut headers: Vec<(String, String)> = Vec::new();
    match &input.credential {
        Credential::None => {}
        Credential::Token { index, bearer } => {
            let token = &h.tokens[usize::from(*index) % h.tokens.len()];
            let value = match bearer % 3 {
                0 => format!("Bearer {token}"),
                1 => token.clone(),
                _ => format!("bearer  {token} "),
            };
            headers.push(("authorization".to_owned(), value));
        }
        Credential::Raw(text) => {
            headers.push(("authorization".to_owned(), text.chars().take(256).collect()))
        }
    }
    if let Some(kind) = input.auth_type {
        let value = [
            "jwt",
            "anonymous",
            "Anonymous",
            "JWT",
            "other",
            " anonymous ",
        ][usize::from(kind % 6)];
        headers.push(("stream-auth-type".to_owned(), value.to_owned()));
    }
    for (name, value) in input.headers.iter().take(4) {
        headers.push((
            HEADERS[usize::from(*name) % HEADERS.len()].to_owned(),
            value.chars().take(64).collect(),
        ));
    }
    // One value per name, the first, so every door sees the same headers.
    let mut seen = Vec::new();
    headers.retain(|(name, _)| {
        let first = !seen.contains(name);
        seen.push(name.clone());
        first
    });
    let body_bytes: Option<Vec<u8>> = match &input.body {
        BodyChoice::Absent | BodyChoice::Truncated => None,
        BodyChoice::Json(body) => Some(json_body(body).into_bytes()),
        BodyChoice::Raw(bytes) => Some(bytes.iter().take(2048).copied().collect()),
    };
    let call_body = match (&input.body, &body_bytes) {
        (BodyChoice::Truncated, _) => CallBody::Truncated,
        (_, Some(bytes)) if !bytes.is_empty() => CallBody::Complete(bytes),
        _ => CallBody::Absent,
    };

    let lookup = Headers(headers.clone());
    let call = HttpCall {
        method: &method,
        path: &path,
        headers: &lookup,
        body: call_body,
    };
    let span = RequestSpan::start("fuzz", &|_| None);
    let outcome = h
        .app
        .authorize(&policy, Door::ExtAuthz, &span, Instant::now(), &call);
    check_allowed(&outcome, &policy, &method, &path, &lookup);
    let direct = match &outcome {
        Outcome::Allowed(allowed) => Answer {
            allowed: true,
            status: 200,
            rule: Some(allowed.rule.clone()),
        },
        Outcome::Denied(denial) => Answer {
            allowed: false,
            status: denial.status(),
            rule: denial.rule.clone(),
        },
    };

    let envoy = h.runtime.block_on(ext_authz(
        h,
        &method,
        &path,
        &headers,
        input,
        body_bytes.as_deref(),
    ));
    assert_eq!(
        direct, envoy,
        "ext_authz decides otherwise than the Authorizer: {method} {path:?}"
    );

    if matches!(input.body, BodyChoice::Truncated) {
        return;
    }
    if let Some(http) = h.runtime.block_on(http_door(
        h,
        &method,
        &path,
        &headers,
        body_bytes.as_deref(),
    )) {
        assert_eq!(
            direct, http,
            "/authz decides otherwise than the Authorizer: {method} {path:?}"
        );
    }
}

fn json_body(body: &JsonBody) -> String {
    let user = |n: &u8| format!("u{}", n % 3);
    match body {
        JsonBody::Actor(n) => json!({"actor": user(n), "verb": "post", "object": "x"}).to_string(),
        JsonBody::Activities(actors) => json!({
            "activities": actors.iter().take(4).map(|n| json!({"actor": user(n)})).collect::<Vec<_>>()
        })
        .to_string(),
        JsonBody::UserId(n) => json!({"user_id": user(n), "data": {}}).to_string(),
        JsonBody::Drawn(bytes) => {
            let mut u = arbitrary::Unstructured::new(bytes);
            gatehouse_fuzz::values::value(&mut u, 3)
                .unwrap_or_default()
                .to_string()
        }
    }
}

/// `find` against the reference, and against itself with the query changed.
fn check_find(routes: &[gatehouse::policy::Route], method: &str, path: &str) {
    let table = &HARNESS.app.policies.current();
    let table = table.routes();
    let found = table.find(method, path);
    let summary = |found: &Result<Option<gatehouse::policy::RouteMatch<'_>>, _>| match found {
        Err(_) => Err(()),
        Ok(None) => Ok(None),
        Ok(Some(m)) => Ok(Some((
            m.route.name.clone(),
            m.captures
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect::<Vec<_>>(),
        ))),
    };
    let actual = summary(&found);
    let expected = gatehouse_fuzz::routes::find(routes, method, path)
        .map(|found| found.map(|(index, captures)| (routes[index].name.clone(), captures)));
    assert_eq!(
        actual, expected,
        "find({method:?}, {path:?}) differs from the reference"
    );

    if actual.is_err() {
        // A refused target may be refused for its query (a byte that is not printable ASCII).
        return;
    }
    let bare = path.split('?').next().unwrap_or(path);
    assert_eq!(
        summary(&table.find(method, &format!("{bare}?api_key=x&limit=1"))),
        actual,
        "the query string changed the route of {path:?}"
    );
}

/// What the Authorizer allowed must have passed every gate before the decision.
fn check_allowed(
    outcome: &Outcome,
    policy: &gatehouse::policy::PolicySet,
    method: &str,
    path: &str,
    headers: &Headers,
) {
    let Outcome::Allowed(allowed) = outcome else {
        return;
    };
    let Ok(Some(found)) = policy.routes().find(method, path) else {
        panic!("allowed a request no route describes: {method} {path:?}");
    };
    assert_eq!(allowed.route, found.route.name);
    if found.route.public {
        assert_eq!(allowed.principal_kind, "public");
        return;
    }
    assert_eq!(
        gatehouse::authz::query_param(path, "api_key"),
        Ok(Some(API_KEY.to_owned())),
        "allowed without the app's api_key: {method} {path:?}"
    );
    let anonymous = headers
        .header("stream-auth-type")
        .ok()
        .flatten()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("anonymous"));
    if anonymous {
        assert_eq!(allowed.principal_kind, "anonymous");
        return;
    }
    let token = headers
        .header("authorization")
        .ok()
        .flatten()
        .unwrap_or_default()
        .trim();
    let token = match token.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => {
            token.get(7..).unwrap_or("").trim()
        }
        _ => token,
    };
    let principal = HARNESS.app.verifier.verify(token).unwrap_or_else(|e| {
        panic!("allowed with a credential that does not verify ({e}): {method} {path:?}")
    });
    assert_eq!(allowed.user_id, principal.user_id);
}

async fn ext_authz(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    input: &Input,
    body: Option<&[u8]>,
) -> Answer {
    let mut http = HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        raw_body: body.map(<[u8]>::to_vec).unwrap_or_default(),
        ..HttpRequest::default()
    };
    let mut headers = headers.to_vec();
    if matches!(input.body, BodyChoice::Truncated) {
        headers.push(("x-envoy-auth-partial-body".to_owned(), "true".to_owned()));
    }
    if input.raw_envoy_headers {
        http.header_map = Some(HeaderMap {
            headers: headers
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.clone(),
                    value: String::new(),
                    raw_value: v.clone().into_bytes(),
                })
                .collect(),
        });
    } else {
        http.headers = headers.into_iter().collect::<HashMap<_, _>>();
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    };
    let response = h
        .ext_authz
        .check(tonic::Request::new(request))
        .await
        .expect("ext_authz answers every request")
        .into_inner();
    let allowed = response.status.as_ref().is_some_and(|s| s.code == 0);
    let rule_of = |headers: &[envoy_types::ext_authz::v3::pb::HeaderValueOption]| {
        headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == RULE_HEADER)
            .map(|h| h.value.clone())
    };
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => Answer {
            allowed,
            status: 200,
            rule: rule_of(&ok.headers),
        },
        Some(HttpResponse::DeniedResponse(denied)) => Answer {
            allowed,
            status: denied
                .status
                .map_or(0, |s| u16::try_from(s.code).unwrap_or(0)),
            rule: rule_of(&denied.headers),
        },
        Some(HttpResponse::ErrorResponse(_)) | None => {
            panic!("ext_authz answered without an OK or denied HTTP response")
        }
    }
}

/// The `/authz` endpoint, nginx style; `None` when the request cannot be written as HTTP headers.
async fn http_door(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Option<Answer> {
    let visible = |s: &str| s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    let trimmed = |s: &str| s.trim() == s;
    if !visible(path) || !visible(method) || method.is_empty() || !trimmed(method) || !trimmed(path)
    {
        return None;
    }
    if headers.iter().any(|(_, v)| !visible(v) || !trimmed(v)) {
        return None;
    }
    let mut request = axum::http::Request::builder()
        .method("GET")
        .uri("/authz")
        .header("x-original-method", method)
        .header("x-original-uri", path);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Body::from(body.map(<[u8]>::to_vec).unwrap_or_default()))
        .ok()?;
    let response = h.router.clone().oneshot(request).await.ok()?;
    let status = response.status().as_u16();
    Some(Answer {
        allowed: status == 200,
        status,
        rule: response
            .headers()
            .get(RULE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}
