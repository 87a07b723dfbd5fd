//! The `gatehouse` binary as operators and developers run it: configuration errors, development mode,
//! signals, and the token and check commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{SECRET, TestServer, user_token};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;

/// The binary with a clean environment.
fn gatehouse() -> Command {
    common::gatehouse_command()
}

fn output(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits for the child to exit, killing it after `limit`. Async, so the test's own connections keep
/// being driven (and can close) while the server drains.
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    None
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A free loopback port for a child process to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `gatehouse serve` on loopback `port` with the test secret, its output discarded.
fn serve_command(port: u16) -> Command {
    let mut command = gatehouse();
    command
        .arg("serve")
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_API_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// `gatehouse serve` on a free loopback port with `env`, and a client once it answers.
async fn serve_child(
    env: &[(&str, &std::ffi::OsStr)],
) -> (Child, GatehouseClient<tonic::transport::Channel>) {
    let port = free_port();
    let mut command = serve_command(port);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    for _ in 0..200 {
        if let Ok(client) = GatehouseClient::connect(format!("http://127.0.0.1:{port}")).await {
            return (child, client);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not come up on port {port}");
}

#[test]
fn every_invalid_setting_is_reported_then_exit_64() {
    let out = output(
        gatehouse()
            .arg("serve")
            .env("GATEHOUSE_LISTEN", "not-an-address")
            .env("GATEHOUSE_API_SECRET", "too-short-secret")
            .env("GATEHOUSE_ALLOW_DEV_TOKENS", "maybe")
            .env("GATEHOUSE_FEED_GROUPS", "timeline=public"),
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    for setting in [
        "GATEHOUSE_LISTEN",
        "GATEHOUSE_API_SECRET",
        "GATEHOUSE_ALLOW_DEV_TOKENS",
        "GATEHOUSE_FEED_GROUPS",
    ] {
        assert!(stderr.contains(setting), "{setting} missing from: {stderr}");
    }
    assert!(
        !stderr.contains("too-short-secret"),
        "secret values are never printed"
    );
}

#[test]
fn a_bad_config_file_exits_64_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, "listen: 127.0.0.1:0\ntokens:\n  leway_seconds: 5\n").unwrap();
    let out = output(
        gatehouse()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("leway_seconds") && stderr.contains("line 3"),
        "{stderr}"
    );

    let missing = output(
        gatehouse()
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("absent.yaml")),
    );
    assert_eq!(missing.status.code(), Some(64));
}

#[test]
fn a_public_address_without_a_secret_is_refused() {
    let out = output(
        gatehouse()
            .arg("serve")
            .env("GATEHOUSE_LISTEN", "0.0.0.0:0"),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("GATEHOUSE_API_SECRET"));
}

#[test]
fn an_unreadable_secret_file_is_a_config_error() {
    let out = output(
        gatehouse()
            .arg("serve")
            .env("GATEHOUSE_API_SECRET_FILE", "/nonexistent/secret"),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("GATEHOUSE_API_SECRET_FILE"));
}

#[tokio::test]
async fn development_mode_prints_a_working_server_token_and_stops_on_sigint() {
    let port = free_port();
    let mut child = gatehouse()
        .arg("serve")
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
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
    let text = banner.join("\n");
    assert!(text.contains("development mode"), "{text}");
    let token_line = banner
        .iter()
        .position(|l| l.contains("Server token"))
        .expect("banner names the server token");
    let server_token = banner[token_line + 1].trim().to_owned();

    let mut client = GatehouseClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::IssueTokenRequest {
        user_id: "tommaso".into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {server_token}").parse().unwrap(),
    );
    let issued = client.issue_token(request).await.unwrap().into_inner();
    let response = client
        .check(pb::CheckRequest {
            token: issued.token,
            action: "read".into(),
            resource: Some(pb::Resource {
                kind: "feed".into(),
                id: "timeline:tommaso".into(),
                attributes: None,
            }),
            context: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.allowed);

    send_signal(&child, "INT");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).await,
        Some(0)
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let (mut child, mut client) = serve_child(&[]).await;
    let verified = client
        .verify(pb::VerifyRequest {
            token: user_token("jack"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.principal.unwrap().user_id, "jack");
    drop(client);
    send_signal(&child, "TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).await,
        Some(0)
    );
}

/// A SIGTERM that comes while the server is still starting (the port already accepts, the services
/// are not yet up) is a shutdown like any other: exit 0, never death by the signal's default action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_up_still_exits_zero() {
    for _ in 0..5 {
        let port = free_port();
        let mut child = serve_command(port).spawn().unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "never bound");
            std::thread::sleep(Duration::from_millis(1));
        }
        send_signal(&child, "TERM");
        assert_eq!(
            wait_exit(&mut child, Duration::from_secs(20)).await,
            Some(0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_made_before_sigterm_is_in_the_decision_log_file_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let (mut child, mut client) =
        serve_child(&[("GATEHOUSE_DECISION_LOG_FILE", path.as_os_str())]).await;
    let alice = user_token("alice");
    let checks = 300;
    for n in 0..checks {
        let request = common::check_request(
            &alice,
            "read",
            "feed",
            &format!("user:u{n}"),
            serde_json::json!({}),
            serde_json::json!({}),
        );
        assert!(common::check(&mut client, request).await.allowed);
    }
    // The signal follows the last answer at once: nothing waits for the log's writer.
    drop(client);
    send_signal(&child, "TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).await,
        Some(0)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            entry["resource_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        checks,
        "entries at exit; the last: {:?}",
        ids.last()
    );
    let expected: Vec<String> = (0..checks).map(|n| format!("user:u{n}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn token_issue_and_verify_work_from_the_local_secret() {
    let out = output(
        gatehouse()
            .args([
                "token", "issue", "--user", "tommaso", "--ttl", "1h", "--role", "editor",
                "--claim", "seats=3",
            ])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    let out = output(
        gatehouse()
            .args(["token", "verify", "--json", &token])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let principal: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(principal["kind"], "user");
    assert_eq!(principal["user_id"], "tommaso");
    assert_eq!(principal["roles"][0], "editor");
    assert_eq!(principal["claims"]["seats"], 3);
    let ttl = principal["expires_at"].as_i64().unwrap() - principal["issued_at"].as_i64().unwrap();
    assert_eq!(ttl, 3600);

    let wrong = output(gatehouse().args(["token", "verify", &token]).env(
        "GATEHOUSE_API_SECRET",
        "another-secret-another-secret-another-secret",
    ));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("bad signature"));
    assert!(!text(&wrong.stderr).contains(&token));

    let server = output(
        gatehouse()
            .args(["token", "issue", "--server"])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    let server_token = text(&server.stdout).trim().to_owned();
    let out = output(
        gatehouse()
            .args(["token", "verify", &server_token])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    assert!(
        text(&out.stdout).starts_with("kind           server\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn token_issue_without_a_secret_explains_what_to_set() {
    let out = output(gatehouse().args(["token", "issue", "--user", "tommaso"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("GATEHOUSE_API_SECRET"));
}

#[tokio::test]
async fn check_command_asks_a_running_server() {
    let server = TestServer::start().await;
    let url = server.url();
    let tommaso = user_token("tommaso");
    let run = move |args: Vec<String>| {
        let mut command = gatehouse();
        command.arg("check").args(args);
        output(&mut command)
    };
    let allowed = {
        let args = vec![
            "--addr".into(),
            url.clone(),
            "--token".into(),
            tommaso.clone(),
            "--action".into(),
            "write".into(),
            "--resource".into(),
            "feed:user:tommaso".into(),
            "--context".into(),
            "actor=tommaso".into(),
        ];
        tokio::task::spawn_blocking(move || run(args))
            .await
            .unwrap()
    };
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));
    assert!(text(&allowed.stdout).contains("ALLOWED by rule own-feeds"));

    let run = move |args: Vec<String>| {
        let mut command = gatehouse();
        command.arg("check").args(args);
        output(&mut command)
    };
    let url = server.url();
    let denied = {
        let args = vec![
            "--addr".into(),
            url.clone(),
            "--token".into(),
            user_token("jack"),
            "--action".into(),
            "delete".into(),
            "--resource".into(),
            "reactions:r1".into(),
            "--attr".into(),
            "user_id=tommaso".into(),
        ];
        tokio::task::spawn_blocking(move || run(args))
            .await
            .unwrap()
    };
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stdout)
            .contains("user 'jack' is not allowed to perform delete on reactions r1")
    );

    let unauthenticated = {
        let args = vec![
            "--addr".into(),
            url,
            "--token".into(),
            "garbage".into(),
            "--action".into(),
            "read".into(),
            "--resource".into(),
            "feed:user:jack".into(),
        ];
        tokio::task::spawn_blocking(move || run(args))
            .await
            .unwrap()
    };
    assert_eq!(unauthenticated.status.code(), Some(2));
    assert!(text(&unauthenticated.stderr).contains("malformed"));
    server.stop().await.unwrap();
}
