//! Reloads under load: clients check continuously while a ConfigMap-style policy directory is swapped
//! back and forth between two sets. Every answer must be the one its reported revision gives, and no
//! call may fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{SET_A, SET_B, TestServer, check_request, server_token, user_token};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use serde_json::json;
use tempfile::TempDir;
use tonic::transport::Channel;

const SWAPS: usize = 100;
const CLIENTS: usize = 4;
/// How long one swap may take to be served before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

/// What a set answers for jack: `read doc` and `write doc`, and the allowed actions on a doc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answers {
    read: (bool, &'static str),
    write: (bool, &'static str),
    actions: Vec<String>,
}

fn answers_a() -> Answers {
    Answers {
        read: (true, "docs-open"),
        write: (false, "default-deny"),
        actions: vec!["read".to_owned()],
    }
}

fn answers_b() -> Answers {
    Answers {
        read: (false, "docs-closed"),
        write: (false, "default-deny"),
        actions: Vec::new(),
    }
}

/// The revision gatehouse gives a set, learnt from a copy of it.
fn revision_of(policy: &str) -> String {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    gatehouse::store::load_dir(dir.path())
        .unwrap()
        .revision()
        .to_owned()
}

/// A one-key ConfigMap volume as the kubelet lays it out and updates it.
struct ConfigMap {
    root: TempDir,
    current: String,
    generation: u32,
}

impl ConfigMap {
    fn new(policy: &str) -> ConfigMap {
        let mut map = ConfigMap {
            root: TempDir::new().unwrap(),
            current: String::new(),
            generation: 0,
        };
        let first = map.write_folder(policy);
        std::os::unix::fs::symlink(&first, map.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/policy.yaml", map.path().join("policy.yaml")).unwrap();
        map.current = first;
        map
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn write_folder(&mut self, policy: &str) -> String {
        self.generation += 1;
        let name = format!("..2026_11_22_10_00_00.{:09}", self.generation);
        let folder = self.path().join(&name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("policy.yaml"), policy).unwrap();
        name
    }

    /// New timestamped folder, `..data_tmp` linked to it and renamed over `..data`, old folder removed.
    fn update(&mut self, policy: &str) {
        let next = self.write_folder(policy);
        let tmp = self.path().join("..data_tmp");
        std::os::unix::fs::symlink(&next, &tmp).unwrap();
        std::fs::rename(&tmp, self.path().join("..data")).unwrap();
        let previous = std::mem::replace(&mut self.current, next);
        std::fs::remove_dir_all(self.path().join(previous)).unwrap();
    }
}

fn with_server_token<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server_token()).parse().unwrap(),
    );
    request
}

async fn status(client: &mut GatehouseClient<Channel>) -> pb::PolicyStatusResponse {
    client
        .policy_status(with_server_token(pb::PolicyStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// How a client asks.
#[derive(Debug, Clone, Copy)]
enum Asks {
    Check,
    CheckBatch,
    AllowedActions,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    per_revision: HashMap<String, u64>,
    /// Consecutive answers from different revisions.
    changes: u64,
    failures: Vec<String>,
}

fn doc() -> pb::Resource {
    pb::Resource {
        kind: "doc".into(),
        id: "d1".into(),
        attributes: None,
    }
}

/// One call; its revision and whether the answer is the one that revision gives.
async fn ask(
    client: &mut GatehouseClient<Channel>,
    asks: Asks,
    token: &str,
    expected: &HashMap<String, Answers>,
) -> Result<String, String> {
    let answer_for = |revision: &str| {
        expected
            .get(revision)
            .ok_or_else(|| format!("an unknown revision {revision}"))
    };
    match asks {
        Asks::Check => {
            let response = client
                .check(check_request(
                    token,
                    "read",
                    "doc",
                    "d1",
                    json!({}),
                    json!({}),
                ))
                .await
                .map_err(|e| format!("Check failed: {e:?}"))?
                .into_inner();
            let answers = answer_for(&response.policy_revision)?;
            let got = (response.allowed, response.rule.as_str());
            if got != answers.read {
                return Err(format!("Check answered {got:?}; {answers:?} expected"));
            }
            Ok(response.policy_revision)
        }
        Asks::CheckBatch => {
            let item = |action: &str| pb::CheckItem {
                action: action.into(),
                resource: Some(doc()),
                context: None,
            };
            let response = client
                .check_batch(pb::CheckBatchRequest {
                    token: token.to_owned(),
                    items: vec![item("read"), item("write"), item("read")],
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("CheckBatch failed: {e:?}"))?
                .into_inner();
            let answers = answer_for(&response.policy_revision)?;
            let got: Vec<(bool, &str)> = response
                .results
                .iter()
                .map(|r| (r.allowed, r.rule.as_str()))
                .collect();
            if got != [answers.read, answers.write, answers.read] {
                return Err(format!("CheckBatch answered {got:?}; {answers:?} expected"));
            }
            Ok(response.policy_revision)
        }
        Asks::AllowedActions => {
            let response = client
                .allowed_actions(pb::AllowedActionsRequest {
                    token: token.to_owned(),
                    resource: Some(doc()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("AllowedActions failed: {e:?}"))?
                .into_inner();
            let answers = answer_for(&response.policy_revision)?;
            if response.actions != answers.actions {
                return Err(format!(
                    "AllowedActions answered {:?}; {answers:?} expected",
                    response.actions
                ));
            }
            Ok(response.policy_revision)
        }
    }
}

/// Asks until told to stop.
async fn client_loop(
    mut client: GatehouseClient<Channel>,
    asks: Asks,
    expected: Arc<HashMap<String, Answers>>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let token = user_token("jack");
    let mut seen = Seen::default();
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        match ask(&mut client, asks, &token, &expected).await {
            Ok(revision) => {
                if last.as_ref().is_some_and(|l| *l != revision) {
                    seen.changes += 1;
                }
                *seen.per_revision.entry(revision.clone()).or_default() += 1;
                last = Some(revision);
            }
            Err(failure) => seen.failures.push(failure),
        }
    }
    seen
}

/// Waits until the server serves `revision`.
async fn wait_for_revision(client: &mut GatehouseClient<Channel>, revision: &str, swap: usize) {
    let until = Instant::now() + DEADLINE;
    loop {
        let status = status(client).await;
        if status.policy_revision == revision {
            return;
        }
        assert!(
            Instant::now() < until,
            "swap {swap}: {revision} not served after {DEADLINE:?}; status: {status:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_matches_its_revision_while_the_directory_is_swapped() {
    let revision_a = revision_of(SET_A);
    let revision_b = revision_of(SET_B);
    assert_ne!(revision_a, revision_b);
    let expected = Arc::new(HashMap::from([
        (revision_a.clone(), answers_a()),
        (revision_b.clone(), answers_b()),
    ]));

    let mut map = ConfigMap::new(SET_A);
    let server = TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", map.path().to_str().unwrap()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
    ])
    .await;
    let mut admin = server.client().await;
    assert_eq!(status(&mut admin).await.policy_revision, revision_a);

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let asks = match i % 4 {
            0 | 1 => Asks::Check,
            2 => Asks::CheckBatch,
            _ => Asks::AllowedActions,
        };
        // Each client on its own connection.
        let client = server.client().await;
        clients.push(tokio::spawn(client_loop(
            client,
            asks,
            Arc::clone(&expected),
            Arc::clone(&stop),
        )));
    }

    let mut rpc_reloads = 0;
    for swap in 0..SWAPS {
        let (policy, revision) = if swap % 2 == 0 {
            (SET_B, &revision_b)
        } else {
            (SET_A, &revision_a)
        };
        map.update(policy);
        // Every fifth swap is also reloaded through the RPC, racing the watcher; the RPC reads the
        // directory as it is when called, so it answers with the set just swapped in.
        if swap % 5 == 4 {
            let reloaded = admin
                .reload_policies(with_server_token(pb::ReloadPoliciesRequest {}))
                .await
                .unwrap()
                .into_inner();
            assert!(reloaded.ok, "swap {swap}: {reloaded:?}");
            assert_eq!(&reloaded.policy_revision, revision, "swap {swap}");
            rpc_reloads += 1;
        }
        // The pause between swaps: until the swapped-in set serves, so every swap is a reload.
        wait_for_revision(&mut admin, revision, swap).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut total: HashMap<String, u64> = HashMap::new();
    let mut changes = 0;
    let mut failures = Vec::new();
    for client in clients {
        let seen = client.await.unwrap();
        for (revision, count) in seen.per_revision {
            *total.entry(revision).or_default() += count;
        }
        changes += seen.changes;
        failures.extend(seen.failures);
    }
    assert!(
        failures.is_empty(),
        "{} answers were wrong or failed; the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let count = |revision: &str| total.get(revision).copied().unwrap_or(0);
    assert!(
        count(&revision_a) >= 100 && count(&revision_b) >= 100,
        "both sets answer many times: {total:?}"
    );
    assert!(
        changes >= 20,
        "clients saw the revision change {changes} times"
    );

    let status = status(&mut admin).await;
    assert_eq!(status.reloads_failed, 0, "{status:#?}");
    assert!(
        status.reloads_ok >= u64::try_from(SWAPS).unwrap(),
        "{status:#?}"
    );
    assert!(status.last_error.is_empty());
    eprintln!(
        "{SWAPS} swaps ({rpc_reloads} also through ReloadPolicies): {} answers from A, {} from B, {changes} revision changes seen, {} reloads",
        count(&revision_a),
        count(&revision_b),
        status.reloads_ok
    );
    server.stop().await.unwrap();
}

/// Set A's second key: everyone may write documents.
const WRITES_A: &str = "\
rules:
  - name: writes-open
    effect: allow
    resource: doc
    actions: [write]
";

/// Set B's second key: nobody may write documents.
const WRITES_B: &str = "\
rules:
  - name: writes-closed
    effect: deny
    resource: doc
    actions: [write]
";

/// A ConfigMap with two keys is updated as a whole: a reload must see one version of it or the other,
/// never one key from each. Reloads through the RPC run back to back while the kubelet-style swaps go
/// on, so some of them read the directory in the middle of a swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_never_mixes_two_versions_of_a_configmap() {
    const SWAPS: u32 = 2_000;
    let versions = [(SET_A, WRITES_A), (SET_B, WRITES_B)];
    let root = TempDir::new().unwrap();
    let dir = root.path().to_owned();
    let folder = |generation: u32| {
        let (reads, writes) = versions[usize::try_from(generation % 2).unwrap()];
        let name = format!("..2026_11_22_10_00_00.{generation:09}");
        std::fs::create_dir(dir.join(&name)).unwrap();
        std::fs::write(dir.join(&name).join("reads.yaml"), reads).unwrap();
        std::fs::write(dir.join(&name).join("writes.yaml"), writes).unwrap();
        name
    };
    let revisions: Vec<String> = versions
        .iter()
        .map(|(reads, writes)| {
            let copy = TempDir::new().unwrap();
            std::fs::write(copy.path().join("reads.yaml"), reads).unwrap();
            std::fs::write(copy.path().join("writes.yaml"), writes).unwrap();
            gatehouse::store::load_dir(copy.path())
                .unwrap()
                .revision()
                .to_owned()
        })
        .collect();

    let mut current = folder(0);
    std::os::unix::fs::symlink(&current, dir.join("..data")).unwrap();
    for key in ["reads.yaml", "writes.yaml"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
    let server = TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
    ])
    .await;
    let mut admin = server.client().await;
    assert_eq!(status(&mut admin).await.policy_revision, revisions[0]);

    let stop = Arc::new(AtomicBool::new(false));
    let reloader = {
        let stop = Arc::clone(&stop);
        let revisions = revisions.clone();
        let mut client = server.client().await;
        tokio::spawn(async move {
            let mut mixed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let reloaded = client
                    .reload_policies(with_server_token(pb::ReloadPoliciesRequest {}))
                    .await
                    .unwrap()
                    .into_inner();
                if !reloaded.ok || !revisions.contains(&reloaded.policy_revision) {
                    mixed.push(reloaded);
                }
            }
            mixed
        })
    };
    let checker = {
        let stop = Arc::clone(&stop);
        let mut client = server.client().await;
        tokio::spawn(async move {
            let item = |action: &str| pb::CheckItem {
                action: action.into(),
                resource: Some(doc()),
                context: None,
            };
            let mut mixed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .check_batch(pb::CheckBatchRequest {
                        token: user_token("jack"),
                        items: vec![item("read"), item("write")],
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let rules: Vec<&str> = response.results.iter().map(|r| r.rule.as_str()).collect();
                if rules != ["docs-open", "writes-open"]
                    && rules != ["docs-closed", "writes-closed"]
                {
                    mixed.push(format!("{rules:?} from {}", response.policy_revision));
                }
            }
            mixed
        })
    };

    for generation in 1..=SWAPS {
        let next = folder(generation);
        std::os::unix::fs::symlink(&next, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join(std::mem::replace(&mut current, next))).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mixed_reloads = reloader.await.unwrap();
    let mixed_answers = checker.await.unwrap();
    assert!(
        mixed_reloads.is_empty() && mixed_answers.is_empty(),
        "{} reloads loaded a set that is neither version, e.g. {:?}; {} answers mixed the versions, e.g. {:?}",
        mixed_reloads.len(),
        mixed_reloads.first(),
        mixed_answers.len(),
        mixed_answers.first()
    );
    server.stop().await.unwrap();
}
