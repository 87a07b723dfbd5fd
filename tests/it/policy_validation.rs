//! Invalid policy directories: `gatehouse validate DIR` reports every error with `file:line` and exits
//! non-zero, and a server configured with the directory refuses to start, loading nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{SECRET, TestServer, check, check_request, user_token};
use gatehouse::config::Config;
use serde_json::json;
use tempfile::TempDir;

/// The binary with a clean environment.
fn gatehouse() -> Command {
    common::gatehouse_command()
}

/// A policy directory holding these files.
fn policy_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// One error as printed: `file:line: message`.
#[derive(Debug, Clone)]
struct Reported {
    file: String,
    line: usize,
    message: String,
}

/// Parses the error lines of `gatehouse validate` (the first prefixed with `gatehouse: `). Every
/// non-empty line must name a file and a line.
fn parse_errors(text: &str) -> Vec<Reported> {
    text.lines()
        .map(|line| line.strip_prefix("gatehouse: ").unwrap_or(line))
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let end = [".yaml:", ".yml:"]
                .iter()
                .find_map(|ext| line.find(ext).map(|i| i + ext.len() - 1))
                .unwrap_or_else(|| panic!("no file in error line: {line}"));
            let file = line[..end].to_owned();
            let rest = &line[end + 1..];
            let (number, message) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("no line number in error line: {line}"));
            let line_number = number
                .parse()
                .unwrap_or_else(|_| panic!("no line number in error line: {line}"));
            Reported {
                file,
                line: line_number,
                message: message.to_owned(),
            }
        })
        .collect()
}

/// An error a directory must produce: in `file`, at one of `lines`, with a message containing
/// `fragment`.
struct Expect<'a> {
    file: &'a str,
    lines: &'a [usize],
    fragment: &'a str,
}

fn expect<'a>(file: &'a str, lines: &'a [usize], fragment: &'a str) -> Expect<'a> {
    Expect {
        file,
        lines,
        fragment,
    }
}

fn find<'r>(reported: &'r [Reported], wanted: &Expect<'_>) -> Option<&'r Reported> {
    reported.iter().find(|r| {
        r.file == wanted.file
            && wanted.lines.contains(&r.line)
            && r.message.contains(wanted.fragment)
    })
}

/// Runs `gatehouse validate` on `dir`: it must exit 1 and report each expected error. Returns every
/// error it reported.
fn validate_reports(dir: &Path, expected: &[Expect<'_>]) -> Vec<Reported> {
    let out = gatehouse().arg("validate").arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "validate must fail:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("ok:"), "{stdout}");
    let reported = parse_errors(&stderr);
    for wanted in expected {
        assert!(
            find(&reported, wanted).is_some(),
            "expected {}:{:?}: ...{}... in:\n{stderr}",
            wanted.file,
            wanted.lines,
            wanted.fragment
        );
    }
    reported
}

/// `gatehouse::run` with GATEHOUSE_POLICY_DIR set to `dir` must fail before serving, naming each
/// expected error with its file and line.
async fn assert_server_refuses(dir: &Path, expected: &[Expect<'_>]) {
    let vars: HashMap<String, String> = HashMap::from([
        ("GATEHOUSE_API_SECRET".to_owned(), SECRET.to_owned()),
        (
            "GATEHOUSE_POLICY_DIR".to_owned(),
            dir.to_str().unwrap().to_owned(),
        ),
    ]);
    let config = Config::load_with(None, &|name| vars.get(name).cloned())
        .expect("the configuration itself is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        gatehouse::run(config, listener, std::future::pending()),
    )
    .await;
    let error = match outcome {
        Err(_) => panic!("the server started on an invalid policy directory"),
        Ok(Ok(())) => panic!("the server returned Ok on an invalid policy directory"),
        Ok(Err(error)) => error,
    };
    assert!(
        matches!(error, gatehouse::error::ServeError::Policy(_)),
        "{error:?}"
    );
    let text = error.to_string();
    let reported = parse_errors(text.strip_prefix("invalid policies:\n").unwrap_or(&text));
    for wanted in expected {
        assert!(
            find(&reported, wanted).is_some(),
            "the server's error lacks {}:{:?}: ...{}...:\n{text}",
            wanted.file,
            wanted.lines,
            wanted.fragment
        );
    }
}

/// Both the validator and the server refuse `files`, reporting exactly `expected` (no other error).
async fn assert_invalid_exactly(files: &[(&str, &str)], expected: &[Expect<'_>]) {
    let dir = policy_dir(files);
    let reported = validate_reports(dir.path(), expected);
    assert_eq!(
        reported.len(),
        expected.len(),
        "exactly the expected errors: {reported:#?}"
    );
    assert_server_refuses(dir.path(), expected).await;
}

// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_yaml_syntax_error_is_reported_with_its_line() {
    let rules = r#"rules:
  - name: a
    effect: allow
    resource: feed
    actions: [read]
    when: {roles: [admin]}}
"#;
    assert_invalid_exactly(&[("rules.yaml", rules)], &[expect("rules.yaml", &[6], "")]).await;

    let tab = "rules:\n  - name: a\n    effect: allow\n    resource: feed\n\tactions: [read]\n";
    assert_invalid_exactly(&[("tab.yaml", tab)], &[expect("tab.yaml", &[5], "tab")]).await;
}

#[tokio::test]
async fn an_unknown_field_is_reported_with_its_line() {
    let rules = r#"rules:
  - name: a
    effect: allow
    resource: feed
    actions: [read]
  - name: b
    efect: allow
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules)],
        &[expect(
            "rules.yaml",
            &[7],
            "rule 'b': unknown field 'efect' (did you mean 'effect'?)",
        )],
    )
    .await;

    // Nested: a condition key that does not exist.
    let nested = r#"rules:
  - name: a
    effect: allow
    resource: feed
    actions: [read]
    when:
      role: [admin]
resources:
  - kind: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("nested.yml", nested)],
        &[expect(
            "nested.yml",
            &[7],
            "unknown field 'role' (did you mean 'roles'?)",
        )],
    )
    .await;
}

#[tokio::test]
async fn an_undefined_policy_reference_is_reported() {
    let permissions = r#"policies:
  - name: tellers
    type: role
    roles: [bank_teller]
  - name: tellers-and-more
    type: aggregated
    policies: [tellers, missing-one]

permissions:
  - name: view-accounts
    type: resource
    resource: account
    policies: [tellers, nope]
resources:
  - kind: account
    actions: []
"#;
    assert_invalid_exactly(
        &[("perms.yaml", permissions)],
        &[
            expect("perms.yaml", &[5, 7], "policy 'missing-one' is not defined"),
            expect("perms.yaml", &[10, 13], "policy 'nope' is not defined"),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_undefined_list_is_reported() {
    let rules = r#"lists:
  groups: [user]

rules:
  - name: read-listed
    effect: allow
    resource: feed
    actions: [read]
    when:
      in: { id: "$nope" }
resources:
  - kind: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules)],
        &[expect("rules.yaml", &[5, 10], "list 'nope' is not defined")],
    )
    .await;
}

#[tokio::test]
async fn duplicate_rule_names_across_files_are_reported_at_the_second() {
    let a = r#"rules:
  - name: same
    effect: allow
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read, write]
"#;
    let b = r#"# the second file

rules:
  - name: other
    effect: allow
    resource: feed
    actions: [write]
  - name: same
    effect: deny
    resource: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("a.yaml", a), ("b.yaml", b)],
        &[expect("b.yaml", &[8], "'same' is defined twice")],
    )
    .await;

    // Rules, chat policies and permissions share the namespace.
    let chat = r#"chat_policies:
  - name: same
    resources: [ReadChannel]
    roles: [user]
    action: Allow
    priority: 10
resources:
  - kind: channel
    actions: [ReadChannel]
"#;
    assert_invalid_exactly(
        &[("a.yaml", a), ("chat.yaml", chat)],
        &[expect("chat.yaml", &[2], "'same' is defined twice")],
    )
    .await;
}

#[tokio::test]
async fn duplicate_policy_names_are_reported() {
    let a = r#"policies:
  - name: tellers
    type: role
    roles: [bank_teller]
"#;
    let b = r#"policies:
  - name: owners
    type: role
    roles: [account_owner]
  - name: tellers
    type: role
    roles: [teller]
"#;
    assert_invalid_exactly(
        &[("a.yaml", a), ("b.yaml", b)],
        &[expect("b.yaml", &[5], "policy 'tellers' is defined twice")],
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_in_one_file_is_reported_at_the_duplicate() {
    let policies = r#"policies:
  - name: tellers
    type: role
    roles: [bank_teller]
  - name: owners
    type: role
    roles: [account_owner]
  - name: tellers
    type: group
    groups: [tellers]
"#;
    assert_invalid_exactly(
        &[("policies.yaml", policies)],
        &[expect(
            "policies.yaml",
            &[8],
            "policy 'tellers' is defined twice",
        )],
    )
    .await;
    let rules = r#"rules:
  - name: same
    effect: allow
    resource: feed
    actions: [read]
  - name: same
    effect: deny
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules)],
        &[expect("rules.yaml", &[6], "'same' is defined twice")],
    )
    .await;
}

#[tokio::test]
async fn a_cycle_among_aggregated_policies_is_reported() {
    let policies = r#"policies:
  - name: a
    type: aggregated
    policies: [b]
  - name: b
    type: aggregated
    policies: [a]

permissions:
  - name: p
    type: resource
    resource: account
    policies: [a]
resources:
  - kind: account
    actions: []
"#;
    let dir = policy_dir(&[("policies.yaml", policies)]);
    let wanted = [expect(
        "policies.yaml",
        &[2, 5],
        "aggregated policies form a cycle",
    )];
    let reported = validate_reports(dir.path(), &wanted);
    assert_eq!(reported.len(), 1, "{reported:#?}");
    let message = &reported[0].message;
    assert!(
        message.contains("a -> b -> a") || message.contains("b -> a -> b"),
        "{message}"
    );
    assert_server_refuses(dir.path(), &wanted).await;

    // A policy aggregating itself is a cycle too.
    let selfish = r#"policies:
  - name: me
    type: aggregated
    policies: [me]
"#;
    assert_invalid_exactly(
        &[("self.yaml", selfish)],
        &[expect("self.yaml", &[2], "me -> me")],
    )
    .await;
}

#[tokio::test]
async fn priorities_out_of_range_are_reported_and_the_bounds_accepted() {
    let rules = r#"rules:
  - name: too-high
    effect: allow
    priority: 1000001
    resource: feed
    actions: [read]
  - name: too-low
    effect: deny
    priority: -1000001
    resource: feed
    actions: [read]
  - name: highest
    effect: allow
    priority: 1000000
    resource: feed
    actions: [read]
  - name: lowest
    effect: allow
    priority: -1000000
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    let chat = r#"chat_policies:
  - name: zero
    resources: [ReadChannel]
    roles: [user]
    action: Allow
    priority: 0
  - name: thousand
    resources: [ReadChannel]
    roles: [user]
    action: Allow
    priority: 1000
  - name: one
    resources: [ReadChannel]
    roles: [user]
    action: Allow
    priority: 1
  - name: nine-nine-nine
    resources: [ReadChannel]
    roles: [user]
    action: Allow
    priority: 999
resources:
  - kind: channel
    actions: [ReadChannel]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules), ("chat.yaml", chat)],
        &[
            expect("rules.yaml", &[2, 4], "priority 1000001 is out of range"),
            expect("rules.yaml", &[7, 9], "priority -1000001 is out of range"),
            expect("chat.yaml", &[2, 6], "priority 0 is out of range"),
            expect("chat.yaml", &[7, 11], "priority 1000 is out of range"),
        ],
    )
    .await;

    // A permission's priority has the rules' range.
    let permission = r#"policies:
  - name: p
    type: role
    roles: [user]
permissions:
  - name: loud
    type: resource
    resource: account
    policies: [p]
    priority: 2000000
resources:
  - kind: account
    actions: []
"#;
    assert_invalid_exactly(
        &[("perm.yaml", permission)],
        &[expect(
            "perm.yaml",
            &[6, 10],
            "priority 2000000 is out of range",
        )],
    )
    .await;
}

#[tokio::test]
async fn a_bad_effect_is_reported() {
    let rules = r#"rules:
  - name: good
    effect: allow
    resource: feed
    actions: [read]
  - name: bad
    effect: permit
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    let chat = r#"chat_policies:
  - name: maybe
    resources: [ReadChannel]
    roles: [user]
    action: Perhaps
    priority: 10
resources:
  - kind: channel
    actions: [ReadChannel]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules), ("chat.yaml", chat)],
        &[
            expect("rules.yaml", &[6, 7], "effect must be allow or deny"),
            expect("chat.yaml", &[2, 5], "Perhaps"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_cel_parse_error_is_reported() {
    let rules = r#"rules:
  - name: broken
    effect: allow
    resource: feed
    actions: [read]
    when:
      cel: "principal.id == "
resources:
  - kind: feed
    actions: [read]
"#;
    let dir = policy_dir(&[("rules.yaml", rules)]);
    let wanted = [expect("rules.yaml", &[2, 7], "syntax error")];
    validate_reports(dir.path(), &wanted);
    assert_server_refuses(dir.path(), &wanted).await;
}

#[tokio::test]
async fn cel_type_errors_are_reported_in_every_file() {
    let variable = r#"rules:
  - name: unknown-variable
    effect: allow
    resource: feed
    actions: [read]
    when:
      cel: "user.id == 'jack'"
resources:
  - kind: feed
    actions: [read]
"#;
    let field = r#"rules:
  - name: unknown-field
    effect: allow
    resource: feed
    actions: [read]
    when:
      cel: "principal.name == 'jack'"
resources:
  - kind: feed
    actions: [read]
"#;
    let number = r#"policies:
  - name: arithmetic
    type: condition
    condition: "1 + 2"
"#;
    let function = r#"rules:
  - name: unknown-function
    effect: allow
    resource: feed
    actions: [read]
    when:
      all:
        - roles: [user]
        - cel: "frobnicate(principal.id)"
resources:
  - kind: feed
    actions: [read]
"#;
    let dir = policy_dir(&[
        ("variable.yaml", variable),
        ("field.yaml", field),
        ("number.yaml", number),
        ("function.yaml", function),
    ]);
    let wanted = [
        expect("variable.yaml", &[2, 7], "unknown variable 'user'"),
        expect("field.yaml", &[2, 7], "unknown field 'name' of principal"),
        expect("number.yaml", &[2, 4], "must be boolean"),
        expect("function.yaml", &[2, 9], "unknown function 'frobnicate'"),
    ];
    validate_reports(dir.path(), &wanted);
    assert_server_refuses(dir.path(), &wanted).await;
}

#[tokio::test]
async fn a_cel_error_is_reported_once() {
    let rules = r#"rules:
  - name: unknown-field
    effect: allow
    resource: feed
    actions: [read]
    when:
      cel: "principal.name == 'jack'"
resources:
  - kind: feed
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules)],
        &[expect("rules.yaml", &[2, 7], "unknown field 'name'")],
    )
    .await;
}

#[tokio::test]
async fn a_cel_error_is_reported_at_its_own_rule() {
    let rules = r#"rules:
  - name: first
    effect: allow
    resource: feed
    actions: [read]
    when:
      cel: "principal.id == 'a'"
  - name: second
    effect: allow
    resource: feed
    actions: [read]
    when:
      any:
        - roles: [admin]
        - cel: "principal.nam == 'b'"
resources:
  - kind: feed
    actions: [read]
"#;
    let dir = policy_dir(&[("rules.yaml", rules)]);
    let wanted = [expect("rules.yaml", &[8, 15], "unknown field 'nam'")];
    validate_reports(dir.path(), &wanted);
    assert_server_refuses(dir.path(), &wanted).await;
}

#[tokio::test]
async fn owner_on_a_kind_without_an_owner_is_reported() {
    let rules = r#"resources:
  - kind: ticket
    actions: [read]
  - kind: channel
    actions: [UpdateChannel]
    channel: id

rules:
  - name: own-tickets
    effect: allow
    resource: ticket
    actions: [read]
    when:
      owner: true

chat_policies:
  - name: own-channel
    resources: [UpdateChannel]
    kinds: [channel]
    roles: [user]
    owner: true
    action: Allow
    priority: 10
"#;
    // An undeclared kind has no owner either.
    let undeclared = r#"rules:
  - name: own-widgets
    effect: allow
    resource: widget
    actions: [read]
    when:
      owner: true
resources:
  - kind: widget
    actions: [read]
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules), ("undeclared.yaml", undeclared)],
        &[
            expect("rules.yaml", &[9, 14], "kind 'ticket' declares no owner"),
            expect("rules.yaml", &[17, 21], "kind 'channel' declares no owner"),
            expect(
                "undeclared.yaml",
                &[2, 7],
                "kind 'widget' declares no owner",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_capture_not_in_the_kind_pattern_is_reported() {
    let rules = r#"resources:
  - kind: feed
    actions: [read]
    id: "{group}:{owner}"
    owner: captures.owner

rules:
  - name: by-group
    effect: allow
    resource: feed
    actions: [read]
    when:
      in: { captures.grup: [user] }
"#;
    let kinds = r#"resources:
  - kind: album
    id: "{artist}:{title}"
    owner: captures.owner
"#;
    assert_invalid_exactly(
        &[("rules.yaml", rules), ("kinds.yaml", kinds)],
        &[
            expect("rules.yaml", &[8, 13], "captures.grup is not a capture"),
            expect("kinds.yaml", &[2, 4], "captures.owner is not a capture"),
        ],
    )
    .await;
}

#[tokio::test]
async fn errors_in_three_files_are_all_reported_in_one_run() {
    let first = r#"# an unknown field
rules:
  - name: first
    effect: allow
    resource: feed
    actions: [read]
    whenn:
      roles: [admin]
resources:
  - kind: feed
    actions: [read, write]
"#;
    let second = r#"rules:
  - name: second
    effect: allow
    resource: feed
    actions: [read]
  - name: third
    effect: maybe
    resource: feed
    actions: [write]
"#;
    let third = r#"policies:
  - name: admins
    type: role
    roles: [admin]

permissions:
  - name: admin-accounts
    type: resource
    resource: account
    policies: [admins, auditors]
resources:
  - kind: account
    actions: []
"#;
    let dir = policy_dir(&[
        ("first.yaml", first),
        ("nested/second.yaml", second),
        ("third.yaml", third),
    ]);
    let wanted = [
        expect("first.yaml", &[7], "unknown field 'whenn'"),
        expect(
            "nested/second.yaml",
            &[6, 7],
            "effect must be allow or deny",
        ),
        expect("third.yaml", &[7, 10], "policy 'auditors' is not defined"),
    ];
    let reported = validate_reports(dir.path(), &wanted);
    assert_eq!(reported.len(), 3, "{reported:#?}");
    assert_server_refuses(dir.path(), &wanted).await;
}

#[tokio::test]
async fn a_valid_file_beside_an_invalid_one_is_not_loaded_either() {
    let valid = r#"rules:
  - name: everyone-reads
    effect: allow
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read, write]
"#;
    let broken = r#"rules:
  - name: broken
    effect: allow
    resource: feed
    actions: [write]
    when:
      in: { id: "$undefined" }
"#;
    let dir = policy_dir(&[("valid.yaml", valid), ("broken.yaml", broken)]);
    let wanted = [expect("broken.yaml", &[2, 7], "list 'undefined'")];
    let reported = validate_reports(dir.path(), &wanted);
    assert!(
        reported.iter().all(|r| r.file == "broken.yaml"),
        "{reported:#?}"
    );
    assert_server_refuses(dir.path(), &wanted).await;

    // `gatehouse test` refuses to run suites against it too.
    let suite = r#"tests:
  - name: reads
    principal: { id: jack }
    resource: { kind: feed, id: "user:jack" }
    action: read
    expect: allow
"#;
    std::fs::write(dir.path().join("feeds_test.yaml"), suite).unwrap();
    let out = gatehouse().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("passed"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gatehouse_serve_exits_non_zero_on_invalid_policies() {
    let first = r#"rules:
  - name: a
    effect: alow
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    let second = r#"rules:
  - name: b
    effect: allow
    resource: feed
    actions: [read]
    when:
      owner: true
resources:
  - kind: feed
    actions: [read]
"#;
    let dir = policy_dir(&[("first.yaml", first), ("second.yaml", second)]);
    let mut child = gatehouse()
        .arg("serve")
        .env("GATEHOUSE_API_SECRET", SECRET)
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_POLICY_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gatehouse serve kept running on an invalid policy directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success(), "{status:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first.yaml:2:"), "{stderr}");
    assert!(stderr.contains("second.yaml:2:"), "{stderr}");
}

#[tokio::test]
async fn a_valid_directory_prints_ok_and_serves() {
    let kinds = r#"resources:
  - kind: feed
    id: "{group}:{owner}"
    owner: captures.owner
    actions: [read, write]
lists:
  public_groups: [user]
"#;
    let rules = r#"rules:
  - name: own-feeds
    effect: allow
    priority: 1
    resource: feed
    actions: "*"
    when:
      owner: true
  - name: public-feeds
    effect: allow
    resource: feed
    actions: [read]
    when:
      in: { captures.group: $public_groups }
      cel: "principal.kind == 'user'"
"#;
    // Suites and hidden files are not policy files: neither would load as one.
    let suite = r#"tests:
  - name: jack reads tommaso's user feed
    principal: { id: jack }
    resource: { kind: feed, id: "user:tommaso" }
    action: read
    expect: allow
    rule: public-feeds
"#;
    let dir = policy_dir(&[
        ("kinds.yaml", kinds),
        ("sub/rules.yml", rules),
        ("feeds_test.yaml", suite),
        (".editor-backup.yaml", "this: [is not a policy file"),
        ("notes.txt", "not yaml at all: ["),
    ]);
    let out = gatehouse()
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok:"), "{stdout}");

    let test = gatehouse().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(test.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&test.stdout).contains("1 passed, 0 failed"));

    let server =
        TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.path().to_str().unwrap())]).await;
    let mut client = server.client().await;
    let read = check(
        &mut client,
        check_request(
            &user_token("jack"),
            "read",
            "feed",
            "user:tommaso",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(read.allowed, "{}", read.reason);
    assert_eq!(read.rule, "public-feeds");
    let write = check(
        &mut client,
        check_request(
            &user_token("jack"),
            "write",
            "feed",
            "user:tommaso",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(!write.allowed);
    assert_eq!(write.rule, "default-deny");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_route_error_points_at_the_route_not_a_rule_of_the_same_name() {
    // Routes have their own namespace: a rule may share a route's name, and the route's error must
    // name the route's line, in either order in the file.
    let rule = r#"rules:
  - name: read-feed
    effect: allow
    resource: feed
    actions: [read]
resources:
  - kind: feed
    actions: [read]
"#;
    let route = r#"routes:
  - name: read-feed
    methods: [GET]
    path: /api/v1.0/feed/{group}/{user_id}/
    resource: nowhere
    id: "{group}:{user_id}"
    action: read
"#;
    let unknown = "resource kind 'nowhere' is not declared";
    assert_invalid_exactly(
        &[("both.yaml", &format!("{rule}{route}"))],
        &[expect("both.yaml", &[10], unknown)],
    )
    .await;
    assert_invalid_exactly(
        &[("both.yaml", &format!("{route}{rule}"))],
        &[expect("both.yaml", &[2], unknown)],
    )
    .await;
    // A route written in flow style, on the `routes:` line itself.
    let flow = r#"routes: [{name: read-feed, methods: [GET], path: "/feed/{id}", resource: nowhere, id: "{id}", action: read}]
"#;
    assert_invalid_exactly(
        &[("both.yaml", &format!("{rule}{flow}"))],
        &[expect("both.yaml", &[9], unknown)],
    )
    .await;
}
