//! The command line does what the API does: the binary against a real server (in-process, or the
//! binary itself as a child) for token issue --addr, status, reload and check's flags; the decision
//! log entries of refused credentials; the cleared-error log line; and `exercised`'s columns and
//! grouping.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::{Deadline, SECRET, SET_A, TestServer, server_token, sign, user_token, write};
use serde_json::{Value, json};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the binary with `args` and `env` off the async runtime, so an in-process server keeps serving.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = common::gatehouse_command();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child `gatehouse serve`, killed when dropped.
struct ChildServer {
    child: Child,
    url: String,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gatehouse serve` as a child on a free port with `env`, stderr to `stderr`; returns once the port
/// answers.
async fn serve_child(env: &[(&str, &str)], stdout: Stdio, stderr: Stdio) -> ChildServer {
    let port = free_port();
    let mut command = common::gatehouse_command();
    command
        .arg("serve")
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(stdout)
        .stderr(stderr);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = ChildServer {
        child: command.spawn().unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Deadline::new("the child server to listen");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        deadline.tick(&port).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_issue_through_a_development_server_mints_tokens_its_random_secret_accepts() {
    let mut server = serve_child(&[], Stdio::piped(), Stdio::null()).await;
    let stdout = server.child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("gatehouse check");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    let at = banner
        .iter()
        .position(|l| l.contains("Server token"))
        .expect("the banner names the server token");
    let dev_server_token = banner[at + 1].trim().to_owned();
    let url = server.url.clone();

    let issued = run(
        &[
            "token", "issue", "--addr", &url, "--user", "tommaso", "--ttl", "1h", "--json",
        ],
        &[("GATEHOUSE_SERVER_TOKEN", &dev_server_token)],
    )
    .await;
    let issued = json_out(&issued);
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(issued["expires_at"].as_str().unwrap().ends_with('Z'));

    // The token was signed with the server's random secret: the server accepts it.
    let checked = run(
        &[
            "check",
            "--addr",
            &url,
            "--token",
            &token,
            "--action",
            "write",
            "--resource",
            "feed:user:tommaso",
            "--context",
            "actor=tommaso",
            "--json",
        ],
        &[],
    )
    .await;
    let checked = json_out(&checked);
    assert_eq!(checked["allowed"], true);
    assert_eq!(checked["principal"]["kind"], "user");
    assert_eq!(checked["principal"]["user_id"], "tommaso");

    // The flag names the same credential as the variable; a server token cannot be minted remotely.
    let plain = run(
        &[
            "token",
            "issue",
            "--addr",
            &url,
            "--token",
            &dev_server_token,
            "--user",
            "jack",
        ],
        &[],
    )
    .await;
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert_eq!(text(&plain.stdout).trim().split('.').count(), 3);
    let server_kind = run(
        &[
            "token",
            "issue",
            "--addr",
            &url,
            "--token",
            &dev_server_token,
            "--server",
        ],
        &[],
    )
    .await;
    assert_eq!(server_kind.status.code(), Some(1));
    assert!(text(&server_kind.stderr).contains("user tokens only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_issue_through_a_configured_server_calls_with_one_credential() {
    let server = TestServer::start().await;
    let url = server.url();
    let issued = run(
        &[
            "token",
            "issue",
            "--addr",
            &url,
            "--secret-from-config",
            "--user",
            "jack",
            "--role",
            "editor",
            "--json",
        ],
        &[("GATEHOUSE_API_SECRET", SECRET)],
    )
    .await;
    let issued = json_out(&issued);
    assert_eq!(issued["expires_at"], Value::Null);
    let token = issued["token"].as_str().unwrap();
    let verified = run(
        &["token", "verify", "--json", token],
        &[("GATEHOUSE_API_SECRET", SECRET)],
    )
    .await;
    let verified = json_out(&verified);
    assert_eq!(verified["kind"], "user");
    assert_eq!(verified["user_id"], "jack");
    assert_eq!(verified["roles"], json!(["editor"]));
    let remote = run(&["token", "verify", "--addr", &url, token], &[]).await;
    assert!(remote.status.success(), "{}", text(&remote.stderr));
    let remote = text(&remote.stdout);
    assert!(remote.starts_with("kind           user\n"), "{remote}");
    assert!(remote.contains("\nroles          editor\n"), "{remote}");

    // A token and --secret-from-config together are refused, never resolved by a guess.
    let both = run(
        &[
            "token",
            "issue",
            "--addr",
            &url,
            "--secret-from-config",
            "--user",
            "jack",
        ],
        &[
            ("GATEHOUSE_API_SECRET", SECRET),
            ("GATEHOUSE_SERVER_TOKEN", &server_token()),
        ],
    )
    .await;
    assert_eq!(both.status.code(), Some(1));
    assert!(
        text(&both.stderr).contains("give one"),
        "{}",
        text(&both.stderr)
    );
    assert!(!text(&both.stderr).contains(&server_token()));
    let none = run(&["status", "--addr", &url], &[]).await;
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("GATEHOUSE_SERVER_TOKEN"));
    // A user token is no server token.
    let user = run(
        &["status", "--addr", &url, "--token", &user_token("jack")],
        &[],
    )
    .await;
    assert_eq!(user.status.code(), Some(1));
    assert!(
        text(&user.stderr).contains("PermissionDenied"),
        "{}",
        text(&user.stderr)
    );
    server.stop().await.unwrap();
}

const BROKEN: &str = "\
resources:
  - kind: doc
    actions: [read, write]
rules:
  - name: docs-open
    effect: allow
    resource: doc
    actions: [read]
    when: 'this is not CEL ('
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_reload_report_in_text_and_json_and_a_fix_back_clears_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(&policies.join("a.yaml"), SET_A);
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = serve_child(
        &[
            ("GATEHOUSE_API_SECRET", SECRET),
            ("GATEHOUSE_POLICY_DIR", policies.to_str().unwrap()),
        ],
        Stdio::null(),
        Stdio::from(log),
    )
    .await;
    let url = server.url.clone();
    let token = server_token();
    let auth = [("GATEHOUSE_SERVER_TOKEN", token.as_str())];

    let status = json_out(&run(&["status", "--addr", &url, "--json"], &auth).await);
    let revision = status["policy_revision"].as_str().unwrap().to_owned();
    assert_eq!(status["files"][0]["path"], "a.yaml");
    assert_eq!(status["last_error"], Value::Null);
    assert_eq!(status["policy_dir"], policies.to_str().unwrap());
    let shown = run(&["status", "--addr", &url], &auth).await;
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&format!("policy revision  {revision}\n")),
        "{shown}"
    );
    assert!(shown.contains("\nlast error       none\n"), "{shown}");
    assert!(shown.contains("\n  a.yaml  sha256:"), "{shown}");

    write(&policies.join("a.yaml"), BROKEN);
    let failed = run(&["reload", "--addr", &url], &auth).await;
    assert_eq!(failed.status.code(), Some(1));
    let failed = text(&failed.stdout);
    assert!(
        failed.starts_with(&format!(
            "reload failed; policy revision {revision} keeps serving\n"
        )),
        "{failed}"
    );
    assert!(failed.contains("a.yaml:"), "{failed}");
    let failed_json = run(&["reload", "--addr", &url, "--json"], &auth).await;
    assert_eq!(failed_json.status.code(), Some(1));
    let failed_json: Value = serde_json::from_slice(&failed_json.stdout).unwrap();
    assert_eq!(failed_json["ok"], false);
    assert!(failed_json["error"].as_str().unwrap().contains("a.yaml:"));
    let status = json_out(&run(&["status", "--addr", &url, "--json"], &auth).await);
    assert!(
        status["last_error"].as_str().unwrap().contains("a.yaml:"),
        "{status}"
    );
    assert!(status["last_error_at"].as_str().is_some());

    // Fixed back to exactly the serving text: the revision does not change, the error is cleared.
    write(&policies.join("a.yaml"), SET_A);
    let fixed = run(&["reload", "--addr", &url], &auth).await;
    assert!(fixed.status.success(), "{}", text(&fixed.stdout));
    assert_eq!(
        text(&fixed.stdout).trim(),
        format!("reloaded; serving policy revision {revision}")
    );
    let fixed_json = json_out(&run(&["reload", "--addr", &url, "--json"], &auth).await);
    assert_eq!(
        fixed_json,
        json!({"ok": true, "policy_revision": revision, "error": null})
    );
    let status = json_out(&run(&["status", "--addr", &url, "--json"], &auth).await);
    assert_eq!(status["last_error"], Value::Null);
    assert_eq!(status["policy_revision"], revision.as_str());

    let deadline = Deadline::new("the cleared-error log line");
    loop {
        let logged = std::fs::read_to_string(&log_path).unwrap();
        let cleared = logged
            .lines()
            .find(|l| l.contains("policies reloaded; the previous error is cleared"));
        if let Some(line) = cleared {
            assert!(line.contains("INFO"), "{line}");
            assert!(line.contains(&revision), "{line}");
            break;
        }
        deadline.tick(&logged).await;
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_asks_for_a_token_the_anonymous_caller_or_a_described_principal() {
    let server = TestServer::start().await;
    let url = server.url();
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--addr",
            &url,
            "--action",
            "write",
            "--resource",
            "feed:user:tommaso",
            "--context",
            "actor=tommaso",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let runs = |args: Vec<String>, env: Vec<(&'static str, String)>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&args, &env).await
    };

    let tommaso = user_token("tommaso");
    let explained = runs(ask(&["--token", &tommaso, "--explain"]), vec![]).await;
    assert_eq!(
        explained.status.code(),
        Some(0),
        "{}",
        text(&explained.stderr)
    );
    let explained = text(&explained.stdout);
    assert!(
        explained.starts_with("ALLOWED by rule own-feeds"),
        "{explained}"
    );
    assert!(
        explained.contains("\nprincipal: user tommaso\n"),
        "{explained}"
    );
    assert!(explained.contains("\nstrategy: priority\n"), "{explained}");
    assert!(
        explained.contains("\n  rule own-feeds (priority 1): PERMIT"),
        "{explained}"
    );
    let as_json = runs(ask(&["--token", &tommaso, "--explain", "--json"]), vec![]).await;
    let as_json = json_out(&as_json);
    assert_eq!(as_json["rule"], "own-feeds");
    assert!(
        !as_json["explanation"]["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let anonymous = runs(ask(&["--anonymous"]), vec![]).await;
    assert_eq!(anonymous.status.code(), Some(1));
    let anonymous = text(&anonymous.stdout);
    assert!(anonymous.starts_with("DENIED by rule "), "{anonymous}");
    assert!(
        anonymous.contains("\nanonymous caller is not allowed"),
        "{anonymous}"
    );
    assert!(anonymous.contains("\nprincipal: anonymous"), "{anonymous}");

    let described = runs(
        ask(&["--principal", r#"{"user_id": "tommaso"}"#, "--json"]),
        vec![("GATEHOUSE_SERVER_TOKEN", server_token())],
    )
    .await;
    let described = json_out(&described);
    assert_eq!(described["allowed"], true);
    assert_eq!(described["principal"]["kind"], "user");
    let minted = runs(
        ask(&[
            "--principal",
            "jack",
            "--role",
            "staff",
            "--secret-from-config",
        ]),
        vec![("GATEHOUSE_API_SECRET", SECRET.to_owned())],
    )
    .await;
    assert_eq!(minted.status.code(), Some(1), "{}", text(&minted.stderr));
    assert!(text(&minted.stdout).contains("\nprincipal: user jack"));

    // Without a server token, or with a user token in its place, a described principal is refused.
    let missing = runs(ask(&["--principal", "tommaso"]), vec![]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("GATEHOUSE_SERVER_TOKEN"));
    let user = runs(
        ask(&["--principal", "tommaso", "--server-token", &tommaso]),
        vec![],
    )
    .await;
    assert_eq!(user.status.code(), Some(2));
    assert!(text(&user.stderr).contains("PermissionDenied"));
    // One caller per check.
    let both = runs(ask(&["--token", &tommaso, "--anonymous"]), vec![]).await;
    assert_eq!(both.status.code(), Some(2));
    server.stop().await.unwrap();
}

/// Reads the decision log file until `n` entries by the rule `unauthenticated` are in it.
async fn refusals(path: &Path, n: usize) -> (String, Vec<Value>) {
    let deadline = Deadline::new("the refusals in the decision log");
    loop {
        let logged = std::fs::read_to_string(path).unwrap_or_default();
        let entries: Vec<Value> = logged
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["rule"] == "unauthenticated")
            .collect();
        if entries.len() >= n {
            return (logged, entries);
        }
        deadline.tick(&logged).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_for_their_token_are_logged_through_every_door_without_the_token() {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use gatehouse::grpc::pb;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let server =
        TestServer::start_with(&[("GATEHOUSE_DECISION_LOG_FILE", path.to_str().unwrap())]).await;
    let expired = sign(json!({"user_id": "jack", "exp": common::now() - 3600}));
    let forged = common::sign_with(json!({"user_id": "jack"}), b"not the app secret at all, no");
    let mut client = server.client().await;

    let status = common::check_status(
        &mut client,
        common::check_request(&expired, "read", "feed", "user:jack", json!({}), json!({})),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let batch = client
        .check_batch(pb::CheckBatchRequest {
            token: forged.clone(),
            items: vec![pb::CheckItem {
                action: "read".into(),
                resource: Some(pb::Resource {
                    kind: "feed".into(),
                    id: "user:bob".into(),
                    attributes: None,
                }),
                context: None,
            }],
            ..Default::default()
        })
        .await;
    assert_eq!(batch.unwrap_err().code(), tonic::Code::Unauthenticated);
    let actions = client
        .allowed_actions(pb::AllowedActionsRequest {
            token: String::new(),
            resource: Some(pb::Resource {
                kind: "feed".into(),
                id: "user:carol".into(),
                attributes: None,
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(actions.unwrap_err().code(), tonic::Code::Unauthenticated);
    let mut envoy = AuthorizationClient::new(server.channel().await);
    let answer = envoy
        .check(common::envoy_check(
            "GET",
            "/api/v1.0/feed/user/bob/",
            &expired,
            &[],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(answer.status.unwrap().code, 0);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "http://{}/authz/api/v1.0/feed/user/bob/",
            server.http_addr
        ))
        .header("authorization", forged.as_str())
        .header("stream-auth-type", "jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(http.status().as_u16(), 401);

    let (logged, entries) = refusals(&path, 5).await;
    assert!(!logged.contains(&expired) && !logged.contains(&forged));
    for token in [&expired, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logged.contains(signature), "a token's signature is logged");
    }
    let by_source = |source: &str| {
        entries
            .iter()
            .find(|e| e["source"] == source)
            .unwrap_or_else(|| panic!("no refusal from {source}: {logged}"))
    };
    let check = by_source("check");
    assert_eq!(
        (check["decision"].as_str(), check["allowed"].as_bool()),
        (Some("deny"), Some(false))
    );
    assert_eq!(check["reason"], "token expired");
    assert_eq!(
        (
            &check["action"],
            &check["resource_kind"],
            &check["resource_id"]
        ),
        (&json!("read"), &json!("feed"), &json!("user:jack"))
    );
    assert_eq!(check["principal_kind"], "unknown");
    let batch = by_source("batch");
    assert_eq!(batch["reason"], "bad signature");
    assert_eq!(batch["resource_id"], "user:bob");
    assert_eq!(by_source("allowed_actions")["reason"], "missing token");
    let envoy = by_source("ext_authz");
    assert_eq!(envoy["reason"], "token expired");
    assert_eq!(envoy["resource_kind"], "feed");
    assert!(envoy["route"].as_str().is_some());
    assert_eq!(by_source("http")["reason"], "bad signature");
    server.stop().await.unwrap();
}

/// A decision log line of `user` doing `action` on `kind:id`, allowed by `rule`, at `time_ms`.
fn line(user: &str, action: &str, kind: &str, id: &str, rule: &str, time_ms: i64) -> String {
    json!({
        "time_ms": time_ms, "principal_id": user, "principal_kind": "user", "roles": [],
        "action": action, "resource_kind": kind, "resource_id": id, "decision": "allow",
        "allowed": true, "rule": rule, "revision": "r1", "mode": "enforcing", "dry_run": false,
        "source": "check", "latency_us": 10,
    })
    .to_string()
}

#[tokio::test]
async fn exercised_aligns_its_columns_and_folds_ids_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let base = 1_796_000_000_000;
    let lines = [
        line("jack", "read", "feed", "user:a", "own-feeds", base),
        line(
            "jack",
            "read",
            "feed",
            "user:bob-the-builder",
            "read-global-read-feeds",
            base + 1000,
        ),
        line("jack", "read", "feed", "user:c", "own-feeds", base + 5000),
        line(
            "jack",
            "write",
            "feed",
            "timeline:jack",
            "own-feeds",
            base + 2000,
        ),
        line("jack", "read", "users", "user:a", "any-user", base + 3000),
    ];
    write(&path, &(lines.join("\n") + "\n"));
    let log = path.to_str().unwrap();

    let plain = run(&["exercised", "--log", log, "--user", "jack"], &[]).await;
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let plain = text(&plain.stdout);
    let rows: Vec<&str> = plain.lines().collect();
    assert_eq!(rows.len(), 1 + 5 + 1, "{plain}");
    let header = rows[0];
    for column in ["action", "kind", "id-or-pattern", "rule", "last-seen"] {
        let at = header.find(column).unwrap();
        for row in &rows[1..6] {
            let before = row.get(at - 2..at).unwrap_or_else(|| panic!("{plain}"));
            let cell = row.get(at..at + 1).unwrap();
            assert!(
                before == "  " && cell != " ",
                "column {column} is not aligned:\n{plain}"
            );
        }
    }

    let grouped = run(
        &[
            "exercised",
            "--log",
            log,
            "--user",
            "jack",
            "--group-by-id",
            "feed:user:*",
        ],
        &[],
    )
    .await;
    let grouped = text(&grouped.stdout);
    let folded: Vec<&str> = grouped
        .lines()
        .filter(|l| l.contains("user:* (pattern)"))
        .collect();
    assert_eq!(folded.len(), 1, "{grouped}");
    let start = format!("{:8}  {:>5}  read", "allow", 3);
    assert!(folded[0].starts_with(&start), "{grouped}");
    assert!(folded[0].ends_with("2026-11-30T00:53:25Z"), "{grouped}");
    // The users kind is not folded by a feed pattern.
    assert!(grouped.contains("users  user:a "), "{grouped}");

    let as_json = run(
        &[
            "exercised",
            "--log",
            log,
            "--user",
            "jack",
            "--group-by-id",
            "feed:user:*",
            "--json",
        ],
        &[],
    )
    .await;
    let rows = json_out(&as_json);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_id_pattern"] == "user:*")
        .unwrap();
    assert_eq!(row["count"], 3);
    assert_eq!(row["rule"], "own-feeds");
    assert_eq!(row["pattern"], true);
    let bad = run(
        &[
            "exercised",
            "--log",
            log,
            "--user",
            "jack",
            "--group-by-id",
            "user",
        ],
        &[],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("KIND:ID_PATTERN"));
}
