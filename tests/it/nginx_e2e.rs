//! End to end through a real nginx: examples/nginx/nginx.conf in front of a recording upstream, with
//! gatehouse's HTTP `/authz` as nginx's `auth_request`, and requests sent the way Stream's JavaScript
//! client sends them.
//!
//! nginx comes from Debian's package, installed by scripts/nginx-env.sh if missing; if it cannot be
//! installed the test fails rather than skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::{TestServer, sign_with, user_token};
use reqwest::Method;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const API_KEY: &str = "key123";
/// What `getstream` 8.15.0 sends as X-Stream-Client from Node.
const STREAM_CLIENT: &str = "stream-javascript-client-node-8.15.0";
/// How long nginx may take to start accepting connections on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How many times nginx is started again when its port was taken between choosing and binding it.
const START_ATTEMPTS: usize = 5;

/// Runs scripts/nginx-env.sh and returns the nginx binary it prints; fails the test if it fails.
pub(crate) fn nginx_binary() -> PathBuf {
    let script = Path::new(ROOT).join("scripts").join("nginx-env.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("could not run bash {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}); this test needs nginx with the auth_request module.\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        script.display(),
        output.status
    );
    let binary = stdout.lines().last().unwrap_or_default().trim();
    assert!(
        !binary.is_empty() && Path::new(binary).is_file(),
        "{} printed no nginx binary.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        script.display()
    );
    PathBuf::from(binary)
}

// --- The upstream ---------------------------------------------------------------------------------------

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// Path and query, as sent on the request line.
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// How many values of `name` arrived.
    fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}

pub(crate) type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// An HTTP server standing in for the feed servers: records every request and answers `{"ok":true}`.
pub(crate) async fn start_upstream() -> (SocketAddr, SeenLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: SeenLog = Arc::default();
    let app = Router::new().fallback(record).with_state(log.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, log)
}

async fn record(State(log): State<SeenLog>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024).await.unwrap();
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.to_string());
    log.lock().unwrap().push(Seen {
        method: parts.method.as_str().to_owned(),
        uri,
        headers: parts.headers,
        body: body.to_vec(),
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
        .into_response()
}

// --- nginx ----------------------------------------------------------------------------------------------

/// A running nginx in a temporary prefix; stopped when dropped, also when the test panics.
pub(crate) struct Nginx {
    child: Child,
    binary: PathBuf,
    prefix: tempfile::TempDir,
    addr: SocketAddr,
}

impl Nginx {
    /// Renders examples/nginx/nginx.conf for these addresses and starts nginx in the foreground.
    fn start(binary: &Path, gatehouse: SocketAddr, upstream: SocketAddr) -> Nginx {
        Self::start_example(binary, "examples/nginx/nginx.conf", gatehouse, upstream)
    }

    /// Renders the example configuration `example` (relative to the repository) for these addresses
    /// and starts nginx in the foreground.
    pub(crate) fn start_example(
        binary: &Path,
        example: &str,
        gatehouse: SocketAddr,
        upstream: SocketAddr,
    ) -> Nginx {
        let template = std::fs::read_to_string(Path::new(ROOT).join(example)).unwrap();
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let prefix = tempfile::tempdir().unwrap();
            // Started as root, nginx's workers run as nobody and must reach their temporary files.
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
            let addr = free_port();
            let conf = template
                .replace("__LISTEN__", &addr.to_string())
                .replace("__UPSTREAM__", &upstream.to_string())
                .replace("__GATEHOUSE_HTTP__", &gatehouse.to_string())
                .replace("__PREFIX__", prefix.path().to_str().unwrap());
            assert!(
                !conf.contains("__"),
                "a placeholder is left in the rendered configuration:\n{conf}"
            );
            let conf_path = prefix.path().join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();

            let check = nginx_command(binary, prefix.path())
                .arg("-t")
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "nginx -t rejects the rendered {example} ({}):\n{}{}",
                check.status,
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );

            let stdout = std::fs::File::create(prefix.path().join("stdout.log")).unwrap();
            let stderr = std::fs::File::create(prefix.path().join("stderr.log")).unwrap();
            let child = nginx_command(binary, prefix.path())
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
            let mut nginx = Nginx {
                child,
                binary: binary.to_owned(),
                prefix,
                addr,
            };
            match nginx.wait_until_accepting() {
                Ok(()) => return nginx,
                Err(failure) if failure.contains("Address already in use") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("nginx did not start:\n{failure}"),
            }
        }
        panic!("nginx did not start in {START_ATTEMPTS} attempts:\n{last_failure}")
    }

    /// Polls until nginx accepts connections; the error holds nginx's output if it exited.
    fn wait_until_accepting(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited ({status})\n{}", self.logs()));
            }
            if TcpStream::connect(self.addr).is_ok() {
                // Still running: the connection went to nginx, not to whatever took the port.
                if self.child.try_wait().unwrap().is_none() {
                    return Ok(());
                }
                continue;
            }
            if started.elapsed() > START_DEADLINE {
                panic!(
                    "nginx did not accept connections on {} within {START_DEADLINE:?}\n{}",
                    self.addr,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// nginx's output and error log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "stderr.log", "error.log"] {
            let text = std::fs::read_to_string(self.prefix.path().join(name)).unwrap_or_default();
            out.push_str(&format!("--- nginx {name} ---\n{text}\n"));
        }
        out
    }

    /// Fast shutdown (SIGTERM to the master, which stops its workers), then SIGKILL if it lingers.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            || nginx_command(&self.binary, self.prefix.path())
                .args(["-s", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if signalled {
            let asked = Instant::now();
            while asked.elapsed() < Duration::from_secs(10) {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn nginx_command(binary: &Path, prefix: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-e", "stderr"]);
    command
}

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

// --- Requests -------------------------------------------------------------------------------------------

/// Sends requests to nginx as Stream's JavaScript client does: the token in Authorization without
/// `Bearer`, `stream-auth-type: jwt`, and `api_key` and `location` in the query.
struct StreamClient<'a> {
    http: reqwest::Client,
    nginx: &'a Nginx,
}

/// A response from nginx.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

impl StreamClient<'_> {
    fn request(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        api_key: &str,
    ) -> reqwest::RequestBuilder {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = self.nginx.url(&format!(
            "{path}{separator}api_key={api_key}&location=unspecified"
        ));
        let mut builder = self
            .http
            .request(method, url)
            .header("X-Stream-Client", STREAM_CLIENT)
            .header("stream-auth-type", "jwt");
        if let Some(authorization) = authorization {
            builder = builder.header("Authorization", authorization);
        }
        builder
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("nginx answers");
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
}

/// Checks Stream's error body: `{"code","detail","duration","exception","status_code","more_info"}`.
fn assert_stream_error(what: &str, answer: &Answer, status: u16, code: u64, exception: &str) {
    assert_eq!(
        answer.status, status,
        "{what}: status; body {:?}",
        answer.body
    );
    assert!(
        answer.content_type.starts_with("application/json"),
        "{what}: content type {:?}",
        answer.content_type
    );
    let body = answer.json();
    assert_eq!(body["code"], json!(code), "{what}: code in {body}");
    assert_eq!(
        body["exception"],
        json!(exception),
        "{what}: exception in {body}"
    );
    assert_eq!(
        body["status_code"],
        json!(status),
        "{what}: status_code in {body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "{what}: empty detail in {body}");
    let duration = body["duration"].as_str().unwrap_or_default();
    assert!(
        duration.ends_with("ms") && duration.len() > 2,
        "{what}: duration in {body}"
    );
    let more_info = body["more_info"].as_str().unwrap_or_default();
    assert!(
        more_info.starts_with("https://"),
        "{what}: more_info in {body}"
    );
}

/// An allowed request: the upstream's 200 came back, and the upstream got the request with gatehouse's
/// headers for alice. Returns what the upstream saw.
fn assert_reached_upstream(
    what: &str,
    answer: &Answer,
    log: &SeenLog,
    seen_before: usize,
    method: &str,
    uri: &str,
    rule: &str,
) -> Seen {
    assert_eq!(answer.status, 200, "{what}: status; body {:?}", answer.body);
    assert_eq!(answer.json(), json!({"ok": true}), "{what}: body");
    let log = log.lock().unwrap();
    assert_eq!(
        log.len(),
        seen_before + 1,
        "{what}: the upstream saw one more request"
    );
    let seen = log.last().unwrap().clone();
    assert_eq!(seen.method, method, "{what}: method");
    assert_eq!(seen.uri, uri, "{what}: URI");
    assert_eq!(seen.header("x-gatehouse-user-id"), Some("alice"), "{what}");
    assert_eq!(
        seen.header("x-gatehouse-principal-kind"),
        Some("user"),
        "{what}"
    );
    assert_eq!(seen.header("x-gatehouse-rule"), Some(rule), "{what}");
    assert!(
        !seen
            .header("x-gatehouse-revision")
            .unwrap_or_default()
            .is_empty(),
        "{what}: a revision"
    );
    for name in [
        "x-gatehouse-user-id",
        "x-gatehouse-principal-kind",
        "x-gatehouse-rule",
        "x-gatehouse-revision",
    ] {
        assert_eq!(seen.header_count(name), 1, "{what}: one {name}");
    }
    // The client's headers pass; the auth subrequest's own do not.
    assert_eq!(
        seen.header("x-stream-client"),
        Some(STREAM_CLIENT),
        "{what}"
    );
    assert_eq!(seen.header("stream-auth-type"), Some("jwt"), "{what}");
    assert_eq!(seen.header("x-original-uri"), None, "{what}");
    assert_eq!(seen.header("x-original-method"), None, "{what}");
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_guards_the_feed_servers() {
    let binary = nginx_binary();
    let gatehouse = TestServer::start_with(&[("GATEHOUSE_API_KEY", API_KEY)]).await;
    let (upstream, log) = start_upstream().await;
    let nginx = Nginx::start(&binary, gatehouse.http_addr, upstream);
    let client = StreamClient {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        nginx: &nginx,
    };
    let alice = user_token("alice");
    let seen_count = || log.lock().unwrap().len();
    let query = format!("api_key={API_KEY}&location=unspecified");
    // (method, URI) of every request the upstream should see, in order.
    let mut allowed: Vec<(String, String)> = Vec::new();

    // --- Allowed: each reaches the upstream as alice. --------------------------------------------------
    let cases: [(&str, Method, &str, &str); 4] = [
        (
            "any user feed is readable",
            Method::GET,
            "/api/v1.0/feed/user/bob/",
            "read-global-read-feeds",
        ),
        (
            "own timeline",
            Method::GET,
            "/api/v1.0/feed/timeline/alice/",
            "own-feeds",
        ),
        (
            "read any user",
            Method::GET,
            "/api/v1.0/user/bob/",
            "read-any-user",
        ),
        (
            "Open Graph scraping",
            Method::GET,
            "/api/v1.0/og/?url=https%3A%2F%2Fexample.com%2Fpost%3Fid%3D1",
            "read-open-graph",
        ),
    ];
    let mut revisions = Vec::new();
    for (what, method, path, rule) in cases {
        let before = seen_count();
        let answer = client
            .send(client.request(method.clone(), path, Some(&alice), API_KEY))
            .await;
        let separator = if path.contains('?') { '&' } else { '?' };
        let uri = format!("{path}{separator}{query}");
        let seen =
            assert_reached_upstream(what, &answer, &log, before, method.as_str(), &uri, rule);
        assert_eq!(
            seen.header("authorization"),
            Some(alice.as_str()),
            "{what}: the token passes on as sent"
        );
        revisions.push(seen.header("x-gatehouse-revision").unwrap().to_owned());
        allowed.push((method.as_str().to_owned(), uri));
    }

    // Following from one's own timeline; the body reaches the upstream, gatehouse never needed it.
    let before = seen_count();
    let follow_body = json!({"target": "user:bob"});
    let answer = client
        .send(
            client
                .request(
                    Method::POST,
                    "/api/v1.0/feed/timeline/alice/following/",
                    Some(&alice),
                    API_KEY,
                )
                .json(&follow_body),
        )
        .await;
    let uri = format!("/api/v1.0/feed/timeline/alice/following/?{query}");
    let seen = assert_reached_upstream(
        "follow from own timeline",
        &answer,
        &log,
        before,
        "POST",
        &uri,
        "follow-from-own-feeds",
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        follow_body,
        "the follow's body reaches the upstream intact"
    );
    revisions.push(seen.header("x-gatehouse-revision").unwrap().to_owned());
    allowed.push(("POST".to_owned(), uri));

    // `Authorization: Bearer <jwt>` works too.
    let before = seen_count();
    let bearer = format!("Bearer {alice}");
    let answer = client
        .send(client.request(
            Method::GET,
            "/api/v1.0/feed/timeline/alice/",
            Some(&bearer),
            API_KEY,
        ))
        .await;
    let uri = format!("/api/v1.0/feed/timeline/alice/?{query}");
    let seen = assert_reached_upstream(
        "Bearer token",
        &answer,
        &log,
        before,
        "GET",
        &uri,
        "own-feeds",
    );
    assert_eq!(seen.header("authorization"), Some(bearer.as_str()));
    revisions.push(seen.header("x-gatehouse-revision").unwrap().to_owned());
    allowed.push(("GET".to_owned(), uri));

    // Headers a client sends under gatehouse's names are replaced by gatehouse's.
    let before = seen_count();
    let answer = client
        .send(
            client
                .request(
                    Method::GET,
                    "/api/v1.0/feed/user/bob/",
                    Some(&alice),
                    API_KEY,
                )
                .header("X-Gatehouse-User-Id", "mallory")
                .header("X-Gatehouse-Principal-Kind", "server")
                .header("X-Gatehouse-Rule", "forged")
                .header("X-Gatehouse-Revision", "forged"),
        )
        .await;
    let uri = format!("/api/v1.0/feed/user/bob/?{query}");
    let seen = assert_reached_upstream(
        "spoofed gatehouse headers",
        &answer,
        &log,
        before,
        "GET",
        &uri,
        "read-global-read-feeds",
    );
    assert_ne!(seen.header("x-gatehouse-revision"), Some("forged"));
    revisions.push(seen.header("x-gatehouse-revision").unwrap().to_owned());
    allowed.push(("GET".to_owned(), uri));

    revisions.dedup();
    assert_eq!(
        revisions.len(),
        1,
        "one policy revision for every allowed request: {revisions:?}"
    );

    // A CORS preflight is public: it passes without credentials, and a client's user id does not.
    let before = seen_count();
    let answer = client
        .send(
            client
                .http
                .request(Method::OPTIONS, nginx.url("/api/v1.0/feed/user/bob/"))
                .header("Origin", "https://app.example.com")
                .header("Access-Control-Request-Method", "GET")
                .header(
                    "Access-Control-Request-Headers",
                    "authorization,stream-auth-type,x-stream-client",
                )
                .header("X-Gatehouse-User-Id", "mallory")
                .header("X-Gatehouse-Rule", "forged"),
        )
        .await;
    assert_eq!(answer.status, 200, "preflight: body {:?}", answer.body);
    {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), before + 1, "the preflight reached the upstream");
        let seen = log.last().unwrap();
        assert_eq!(seen.method, "OPTIONS");
        assert_eq!(seen.uri, "/api/v1.0/feed/user/bob/");
        assert_eq!(
            seen.header_count("x-gatehouse-user-id"),
            0,
            "no user id reaches the upstream on a public route: {:?}",
            seen.headers
        );
        assert_eq!(seen.header("x-gatehouse-principal-kind"), Some("public"));
        assert_eq!(
            seen.header("x-gatehouse-rule"),
            Some("public-route:cors-preflight")
        );
        assert_eq!(seen.header_count("x-gatehouse-rule"), 1);
        assert_eq!(seen.header("origin"), Some("https://app.example.com"));
    }
    allowed.push(("OPTIONS".to_owned(), "/api/v1.0/feed/user/bob/".to_owned()));

    // --- Forbidden: 403 with Stream's NotAllowedException; the upstream sees nothing. -----------------
    let before = seen_count();
    let forbidden: [(&str, Method, &str); 3] = [
        (
            "another user's timeline",
            Method::GET,
            "/api/v1.0/feed/timeline/bob/",
        ),
        (
            "deleting another user",
            Method::DELETE,
            "/api/v1.0/user/bob/",
        ),
        ("a path no route describes", Method::GET, "/api/v1.0/nope/"),
    ];
    for (what, method, path) in forbidden {
        let answer = client
            .send(client.request(method, path, Some(&alice), API_KEY))
            .await;
        assert_stream_error(what, &answer, 403, 17, "NotAllowedException");
        assert!(
            !answer.body.contains(&alice),
            "{what}: the token is not echoed"
        );
    }
    let answer = client
        .send(client.request(Method::GET, "/api/v1.0/nope/", Some(&alice), API_KEY))
        .await;
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("no route"),
        "a request outside the route table says so: {detail}"
    );
    // Adding an activity to one's own feed needs the body's actor (no-impersonation), which nginx does
    // not send: denied behind nginx, as examples/nginx/nginx.conf says.
    let answer = client
        .send(
            client
                .request(
                    Method::POST,
                    "/api/v1.0/feed/user/alice/",
                    Some(&alice),
                    API_KEY,
                )
                .json(&json!({"actor": "alice", "verb": "post", "object": "picture:1"})),
        )
        .await;
    assert_stream_error(
        "adding an activity behind nginx",
        &answer,
        403,
        17,
        "NotAllowedException",
    );
    // A spoofed user id does not turn a denial into a grant.
    let answer = client
        .send(
            client
                .request(
                    Method::GET,
                    "/api/v1.0/feed/timeline/bob/",
                    Some(&alice),
                    API_KEY,
                )
                .header("X-Gatehouse-User-Id", "bob"),
        )
        .await;
    assert_stream_error("spoofed user id", &answer, 403, 17, "NotAllowedException");
    // A path gatehouse refuses to read (an encoded '/') is its 400, which nginx turns into a 500: still
    // denied.
    let answer = client
        .send(client.request(
            Method::GET,
            "/api/v1.0/feed/user/bob%2F..%2Fsecret/",
            Some(&alice),
            API_KEY,
        ))
        .await;
    assert_eq!(
        answer.status, 500,
        "an unreadable path: body {:?}",
        answer.body
    );
    assert_eq!(
        seen_count(),
        before,
        "the upstream saw no forbidden request"
    );

    // --- Unauthenticated: 401. --------------------------------------------------------------------------
    let answer = client
        .send(client.request(Method::GET, "/api/v1.0/feed/user/bob/", None, API_KEY))
        .await;
    assert_stream_error("no token", &answer, 401, 3, "SignatureException");

    let answer = client
        .send(client.request(
            Method::GET,
            "/api/v1.0/feed/user/bob/",
            Some(&alice),
            "wrong-key",
        ))
        .await;
    assert_stream_error("wrong api_key", &answer, 401, 2, "ApiKeyException");

    let forged = sign_with(
        json!({"user_id": "alice"}),
        b"another-secret-another-secret-another-secret-0123456789",
    );
    let answer = client
        .send(client.request(
            Method::GET,
            "/api/v1.0/feed/user/bob/",
            Some(&forged),
            API_KEY,
        ))
        .await;
    assert_stream_error(
        "a token signed with another secret",
        &answer,
        401,
        3,
        "SignatureException",
    );
    assert_eq!(
        seen_count(),
        before,
        "the upstream saw no unauthenticated request"
    );

    // --- The upstream saw exactly the allowed requests. -----------------------------------------------
    let seen: Vec<(String, String)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.method.clone(), s.uri.clone()))
        .collect();
    assert_eq!(
        seen, allowed,
        "the upstream saw exactly the allowed requests"
    );

    drop(client);
    drop(nginx);
    gatehouse.stop().await.unwrap();
}
