//! Hot reload of a policy directory, over a real server and real files: every trigger (edits in place,
//! write-then-rename, delete and recreate, a Kubernetes ConfigMap's `..data` swap, SIGHUP, the
//! ReloadPolicies RPC), invalid sets that leave the last good one serving, token revocation through the
//! policy set, and a start-up that refuses an invalid directory.
//!
//! Nothing here asserts how long a reload takes: every wait polls a condition under a generous deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{Deadline, SET_A, SET_B, status, wait_for_failed_reload, write};

use std::fmt::Debug;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use common::{SECRET, TestServer, check, check_request, now, server_token, sign, user_token};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use serde_json::json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tonic::Code;
use tonic::transport::Channel;

/// Which set decided a `read doc` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    A,
    B,
    /// No rule matched: neither set is loaded.
    Nothing,
}

fn decided(response: &pb::CheckResponse) -> Decided {
    match (response.allowed, response.rule.as_str()) {
        (true, "docs-open") => Decided::A,
        (false, "docs-closed") => Decided::B,
        (false, "default-deny") => Decided::Nothing,
        other => panic!("a response no set explains: {other:?} in {response:?}"),
    }
}

/// The revision gatehouse gives a directory's current content.
fn revision_of(dir: &Path) -> String {
    gatehouse::store::load_dir(dir)
        .expect("the directory loads")
        .revision()
        .to_owned()
}

/// The revision of a directory holding exactly these files.
fn revision_of_files(files: &[(&str, &str)]) -> String {
    let dir = TempDir::new().unwrap();
    for (name, text) in files {
        write(&dir.path().join(name), text);
    }
    revision_of(dir.path())
}

/// PolicyStatus's form of a file's hash: SHA-256, hex, the first 32 characters.
fn sha256_32(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..64]
        .to_owned()
}

fn with_server_token<T>(message: T) -> tonic::Request<T> {
    with_authorization(message, &format!("Bearer {}", server_token()))
}

fn with_authorization<T>(message: T, authorization: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().unwrap());
    request
}

async fn serve(dir: &Path) -> TestServer {
    TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
    ])
    .await
}

/// A server on a fresh directory holding `files`. The first answered call means the server runs, so
/// the watcher is in place before a test touches the directory.
async fn serve_files(files: &[(&str, &str)]) -> (TempDir, TestServer, GatehouseClient<Channel>) {
    let dir = TempDir::new().unwrap();
    for (name, text) in files {
        write(&dir.path().join(name), text);
    }
    let server = serve(dir.path()).await;
    let mut client = server.client().await;
    let status = status(&mut client).await;
    assert_eq!(status.policy_revision, revision_of(dir.path()));
    (dir, server, client)
}

async fn reload(client: &mut GatehouseClient<Channel>) -> pb::ReloadPoliciesResponse {
    client
        .reload_policies(with_server_token(pb::ReloadPoliciesRequest {}))
        .await
        .expect("ReloadPolicies with a server token succeeds")
        .into_inner()
}

fn read_doc_as(token: &str) -> pb::CheckRequest {
    check_request(token, "read", "doc", "d1", json!({}), json!({}))
}

async fn read_doc(client: &mut GatehouseClient<Channel>) -> pb::CheckResponse {
    check(client, read_doc_as(&user_token("jack"))).await
}

/// Waits until the server serves `revision`, then returns the status.
async fn wait_for_revision(
    client: &mut GatehouseClient<Channel>,
    revision: &str,
) -> pb::PolicyStatusResponse {
    let deadline = Deadline::new("the new revision to serve");
    loop {
        let status = status(client).await;
        if status.policy_revision == revision {
            return status;
        }
        deadline.tick(&(revision, &status)).await;
    }
}

/// Waits until `read doc` is decided by `set`, then returns the response.
async fn wait_for_decision(
    client: &mut GatehouseClient<Channel>,
    set: Decided,
) -> pb::CheckResponse {
    let deadline = Deadline::new("the decision to change");
    loop {
        let response = read_doc(client).await;
        if decided(&response) == set {
            return response;
        }
        deadline.tick(&(set, &response)).await;
    }
}

fn files(status: &pb::PolicyStatusResponse) -> Vec<(&str, &str)> {
    status
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Triggers

#[tokio::test]
async fn editing_a_file_in_place_reloads_it() {
    let (dir, server, mut client) = serve_files(&[("p.yaml", SET_A)]).await;
    let before = status(&mut client).await;
    assert_eq!(decided(&read_doc(&mut client).await), Decided::A);
    assert_eq!(before.reloads_ok, 0);
    assert_eq!(before.reloads_failed, 0);
    assert_eq!(before.policy_dir, dir.path().display().to_string());
    assert_eq!(files(&before), [("p.yaml", sha256_32(SET_A).as_str())]);
    // loaded_at has a resolution of one second: let the clock pass it so the reload can move it.
    let deadline = Deadline::new("the clock to pass loaded_at");
    let loaded_at = before.loaded_at.unwrap().seconds;
    while now() <= loaded_at {
        deadline.tick(&loaded_at).await;
    }

    let written_at = now();
    write(&dir.path().join("p.yaml"), SET_B);
    let response = wait_for_decision(&mut client, Decided::B).await;
    let expected = revision_of(dir.path());
    assert_ne!(expected, before.policy_revision);
    assert_eq!(response.policy_revision, expected);

    let after = wait_for_revision(&mut client, &expected).await;
    assert_eq!(files(&after), [("p.yaml", sha256_32(SET_B).as_str())]);
    assert!(after.reloads_ok > before.reloads_ok, "{after:?}");
    assert_eq!(after.reloads_failed, 0);
    assert!(after.last_error.is_empty() && after.last_error_at.is_none());
    let moved_to = after.loaded_at.unwrap().seconds;
    assert!(moved_to > loaded_at && moved_to >= written_at, "{after:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn writing_a_temporary_file_then_renaming_it_over_the_policy_reloads() {
    let (dir, server, mut client) = serve_files(&[("x.yaml", SET_A)]).await;
    let before = status(&mut client).await;

    // Only *.yaml and *.yml are policies: the temporary file changes nothing by itself, though writing
    // it is a change in the directory and reloads.
    let temporary = dir.path().join("x.yaml.tmp");
    write(&temporary, SET_B);
    let deadline = Deadline::new("the reload after writing the temporary file");
    loop {
        let status = status(&mut client).await;
        if status.reloads_ok > before.reloads_ok {
            assert_eq!(status.policy_revision, before.policy_revision);
            assert_eq!(files(&status), [("x.yaml", sha256_32(SET_A).as_str())]);
            break;
        }
        deadline.tick(&status).await;
    }
    assert_eq!(decided(&read_doc(&mut client).await), Decided::A);

    std::fs::rename(&temporary, dir.path().join("x.yaml")).unwrap();
    let response = wait_for_decision(&mut client, Decided::B).await;
    let expected = revision_of(dir.path());
    assert_eq!(response.policy_revision, expected);
    let after = wait_for_revision(&mut client, &expected).await;
    assert_eq!(files(&after), [("x.yaml", sha256_32(SET_B).as_str())]);
    assert_eq!(after.reloads_failed, 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_recreating_adding_and_removing_files_reloads() {
    const WRITABLE: &str = "\
rules:
  - name: docs-writable
    effect: allow
    resource: doc
    actions: [write]
";
    let (dir, server, mut client) = serve_files(&[("p.yaml", SET_A)]).await;
    let write_doc = || {
        check_request(
            &user_token("jack"),
            "write",
            "doc",
            "d1",
            json!({}),
            json!({}),
        )
    };

    // Delete and recreate, as CI tools do.
    let policy = dir.path().join("p.yaml");
    std::fs::remove_file(&policy).unwrap();
    write(&policy, SET_B);
    wait_for_decision(&mut client, Decided::B).await;
    let recreated = wait_for_revision(&mut client, &revision_of_files(&[("p.yaml", SET_B)])).await;
    assert_eq!(files(&recreated), [("p.yaml", sha256_32(SET_B).as_str())]);

    // A new file adds its rules to the set.
    let denied = check(&mut client, write_doc()).await;
    assert!(!denied.allowed);
    assert_eq!(denied.rule, "default-deny");
    write(&dir.path().join("writable.yaml"), WRITABLE);
    let both = revision_of_files(&[("p.yaml", SET_B), ("writable.yaml", WRITABLE)]);
    let added = wait_for_revision(&mut client, &both).await;
    assert_eq!(
        files(&added),
        [
            ("p.yaml", sha256_32(SET_B).as_str()),
            ("writable.yaml", sha256_32(WRITABLE).as_str()),
        ]
    );
    let allowed = check(&mut client, write_doc()).await;
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.rule, "docs-writable");
    assert_eq!(allowed.policy_revision, both);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::B);

    // Deleting a file takes its rules away.
    std::fs::remove_file(dir.path().join("writable.yaml")).unwrap();
    let removed = wait_for_revision(&mut client, &recreated.policy_revision).await;
    assert_eq!(files(&removed), [("p.yaml", sha256_32(SET_B).as_str())]);
    let denied = check(&mut client, write_doc()).await;
    assert!(!denied.allowed);
    assert_eq!(denied.rule, "default-deny");
    assert_eq!(decided(&read_doc(&mut client).await), Decided::B);

    // Deleting the last file would leave an empty set that denies everything: the reload is refused
    // and the last good set keeps serving.
    let before = status(&mut client).await.reloads_failed;
    std::fs::remove_file(&policy).unwrap();
    let failed = wait_for_failed_reload(&mut client, before).await;
    assert_eq!(
        failed.policy_revision, recreated.policy_revision,
        "{failed:?}"
    );
    assert_eq!(files(&failed), [("p.yaml", sha256_32(SET_B).as_str())]);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::B);
    server.stop().await.unwrap();
}

/// A ConfigMap volume as the kubelet lays it out: the files live in a timestamped folder, `..data`
/// links to it, and each key is a top-level link through `..data`.
struct ConfigMap {
    root: TempDir,
    current: String,
    generation: u32,
}

impl ConfigMap {
    fn new(files: &[(&str, &str)]) -> ConfigMap {
        let root = TempDir::new().unwrap();
        let mut map = ConfigMap {
            root,
            current: String::new(),
            generation: 0,
        };
        let first = map.write_folder(files);
        std::os::unix::fs::symlink(&first, map.root.path().join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), map.root.path().join(name))
                .unwrap();
        }
        map.current = first;
        map
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    /// A new timestamped folder with the files; returns its name.
    fn write_folder(&mut self, files: &[(&str, &str)]) -> String {
        self.generation += 1;
        let name = format!("..2026_11_22_10_00_00.{:09}", self.generation);
        let folder = self.root.path().join(&name);
        std::fs::create_dir(&folder).unwrap();
        for (file, text) in files {
            write(&folder.join(file), text);
        }
        name
    }

    /// The kubelet's update of the same keys: new folder, `..data_tmp` link to it, renamed over
    /// `..data` (atomic), old folder removed.
    fn update(&mut self, files: &[(&str, &str)]) {
        let next = self.write_folder(files);
        let tmp = self.root.path().join("..data_tmp");
        std::os::unix::fs::symlink(&next, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.path().join("..data")).unwrap();
        let previous = std::mem::replace(&mut self.current, next);
        std::fs::remove_dir_all(self.root.path().join(previous)).unwrap();
    }
}

#[tokio::test]
async fn a_configmap_data_symlink_swap_reloads() {
    const RULES: &str = "\
rules:
  - name: readers-read-docs
    effect: allow
    resource: doc
    actions: [read]
    when:
      in: { principal.id: $readers }
resources:
  - kind: doc
    actions: [read]
";
    let lists = |readers: &str| format!("lists:\n  readers: [{readers}]\n");
    let first = lists("jack");
    let mut map = ConfigMap::new(&[("lists.yaml", &first), ("rules.yaml", RULES)]);
    let server = serve(map.path()).await;
    let mut client = server.client().await;
    let reader = |user: &str| read_doc_as(&user_token(user));

    let initial = status(&mut client).await;
    assert_eq!(initial.policy_revision, revision_of(map.path()));
    // The keys are listed under their own names, never under the timestamped folder or `..data`.
    assert_eq!(
        files(&initial),
        [
            ("lists.yaml", sha256_32(&first).as_str()),
            ("rules.yaml", sha256_32(RULES).as_str()),
        ]
    );
    assert!(check(&mut client, reader("jack")).await.allowed);
    assert!(!check(&mut client, reader("tommaso")).await.allowed);

    // Twice, so the watcher is seen to follow folders it did not see at start-up.
    for (readers, allowed, denied) in [
        ("tommaso", "tommaso", "jack"),
        ("jack, thierry", "thierry", "tommaso"),
    ] {
        let next = lists(readers);
        map.update(&[("lists.yaml", &next), ("rules.yaml", RULES)]);
        let expected = revision_of(map.path());
        let after = wait_for_revision(&mut client, &expected).await;
        assert_eq!(
            files(&after),
            [
                ("lists.yaml", sha256_32(&next).as_str()),
                ("rules.yaml", sha256_32(RULES).as_str()),
            ]
        );
        assert_eq!(after.reloads_failed, 0, "{after:?}");
        let yes = check(&mut client, reader(allowed)).await;
        assert!(yes.allowed && yes.rule == "readers-read-docs", "{yes:?}");
        assert_eq!(yes.policy_revision, expected);
        let no = check(&mut client, reader(denied)).await;
        assert!(!no.allowed, "{no:?}");
    }
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Invalid sets

#[tokio::test]
async fn an_invalid_file_keeps_the_last_good_set_until_it_is_fixed() {
    const BAD_YAML: &str = "\
rules:
  - name: docs-open
    effect: allow
    resource: doc
    actions: [read
";
    const UNDEFINED_LIST: &str = "\
rules:
  - name: docs-open
    effect: allow
    resource: doc
    actions: [read]
    when:
      in: { principal.id: $nobody_defined_this }
resources:
  - kind: doc
    actions: [read]
";
    let (dir, server, mut client) = serve_files(&[("p.yaml", SET_A)]).await;
    let good = status(&mut client).await;
    let policy = dir.path().join("p.yaml");

    // A YAML error.
    write(&policy, BAD_YAML);
    let failed = wait_for_failed_reload(&mut client, good.reloads_failed).await;
    assert_eq!(failed.policy_revision, good.policy_revision);
    assert_eq!(files(&failed), files(&good));
    assert!(failed.last_error_at.is_some());
    assert!(
        failed.last_error.contains("p.yaml:") && has_line_number(&failed.last_error, "p.yaml:"),
        "the error names the file and line: {}",
        failed.last_error
    );
    let response = read_doc(&mut client).await;
    assert_eq!(decided(&response), Decided::A);
    assert_eq!(response.policy_revision, good.policy_revision);

    // Fixing the file loads it and clears the error.
    write(&policy, SET_B);
    let fixed = wait_for_revision(&mut client, &revision_of(dir.path())).await;
    assert!(
        fixed.last_error.is_empty() && fixed.last_error_at.is_none(),
        "{fixed:?}"
    );
    assert!(fixed.reloads_ok > failed.reloads_ok);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::B);

    // An undefined reference.
    write(&policy, UNDEFINED_LIST);
    let failed = wait_for_failed_reload(&mut client, fixed.reloads_failed).await;
    assert_eq!(failed.policy_revision, fixed.policy_revision);
    assert!(
        failed.last_error.contains("nobody_defined_this")
            && has_line_number(&failed.last_error, "p.yaml:"),
        "the error names the file, line and list: {}",
        failed.last_error
    );
    let response = read_doc(&mut client).await;
    assert_eq!(decided(&response), Decided::B);
    assert_eq!(response.policy_revision, fixed.policy_revision);

    write(&policy, SET_A);
    let fixed = wait_for_revision(&mut client, &revision_of(dir.path())).await;
    assert!(
        fixed.last_error.is_empty() && fixed.last_error_at.is_none(),
        "{fixed:?}"
    );
    assert_eq!(fixed.policy_revision, good.policy_revision);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::A);
    server.stop().await.unwrap();
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

// ---------------------------------------------------------------------------------------------------
// SIGHUP and ReloadPolicies

/// The binary with a clean environment.
fn gatehouse() -> Command {
    common::gatehouse_command()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Deadline::new("the process to exit");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if deadline.expired() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(common::POLL).await;
    }
}

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn sighup_reloads_the_directory() {
    let dir = TempDir::new().unwrap();
    let policy = dir.path().join("p.yaml");
    write(&policy, SET_A);
    let port = free_port();
    // The watcher cannot be turned off; an hour of debounce keeps it from reloading during the test,
    // so every reload seen here is SIGHUP's.
    let mut child = Running(
        gatehouse()
            .arg("serve")
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_API_SECRET", SECRET)
            .env("GATEHOUSE_POLICY_DIR", dir.path())
            .env("GATEHOUSE_RELOAD_DEBOUNCE", "1h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The first answered call means the SIGHUP handler is installed (a SIGHUP before it would kill
    // the process).
    let deadline = Deadline::new("the server to come up");
    let mut client = loop {
        if let Ok(mut client) = GatehouseClient::connect(format!("http://127.0.0.1:{port}")).await
            && client
                .policy_status(with_server_token(pb::PolicyStatusRequest {}))
                .await
                .is_ok()
        {
            break client;
        }
        deadline.tick(&port).await;
    };
    let before = status(&mut client).await;
    assert_eq!(before.policy_revision, revision_of(dir.path()));
    assert_eq!(before.reloads_ok, 0);

    // An unchanged directory: the reload happens and keeps the revision.
    send_signal(&child.0, "HUP");
    let deadline = Deadline::new("SIGHUP to reload");
    let unchanged = loop {
        let status = status(&mut client).await;
        if status.reloads_ok > before.reloads_ok {
            break status;
        }
        deadline.tick(&status).await;
    };
    assert_eq!(unchanged.policy_revision, before.policy_revision);
    assert_eq!(unchanged.reloads_failed, 0);

    // A changed directory: only SIGHUP can load it here.
    write(&policy, SET_B);
    let expected = revision_of(dir.path());
    send_signal(&child.0, "HUP");
    let after = wait_for_revision(&mut client, &expected).await;
    assert!(after.reloads_ok > unchanged.reloads_ok);
    assert_eq!(files(&after), [("p.yaml", sha256_32(SET_B).as_str())]);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::B);

    drop(client);
    send_signal(&child.0, "TERM");
    assert_eq!(wait_exit(&mut child.0).await, Some(0));
}

#[tokio::test]
async fn reload_policies_needs_a_server_token_and_reports_errors() {
    let (dir, server, mut client) = serve_files(&[("p.yaml", SET_A)]).await;
    let good = status(&mut client).await;
    let policy = dir.path().join("p.yaml");

    let refused = client
        .reload_policies(pb::ReloadPoliciesRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = client
        .reload_policies(with_authorization(
            pb::ReloadPoliciesRequest {},
            &format!("Bearer {}", user_token("jack")),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = client
        .policy_status(pb::PolicyStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = client
        .policy_status(with_authorization(
            pb::PolicyStatusRequest {},
            &format!("Bearer {}", user_token("jack")),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The RPC reads the directory as it is when called: its answer is the new set.
    write(&policy, SET_B);
    let set_b = revision_of(dir.path());
    let reloaded = reload(&mut client).await;
    assert!(reloaded.ok, "{reloaded:?}");
    assert!(reloaded.error.is_empty());
    assert_eq!(reloaded.policy_revision, set_b);
    let response = read_doc(&mut client).await;
    assert_eq!(decided(&response), Decided::B);
    assert_eq!(response.policy_revision, set_b);

    // Unchanged: still ok, same revision.
    let again = reload(&mut client).await;
    assert!(again.ok && again.policy_revision == set_b, "{again:?}");

    // Invalid: not ok, every error with file:line, and B keeps serving.
    write(
        &policy,
        "rules:\n  - name: broken\n    effect: maybe\n    resource: doc\n    actions: [read]\nresources:\n  - kind: doc\n    actions: [read]\n",
    );
    write(&dir.path().join("second.yml"), "rules: [\n");
    let failed = reload(&mut client).await;
    assert!(!failed.ok, "{failed:?}");
    assert_eq!(failed.policy_revision, set_b);
    assert!(
        has_line_number(&failed.error, "p.yaml:") && has_line_number(&failed.error, "second.yml:"),
        "both files named with a line: {}",
        failed.error
    );
    let response = read_doc(&mut client).await;
    assert_eq!(decided(&response), Decided::B);
    assert_eq!(response.policy_revision, set_b);
    let status = status(&mut client).await;
    assert_eq!(status.policy_revision, set_b);
    assert!(status.reloads_failed > good.reloads_failed);
    assert!(!status.last_error.is_empty() && status.last_error_at.is_some());

    // Fixed: ok again, back to A.
    write(&policy, SET_A);
    std::fs::remove_file(dir.path().join("second.yml")).unwrap();
    let fixed = reload(&mut client).await;
    assert!(fixed.ok, "{fixed:?}");
    assert_eq!(fixed.policy_revision, good.policy_revision);
    assert_eq!(decided(&read_doc(&mut client).await), Decided::A);
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Revocation

fn rfc3339(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap());
    humantime::format_rfc3339_seconds(time).to_string()
}

fn token_issued_at(user_id: &str, iat: i64) -> String {
    sign(json!({ "user_id": user_id, "iat": iat }))
}

/// Verify and Check's view of a token: `Ok` with the principal's id, or the refusal.
async fn verify(
    client: &mut GatehouseClient<Channel>,
    token: &str,
) -> Result<String, tonic::Status> {
    client
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().principal.unwrap().user_id)
}

async fn assert_revoked(client: &mut GatehouseClient<Channel>, token: &str, who: &str) {
    let refused = verify(client, token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{who}: {refused:?}");
    assert!(refused.message().contains("revoked"), "{who}: {refused:?}");
    let refused = client.check(read_doc_as(token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{who}: {refused:?}");
    assert!(refused.message().contains("revoked"), "{who}: {refused:?}");
}

async fn assert_accepted(client: &mut GatehouseClient<Channel>, token: &str, who: &str) {
    verify(client, token)
        .await
        .unwrap_or_else(|e| panic!("{who} is accepted by Verify: {e:?}"));
    let response = client
        .check(read_doc_as(token))
        .await
        .unwrap_or_else(|e| panic!("{who} is accepted by Check: {e:?}"))
        .into_inner();
    assert!(response.allowed, "{who}: {response:?}");
}

#[tokio::test]
async fn revocations_in_the_policy_set_refuse_old_tokens_until_removed() {
    let cutoff = now() - 3600;
    let users_only = format!(
        "revocations:\n  users:\n    jack: \"{}\"\n",
        rfc3339(cutoff)
    );
    let whole_app = format!(
        "revocations:\n  app_issued_before: \"{}\"\n  users:\n    jack: \"{}\"\n",
        rfc3339(cutoff),
        rfc3339(cutoff)
    );
    let (dir, server, mut client) =
        serve_files(&[("p.yaml", SET_A), ("revocations.yaml", &users_only)]).await;
    let revocations = dir.path().join("revocations.yaml");

    let jack_old = token_issued_at("jack", cutoff - 60);
    let jack_without_iat = user_token("jack");
    let jack_new = token_issued_at("jack", now());
    let tommaso_old = token_issued_at("tommaso", cutoff - 60);
    let tommaso_without_iat = user_token("tommaso");
    let tommaso_new = token_issued_at("tommaso", now());
    let scope_without_iat =
        sign(json!({ "resource": "feed", "action": "read", "feed_id": "userjack" }));
    let server_tokens = [
        server_token(),
        sign(json!({ "server": true, "iat": cutoff - 60 })),
    ];

    // Per user: only jack's tokens from before the cut-off.
    assert_revoked(&mut client, &jack_old, "jack, issued before").await;
    assert_revoked(&mut client, &jack_without_iat, "jack, without iat").await;
    assert_accepted(&mut client, &jack_new, "jack, issued after").await;
    assert_accepted(&mut client, &tommaso_old, "tommaso, issued before").await;
    assert_accepted(&mut client, &tommaso_without_iat, "tommaso, without iat").await;
    verify(&mut client, &scope_without_iat).await.unwrap();

    // The whole app: every user and scope token from before, but never a server token.
    write(&revocations, &whole_app);
    wait_for_revision(&mut client, &revision_of(dir.path())).await;
    assert_revoked(&mut client, &jack_old, "jack, issued before").await;
    assert_revoked(&mut client, &tommaso_old, "tommaso, issued before").await;
    assert_revoked(&mut client, &tommaso_without_iat, "tommaso, without iat").await;
    let refused = verify(&mut client, &scope_without_iat).await.unwrap_err();
    assert!(
        refused.code() == Code::Unauthenticated && refused.message().contains("revoked"),
        "a scope token: {refused:?}"
    );
    assert_accepted(&mut client, &jack_new, "jack, issued after").await;
    assert_accepted(&mut client, &tommaso_new, "tommaso, issued after").await;
    for token in &server_tokens {
        verify(&mut client, token).await.unwrap();
        let response = check(&mut client, read_doc_as(token)).await;
        assert!(
            response.allowed && response.rule == "server-token",
            "{response:?}"
        );
        let issued = client
            .issue_token(with_authorization(
                pb::IssueTokenRequest {
                    user_id: "tommaso".into(),
                    ..Default::default()
                },
                &format!("Bearer {token}"),
            ))
            .await
            .expect("a server token still issues tokens")
            .into_inner();
        // A freshly issued token carries iat = now, after the cut-off.
        assert_accepted(&mut client, &issued.token, "a token issued now").await;
    }

    // Removing the revocations makes the old tokens valid again.
    std::fs::remove_file(&revocations).unwrap();
    wait_for_revision(&mut client, &revision_of(dir.path())).await;
    for (token, who) in [
        (&jack_old, "jack, issued before"),
        (&jack_without_iat, "jack, without iat"),
        (&tommaso_old, "tommaso, issued before"),
        (&tommaso_without_iat, "tommaso, without iat"),
    ] {
        assert_accepted(&mut client, token, who).await;
    }
    verify(&mut client, &scope_without_iat).await.unwrap();
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Start-up

#[tokio::test]
async fn an_invalid_directory_at_start_up_is_refused_listing_every_error() {
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("good.yaml"), SET_A);
    write(
        &dir.path().join("bad.yaml"),
        "rules:\n  - name: broken\n    effect: maybe\n    resource: doc\n    actions: [read]\n",
    );
    write(&dir.path().join("worse.yml"), "rules: [\n");

    // In process: `run` returns the errors instead of serving.
    let server = serve(dir.path()).await;
    let error = server
        .stop()
        .await
        .expect_err("an invalid directory is refused");
    let text = error.to_string();
    assert!(
        has_line_number(&text, "bad.yaml:") && has_line_number(&text, "worse.yml:"),
        "every error, with file and line: {text}"
    );

    // The binary: exits non-zero, listing the errors, without serving.
    let port = free_port();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            gatehouse()
                .arg("serve")
                .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
                .env("GATEHOUSE_API_SECRET", SECRET)
                .env("GATEHOUSE_POLICY_DIR", dir)
                .env("GATEHOUSE_LOG", "off")
                .stdout(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        has_line_number(&stderr, "bad.yaml:") && has_line_number(&stderr, "worse.yml:"),
        "every error, with file and line: {stderr}"
    );
}
