//! Flags the command would not use are refused (exit 2) rather than silently ignored, while the
//! environment variable that the same flags read stays harmless where it is not used. The binary
//! runs as a child; `check` calls a real server on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::process::{Command, Output};

use common::{SECRET, TestServer, server_token, user_token};

/// A value that must never be echoed back.
const FLAG_TOKEN: &str = "flag-token-that-must-not-be-echoed";

fn gatehouse() -> Command {
    common::gatehouse_command()
}

fn output(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn token_issue_refuses_a_server_token_flag_without_addr() {
    let out = output(
        gatehouse()
            .args(["token", "issue", "--user", "jack", "--token", FLAG_TOKEN])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no token is printed");
    assert!(
        stderr.contains("--token") && stderr.contains("used only with --addr"),
        "{stderr}"
    );
    assert!(!stderr.contains(FLAG_TOKEN), "{stderr}");
}

#[test]
fn token_issue_signs_locally_when_only_the_variable_is_set() {
    let out = output(
        gatehouse()
            .args(["token", "issue", "--user", "jack"])
            .env("GATEHOUSE_API_SECRET", SECRET)
            .env("GATEHOUSE_SERVER_TOKEN", server_token()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let verified = output(
        gatehouse()
            .args(["token", "verify", "--json", &token])
            .env("GATEHOUSE_API_SECRET", SECRET),
    );
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
    let principal: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(principal["user_id"], "jack", "{principal}");
}

/// `gatehouse check` against `url` for a user allowed to write their own feed, plus `extra`.
fn check(url: &str, extra: &[&str], server_token_env: Option<&str>) -> Output {
    let mut command = gatehouse();
    command.arg("check").args([
        "--addr",
        url,
        "--token",
        &user_token("tommaso"),
        "--action",
        "write",
        "--resource",
        "feed:user:tommaso",
        "--context",
        "actor=tommaso",
    ]);
    command.args(extra);
    if let Some(token) = server_token_env {
        command.env("GATEHOUSE_SERVER_TOKEN", token);
    }
    output(&mut command)
}

#[tokio::test]
async fn check_refuses_a_server_token_flag_without_principal() {
    let server = TestServer::start().await;
    let url = server.url();
    let out =
        tokio::task::spawn_blocking(move || check(&url, &["--server-token", FLAG_TOKEN], None))
            .await
            .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "the server was not asked");
    assert!(
        stderr.contains("--server-token is used only with --principal"),
        "{stderr}"
    );
    assert!(!stderr.contains(FLAG_TOKEN), "{stderr}");
}

#[tokio::test]
async fn check_with_a_token_ignores_the_variable_alone() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || check(&url, &[], Some(&server_token())))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ALLOWED by rule own-feeds"),
        "{}",
        text(&out.stdout)
    );
}
