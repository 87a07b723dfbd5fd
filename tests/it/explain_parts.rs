//! Check with `explain: true` names the part of a condition that did not hold: the roles required
//! and held, the operand that is not the principal, the CEL conjunct that is false or failed. Over a
//! real server (in-process, or the binary when its log is read) with policy files on disk and real
//! tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::process::{Child, Stdio};

use common::{Deadline, SECRET, TestServer, check, check_request, sign};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use serde_json::json;
use tempfile::TempDir;
use tonic::transport::Channel;

const POLICY: &str = r#"
resources:
  - kind: doc
    owner: attributes.owner_id
    actions: [read, edit, share, review]

rules:
  - name: editors
    effect: allow
    resource: doc
    actions: [read]
    when:
      roles: [editor, admin]
  - name: own-docs
    effect: allow
    resource: doc
    actions: [edit]
    when:
      owner: true
  - name: same-team
    effect: allow
    resource: doc
    actions: [share]
    when:
      cel: "principal.kind == 'user' && resource.attributes.team == principal.claims.team"
  - name: senior-reviewers
    effect: allow
    resource: doc
    actions: [review]
    when:
      cel: "principal.kind == 'user' && context.level > 3"
"#;

/// A request value that must never reach the server's log.
const REQUEST_VALUE: &str = "level-value-5e1f9c";

fn policy_dir() -> TempDir {
    let dir = TempDir::new().unwrap();
    common::write(&dir.path().join("docs.yaml"), POLICY);
    dir
}

async fn serve(dir: &TempDir) -> TestServer {
    TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.path().to_str().unwrap())]).await
}

/// bob, a viewer in the red team.
fn bob() -> String {
    sign(json!({"user_id": "bob", "roles": ["viewer"], "team": "red"}))
}

/// Asks with `explain: true` and returns the entry of `rule`.
async fn explained_entry(
    client: &mut GatehouseClient<Channel>,
    action: &str,
    attributes: serde_json::Value,
    context: serde_json::Value,
    rule: &str,
) -> pb::TraceEntry {
    let mut request = check_request(&bob(), action, "doc", "d1", attributes, context);
    request.explain = true;
    let response = check(client, request).await;
    assert!(!response.allowed, "{response:?}");
    let explanation = response.explanation.expect("an explanation");
    explanation
        .entries
        .into_iter()
        .find(|e| e.name == rule)
        .unwrap_or_else(|| panic!("no entry {rule}"))
}

#[tokio::test]
async fn a_missing_role_names_the_required_and_the_held_roles() {
    let dir = policy_dir();
    let server = serve(&dir).await;
    let mut client = server.client().await;
    let entry = explained_entry(&mut client, "read", json!({}), json!({}), "editors").await;
    assert_eq!(entry.result, "not_applicable");
    assert_eq!(
        entry.details,
        ["requires one of roles [editor, admin]; the principal has [viewer]"]
    );
}

#[tokio::test]
async fn a_failing_owner_names_the_operand_its_value_and_the_principal() {
    let dir = policy_dir();
    let server = serve(&dir).await;
    let mut client = server.client().await;
    let attributes = json!({"owner_id": "alice"});
    let entry = explained_entry(&mut client, "edit", attributes, json!({}), "own-docs").await;
    assert_eq!(
        entry.details,
        ["owner: attributes.owner_id is 'alice', the principal is 'bob'"]
    );
    let entry = explained_entry(&mut client, "edit", json!({}), json!({}), "own-docs").await;
    assert_eq!(entry.details, ["owner: attributes.owner_id is absent"]);
}

#[tokio::test]
async fn a_false_cel_conjunct_is_named_by_its_source_text() {
    let dir = policy_dir();
    let server = serve(&dir).await;
    let mut client = server.client().await;
    let attributes = json!({"team": "blue"});
    let entry = explained_entry(&mut client, "share", attributes, json!({}), "same-team").await;
    assert_eq!(
        entry.details,
        ["cel: `resource.attributes.team == principal.claims.team` is false"]
    );
}

#[tokio::test]
async fn a_failing_cel_conjunct_is_named_and_the_log_carries_no_request_value() {
    let dir = policy_dir();
    let (child, log, mut client) = serve_binary(&dir).await;
    let context = json!({"level": REQUEST_VALUE});
    let entry = explained_entry(
        &mut client,
        "review",
        json!({}),
        context,
        "senior-reviewers",
    )
    .await;
    assert_eq!(entry.result, "error");
    assert_eq!(entry.details.len(), 1, "{:?}", entry.details);
    assert!(
        entry.details[0].starts_with("cel: `context.level > 3` failed: "),
        "{:?}",
        entry.details
    );
    assert!(!entry.details[0].contains(REQUEST_VALUE));
    let deadline = Deadline::new("the condition error in the server log");
    let mut text = String::new();
    while !text.contains("senior-reviewers") {
        deadline.tick(&text).await;
        text = std::fs::read_to_string(log.path()).unwrap_or_default();
    }
    drop(child);
    assert!(!text.contains(REQUEST_VALUE), "{text}");
}

fn append(log: &tempfile::NamedTempFile) -> std::fs::File {
    std::fs::OpenOptions::new()
        .append(true)
        .open(log.path())
        .unwrap()
}

/// The child process, killed when the test ends, whether it passes or fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary serving `dir` on a free loopback port, its log in a file, and a client once it answers.
async fn serve_binary(
    dir: &TempDir,
) -> (Killed, tempfile::NamedTempFile, GatehouseClient<Channel>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Killed(
        common::gatehouse_command()
            .arg("serve")
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_API_SECRET", SECRET)
            .env("GATEHOUSE_POLICY_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(append(&log))
            .stderr(append(&log))
            .spawn()
            .unwrap(),
    );
    let deadline = Deadline::new("the server to answer");
    loop {
        if let Ok(client) = GatehouseClient::connect(format!("http://127.0.0.1:{port}")).await {
            return (child, log, client);
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("the server exited with {status}: {text}");
        }
        deadline.tick(&port).await;
    }
}

#[test]
fn a_failing_test_case_names_the_part_of_the_expected_rule_that_did_not_hold() {
    let dir = policy_dir();
    common::write(
        &dir.path().join("docs_test.yaml"),
        r#"
tests:
  - name: bob edits alice's doc
    principal: { id: bob, roles: [viewer] }
    resource: { kind: doc, id: d1, attributes: { owner_id: alice } }
    action: edit
    expect: allow
    rule: own-docs
"#,
    );
    let out = common::gatehouse_command()
        .arg("test")
        .arg(dir.path())
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(
            "rule 'own-docs': not applicable, its when condition does not hold\n  - owner: attributes.owner_id is 'alice', the principal is 'bob'"
        ),
        "{report}"
    );
}
