//! Policy test suites (`*_test.yaml`, the format of `docs/policies.md`) run over a real server: every
//! case becomes a gRPC Check with a real token (or none, or a server token), and the `gatehouse test`
//! binary is run over the same directory.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use gatehouse::grpc::pb::principal::Kind;
use serde_json::{Map, Value, json};
use tonic::transport::Channel;

use gatehouse::suite::{PrincipalDoc, ResourceDoc};

use crate::common::{TestServer, server_token, sign, to_struct};

/// One test of a suite, with its names resolved and a label for failure messages.
#[derive(Debug, Clone)]
pub struct Case {
    /// `file: test name`, for failure messages.
    pub label: String,
    pub principal: PrincipalDoc,
    pub resource: ResourceDoc,
    pub action: String,
    pub context: Map<String, Value>,
    pub allowed: bool,
    pub rule: Option<String>,
}

/// Who a case asks as.
pub enum Who {
    User,
    Anonymous,
    Server,
}

/// How a suite's principal asks: by token, anonymously, or described under a server token.
pub trait Credentials {
    fn who(&self) -> Who;
    fn user_token(&self) -> String;
    fn input(&self) -> pb::PrincipalInput;
}

impl Credentials for PrincipalDoc {
    fn who(&self) -> Who {
        match (self.anonymous, self.server, &self.id) {
            (true, false, None) => Who::Anonymous,
            (false, true, None) => Who::Server,
            (false, false, Some(id)) if !id.is_empty() => Who::User,
            _ => panic!(
                "a principal is {{ id, ... }}, {{ anonymous: true }} or {{ server: true }}: {self:?}"
            ),
        }
    }

    /// A user token carrying exactly what the suite describes: `user_id`, `roles`, `groups` and
    /// `channel_roles` only when given (a token without `roles` has Stream's implicit role `user`),
    /// and the extra claims.
    fn user_token(&self) -> String {
        let mut claims = self.claims.clone();
        claims.insert("user_id".into(), json!(self.id.clone().unwrap()));
        if !self.roles.is_empty() {
            claims.insert("roles".into(), json!(self.roles));
        }
        if !self.groups.is_empty() {
            claims.insert("groups".into(), json!(self.groups));
        }
        if !self.channel_roles.is_empty() {
            claims.insert("channel_roles".into(), json!(self.channel_roles));
        }
        sign(Value::Object(claims))
    }

    /// The same user, described by a trusted backend instead of a token.
    fn input(&self) -> pb::PrincipalInput {
        pb::PrincipalInput {
            user_id: self.id.clone().unwrap(),
            roles: self.roles.clone(),
            groups: self.groups.clone(),
            channel_roles: self.channel_roles.clone().into_iter().collect(),
            claims: to_struct(Value::Object(self.claims.clone())),
        }
    }
}

/// The `*_test.yaml` files under `dir`, sorted.
pub fn suite_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if name.ends_with("_test.yaml") || name.ends_with("_test.yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every case of every suite under `dir`.
pub fn cases(dir: &Path) -> Vec<Case> {
    let files = suite_files(dir);
    assert!(!files.is_empty(), "no *_test.yaml under {}", dir.display());
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let file_name = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let source = gatehouse::policy::Source {
            path: file_name.clone(),
            text,
        };
        let parsed = gatehouse::suite::parse(&source)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        for case in parsed {
            cases.push(Case {
                label: format!("{file_name}: {}", case.name),
                principal: case.principal,
                resource: case.resource,
                action: case.action,
                context: case.context,
                allowed: case.allowed,
                rule: case.rule,
            });
        }
    }
    cases
}

impl Case {
    /// The Check this case asks: by token, anonymously, or with a server token.
    pub fn request(&self) -> pb::CheckRequest {
        let mut request = pb::CheckRequest {
            action: self.action.clone(),
            resource: Some(pb::Resource {
                kind: self.resource.kind.clone(),
                id: self.resource.id.clone(),
                attributes: to_struct(Value::Object(self.resource.attributes.clone())),
            }),
            context: to_struct(Value::Object(self.context.clone())),
            ..Default::default()
        };
        match self.principal.who() {
            Who::User => request.token = self.principal.user_token(),
            Who::Anonymous => request.anonymous = true,
            Who::Server => request.token = server_token(),
        }
        request
    }

    fn expected_kind(&self) -> Kind {
        match self.principal.who() {
            Who::User => Kind::User,
            Who::Anonymous => Kind::Anonymous,
            Who::Server => Kind::Server,
        }
    }

    /// Why `response` does not answer this case as expected, if it does not.
    pub fn mismatch(&self, response: &pb::CheckResponse) -> Option<String> {
        let rule_ok = self.rule.as_deref().is_none_or(|r| r == response.rule);
        let kind = response.principal.as_ref().map(|p| p.kind);
        if response.allowed == self.allowed && rule_ok && kind == Some(self.expected_kind() as i32)
        {
            return None;
        }
        Some(format!(
            "{}: expected {}{} as {:?}, got {} by {} as {:?}: {}",
            self.label,
            if self.allowed { "allow" } else { "deny" },
            self.rule
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default(),
            self.expected_kind(),
            if response.allowed { "allow" } else { "deny" },
            response.rule,
            kind.and_then(|k| Kind::try_from(k).ok()),
            response.reason
        ))
    }
}

pub async fn ask(
    client: &mut GatehouseClient<Channel>,
    request: pb::CheckRequest,
    label: &str,
) -> pb::CheckResponse {
    client
        .check(request)
        .await
        .unwrap_or_else(|status| panic!("{label}: Check failed: {status:?}"))
        .into_inner()
}

/// Runs every case over the server's Check and returns what did not hold. Each case is asked three
/// ways that must agree: as written, with `explain` (whose trace must contain the deciding candidate
/// with the matching result), and, for users, as a principal described by a backend holding a server
/// token.
pub async fn run_cases(server: &TestServer, cases: &[Case]) -> Vec<String> {
    let mut client = server.client().await;
    let mut failures = Vec::new();
    let mut revisions = std::collections::BTreeSet::new();
    for case in cases {
        let plain = ask(&mut client, case.request(), &case.label).await;
        revisions.insert(plain.policy_revision.clone());
        if plain.explanation.is_some() {
            failures.push(format!(
                "{}: an explanation came back without explain",
                case.label
            ));
        }
        if let Some(why) = case.mismatch(&plain) {
            failures.push(why);
            continue;
        }

        let mut explained_request = case.request();
        explained_request.explain = true;
        let explained = ask(&mut client, explained_request, &case.label).await;
        if let Some(why) = case.mismatch(&explained) {
            failures.push(format!("with explain: {why}"));
        } else if explained.rule != plain.rule {
            failures.push(format!(
                "{}: rule {} without explain, {} with it",
                case.label, plain.rule, explained.rule
            ));
        } else if let Some(why) = explanation_mismatch(case, &explained) {
            failures.push(why);
        }

        if let Who::User = case.principal.who() {
            let mut described = case.request();
            described.token = String::new();
            described.principal = Some(case.principal.input());
            let mut request = tonic::Request::new(described);
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", server_token()).parse().unwrap(),
            );
            let response = client
                .check(request)
                .await
                .unwrap_or_else(|status| panic!("{}: described Check: {status:?}", case.label))
                .into_inner();
            if let Some(why) = case.mismatch(&response) {
                failures.push(format!("as a described principal: {why}"));
            } else if response.rule != plain.rule {
                failures.push(format!(
                    "{}: rule {} by token, {} as a described principal",
                    case.label, plain.rule, response.rule
                ));
            }
        }
    }
    if revisions.len() != 1 || revisions.first().is_some_and(String::is_empty) {
        failures.push(format!(
            "one non-empty policy revision expected: {revisions:?}"
        ));
    }
    failures
}

/// The trace of an explained decision must name the deciding candidate with the decision's vote.
fn explanation_mismatch(case: &Case, response: &pb::CheckResponse) -> Option<String> {
    let Some(explanation) = &response.explanation else {
        return Some(format!("{}: explain gave no explanation", case.label));
    };
    if !["priority", "affirmative", "unanimous", "consensus"]
        .contains(&explanation.strategy.as_str())
    {
        return Some(format!(
            "{}: strategy '{}' in the explanation",
            case.label, explanation.strategy
        ));
    }
    for entry in &explanation.entries {
        if !["permit", "deny", "not_applicable", "error"].contains(&entry.result.as_str()) {
            return Some(format!(
                "{}: result '{}' of {}",
                case.label, entry.result, entry.name
            ));
        }
    }
    if ["default-deny", "server-token", "undeclared-action"].contains(&response.rule.as_str()) {
        return None;
    }
    let wanted = if response.allowed { "permit" } else { "deny" };
    let found = explanation
        .entries
        .iter()
        .any(|e| e.name == response.rule && e.result == wanted);
    (!found).then(|| {
        format!(
            "{}: the explanation has no entry {} with result {wanted}: {:?}",
            case.label, response.rule, explanation.entries
        )
    })
}

/// The binary with a clean environment: no GATEHOUSE_* variable leaks in from the caller.
pub fn gatehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (name, _) in std::env::vars() {
        if name.starts_with("GATEHOUSE_") || name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `gatehouse test DIR` and asserts that it passes all `expected` cases.
pub fn assert_binary_passes(dir: &Path, expected: usize) {
    let out = gatehouse().arg("test").arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "gatehouse test {}:\n{stdout}\n{stderr}",
        dir.display()
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("{expected} passed, 0 failed"),
        "gatehouse test {}:\n{stdout}\n{stderr}",
        dir.display()
    );
}

/// Starts a server on `dir`, runs every case of its suites, and runs `gatehouse test` on it.
pub async fn assert_directory_holds(dir: &Path) {
    let cases = cases(dir);
    let server = TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await;
    let failures = run_cases(&server, &cases).await;
    server.stop().await.unwrap();
    assert!(
        failures.is_empty(),
        "{}: {} of {} cases do not hold over gRPC:\n{}",
        dir.display(),
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_binary_passes(dir, cases.len() + request_case_count(dir));
}

/// How many request cases (`request:`, run through the doors by `gatehouse test`) the suites under
/// `dir` hold; the Check cases above leave them out.
pub fn request_case_count(dir: &Path) -> usize {
    suite_files(dir)
        .iter()
        .map(|file| {
            let source = gatehouse::policy::Source {
                path: file.display().to_string(),
                text: std::fs::read_to_string(file).unwrap(),
            };
            gatehouse::suite::parse_suite(&source).unwrap().routes.len()
        })
        .sum()
}

/// The sub-directories of `dir`, by name.
pub fn subdirectories(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
