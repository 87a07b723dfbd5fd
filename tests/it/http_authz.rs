//! The HTTP authorization endpoint (`/authz`) over a real server on loopback, as the three proxies that
//! call it do: Envoy's HTTP ext_authz service (original method, original path appended to the prefix),
//! nginx `auth_request` (`X-Original-Method` / `X-Original-URI`) and Traefik ForwardAuth
//! (`X-Forwarded-Method` / `X-Forwarded-Uri`). Covers the built-in Feeds route table, the upstream
//! headers, Stream's error bodies, no-impersonation through the body, hot reload of a route table and
//! route validation by `gatehouse validate`.
//!
//! Nothing here asserts how long anything takes: every wait polls a condition under a generous deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{Deadline, status, wait_for_failed_reload, write};

use std::fmt::Debug;
use std::path::Path;
use std::process::Command;

use common::{TestServer, check, check_request, now, server_token, sign, sign_with, user_token};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

const API_KEY: &str = "key123";

/// Stream's default Feeds permissions, as shipped.
const FEEDS_YAML: &str = include_str!("../../policies/stream-feeds/feeds.yaml");

// ---------------------------------------------------------------------------------------------------
// Calling the endpoint

/// How the proxy asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Envoy's HTTP ext_authz service: the original method, the original path after `/authz`.
    Envoy,
    /// nginx `auth_request`: `GET /authz` with `X-Original-Method` and `X-Original-URI`.
    Nginx,
    /// Traefik ForwardAuth: `GET /authz` with `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
}

const STYLES: [Style; 3] = [Style::Envoy, Style::Nginx, Style::Traefik];

/// The endpoint's answer.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The error body, parsed.
    fn error(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:#?}"))
    }

    fn detail(&self) -> String {
        self.error()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// What every caller style must agree on: status, upstream headers and the error body without its
    /// duration.
    fn answer(&self) -> (u16, [Option<String>; 4], Value) {
        let header = |n: &str| self.header(n).map(str::to_owned);
        let mut error = if self.body.is_empty() {
            Value::Null
        } else {
            self.error()
        };
        if let Value::Object(map) = &mut error {
            map.remove("duration");
        }
        (
            self.status,
            [
                header("x-gatehouse-user-id"),
                header("x-gatehouse-principal-kind"),
                header("x-gatehouse-rule"),
                header("x-gatehouse-revision"),
            ],
            error,
        )
    }
}

/// An HTTP client that never goes through a proxy from the environment.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A request as the proxy saw it.
struct Call<'a> {
    method: &'a str,
    /// The original request target, path and query.
    target: String,
    headers: Vec<(&'a str, String)>,
    body: Option<Vec<u8>>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, target: impl Into<String>) -> Call<'a> {
        Call {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// The same call with `Authorization: <token>`.
    fn token(self, token: &str) -> Call<'a> {
        self.header("authorization", token.to_owned())
    }

    fn header(mut self, name: &'a str, value: impl Into<String>) -> Call<'a> {
        self.headers.push((name, value.into()));
        self
    }

    fn json(self, body: &Value) -> Call<'a> {
        self.body(serde_json::to_vec(body).unwrap())
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Call<'a> {
        self.body = Some(body.into());
        self
    }
}

/// A server for each way of asking: Envoy's path door and nginx's headers on `main`, Traefik's
/// headers on `traefik` (`GATEHOUSE_AUTHZ_PROXY=traefik`), with the same policies.
struct Doors {
    main: TestServer,
    traefik: TestServer,
}

impl std::ops::Deref for Doors {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.main
    }
}

impl Doors {
    async fn stop(self) -> Result<(), gatehouse::error::ServeError> {
        self.traefik.stop().await?;
        self.main.stop().await
    }
}

async fn ask(doors: &Doors, style: Style, call: &Call<'_>) -> Reply {
    let addr = match style {
        Style::Traefik => doors.traefik.http_addr,
        Style::Envoy | Style::Nginx => doors.main.http_addr,
    };
    ask_at(addr, style, call).await
}

async fn ask_at(addr: std::net::SocketAddr, style: Style, call: &Call<'_>) -> Reply {
    let client = client();
    let mut request = match style {
        Style::Envoy => client.request(
            Method::from_bytes(call.method.as_bytes()).unwrap(),
            format!("http://{addr}/authz{}", call.target),
        ),
        Style::Nginx => client
            .get(format!("http://{addr}/authz"))
            .header("x-original-method", call.method)
            .header("x-original-uri", &call.target),
        Style::Traefik => client
            .get(format!("http://{addr}/authz"))
            .header("x-forwarded-method", call.method)
            .header("x-forwarded-uri", &call.target),
    };
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &call.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.expect("the endpoint answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// Asks the Envoy way (the only one of the three that forwards every method and the body as is).
async fn envoy(server: &TestServer, call: &Call<'_>) -> Reply {
    ask_at(server.http_addr, Style::Envoy, call).await
}

async fn feeds_server() -> Doors {
    Doors {
        main: TestServer::start_with(&[("GATEHOUSE_API_KEY", API_KEY)]).await,
        traefik: TestServer::start_with(&[
            ("GATEHOUSE_API_KEY", API_KEY),
            ("GATEHOUSE_AUTHZ_PROXY", "traefik"),
        ])
        .await,
    }
}

fn api(path: &str) -> String {
    format!("/api/v1.0{path}?api_key={API_KEY}")
}

fn alice() -> String {
    user_token("alice")
}

// ---------------------------------------------------------------------------------------------------
// Assertions

/// A Stream error body with these code and exception, the same body in `x-gatehouse-error`.
fn assert_stream_error(reply: &Reply, status: u16, code: u64, exception: &str) {
    assert_eq!(reply.status, status, "{reply:#?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:#?}"
    );
    assert_eq!(
        reply.header("x-gatehouse-error"),
        Some(reply.body.as_str()),
        "the header carries the body"
    );
    let error = reply.error();
    let keys: Vec<&str> = error
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        6,
        "code, detail, duration, exception, status_code, more_info: {error}"
    );
    assert_eq!(error["code"], code, "{error}");
    assert_eq!(error["exception"], exception, "{error}");
    assert_eq!(error["status_code"], status, "{error}");
    assert!(!reply.detail().is_empty(), "{error}");
    let duration = error["duration"].as_str().unwrap();
    let number = duration
        .strip_suffix("ms")
        .unwrap_or_else(|| panic!("{error}"));
    let (whole, fraction) = number.split_once('.').unwrap_or_else(|| panic!("{error}"));
    assert!(
        !whole.is_empty()
            && whole.chars().all(|c| c.is_ascii_digit())
            && fraction.len() == 2
            && fraction.chars().all(|c| c.is_ascii_digit()),
        "duration like \"0.12ms\": {error}"
    );
    assert!(
        error["more_info"]
            .as_str()
            .unwrap()
            .starts_with("https://getstream.io/"),
        "{error}"
    );
    for name in ["x-gatehouse-user-id", "x-gatehouse-principal-kind"] {
        assert_eq!(reply.header(name), None, "no upstream header on a denial");
    }
}

fn assert_allowed(reply: &Reply, rule: &str) {
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.header("x-gatehouse-rule"), Some(rule), "{reply:#?}");
    assert!(reply.body.is_empty(), "{reply:#?}");
    assert_eq!(reply.header("x-gatehouse-error"), None);
}

fn assert_forbidden(reply: &Reply) {
    assert_stream_error(reply, 403, 17, "NotAllowedException");
}

// ---------------------------------------------------------------------------------------------------
// 1. Three callers, one answer

/// One request of the table, by alice unless it brings its own credentials.
struct Row {
    call: Call<'static>,
    /// `Some(rule)`: allowed by that rule; `None`: 403.
    allowed_by: Option<&'static str>,
}

fn row(call: Call<'static>, allowed_by: Option<&'static str>) -> Row {
    Row { call, allowed_by }
}

fn feeds_table() -> Vec<Row> {
    let a = alice();
    let s = server_token();
    vec![
        // Feeds: read, write, delete.
        row(
            Call::new("GET", api("/feed/user/bob/")).token(&a),
            Some("read-global-read-feeds"),
        ),
        row(Call::new("GET", api("/feed/timeline/bob/")).token(&a), None),
        row(
            Call::new("GET", api("/feed/timeline/alice/")).token(&a),
            Some("own-feeds"),
        ),
        row(
            Call::new("POST", api("/feed/timeline/alice/"))
                .token(&a)
                .json(&json!({"actor": "alice", "verb": "post", "object": "x"})),
            Some("own-feeds"),
        ),
        row(
            Call::new("POST", api("/feed/notification/bob/"))
                .token(&a)
                .json(&json!({"actor": "SU:alice", "verb": "mention", "object": "x"})),
            Some("write-global-write-feeds"),
        ),
        row(
            Call::new("POST", api("/feed/timeline/alice/"))
                .token(&a)
                .json(&json!({"actor": "bob", "verb": "post", "object": "x"})),
            None,
        ),
        row(
            Call::new(
                "DELETE",
                format!("/api/v1.0/feed/user/alice/act1/?api_key={API_KEY}&foreign_id=1"),
            )
            .token(&a),
            Some("own-feeds"),
        ),
        row(
            Call::new("DELETE", api("/feed/user/bob/act1/")).token(&a),
            None,
        ),
        // Follows.
        row(
            Call::new("POST", api("/feed/timeline/alice/following/"))
                .token(&a)
                .json(&json!({"target": "user:bob"})),
            Some("follow-from-own-feeds"),
        ),
        row(
            Call::new("POST", api("/feed/timeline/bob/following/"))
                .token(&a)
                .json(&json!({"target": "user:alice"})),
            None,
        ),
        row(
            Call::new("DELETE", api("/feed/timeline/alice/following/user:bob/")).token(&a),
            Some("follow-from-own-feeds"),
        ),
        // Users.
        row(
            Call::new("GET", api("/user/bob/")).token(&a),
            Some("read-any-user"),
        ),
        row(
            Call::new("PUT", api("/user/alice/"))
                .token(&a)
                .json(&json!({"data": {"name": "Alice"}})),
            Some("manage-own-user"),
        ),
        row(Call::new("PUT", api("/user/bob/")).token(&a), None),
        // Reactions: the owner is the body's user_id, else the caller.
        row(
            Call::new("POST", api("/reaction/"))
                .token(&a)
                .json(&json!({"kind": "like", "activity_id": "a1"})),
            Some("manage-own-reactions-and-collections"),
        ),
        row(
            Call::new("POST", api("/reaction/"))
                .token(&a)
                .json(&json!({"kind": "like", "activity_id": "a1", "user_id": "bob"})),
            None,
        ),
        // Open Graph.
        row(
            Call::new(
                "GET",
                format!("/api/v1.0/og/?api_key={API_KEY}&url=https%3A%2F%2Fexample.com%2Fa"),
            )
            .token(&a),
            Some("read-open-graph"),
        ),
        // Server-side only.
        row(Call::new("GET", api("/audit_logs/")).token(&a), None),
        row(
            Call::new("GET", api("/audit_logs/")).token(&s),
            Some("server-token"),
        ),
        // Outside the table.
        row(Call::new("GET", api("/no_such_endpoint/")).token(&a), None),
        // CORS preflights are public.
        row(
            Call::new("OPTIONS", "/api/v1.0/feed/user/bob/"),
            Some("public-route:cors-preflight"),
        ),
    ]
}

#[tokio::test]
async fn the_three_caller_styles_give_the_same_answers() {
    let server = feeds_server().await;
    for row in feeds_table() {
        let what = format!("{} {}", row.call.method, row.call.target);
        let mut answers = Vec::new();
        for style in STYLES {
            let reply = ask(&server, style, &row.call).await;
            match row.allowed_by {
                Some(rule) => assert_allowed(&reply, rule),
                None => assert_forbidden(&reply),
            }
            answers.push((style, reply.answer()));
        }
        let (_, first) = &answers[0];
        for (style, answer) in &answers[1..] {
            assert_eq!(answer, first, "{what}: {style:?} disagrees with Envoy");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_server_token_rule_is_reported_for_server_calls() {
    // The table above names the server token's rule; make sure the name is the one the engine uses.
    let server = feeds_server().await;
    let mut client = server.client().await;
    let response = check(
        &mut client,
        check_request(
            &server_token(),
            "read",
            "audit_logs",
            "",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(response.allowed);
    assert_eq!(response.rule, "server-token");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 2. Upstream headers

#[tokio::test]
async fn allowed_requests_carry_the_caller_rule_and_revision() {
    let server = feeds_server().await;
    let mut client = server.client().await;
    let revision = status(&mut client).await.policy_revision;
    assert!(!revision.is_empty());
    let checked = check(
        &mut client,
        check_request(&alice(), "read", "feed", "user:bob", json!({}), json!({})),
    )
    .await;
    assert_eq!(checked.policy_revision, revision);

    // A user.
    let reply = envoy(
        &server,
        &Call::new("GET", api("/feed/user/bob/")).token(&alice()),
    )
    .await;
    assert_allowed(&reply, "read-global-read-feeds");
    assert_eq!(reply.header("x-gatehouse-user-id"), Some("alice"));
    assert_eq!(reply.header("x-gatehouse-principal-kind"), Some("user"));
    assert_eq!(
        reply.header("x-gatehouse-revision"),
        Some(revision.as_str())
    );

    // A server token: no user.
    let reply = envoy(
        &server,
        &Call::new("GET", api("/feed/timeline/bob/")).token(&server_token()),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.header("x-gatehouse-principal-kind"), Some("server"));
    assert_eq!(reply.header("x-gatehouse-user-id"), None);
    assert_eq!(
        reply.header("x-gatehouse-revision"),
        Some(revision.as_str())
    );

    // Denials name the deciding rule and revision too.
    let reply = envoy(
        &server,
        &Call::new("GET", api("/feed/timeline/bob/")).token(&alice()),
    )
    .await;
    assert_forbidden(&reply);
    assert_eq!(reply.header("x-gatehouse-rule"), Some("default-deny"));
    assert_eq!(
        reply.header("x-gatehouse-revision"),
        Some(revision.as_str())
    );

    // Anonymous callers get nothing on feeds.
    for style in STYLES {
        let reply = ask(
            &server,
            style,
            &Call::new("GET", api("/feed/user/bob/")).header("stream-auth-type", "anonymous"),
        )
        .await;
        assert_forbidden(&reply);
        assert!(reply.detail().contains("anonymous"), "{reply:#?}");
    }
    server.stop().await.unwrap();
}

/// A routes file of its own, for a directory beside feeds.yaml.
const V2_ROUTES: &str = "\
routes:
  - name: v2-feed-read
    methods: [GET]
    path: /v2/feeds/{group}/{user_id}
    resource: feed
    id: \"{group}:{user_id}\"
    action: read
";

#[tokio::test]
async fn anonymous_callers_are_reported_as_anonymous() {
    const ANONYMOUS_READS: &str = "\
rules:
  - name: anonymous-reads-feeds
    effect: allow
    resource: feed
    actions: [read]
    when:
      principal: anonymous
";
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("feeds.yaml"), FEEDS_YAML);
    write(&dir.path().join("routes.yaml"), V2_ROUTES);
    write(&dir.path().join("anonymous.yaml"), ANONYMOUS_READS);
    let server = serve_dir(dir.path()).await;
    let reply = envoy(
        &server,
        &Call::new("GET", "/v2/feeds/timeline/bob").header("stream-auth-type", "anonymous"),
    )
    .await;
    assert_allowed(&reply, "anonymous-reads-feeds");
    assert_eq!(
        reply.header("x-gatehouse-principal-kind"),
        Some("anonymous")
    );
    assert_eq!(reply.header("x-gatehouse-user-id"), None);
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 3. Denials

#[tokio::test]
async fn a_denial_is_streams_not_allowed_error_in_the_body_and_the_header() {
    let server = feeds_server().await;
    for style in STYLES {
        let reply = ask(
            &server,
            style,
            &Call::new("GET", api("/feed/timeline/bob/")).token(&alice()),
        )
        .await;
        assert_forbidden(&reply);
        let detail = reply.detail();
        assert!(
            detail.contains("alice") && detail.contains("read") && detail.contains("timeline:bob"),
            "the detail names the caller, action and resource: {detail}"
        );

        let reply = ask(
            &server,
            style,
            &Call::new("GET", api("/no_such_endpoint/")).token(&alice()),
        )
        .await;
        assert_forbidden(&reply);
        assert!(
            reply.detail().contains("no route"),
            "{style:?}: {}",
            reply.detail()
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn credentials_are_checked_before_any_rule() {
    let server = feeds_server().await;
    let read_bob = || Call::new("GET", api("/feed/user/bob/"));

    // No token.
    for style in STYLES {
        let reply = ask(&server, style, &read_bob()).await;
        assert_stream_error(&reply, 401, 3, "SignatureException");
    }

    // `Bearer ` is optional.
    let token = alice();
    for value in [token.clone(), format!("Bearer {token}")] {
        let reply = envoy(&server, &read_bob().header("authorization", value)).await;
        assert_allowed(&reply, "read-global-read-feeds");
        assert_eq!(reply.header("x-gatehouse-user-id"), Some("alice"));
    }

    // Expired.
    let expired = sign(json!({"user_id": "alice", "exp": now() - 3600}));
    let reply = envoy(&server, &read_bob().token(&expired)).await;
    assert_stream_error(&reply, 401, 3, "SignatureException");

    // Signed with another secret: refused, and never echoed.
    let forged = sign_with(
        json!({"user_id": "alice"}),
        b"another-secret-of-at-least-thirty-two-bytes-0123456789",
    );
    for value in [forged.clone(), format!("Bearer {forged}")] {
        let reply = envoy(&server, &read_bob().header("authorization", value)).await;
        assert_stream_error(&reply, 401, 3, "SignatureException");
        let signature = forged.rsplit('.').next().unwrap();
        assert!(
            !reply.body.contains(signature) && !reply.body.contains(&forged),
            "the token is not echoed: {}",
            reply.body
        );
    }

    // Not a JWT at all.
    let reply = envoy(&server, &read_bob().token("not-a-jwt")).await;
    assert_stream_error(&reply, 401, 3, "SignatureException");

    // api_key: wrong or missing.
    for target in [
        "/api/v1.0/feed/user/bob/?api_key=wrong".to_owned(),
        "/api/v1.0/feed/user/bob/".to_owned(),
        "/api/v1.0/feed/user/bob/?other=key123".to_owned(),
    ] {
        for style in STYLES {
            let reply = ask(
                &server,
                style,
                &Call::new("GET", target.clone()).token(&token),
            )
            .await;
            assert_stream_error(&reply, 401, 2, "ApiKeyException");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unreadable_paths_and_bodies_are_input_errors() {
    let server = feeds_server().await;
    let token = alice();

    // Dot segments (sent verbatim by nginx and Traefik; an HTTP client would resolve them in a URL).
    for target in [
        api("/feed/user/../alice/"),
        api("/feed/user/%2e%2e/alice/"),
        api("/feed/./user/alice/"),
    ] {
        for style in [Style::Nginx, Style::Traefik] {
            let reply = ask(
                &server,
                style,
                &Call::new("GET", target.clone()).token(&token),
            )
            .await;
            assert_stream_error(&reply, 400, 4, "InputException");
        }
    }

    // An encoded '/' in a segment, in every style.
    for target in [
        api("/feed/user/alice%2Fbob/"),
        api("/feed/user/alice%2fbob/"),
    ] {
        for style in STYLES {
            let reply = ask(
                &server,
                style,
                &Call::new("GET", target.clone()).token(&token),
            )
            .await;
            assert_stream_error(&reply, 400, 4, "InputException");
        }
    }

    // A body that is not JSON, on a route that reads it.
    let reply = envoy(
        &server,
        &Call::new("POST", api("/feed/user/alice/"))
            .token(&token)
            .body("actor=alice&verb=post"),
    )
    .await;
    assert_stream_error(&reply, 400, 4, "InputException");
    assert!(reply.detail().contains("JSON"), "{}", reply.detail());

    // A valid JSON body just over 1 MiB counts as cut short.
    let padding = "x".repeat(1024 * 1024);
    let big = json!({"actor": "alice", "verb": "post", "object": "x", "pad": padding});
    let reply = envoy(
        &server,
        &Call::new("POST", api("/feed/user/alice/"))
            .token(&token)
            .json(&big),
    )
    .await;
    assert_stream_error(&reply, 400, 4, "InputException");
    assert!(reply.detail().contains("cut short"), "{}", reply.detail());

    // The same body just under the limit is read.
    let padding = "x".repeat(1024 * 1024 - 200);
    let fits = json!({"actor": "alice", "verb": "post", "object": "x", "pad": padding});
    let reply = envoy(
        &server,
        &Call::new("POST", api("/feed/user/alice/"))
            .token(&token)
            .json(&fits),
    )
    .await;
    assert_allowed(&reply, "own-feeds");

    // A route that does not read the body does not care how long it is.
    let reply = envoy(
        &server,
        &Call::new("PUT", api("/user/alice/"))
            .token(&token)
            .json(&big),
    )
    .await;
    assert_allowed(&reply, "manage-own-user");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 4. No impersonation through the body

#[tokio::test]
async fn the_actor_in_the_body_must_be_the_caller() {
    let server = feeds_server().await;
    let post = |body: Option<Value>| {
        let call = Call::new("POST", api("/feed/user/alice/")).token(&alice());
        match body {
            Some(body) => call.json(&body),
            None => call,
        }
    };
    let cases: Vec<(Option<Value>, bool)> = vec![
        (
            Some(json!({"actor": "SU:alice", "verb": "post", "object": "x"})),
            true,
        ),
        (
            Some(json!({"actor": "alice", "verb": "post", "object": "x"})),
            true,
        ),
        (
            Some(json!({"actor": "bob", "verb": "post", "object": "x"})),
            false,
        ),
        (
            Some(json!({"actor": "SU:bob", "verb": "post", "object": "x"})),
            false,
        ),
        (
            Some(json!({"actor": "", "verb": "post", "object": "x"})),
            false,
        ),
        (Some(json!({"verb": "post", "object": "x"})), false),
        // Batches: every actor the same.
        (
            Some(json!({"activities": [{"actor": "alice"}, {"actor": "alice"}]})),
            true,
        ),
        (
            Some(json!({"activities": [{"actor": "SU:alice"}, {"actor": "SU:alice"}]})),
            true,
        ),
        // Different actors form a list, which never refers to the caller, even when each does.
        (
            Some(json!({"activities": [{"actor": "alice"}, {"actor": "SU:alice"}]})),
            false,
        ),
        (
            Some(json!({"activities": [{"actor": "alice"}, {"actor": "bob"}]})),
            false,
        ),
        // A top-level actor must not vouch for a batch of someone else's activities.
        (
            Some(
                json!({"actor": "alice", "activities": [{"actor": "bob", "verb": "post", "object": "x"}]}),
            ),
            false,
        ),
        // No body: no-impersonation cannot be checked.
        (None, false),
    ];
    for (body, allowed) in cases {
        let reply = envoy(&server, &post(body.clone())).await;
        if allowed {
            assert_eq!(reply.status, 200, "{body:?} is allowed: {reply:#?}");
            assert_allowed(&reply, "own-feeds");
        } else {
            assert_eq!(reply.status, 403, "{body:?} is denied: {reply:#?}");
            assert_forbidden(&reply);
            assert_eq!(
                reply.header("x-gatehouse-rule"),
                Some("no-impersonation"),
                "{body:?}: {reply:#?}"
            );
        }
    }
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 5. Hot reload of routes

/// Writes a temporary file beside `path`, then renames it over `path`.
fn replace(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    write(&temporary, text);
    std::fs::rename(&temporary, path).unwrap();
}

async fn serve_dir(dir: &Path) -> TestServer {
    TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
    ])
    .await
}

/// Whether `text` holds `prefix` followed by a line number.
fn has_line_number(text: &str, prefix: &str) -> bool {
    text.match_indices(prefix).any(|(at, _)| {
        text[at + prefix.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() && c != '0')
    })
}

async fn wait_for_reply(
    server: &TestServer,
    call: &Call<'_>,
    what: &'static str,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Deadline::new(what);
    loop {
        let reply = envoy(server, call).await;
        if done(&reply) {
            return reply;
        }
        deadline.tick(&reply).await;
    }
}

#[tokio::test]
async fn a_route_table_reloads_and_a_bad_one_leaves_the_last_good_table_serving() {
    const V3_ROUTES: &str = "\
routes:
  - name: v3-feed-read
    methods: [GET]
    path: /v3/feeds/{group}/{user_id}
    resource: feed
    id: \"{group}:{user_id}\"
    action: read
";
    const MISSING_CAPTURE: &str = "\
routes:
  - name: v3-feed-read
    methods: [GET]
    path: /v3/feeds/{group}/{user_id}
    resource: feed
    id: \"{group}:{owner}\"
    action: read
";
    const OVERLAPPING: &str = "\
routes:
  - name: v3-feed-read
    methods: [GET]
    path: /v3/feeds/{group}/{user_id}
    resource: feed
    id: \"{group}:{user_id}\"
    action: read
  - name: v3-feed-read-again
    methods: [GET, HEAD]
    path: /v3/feeds/{kind}/{who}/
    resource: feed
    id: \"{kind}:{who}\"
    action: read
";
    let dir = TempDir::new().unwrap();
    let routes = dir.path().join("routes.yaml");
    write(&dir.path().join("feeds.yaml"), FEEDS_YAML);
    write(&routes, V2_ROUTES);
    let server = serve_dir(dir.path()).await;
    let mut client = server.client().await;
    let good = status(&mut client).await;
    assert!(good.last_error.is_empty(), "{good:?}");

    let v2 = Call::new("GET", "/v2/feeds/user/bob").token(&alice());
    let v3 = Call::new("GET", "/v3/feeds/user/bob/").token(&alice());
    let reply = envoy(&server, &v2).await;
    assert_allowed(&reply, "read-global-read-feeds");
    assert_eq!(
        reply.header("x-gatehouse-revision"),
        Some(good.policy_revision.as_str())
    );
    let reply = envoy(&server, &v3).await;
    assert_forbidden(&reply);
    assert!(reply.detail().contains("no route"), "{}", reply.detail());

    // The path moves: v2 is no longer described, v3 is.
    replace(&routes, V3_ROUTES);
    let reply = wait_for_reply(&server, &v2, "v2 to lose its route", |r| r.status != 200).await;
    assert_forbidden(&reply);
    assert!(reply.detail().contains("no route"), "{}", reply.detail());
    let reply = envoy(&server, &v3).await;
    assert_allowed(&reply, "read-global-read-feeds");
    let moved = status(&mut client).await;
    assert_ne!(moved.policy_revision, good.policy_revision);
    assert!(moved.last_error.is_empty(), "{moved:?}");
    assert_eq!(
        reply.header("x-gatehouse-revision"),
        Some(moved.policy_revision.as_str())
    );

    // Invalid tables are refused, each reported with the file and line, and v3 keeps serving.
    let mut failures = moved.reloads_failed;
    for (bad, mentions) in [
        (MISSING_CAPTURE, "owner"),
        (OVERLAPPING, "v3-feed-read-again"),
    ] {
        replace(&routes, bad);
        let failed = wait_for_failed_reload(&mut client, failures).await;
        failures = failed.reloads_failed;
        assert_eq!(failed.policy_revision, moved.policy_revision);
        assert!(
            has_line_number(&failed.last_error, "routes.yaml:")
                && failed.last_error.contains(mentions),
            "the error names the file, line and problem: {}",
            failed.last_error
        );
        let reply = envoy(&server, &v3).await;
        assert_allowed(&reply, "read-global-read-feeds");
        assert_eq!(
            reply.header("x-gatehouse-revision"),
            Some(moved.policy_revision.as_str())
        );
        assert_forbidden(&envoy(&server, &v2).await);
    }

    // Fixing it brings v2 back and clears the error.
    replace(&routes, V2_ROUTES);
    wait_for_reply(&server, &v2, "v2 to come back", |r| r.status == 200).await;
    let fixed = status(&mut client).await;
    assert!(fixed.last_error.is_empty(), "{fixed:?}");
    assert_eq!(fixed.policy_revision, good.policy_revision);
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 6. Route validation

#[test]
fn validate_reports_every_route_mistake_with_file_and_line() {
    const BAD_ROUTES: &str = "\
routes:
  - name: unknown-kind
    methods: [GET]
    path: /a/{id}
    resource: gizmo
    id: \"{id}\"
    action: read
  - name: undeclared-action
    methods: [GET]
    path: /b/{group}/{user_id}
    resource: feed
    id: \"{group}:{user_id}\"
    action: publish
  - name: rest-not-last
    methods: [GET]
    path: /c/**/d
    resource: feed
    action: read
  - name: no-methods
    path: /e/
    resource: feed
    action: read
  - name: bad-source
    methods: [POST]
    path: /f/{group}/{user_id}
    resource: feed
    id: \"{group}:{user_id}\"
    action: write
    context:
      actor: cookie.actor
  - name: twice
    methods: [GET]
    path: /g/
    resource: users
    action: read
  - name: twice
    methods: [GET]
    path: /h/
    resource: users
    action: read
";
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("feeds.yaml"), FEEDS_YAML);
    write(&dir.path().join("routes.yaml"), BAD_ROUTES);
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("validate")
        .arg(dir.path())
        .env_remove("GATEHOUSE_POLICY_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each mistake on its own line, naming the file and the line of the route it is in.
    let line_of = |needle: &str| -> usize {
        BAD_ROUTES
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim() == format!("- name: {needle}"))
            .map(|(i, _)| i + 1)
            .last()
            .unwrap()
    };
    let cases = [
        ("unknown-kind", "gizmo"),
        ("undeclared-action", "publish"),
        ("rest-not-last", "'**' may only be the last segment"),
        ("no-methods", "needs methods"),
        ("bad-source", "cookie.actor"),
        ("twice", "defined twice"),
    ];
    for (route, problem) in cases {
        let reported = text.lines().find(|l| l.contains(problem));
        let reported = reported.unwrap_or_else(|| panic!("'{problem}' is not reported: {text}"));
        assert!(
            has_line_number(reported, "routes.yaml:"),
            "file and line for {route}: {reported}"
        );
        let line = line_of(route);
        let at = format!("routes.yaml:{line}");
        assert!(
            reported.match_indices(&at).any(|(i, _)| {
                !reported[i + at.len()..].starts_with(|c: char| c.is_ascii_digit())
            }),
            "{route} is at line {line}: {reported}\n{text}"
        );
    }

    // The shipped table passes.
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("validate")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/stream-feeds"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
