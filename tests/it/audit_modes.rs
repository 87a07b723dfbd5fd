//! Audit and enforcement modes over real servers: which permissions a principal exercised and the
//! least-privilege policy suggested from them (RPCs and CLI), the enforcement modes of a policy
//! directory (permissive dry runs, a permissive route mode, disabled) switched by hot reload, and a
//! shadow policy set evaluated beside the live one.
//!
//! Nothing here asserts how long anything takes: every wait polls a condition under a generous deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{Deadline, now_ms, write};

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use common::{TestServer, check, check_request, sign, user_token, with_server_token};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::transport::Channel;

const FEEDS_YAML: &str = include_str!("../../policies/stream-feeds/feeds.yaml");
const ROUTES_YAML: &str = include_str!("../../policies/stream-feeds/routes.yaml");

type Client = GatehouseClient<Channel>;

// ---------------------------------------------------------------------------------------------------
// Shared pieces

/// The binary with a clean environment.
fn gatehouse() -> Command {
    common::gatehouse_command()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the binary runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes a temporary file beside `path`, then renames it over `path`.
fn replace(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    write(&temporary, text);
    std::fs::rename(&temporary, path).unwrap();
}

fn ms(timestamp: Option<prost_types::Timestamp>) -> i64 {
    let t = timestamp.expect("a timestamp");
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

fn user(id: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        who: Some(pb::subject::Who::UserId(id.to_owned())),
    })
}

fn role(name: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        who: Some(pb::subject::Who::Role(name.to_owned())),
    })
}

async fn exercised(
    client: &mut Client,
    subject: Option<pb::Subject>,
    since: Option<prost_types::Timestamp>,
) -> pb::ExercisedPermissionsResponse {
    client
        .exercised_permissions(with_server_token(pb::ExercisedPermissionsRequest {
            subject,
            since,
        }))
        .await
        .expect("ExercisedPermissions succeeds")
        .into_inner()
}

/// ExercisedPermissions once the in-memory log holds `decisions` decisions of the subject (the ring
/// is filled by its own thread, after the answer).
async fn exercised_after(
    client: &mut Client,
    subject: Option<pb::Subject>,
    decisions: u64,
) -> pb::ExercisedPermissionsResponse {
    let deadline = Deadline::new("the decisions to reach the in-memory decision log");
    loop {
        let response = exercised(client, subject.clone(), None).await;
        let seen: u64 = response.permissions.iter().map(|p| p.count).sum();
        assert!(seen <= decisions, "more decisions than made: {response:#?}");
        if seen == decisions {
            return response;
        }
        deadline.tick(&response).await;
    }
}

async fn suggest(client: &mut Client, subject: Option<pb::Subject>) -> pb::SuggestPolicyResponse {
    client
        .suggest_policy(with_server_token(pb::SuggestPolicyRequest {
            subject,
            since: None,
        }))
        .await
        .expect("SuggestPolicy succeeds")
        .into_inner()
}

/// One request of the scenarios, with the answer the live preset gives.
#[derive(Debug, Clone)]
struct Ask {
    action: &'static str,
    kind: &'static str,
    id: &'static str,
    context: Value,
}

impl Ask {
    fn new(action: &'static str, kind: &'static str, id: &'static str) -> Ask {
        Ask {
            action,
            kind,
            id,
            context: json!({}),
        }
    }

    fn context(mut self, context: Value) -> Ask {
        self.context = context;
        self
    }

    fn request(&self, token: &str) -> pb::CheckRequest {
        check_request(
            token,
            self.action,
            self.kind,
            self.id,
            json!({}),
            self.context.clone(),
        )
    }

    async fn ask(&self, client: &mut Client, token: &str) -> pb::CheckResponse {
        check(client, self.request(token)).await
    }
}

/// Carol's requests: (request, how often, rule of the built-in preset, allowed).
fn carols_requests() -> Vec<(Ask, u64, &'static str, bool)> {
    vec![
        (
            Ask::new("read", "feed", "user:bob"),
            3,
            "read-global-read-feeds",
            true,
        ),
        (
            Ask::new("write", "feed", "timeline:carol").context(json!({"actor": "carol"})),
            1,
            "own-feeds",
            true,
        ),
        (Ask::new("read", "users", "dave"), 1, "read-any-user", true),
        (
            Ask::new("write", "follower", "timeline:carol").context(json!({"target": "user:bob"})),
            1,
            "follow-from-own-feeds",
            true,
        ),
        (
            Ask::new("read", "feed", "timeline:bob"),
            1,
            "default-deny",
            false,
        ),
    ]
}

/// Makes carol's requests against `server` (the built-in preset) and returns how many decisions.
async fn exercise_carol(client: &mut Client) -> u64 {
    let carol = user_token("carol");
    let mut decisions = 0;
    for (ask, times, rule, allowed) in carols_requests() {
        for _ in 0..times {
            let answer = ask.ask(client, &carol).await;
            assert_eq!(
                (answer.allowed, answer.rule.as_str()),
                (allowed, rule),
                "{ask:?}"
            );
            decisions += 1;
        }
    }
    decisions
}

/// A directory holding `policy` alone, accepted by `gatehouse validate`.
fn validated_dir(policy: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("suggested.yaml"), policy);
    run(gatehouse().arg("validate").arg(dir.path()));
    dir
}

async fn serve_dir(dir: &Path, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&env).await
}

/// The suggested policy's rules, parsed.
fn rules_of(policy: &str) -> Vec<Value> {
    let doc: Value = serde_norway::from_str(policy).expect("the suggestion is YAML");
    doc["rules"].as_array().expect("a rules list").clone()
}

fn has_pattern(id: &str) -> bool {
    id.contains(['*', '{', '}'])
}

/// Whether a rule of the suggestion covers reads of `kind` `id` (literally or by pattern).
fn covers_literally(rules: &[Value], kind: &str, id: &str, action: &str) -> bool {
    rules.iter().any(|r| {
        r["resource"] == kind
            && r["id"] == id
            && r["actions"].as_array().unwrap().iter().any(|a| a == action)
    })
}

// ---------------------------------------------------------------------------------------------------
// 1. Least privilege: exercised permissions and suggested policies

#[tokio::test]
async fn exercised_permissions_count_what_a_user_did() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let before = now_ms();
    // Someone else's decisions are not carol's (made first: the ring keeps the order of decisions).
    Ask::new("read", "feed", "user:bob")
        .ask(&mut client, &user_token("dave"))
        .await;
    let decisions = exercise_carol(&mut client).await;
    let response = exercised_after(&mut client, user("carol"), decisions).await;
    let after = now_ms();

    assert_eq!(response.permissions.len(), 5, "{response:#?}");
    assert_eq!(response.entries_kept, decisions + 1, "{response:#?}");
    assert!(ms(response.oldest_entry) >= before - 1000);
    for (ask, times, rule, allowed) in carols_requests() {
        let found = response
            .permissions
            .iter()
            .find(|p| {
                p.action == ask.action
                    && p.resource_kind == ask.kind
                    && p.resource_id_pattern == ask.id
            })
            .unwrap_or_else(|| panic!("{ask:?} is not among {response:#?}"));
        assert_eq!(found.count, times, "{found:#?}");
        assert_eq!(found.allowed, allowed, "{found:#?}");
        assert_eq!(found.rule, rule, "{found:#?}");
        // Stream's default rules name no id pattern: the ids are the ones seen.
        assert!(!found.pattern, "{found:#?}");
        let (first, last) = (ms(found.first_seen), ms(found.last_seen));
        assert!(first <= last, "{found:#?}");
        // Within the test's own wall-clock bounds (the log's clock is the same, to the millisecond).
        assert!(first >= before - 1000 && last <= after + 1000, "{found:#?}");
    }
    let repeated = response.permissions.iter().find(|p| p.count == 3).unwrap();
    assert!(ms(repeated.first_seen) <= ms(repeated.last_seen));

    // Decisions at or after a future time: none.
    let future = prost_types::Timestamp {
        seconds: (after / 1000) + 3600,
        nanos: 0,
    };
    let later = exercised(&mut client, user("carol"), Some(future)).await;
    assert!(later.permissions.is_empty(), "{later:#?}");
    // A time before everything: all of them.
    let past = prost_types::Timestamp {
        seconds: (before / 1000) - 60,
        nanos: 0,
    };
    let all = exercised(&mut client, user("carol"), Some(past)).await;
    assert_eq!(all.permissions, response.permissions);

    // Nobody's decisions for a user who did nothing; a subject is required; and a server token too.
    assert!(
        exercised(&mut client, user("nobody"), None)
            .await
            .permissions
            .is_empty()
    );
    let missing = client
        .exercised_permissions(with_server_token(pb::ExercisedPermissionsRequest {
            subject: None,
            since: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument, "{missing:?}");
    let unauthorized = client
        .exercised_permissions(pb::ExercisedPermissionsRequest {
            subject: user("carol"),
            since: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            unauthorized.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        ),
        "{unauthorized:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_suggested_policy_allows_exactly_what_the_user_was_allowed() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let decisions = exercise_carol(&mut client).await;
    exercised_after(&mut client, user("carol"), decisions).await;
    let suggestion = suggest(&mut client, user("carol")).await;
    // The write to carol's own feed was allowed only because its actor was carol (no-impersonation
    // reads the request's context): a grant cannot carry that, so it is left out, and said.
    assert_eq!(suggestion.rules, 3, "{}", suggestion.policy);
    assert_eq!(suggestion.notes.len(), 1, "{:?}", suggestion.notes);
    assert!(
        suggestion.notes[0].starts_with("write on feed 'timeline:carol' is left out"),
        "{:?}",
        suggestion.notes
    );
    server.stop().await.unwrap();
    let suggested =
        |ask: &Ask, allowed: bool| allowed && !(ask.kind == "feed" && ask.action == "write");

    // Each rule: one kind and id, carol only, ids exact (no deciding rule of the preset has an id
    // pattern), and the denied request is in none of them.
    let rules = rules_of(&suggestion.policy);
    assert_eq!(rules.len(), 3, "{}", suggestion.policy);
    for rule in &rules {
        assert_eq!(rule["effect"], "allow", "{rule:#?}");
        assert_eq!(rule["when"], json!({"users": ["carol"]}), "{rule:#?}");
        assert!(!has_pattern(rule["id"].as_str().unwrap()), "{rule:#?}");
    }
    for (ask, _, _, allowed) in carols_requests() {
        assert_eq!(
            covers_literally(&rules, ask.kind, ask.id, ask.action),
            suggested(&ask, allowed),
            "{ask:?} in {}",
            suggestion.policy
        );
    }

    let dir = validated_dir(&suggestion.policy);
    let server = serve_dir(dir.path(), &[]).await;
    let mut client = server.client().await;
    let carol = user_token("carol");
    for (ask, _, _, allowed) in carols_requests() {
        let allowed = suggested(&ask, allowed);
        let answer = ask.ask(&mut client, &carol).await;
        assert_eq!(answer.allowed, allowed, "{ask:?}: {answer:#?}");
        if allowed {
            assert!(answer.rule.starts_with("exercised-"), "{answer:#?}");
        }
    }

    // Neighbours of what was exercised are denied.
    let neighbours = [
        // The same kind and id, another action.
        Ask::new("delete", "feed", "timeline:carol"),
        Ask::new("read", "feed", "timeline:carol"),
        Ask::new("delete", "follower", "timeline:carol").context(json!({"target": "user:bob"})),
        Ask::new("write", "users", "dave"),
        // The same action, another id (the ids were named exactly).
        Ask::new("read", "feed", "user:erin"),
        Ask::new("write", "feed", "timeline:erin").context(json!({"actor": "carol"})),
        Ask::new("read", "users", "erin"),
        Ask::new("write", "follower", "timeline:erin").context(json!({"target": "user:bob"})),
        // Another kind.
        Ask::new("read", "activities", "a1"),
    ];
    for ask in &neighbours {
        let answer = ask.ask(&mut client, &carol).await;
        assert!(!answer.allowed, "{ask:?}: {answer:#?}");
    }
    // Another user doing carol's allowed requests.
    let dave = user_token("dave");
    for (ask, _, _, _) in carols_requests() {
        let answer = ask.ask(&mut client, &dave).await;
        assert!(!answer.allowed, "dave {ask:?}: {answer:#?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_policy_suggested_for_a_role_allows_other_holders_of_the_role() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // Roles are read from the `role` claim (and `roles`).
    let mia = sign(json!({"user_id": "mia", "role": "moderator"}));
    let asks = [
        Ask::new("read", "feed", "user:bob"),
        Ask::new("read", "users", "dave"),
    ];
    for ask in &asks {
        assert!(ask.ask(&mut client, &mia).await.allowed, "{ask:?}");
    }
    // Allowed because the feed is mia's own: another holder of the role does not own it, so the
    // grant cannot go to the role; it is left out, and said.
    let own = Ask::new("write", "feed", "timeline:mia").context(json!({"actor": "mia"}));
    assert!(own.ask(&mut client, &mia).await.allowed);
    // A denied request is not granted to the role.
    let denied = Ask::new("read", "feed", "timeline:bob");
    assert!(!denied.ask(&mut client, &mia).await.allowed);
    // A user without the role is not the role's.
    Ask::new("read", "users", "erin")
        .ask(&mut client, &user_token("carol"))
        .await;

    let response = exercised_after(&mut client, role("moderator"), 4).await;
    assert_eq!(response.permissions.len(), 4, "{response:#?}");
    let suggestion = suggest(&mut client, role("moderator")).await;
    server.stop().await.unwrap();

    assert_eq!(suggestion.rules, 2, "{}", suggestion.policy);
    assert_eq!(suggestion.notes.len(), 1, "{:?}", suggestion.notes);
    let rules = rules_of(&suggestion.policy);
    for rule in &rules {
        assert_eq!(rule["when"], json!({"roles": ["moderator"]}), "{rule:#?}");
    }
    let dir = validated_dir(&suggestion.policy);
    let server = serve_dir(dir.path(), &[]).await;
    let mut client = server.client().await;
    let max = sign(json!({"user_id": "max", "role": "moderator"}));
    let max_in_list = sign(json!({"user_id": "max", "roles": ["editor", "moderator"]}));
    let nina = user_token("nina");
    for ask in &asks {
        for token in [&mia, &max, &max_in_list] {
            let answer = ask.ask(&mut client, token).await;
            assert!(answer.allowed, "{ask:?}: {answer:#?}");
        }
        let answer = ask.ask(&mut client, &nina).await;
        assert!(!answer.allowed, "nina {ask:?}: {answer:#?}");
    }
    assert!(!denied.ask(&mut client, &max).await.allowed);
    assert!(!own.ask(&mut client, &max).await.allowed);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_id_pattern_of_the_deciding_rule_is_kept_in_the_suggestion() {
    // Stream's Feeds policy where the global read rule names the ids it covers with a pattern instead
    // of a condition on the id's group (a condition on the id could not be carried over a pattern).
    let rule = "  - name: read-global-read-feeds\n    description: feeds of global read groups are readable by any user\n    effect: allow\n    resource: feed\n";
    let condition = "      in: { captures.group: \"$global_read_feed_groups\" }\n";
    assert!(FEEDS_YAML.contains(rule) && FEEDS_YAML.contains(condition));
    let feeds = FEEDS_YAML
        .replace(rule, &format!("{rule}    id: \"user:*\"\n"))
        .replacen(condition, "", 1);
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("feeds.yaml"), &feeds);
    let server = serve_dir(dir.path(), &[]).await;
    let mut client = server.client().await;
    let carol = user_token("carol");
    for id in ["user:bob", "user:erin"] {
        let answer = Ask::new("read", "feed", id).ask(&mut client, &carol).await;
        assert_eq!(answer.rule, "read-global-read-feeds", "{answer:#?}");
    }
    let response = exercised_after(&mut client, user("carol"), 2).await;
    assert_eq!(response.permissions.len(), 1, "{response:#?}");
    let read = &response.permissions[0];
    assert_eq!(read.resource_id_pattern, "user:*", "{read:#?}");
    assert!(read.pattern && read.allowed && read.count == 2, "{read:#?}");
    let suggestion = suggest(&mut client, user("carol")).await;
    server.stop().await.unwrap();

    let rules = rules_of(&suggestion.policy);
    assert_eq!(rules.len(), 1, "{}", suggestion.policy);
    assert_eq!(rules[0]["id"], "user:*", "{}", suggestion.policy);
    let dir = validated_dir(&suggestion.policy);
    let server = serve_dir(dir.path(), &[]).await;
    let mut client = server.client().await;
    // The pattern generalizes to ids carol never read, of that group only, and for carol only.
    for id in ["user:bob", "user:erin", "user:zoe"] {
        let answer = Ask::new("read", "feed", id).ask(&mut client, &carol).await;
        assert!(answer.allowed, "{id}: {answer:#?}");
    }
    for ask in [
        Ask::new("read", "feed", "timeline:bob"),
        Ask::new("delete", "feed", "user:bob"),
    ] {
        assert!(!ask.ask(&mut client, &carol).await.allowed, "{ask:?}");
    }
    let dave = user_token("dave");
    assert!(
        !Ask::new("read", "feed", "user:bob")
            .ask(&mut client, &dave)
            .await
            .allowed
    );
    server.stop().await.unwrap();
}

/// The lines of `gatehouse exercised` for these permissions, as the RPC reported them.
fn expected_exercised_lines(permissions: &[pb::ExercisedPermission], decisions: u64) -> String {
    let mut out = String::from("decision  count  action  kind  id-or-pattern  rule  last-seen\n");
    for p in permissions {
        let last = humantime::format_rfc3339_seconds(
            UNIX_EPOCH + Duration::from_secs(u64::try_from(ms(p.last_seen) / 1000).unwrap()),
        );
        let id = if p.pattern {
            format!("{} (pattern)", p.resource_id_pattern)
        } else {
            p.resource_id_pattern.clone()
        };
        out.push_str(&format!(
            "{}  {}  {}  {}  {}  {}  {}\n",
            if p.allowed { "allow" } else { "deny" },
            p.count,
            p.action,
            p.resource_kind,
            id,
            p.rule,
            last
        ));
    }
    out.push_str(&format!(
        "{} distinct permissions from {decisions} decisions",
        permissions.len()
    ));
    out
}

/// The decision log file's entries, parsed.
fn log_entries(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // The last line may be partly written.
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn wait_log_entries(path: &Path, count: usize) -> Vec<Value> {
    let deadline = Deadline::new("the decisions to reach the decision log file");
    loop {
        let entries = log_entries(path);
        assert!(entries.len() <= count, "{entries:#?}");
        if entries.len() == count {
            return entries;
        }
        deadline.tick(&entries.len()).await;
    }
}

/// Everything after the first (generated-at) line.
fn without_first_line(text: &str) -> &str {
    text.split_once('\n')
        .map_or("", |(_, rest)| rest)
        .trim_end()
}

#[tokio::test]
async fn the_cli_reads_the_same_facts_from_the_decision_log_file() {
    let logs = TempDir::new().unwrap();
    let file: PathBuf = logs.path().join("decisions.jsonl");
    let server =
        TestServer::start_with(&[("GATEHOUSE_DECISION_LOG_FILE", file.to_str().unwrap())]).await;
    let mut client = server.client().await;
    let decisions = exercise_carol(&mut client).await;
    let rpc = exercised_after(&mut client, user("carol"), decisions).await;
    let suggestion = suggest(&mut client, user("carol")).await;
    let entries = wait_log_entries(&file, usize::try_from(decisions).unwrap()).await;
    // Never a token in the file.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&user_token("carol")));
    assert!(entries.iter().all(|e| e["principal_id"] == "carol"));

    let out = run(gatehouse()
        .arg("exercised")
        .arg("--log")
        .arg(&file)
        .args(["--user", "carol"]));
    let listed = String::from_utf8(out.stdout).unwrap();
    // The CLI pads its columns to their widths; the facts are compared cell by cell.
    let cells = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        cells(listed.trim_end()),
        cells(&expected_exercised_lines(&rpc.permissions, decisions)),
        "CLI:\n{listed}\nRPC: {rpc:#?}"
    );

    let out = run(gatehouse()
        .arg("suggest")
        .arg("--log")
        .arg(&file)
        .args(["--user", "carol"]));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.starts_with("# Least-privilege policy for user 'carol'"));
    assert_eq!(
        without_first_line(&printed),
        without_first_line(&suggestion.policy),
        "CLI:\n{printed}\nRPC:\n{}",
        suggestion.policy
    );

    // The CLI's future `--since` leaves nothing.
    let out = run(gatehouse().arg("exercised").arg("--log").arg(&file).args([
        "--user",
        "carol",
        "--since",
        "2999-01-01T00:00:00Z",
    ]));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains("0 distinct permissions"), "{listed}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 2. Enforcement modes

/// A copy of Stream's Feeds policy and routes, with the settings in a file of their own.
fn feeds_dir(settings: &str) -> TempDir {
    assert!(
        !FEEDS_YAML.contains("\nsettings:") && !ROUTES_YAML.contains("\nsettings:"),
        "only one file of a set may have settings"
    );
    let dir = TempDir::new().unwrap();
    write(&dir.path().join("feeds.yaml"), FEEDS_YAML);
    write(&dir.path().join("routes.yaml"), ROUTES_YAML);
    write(&dir.path().join("settings.yaml"), settings);
    dir
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The HTTP /authz answer (Envoy's style) for `GET path` with `token`.
async fn authz_get(server: &TestServer, path: &str, token: &str) -> reqwest::Response {
    http()
        .get(format!("http://{}/authz{path}", server.http_addr))
        .header("authorization", token)
        .send()
        .await
        .expect("the endpoint answers")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A write on alice's own feed with bob as the actor: `no-impersonation` denies it.
fn impersonation() -> Ask {
    Ask::new("write", "feed", "timeline:alice").context(json!({"actor": "bob"}))
}

async fn wait_answer(
    client: &mut Client,
    ask: &Ask,
    token: &str,
    what: &'static str,
    done: impl Fn(&pb::CheckResponse) -> bool,
) -> pb::CheckResponse {
    let deadline = Deadline::new(what);
    loop {
        let answer = ask.ask(client, token).await;
        if done(&answer) {
            return answer;
        }
        deadline.tick(&answer).await;
    }
}

#[tokio::test]
async fn enforcement_modes_follow_the_settings_file() {
    let dir = feeds_dir("settings:\n  mode: permissive\n");
    let settings = dir.path().join("settings.yaml");
    let server = serve_dir(dir.path(), &[]).await;
    let mut client = server.client().await;
    let alice = user_token("alice");
    let other_feed = Ask::new("read", "feed", "timeline:bob");
    let user_feed = Ask::new("read", "feed", "user:bob");

    // Permissive: a denial is answered allowed, as a dry run naming the denying rule.
    let answer = impersonation().ask(&mut client, &alice).await;
    assert!(answer.allowed && answer.dry_run, "{answer:#?}");
    assert_eq!(answer.rule, "no-impersonation");
    assert!(answer.reason.starts_with("dry run"), "{}", answer.reason);
    let answer = other_feed.ask(&mut client, &alice).await;
    assert!(answer.allowed && answer.dry_run, "{answer:#?}");
    assert_eq!(answer.rule, "default-deny");
    let answer = user_feed.ask(&mut client, &alice).await;
    assert!(answer.allowed && !answer.dry_run, "{answer:#?}");
    assert_eq!(answer.rule, "read-global-read-feeds");
    // The route mode follows the mode.
    let reply = authz_get(&server, "/api/v1.0/feed/timeline/bob/", &alice).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        header(&reply, "x-gatehouse-dry-run").as_deref(),
        Some("true")
    );
    // The decision log keeps the policy's verdict: deny.
    let log = exercised_after(&mut client, user("alice"), 4).await;
    let dry = log
        .permissions
        .iter()
        .find(|p| p.action == "write" && p.resource_id_pattern == "timeline:alice")
        .unwrap();
    assert!(!dry.allowed, "{log:#?}");
    assert_eq!(dry.rule, "no-impersonation");
    let read = log
        .permissions
        .iter()
        .find(|p| p.resource_id_pattern == "timeline:bob")
        .unwrap();
    assert!(!read.allowed && read.count == 2, "{log:#?}");

    // Enforcing checks, permissive routes.
    replace(
        &settings,
        "settings:\n  mode: enforcing\n  route_mode: permissive\n",
    );
    let answer = wait_answer(
        &mut client,
        &impersonation(),
        &alice,
        "the enforcing mode to load",
        |a| !a.allowed,
    )
    .await;
    assert!(
        !answer.dry_run && answer.rule == "no-impersonation",
        "{answer:#?}"
    );
    let answer = other_feed.ask(&mut client, &alice).await;
    assert!(!answer.allowed && !answer.dry_run, "{answer:#?}");
    assert_eq!(answer.rule, "default-deny");
    let reply = authz_get(&server, "/api/v1.0/feed/timeline/bob/", &alice).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        header(&reply, "x-gatehouse-dry-run").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&reply, "x-gatehouse-rule").as_deref(),
        Some("default-deny")
    );
    assert_eq!(
        header(&reply, "x-gatehouse-user-id").as_deref(),
        Some("alice")
    );
    let reply = authz_get(&server, "/api/v1.0/feed/user/bob/", &alice).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "x-gatehouse-dry-run"), None);
    assert_eq!(
        header(&reply, "x-gatehouse-rule").as_deref(),
        Some("read-global-read-feeds")
    );
    // A permissive route mode answers for the policy only: credentials are still required.
    let anonymous = http()
        .get(format!(
            "http://{}/authz/api/v1.0/feed/timeline/bob/",
            server.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "credentials are still required");

    // Disabled: nothing evaluated, everything allowed.
    replace(&settings, "settings:\n  mode: disabled\n");
    let answer = wait_answer(
        &mut client,
        &other_feed,
        &alice,
        "the disabled mode to load",
        |a| a.allowed,
    )
    .await;
    assert_eq!(answer.rule, "mode-disabled");
    assert!(!answer.dry_run, "{answer:#?}");
    let answer = impersonation().ask(&mut client, &alice).await;
    assert!(
        answer.allowed && answer.rule == "mode-disabled",
        "{answer:#?}"
    );
    let reply = authz_get(&server, "/api/v1.0/feed/timeline/bob/", &alice).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        header(&reply, "x-gatehouse-rule").as_deref(),
        Some("mode-disabled")
    );
    assert_eq!(header(&reply, "x-gatehouse-dry-run"), None);

    // Back to enforcing everywhere.
    replace(&settings, "settings:\n  mode: enforcing\n");
    let answer = wait_answer(
        &mut client,
        &other_feed,
        &alice,
        "the enforcing mode to load again",
        |a| !a.allowed,
    )
    .await;
    assert_eq!(answer.rule, "default-deny");
    let reply = authz_get(&server, "/api/v1.0/feed/timeline/bob/", &alice).await;
    assert_eq!(reply.status(), 403);
    assert_eq!(
        header(&reply, "x-gatehouse-rule").as_deref(),
        Some("default-deny")
    );
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 3. Shadow policies

/// `gatehouse_shadow_differences_total` by (live, shadow), from `/metrics`.
async fn shadow_differences(server: &TestServer) -> BTreeMap<(String, String), f64> {
    let text = common::get_text(&format!("http://{}/metrics", server.http_addr)).await;
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("gatehouse_shadow_differences_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let labels: BTreeMap<&str, &str> = labels
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k, v.trim_matches('"'))
            })
            .collect();
        found.insert(
            (labels["live"].to_owned(), labels["shadow"].to_owned()),
            value.split_whitespace().next().unwrap().parse().unwrap(),
        );
    }
    found
}

fn allow_deny(differences: &BTreeMap<(String, String), f64>) -> f64 {
    differences
        .get(&("allow".to_owned(), "deny".to_owned()))
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_shadow_set_counts_the_decisions_it_would_change() {
    // The shadow set: Stream's Feeds policy where `user` feeds are no longer globally readable.
    let original = "global_read_feed_groups: [user]";
    assert!(FEEDS_YAML.contains(original));
    let changed = FEEDS_YAML.replace(original, "global_read_feed_groups: [public]");
    let shadow = TempDir::new().unwrap();
    let shadow_file = shadow.path().join("feeds.yaml");
    write(&shadow_file, &changed);
    let logs = TempDir::new().unwrap();
    let log = logs.path().join("decisions.jsonl");
    let server = TestServer::start_with(&[
        (
            "GATEHOUSE_SHADOW_POLICY_DIR",
            shadow.path().to_str().unwrap(),
        ),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "50ms"),
        ("GATEHOUSE_DECISION_LOG_FILE", log.to_str().unwrap()),
    ])
    .await;
    let mut client = server.client().await;
    let alice = user_token("alice");

    // Decided differently: other users' `user` feeds. The answer follows the live set.
    let differing = [
        Ask::new("read", "feed", "user:bob"),
        Ask::new("read", "feed", "user:carol"),
        Ask::new("read", "feed", "user:bob"),
    ];
    // Decided the same: own feeds, a denial in both, another kind.
    let same = [
        Ask::new("read", "feed", "user:alice"),
        Ask::new("read", "feed", "timeline:bob"),
        Ask::new("read", "users", "bob"),
        impersonation(),
    ];
    for ask in &differing {
        let answer = ask.ask(&mut client, &alice).await;
        assert!(answer.allowed, "{ask:?}: {answer:#?}");
        assert_eq!(answer.rule, "read-global-read-feeds");
    }
    let mut same_answers = Vec::new();
    for ask in &same {
        same_answers.push(ask.ask(&mut client, &alice).await.allowed);
    }
    assert_eq!(same_answers, [true, false, true, false]);

    let differences = shadow_differences(&server).await;
    assert_eq!(allow_deny(&differences), 3.0, "{differences:?}");
    assert_eq!(
        differences
            .get(&("deny".to_owned(), "allow".to_owned()))
            .copied()
            .unwrap_or(0.0),
        0.0,
        "{differences:?}"
    );

    // The log entries carry the shadow's verdict.
    let entries = wait_log_entries(&log, differing.len() + same.len()).await;
    let mut shadow_revision = String::new();
    for (entry, differs) in entries.iter().zip(
        differing
            .iter()
            .map(|_| true)
            .chain(same.iter().map(|_| false)),
    ) {
        let shadow = &entry["shadow"];
        assert!(shadow.is_object(), "{entry:#}");
        shadow_revision = shadow["revision"].as_str().unwrap().to_owned();
        assert!(!shadow_revision.is_empty(), "{entry:#}");
        assert_ne!(shadow["revision"], entry["revision"], "{entry:#}");
        if differs {
            assert_eq!(entry["decision"], "allow", "{entry:#}");
            assert_eq!(shadow["decision"], "deny", "{entry:#}");
            assert_eq!(shadow["rule"], "default-deny", "{entry:#}");
        } else {
            assert_eq!(shadow["decision"], entry["decision"], "{entry:#}");
            assert_eq!(shadow["rule"], entry["rule"], "{entry:#}");
        }
    }

    // The shadow set agrees with the live one again once reloaded.
    replace(&shadow_file, FEEDS_YAML);
    let deadline = Deadline::new("the shadow set to reload");
    let mut logged = entries.len();
    loop {
        differing[0].ask(&mut client, &alice).await;
        logged += 1;
        let entries = wait_log_entries(&log, logged).await;
        let last = entries.last().unwrap().clone();
        if last["shadow"]["decision"] == "allow" {
            assert_ne!(last["shadow"]["revision"], shadow_revision.as_str());
            break;
        }
        deadline.tick(&last).await;
    }
    let counted = allow_deny(&shadow_differences(&server).await);
    for ask in differing.iter().chain(same.iter()) {
        ask.ask(&mut client, &alice).await;
    }
    logged += differing.len() + same.len();
    let entries = wait_log_entries(&log, logged).await;
    for entry in &entries[entries.len() - differing.len() - same.len()..] {
        assert_eq!(entry["shadow"]["decision"], entry["decision"], "{entry:#}");
    }
    let differences = shadow_differences(&server).await;
    assert_eq!(allow_deny(&differences), counted, "{differences:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_disabled_live_set_has_no_decisions_for_a_shadow_set_to_differ_from() {
    // Live: the Feeds policy, disabled. Shadow: the Feeds policy, which denies some of what the
    // disabled set lets through. Nothing is counted as a difference, and the log still carries what
    // the shadow set would have decided.
    let live = TempDir::new().unwrap();
    write(
        &live.path().join("feeds.yaml"),
        &format!(
            "settings:\n  mode: disabled\n{}",
            FEEDS_YAML.replace("settings:\n", "")
        ),
    );
    let shadow = TempDir::new().unwrap();
    write(&shadow.path().join("feeds.yaml"), FEEDS_YAML);
    let logs = TempDir::new().unwrap();
    let log = logs.path().join("decisions.jsonl");
    let server = TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", live.path().to_str().unwrap()),
        (
            "GATEHOUSE_SHADOW_POLICY_DIR",
            shadow.path().to_str().unwrap(),
        ),
        ("GATEHOUSE_DECISION_LOG_FILE", log.to_str().unwrap()),
    ])
    .await;
    let mut client = server.client().await;
    let alice = user_token("alice");
    let answer = impersonation().ask(&mut client, &alice).await;
    assert!(
        answer.allowed && answer.rule == "mode-disabled",
        "{answer:#?}"
    );
    let entries = wait_log_entries(&log, 1).await;
    assert_eq!(entries[0]["mode"], "disabled", "{:#}", entries[0]);
    assert_eq!(entries[0]["shadow"]["decision"], "deny", "{:#}", entries[0]);
    let differences = shadow_differences(&server).await;
    assert_eq!(differences.values().sum::<f64>(), 0.0, "{differences:?}");
}
