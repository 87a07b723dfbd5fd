//! Policy test suites through the real binary: every error of a broken suite with its line in one run
//! (`validate` and `test`), rule names checked against the set, request cases through the doors
//! offline, and `eval --http`. Then the offline doors against the live ones: each request case of the
//! shipped Feeds suite, asked of a real server over gRPC ext_authz and HTTP, gets the same answer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common;

use common::{SECRET, TestServer, gatehouse_command};
use gatehouse::suite::{Offline, SuiteDoor};

/// A small set: one kind, one rule, two routes (one public). Every kind and action is declared.
const POLICY: &str = r#"
resources:
  - kind: doc
    actions: [read, delete]
rules:
  - name: read-docs
    effect: allow
    resource: doc
    actions: [read]
routes:
  - name: doc-read
    methods: [GET]
    path: /docs/{id}
    resource: doc
    id: "{id}"
    action: read
  - name: doc-delete
    methods: [DELETE]
    path: /docs/{id}
    resource: doc
    id: "{id}"
    action: delete
  - name: health
    methods: [GET]
    path: /health
    public: true
"#;

fn policy_dir(suites: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write(&dir.path().join("policy.yaml"), POLICY);
    for (name, text) in suites {
        common::write(&dir.path().join(name), text);
    }
    dir
}

fn run(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = gatehouse_command().args(args).arg(dir).output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const BROKEN: &str = "\
principals:
  jack: { id: jack }
tests:
  - name: unknown principal
    principal: jak
    resource: { kind: doc, id: d1 }
    action: read
    expect: allow
  - name: bad verdict
    principal: jack
    resource: { kind: doc, id: d1 }
    action: read
    expect: yes
  - name: unknown resource
    principal: jack
    resource: the-doc
    action: read
    expect: allow
  - name: typo
    principal: jack
    resource: { kind: doc, id: d1 }
    action: read
    expect: allow
    colour: blue
  - name: unknown door
    principal: jack
    request: { method: GET, path: /docs/d1 }
    door: haproxy
    expect: allow
  - name: fine
    principal: jack
    resource: { kind: doc, id: d1 }
    action: read
    expect: allow
";

#[test]
fn a_broken_suite_reports_every_error_with_its_line_in_one_run_of_validate_and_test() {
    let dir = policy_dir(&[("broken_test.yaml", BROKEN)]);
    let expected = [
        "broken_test.yaml:5: test 'unknown principal': principal 'jak' is not defined (did you mean 'jack'?)",
        "broken_test.yaml:13: test 'bad verdict': expect must be allow or deny, not 'yes'",
        "broken_test.yaml:16: test 'unknown resource': resource 'the-doc' is not defined",
        "broken_test.yaml:24: test 'typo': unknown field `colour`",
        "broken_test.yaml:28: test 'unknown door': door must be one of envoy, envoy-http, nginx, traefik, not 'haproxy'",
    ];
    for command in ["validate", "test"] {
        let (code, stdout, stderr) = run(&[command], dir.path());
        assert_eq!(code, Some(1), "{command}: {stdout}{stderr}");
        assert!(!stdout.contains("passed"), "{command} ran tests: {stdout}");
        for line in expected {
            assert!(
                stderr.contains(line),
                "{command} does not report `{line}`:\n{stderr}"
            );
        }
        let reported = stderr
            .lines()
            .filter(|l| l.contains("broken_test.yaml:"))
            .count();
        assert_eq!(reported, expected.len(), "{command}:\n{stderr}");
    }
}

#[test]
fn a_rule_no_part_of_the_set_decides_is_an_error_not_a_failure() {
    let suite = "\
tests:
  - name: misspelt rule
    principal: { id: jack }
    resource: { kind: doc, id: d1 }
    action: read
    expect: allow
    rule: read-doc
  - name: built-in rule
    principal: { id: jack }
    resource: { kind: doc, id: d1 }
    action: delete
    expect: deny
    rule: default-deny
";
    let dir = policy_dir(&[("rules_test.yaml", suite)]);
    for command in ["validate", "test"] {
        let (code, stdout, stderr) = run(&[command], dir.path());
        assert_eq!(code, Some(1), "{command}: {stdout}{stderr}");
        assert!(!stdout.contains("FAIL"), "{command}: {stdout}");
        assert!(
            stderr.contains(
                "rules_test.yaml:7: test 'misspelt rule': rule 'read-doc' is no rule, chat policy or permission of the set, nor a built-in rule name (did you mean 'read-docs'?)"
            ),
            "{command}:\n{stderr}"
        );
        assert!(!stderr.contains("built-in rule'"), "{stderr}");
    }
    let fixed = suite.replace("rule: read-doc\n", "rule: read-docs\n");
    let dir = policy_dir(&[("rules_test.yaml", &fixed)]);
    let (code, stdout, stderr) = run(&["validate"], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 test suite with 2 tests checked (not run)"),
        "{stdout}"
    );
}

const REQUESTS: &str = "\
principals:
  jack: { id: jack }
tests:
  - name: jack reads a doc
    principal: jack
    request: { method: GET, path: /docs/d1 }
    expect: allow
    status: 200
    rule: read-docs
    upstream_headers: { x-gatehouse-user-id: jack, x-gatehouse-principal-kind: user }
  - name: jack deletes a doc
    door: nginx
    principal: jack
    request: { method: DELETE, path: /docs/d1 }
    expect: deny
    status: 403
    rule: default-deny
  - name: no token
    door: traefik
    request: { method: GET, path: /docs/d1 }
    expect: deny
    status: 401
  - name: health is public
    door: envoy-http
    request: { method: GET, path: /health }
    expect: allow
    rule: public-route:health
";

#[test]
fn request_cases_pass_and_a_wrong_expectation_fails_with_what_came_instead() {
    let dir = policy_dir(&[("requests_test.yaml", REQUESTS)]);
    let (code, stdout, stderr) = run(&["test"], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "4 passed, 0 failed");

    let wrong = REQUESTS.replace(
        "    expect: deny\n    status: 403\n    rule: default-deny\n",
        "    expect: allow\n    status: 200\n    rule: read-docs\n",
    );
    let dir = policy_dir(&[("requests_test.yaml", &wrong)]);
    let (code, stdout, stderr) = run(&["test"], dir.path());
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "FAIL requests_test.yaml:11: test 'jack deletes a doc': expected allow, got deny; expected status 200, got 403; expected rule read-docs, got default-deny (door nginx, status 403): user 'jack' is not allowed to perform delete on doc d1"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("3 passed, 1 failed\n"), "{stdout}");
}

fn feeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/stream-feeds")
}

#[test]
fn eval_http_prints_the_status_rule_reason_and_upstream_headers() {
    let (code, stdout, stderr) = run(
        &[
            "eval",
            "--http",
            "GET /api/v1.0/feed/user/tommaso/",
            "--principal",
            "jack",
            "--door",
            "nginx",
        ],
        &feeds(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "ALLOWED GET /api/v1.0/feed/user/tommaso/ through nginx: status 200, rule read-global-read-feeds"
    );
    assert!(lines[1].starts_with("user 'jack' may perform read on feed user:tommaso"));
    assert!(
        lines.contains(&"  upstream x-gatehouse-user-id: jack"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"  upstream x-gatehouse-principal-kind: user"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"  upstream x-gatehouse-dry-run: (removed)"),
        "{stdout}"
    );

    let (code, stdout, _) = run(
        &[
            "eval",
            "--http",
            "DELETE /api/v1.0/user/tommaso/",
            "--principal",
            "jack",
        ],
        &feeds(),
    );
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with(
            "DENIED DELETE /api/v1.0/user/tommaso/ through envoy: status 403, rule default-deny\nuser 'jack' is not allowed to perform delete on users tommaso"
        ),
        "{stdout}"
    );
}

#[test]
fn eval_http_verifies_a_token_the_caller_brings_with_the_configured_secret() {
    let token = common::user_token("jack");
    let args = ["eval", "--http", "GET /api/v1.0/user/tommaso/", "-H"];
    let header = format!("authorization: Bearer {token}");
    let output = gatehouse_command()
        .args(args)
        .arg(&header)
        .arg(feeds())
        .env("GATEHOUSE_API_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("status 200, rule read-any-user"),
        "{stdout}"
    );
    let output = gatehouse_command()
        .args(args)
        .arg(&header)
        .arg(feeds())
        .env(
            "GATEHOUSE_API_SECRET",
            "another-secret-of-sufficient-length-0123456789abcdef",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("status 401"), "{stdout}");
}

#[test]
fn the_door_decides_what_is_read_of_the_request() {
    // nginx forwards no body, so the actor of a new activity is unknown; Envoy forwards it. And each
    // door reads the original request from its own place only: a client's X-Original-URI means
    // nothing to Envoy, and nginx overwrites it with the real one.
    let suite = "\
principals:
  tommaso: { id: tommaso }
tests:
  - name: envoy reads the actor from the body
    principal: tommaso
    request: { method: POST, path: /api/v1.0/feed/user/tommaso/, body: { actor: tommaso } }
    expect: allow
    rule: own-feeds
  - name: nginx does not forward the body
    door: nginx
    principal: tommaso
    request: { method: POST, path: /api/v1.0/feed/user/tommaso/, body: { actor: tommaso } }
    expect: deny
    rule: no-impersonation
  - name: envoy ignores a client's x-original-uri
    principal: tommaso
    request:
      method: GET
      path: /api/v1.0/feed/timeline/jack/
      headers: { x-original-uri: /api/v1.0/feed/timeline/tommaso/, x-original-method: GET }
    expect: deny
    rule: default-deny
  - name: traefik reads x-forwarded-uri, not x-original-uri
    door: traefik
    principal: tommaso
    request:
      method: GET
      path: /api/v1.0/feed/timeline/jack/
      headers: { x-original-uri: /api/v1.0/feed/timeline/tommaso/ }
    expect: deny
    rule: default-deny
";
    let dir = tempfile::tempdir().unwrap();
    for file in ["feeds.yaml", "routes.yaml"] {
        std::fs::copy(feeds().join(file), dir.path().join(file)).unwrap();
    }
    common::write(&dir.path().join("doors_test.yaml"), suite);
    let (code, stdout, stderr) = run(&["test"], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "4 passed, 0 failed");
    // And the same request differs between doors.
    let envoy = run(
        &[
            "eval",
            "--http",
            "POST /api/v1.0/feed/user/tommaso/",
            "--principal",
            "tommaso",
            "--body",
            r#"{"actor": "tommaso"}"#,
        ],
        dir.path(),
    );
    let nginx = run(
        &[
            "eval",
            "--http",
            "POST /api/v1.0/feed/user/tommaso/",
            "--principal",
            "tommaso",
            "--body",
            r#"{"actor": "tommaso"}"#,
            "--door",
            "nginx",
        ],
        dir.path(),
    );
    assert_eq!(envoy.0, Some(0), "{}", envoy.1);
    assert_eq!(nginx.0, Some(1), "{}", nginx.1);
    assert!(
        nginx.1.contains("status 403, rule no-impersonation"),
        "{}",
        nginx.1
    );
}

/// The CheckRequest Envoy sends for `request`.
fn envoy_request(
    request: &gatehouse::suite::HttpRequest,
) -> envoy_types::ext_authz::v3::pb::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    headers: request.headers.iter().cloned().collect(),
                    raw_body: request.body.clone().unwrap_or_default(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// (status, x-gatehouse-rule, x-gatehouse-user-id) as the live server answers Envoy's gRPC check.
async fn live_envoy(
    client: &mut envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient<
        tonic::transport::Channel,
    >,
    request: &gatehouse::suite::HttpRequest,
) -> (u16, Option<String>, Option<String>) {
    use envoy_types::ext_authz::v3::pb::HttpResponse;
    let response = client
        .check(envoy_request(request))
        .await
        .unwrap()
        .into_inner();
    let (status, headers) = match response.http_response.unwrap() {
        HttpResponse::OkResponse(ok) => (200, ok.headers),
        HttpResponse::DeniedResponse(denied) => (
            u16::try_from(denied.status.unwrap().code).unwrap(),
            denied.headers,
        ),
        HttpResponse::ErrorResponse(_) => panic!("an error response"),
    };
    let header = |name: &str| {
        headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.clone())
    };
    (
        status,
        header("x-gatehouse-rule"),
        header("x-gatehouse-user-id"),
    )
}

/// The same, as the live server answers nginx's `auth_request` over HTTP.
async fn live_nginx(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    request: &gatehouse::suite::HttpRequest,
) -> (u16, Option<String>, Option<String>) {
    let mut builder = http
        .get(format!("http://{addr}/authz"))
        .header("x-original-method", &request.method)
        .header("x-original-uri", &request.path);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("x-gatehouse-rule"),
        header("x-gatehouse-user-id"),
    )
}

#[tokio::test]
async fn every_request_case_of_the_feeds_suite_gets_the_live_doors_answer_offline() {
    let dir = feeds();
    let set = gatehouse::store::load_dir(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("routes_test.yaml")).unwrap();
    let source = gatehouse::policy::Source {
        path: "routes_test.yaml".into(),
        text,
    };
    let suite = gatehouse::suite::parse_suite(&source).unwrap();
    assert!(suite.routes.len() > 50);
    let secrets =
        gatehouse::token::Secrets::single(gatehouse::token::ApiSecret::new(SECRET.as_bytes()));
    let offline = Offline::with_secrets(&set, &secrets, common::now());
    let server = TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap()),
        ("GATEHOUSE_AUTHZ_PROXY", "nginx"),
    ])
    .await;
    let mut envoy =
        envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::new(
            server.channel().await,
        );
    let http = reqwest::Client::new();
    let mut differences = Vec::new();
    for case in &suite.routes {
        let request = offline
            .with_credentials(&case.request, case.principal.as_ref())
            .unwrap();
        for door in [SuiteDoor::Envoy, SuiteDoor::Nginx] {
            let answer = offline.ask(&request, door);
            let offline_answer = (
                answer.status,
                answer.rule.clone(),
                answer
                    .upstream_headers
                    .get("x-gatehouse-user-id")
                    .filter(|v| !v.is_empty())
                    .cloned(),
            );
            let live = match door {
                SuiteDoor::Envoy => live_envoy(&mut envoy, &request).await,
                _ => live_nginx(&http, server.http_addr, &request).await,
            };
            if live != offline_answer {
                differences.push(format!(
                    "{} through {}: live {live:?}, offline {offline_answer:?}",
                    case.name,
                    door.as_str()
                ));
            }
        }
    }
    // Open connections would hold the server's drain up.
    drop((envoy, http));
    server.stop().await.unwrap();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
