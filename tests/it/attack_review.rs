//! Attacks on the doors and the policy loader over a real server on loopback: denials whose error
//! body carries text that is not ASCII, refusals of forged tokens in the decision log, and policy files
//! that would load meaning something other than they say.
//!
//! Nothing here asserts how long anything takes: every wait polls a condition under a generous deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{Deadline, TestServer, check_request, check_status, sign_with, user_token, write};
use serde_json::{Value, json};
use tempfile::TempDir;

const API_KEY: &str = "key123";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// nginx asks about `GET target` with `token`; the status, the body and `x-gatehouse-error`.
async fn ask_nginx(
    server: &TestServer,
    target: &str,
    token: &str,
) -> (u16, String, Option<String>) {
    let response = client()
        .get(format!("http://{}/authz", server.http_addr))
        .header("x-original-method", "GET")
        .header("x-original-uri", target)
        .header("authorization", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get("x-gatehouse-error")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), header)
}

#[tokio::test]
async fn a_denial_naming_a_user_id_that_is_not_ascii_keeps_its_error_header() {
    let server = TestServer::start_with(&[("GATEHOUSE_API_KEY", API_KEY)]).await;
    // nginx passes on only this header: without it the client learns nothing of why.
    let target = format!("/api/v1.0/feed/timeline/jack/?api_key={API_KEY}");
    let (status, body, header) = ask_nginx(&server, &target, &user_token("zoë")).await;
    assert_eq!(status, 403, "{body}");
    let header = header.unwrap_or_else(|| panic!("no x-gatehouse-error with {body}"));
    let from_header: Value = serde_json::from_str(&header).unwrap();
    let from_body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(from_header, from_body);
    assert!(
        from_header["detail"].as_str().unwrap().contains("zoë"),
        "{header}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_forged_token_is_logged_as_refused_without_the_token_and_with_its_fields_clipped() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server =
        TestServer::start_with(&[("GATEHOUSE_DECISION_LOG_FILE", log.to_str().unwrap())]).await;
    let mut client = server.client().await;
    let forged = sign_with(
        json!({ "user_id": "mallory" }),
        b"not the app's secret at all",
    );
    let long_id = "x".repeat(200_000);
    let status = check_status(
        &mut client,
        check_request(&forged, "read", "feed", &long_id, json!({}), json!({})),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let deadline = Deadline::new("the refusal in the decision log");
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"unauthenticated\"")) {
            break line.to_owned();
        }
        deadline.tick(&text.len()).await;
    };
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["decision"], "deny", "{line}");
    assert_eq!(entry["reason"], "bad signature", "{line}");
    assert!(!line.contains(&forged), "the token is in the log");
    let signature = forged.rsplit('.').next().unwrap();
    assert!(
        !line.contains(signature),
        "the token's signature is in the log"
    );
    assert!(line.len() < 8 * 1024, "an entry of {} bytes", line.len());
    server.stop().await.unwrap();
}

/// `gatehouse validate` on one file: whether it passed, and what it printed.
fn validate(text: &str) -> (bool, String) {
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("p.yaml"), text);
    let output = common::gatehouse_command()
        .arg("validate")
        .arg(dir.path())
        .env_remove("GATEHOUSE_POLICY_DIR")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[test]
fn a_policy_that_would_mean_other_than_it_says_does_not_validate() {
    let kinds = "resources:\n  - kind: doc\n    actions: [read, write]\n";
    let rule = |effect: &str, extra: &str| {
        format!(
            "{kinds}rules:\n  - name: r\n    effect: {effect}\n    resource: doc\n    actions: [read]\n{extra}"
        )
    };
    let (passed, printed) = validate(&rule("allow", "    when:\n      roles: [admin]\n"));
    assert!(passed, "the control case is valid: {printed}");
    for (text, expected) in [
        (rule("allow", "    when:\n"), "'when' has no value"),
        (
            rule("allow", "    when:\n      all: []\n"),
            "all needs one or more",
        ),
        (
            rule("deny", "    when:\n      equals: {}\n"),
            "equals needs one or more",
        ),
        (
            rule("deny", "    when:\n      in: {}\n"),
            "in needs one or more",
        ),
        (rule("!deny allow", ""), "tags"),
    ] {
        let (passed, printed) = validate(&text);
        assert!(!passed, "{text} validated: {printed}");
        assert!(printed.contains(expected), "{text}: {printed}");
    }
}

#[test]
fn eval_http_never_echoes_a_malformed_header_that_may_be_a_token() {
    let token = user_token("jack");
    for header in [
        format!("Authorization Bearer {token}"),
        format!("Authorization Bearer {token}: x"),
    ] {
        let output = common::gatehouse_command()
            .args(["eval", "policies/examples/doc-editor", "--http"])
            .arg("GET /api/docs/acme/plan")
            .arg("-H")
            .arg(&header)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{header}: {printed}");
        assert!(
            printed.contains("-H") || printed.contains("header"),
            "{printed}"
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !printed.contains(signature),
            "the token is printed: {printed}"
        );
    }
}
