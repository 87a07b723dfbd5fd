//! The commands people run: issue and verify tokens from the local secret, and ask a running server.
//!
//! Each returns its output as text and leaves printing and exit codes to [`super::run`].

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::config::Config;
use crate::grpc::pb;
use crate::grpc::pb::gatehouse_client::GatehouseClient;
use crate::principal::Principal;
use crate::token::{IssueError, IssueRequest, Issuer, TokenError, Verifier};

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error(
        "no API secret is configured: set GATEHOUSE_API_SECRET or GATEHOUSE_API_SECRET_FILE (or api_secret in --config)"
    )]
    NoSecret,
    #[error("{0}")]
    Issue(#[from] IssueError),
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Policy(crate::policy::LoadErrors),
    #[error("cannot reach the server: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error("the server refused the call: {0}")]
    Call(String),
}

/// Loads the configuration and insists on a real secret: tokens signed with a random one are useless.
fn load_secret_config(config: Option<&Path>) -> Result<Config, CliError> {
    let config = Config::load(config)?;
    if config.development {
        return Err(CliError::NoSecret);
    }
    Ok(config)
}

/// What `gatehouse token issue` mints.
#[derive(Debug, Default, clap::Args)]
pub struct IssueArgs {
    /// The user id of a user token.
    #[arg(
        long = "user",
        conflicts_with = "server",
        required_unless_present = "server"
    )]
    pub user_id: Option<String>,
    /// Issue a server token ({"server": true}) instead.
    #[arg(long)]
    pub server: bool,
    /// Lifetime such as 1h or 30m; without it the token never expires (Stream's default).
    #[arg(long = "ttl", value_parser = parse_ttl)]
    pub ttl_seconds: Option<i64>,
    #[arg(long = "role")]
    pub roles: Vec<String>,
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Extra claim key=value (repeatable); JSON values keep their type.
    #[arg(long = "claim", value_parser = parse_pair)]
    pub claims: Vec<(String, String)>,
}

fn parse_ttl(text: &str) -> Result<i64, String> {
    let duration = crate::config::parse_duration(text)?;
    i64::try_from(duration.as_secs()).map_err(|_| "lifetime too long".to_owned())
}

pub fn issue_token(config: Option<&Path>, args: IssueArgs) -> Result<String, CliError> {
    let config = load_secret_config(config)?;
    let issuer = Issuer::new(&config.secret);
    if args.server {
        return Ok(issuer.server_token()?);
    }
    let user_id = args
        .user_id
        .ok_or_else(|| CliError::Usage("--user or --server is required".to_owned()))?;
    let claims: Map<String, Value> = args
        .claims
        .into_iter()
        .map(|(k, v)| (k, parse_value(&v)))
        .collect();
    let issued = issuer.issue(IssueRequest {
        user_id,
        expires_in_seconds: args.ttl_seconds.unwrap_or(0),
        claims,
        roles: args.roles,
        groups: args.groups,
    })?;
    Ok(issued.token)
}

/// Verifies a token locally and returns its principal as pretty JSON.
pub fn verify_token(config: Option<&Path>, token: &str) -> Result<String, CliError> {
    let config = load_secret_config(config)?;
    let principal = Verifier::new(&config.secret, config.verify.clone()).verify(token)?;
    Ok(serde_json::to_string_pretty(&principal_json(&principal)).unwrap_or_default())
}

pub fn principal_json(principal: &Principal) -> Value {
    // The API's enum spelling (`PrincipalKind` in gatehouse.proto), as `grpcurl` prints it.
    let kind = principal.kind.as_str().to_ascii_uppercase();
    let scope = principal.scope.as_ref().map(|s| {
        json!({
            "resource": s.resource.to_string(),
            "action": s.action.to_string(),
            "feed_id": s.feed_id.as_ref().map(ToString::to_string),
            "user_id": s.user_id.as_ref().map(ToString::to_string),
        })
    });
    json!({
        "kind": kind,
        "user_id": principal.user_id,
        "roles": principal.roles,
        "groups": principal.groups,
        "scope": scope,
        "claims": principal.claims,
        "issued_at": principal.issued_at,
        "expires_at": principal.expires_at,
    })
}

/// What `gatehouse check` asks.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    #[arg(long)]
    pub token: String,
    #[arg(long)]
    pub action: String,
    /// kind:id, e.g. feed:user:tommaso or users:jack.
    #[arg(long)]
    pub resource: String,
    /// Resource attribute key=value (repeatable), e.g. user_id=jack.
    #[arg(long = "attr", value_parser = parse_pair)]
    pub attributes: Vec<(String, String)>,
    /// Request context key=value (repeatable), e.g. actor=tommaso.
    #[arg(long, value_parser = parse_pair)]
    pub context: Vec<(String, String)>,
}

/// The outcome of `gatehouse check`: whether it was allowed, and the text to print.
pub struct CheckOutcome {
    pub allowed: bool,
    pub report: String,
}

pub async fn check(args: CheckArgs) -> Result<CheckOutcome, CliError> {
    let (kind, id) = args
        .resource
        .split_once(':')
        .unwrap_or((&args.resource, ""));
    let request = pb::CheckRequest {
        token: args.token,
        action: args.action,
        resource: Some(pb::Resource {
            kind: kind.to_owned(),
            id: id.to_owned(),
            attributes: Some(to_struct(args.attributes)),
        }),
        context: Some(to_struct(args.context)),
        ..Default::default()
    };
    let mut client = GatehouseClient::connect(args.addr)
        .await
        .map_err(CliError::Connect)?;
    let response = client
        .check(request)
        .await
        .map_err(|status| CliError::Call(format!("{:?}: {}", status.code(), status.message())))?
        .into_inner();
    let verdict = if response.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    Ok(CheckOutcome {
        allowed: response.allowed,
        report: format!(
            "{verdict} by rule {} (policy revision {})\n{}",
            response.rule, response.policy_revision, response.reason
        ),
    })
}

/// Values that read as JSON (numbers, booleans, lists) keep their type; anything else is a string.
fn parse_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => {
            value
        }
        _ => Value::String(text.to_owned()),
    }
}

fn to_struct(pairs: Vec<(String, String)>) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .into_iter()
            .map(|(k, v)| {
                let value = prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(v)),
                };
                (k, value)
            })
            .collect(),
    }
}

/// Parses `key=value`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got '{text}'"))
}

/// `gatehouse validate DIR`: the set's summary, or every error with file:line.
pub fn validate(dir: &Path) -> Result<String, CliError> {
    let set = crate::store::load_dir(dir).map_err(CliError::Policy)?;
    if set.is_empty() {
        return Err(CliError::Policy(crate::policy::LoadErrors(vec![
            crate::policy::LoadError {
                file: dir.display().to_string(),
                line: None,
                message: "no rules, policies or routes: this set would deny every request, and a serving set is never replaced by it".to_owned(),
            },
        ])));
    }
    let mut text = format!(
        "ok: {} rules, chat policies and permissions; {} routes; strategy {}; revision {}",
        set.candidates().len(),
        set.routes().routes().len(),
        set.strategy(),
        set.revision()
    );
    // Warnings never fail validation: they follow the ok line.
    for warning in set.warnings() {
        text.push_str(&format!("\nwarning: {warning}"));
    }
    Ok(text)
}

/// What `gatehouse test DIR` found: the report text and whether every test passed.
pub struct TestOutcome {
    pub passed: bool,
    pub report: String,
}

/// `gatehouse test DIR`: runs the `*_test.yaml` suites beside the policies.
pub fn test(dir: &Path) -> Result<TestOutcome, CliError> {
    let set = crate::store::load_dir(dir).map_err(CliError::Policy)?;
    let suites = crate::store::load_test_suites(dir).map_err(CliError::Policy)?;
    if suites.is_empty() {
        return Err(CliError::Usage(format!(
            "no *_test.yaml suites in {}",
            dir.display()
        )));
    }
    let report =
        crate::suite::run(&set, &suites, crate::token::unix_now()).map_err(CliError::Policy)?;
    let mut text = String::new();
    for failure in &report.failures {
        text.push_str(&format!(
            "FAIL {}: {}: {}\n",
            failure.file, failure.test, failure.message
        ));
    }
    text.push_str(&format!(
        "{} passed, {} failed",
        report.passed,
        report.failed()
    ));
    Ok(TestOutcome {
        passed: report.failures.is_empty() && report.passed > 0,
        report: text,
    })
}

/// What `gatehouse eval` asks, offline.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A user id, or JSON: '{"id": "jack", "roles": ["admin"]}', '{"anonymous": true}'.
    #[arg(long)]
    pub principal: String,
    #[arg(long)]
    pub action: String,
    /// kind:id, e.g. message:m1.
    #[arg(long)]
    pub resource: String,
    #[arg(long = "attr", value_parser = parse_pair)]
    pub attributes: Vec<(String, String)>,
    #[arg(long, value_parser = parse_pair)]
    pub context: Vec<(String, String)>,
}

/// `gatehouse eval DIR ...`: the explained decision, without a server.
pub fn eval(dir: &Path, args: EvalArgs) -> Result<CheckOutcome, CliError> {
    let set = crate::store::load_dir(dir).map_err(CliError::Policy)?;
    let doc: crate::suite::PrincipalDoc = if args.principal.trim_start().starts_with('{') {
        serde_json::from_str(&args.principal)
            .map_err(|e| CliError::Usage(format!("--principal: {e}")))?
    } else {
        crate::suite::PrincipalDoc {
            id: Some(args.principal.clone()),
            ..Default::default()
        }
    };
    let principal = doc.to_principal().map_err(CliError::Usage)?;
    let (kind, id) = args
        .resource
        .split_once(':')
        .unwrap_or((&args.resource, ""));
    let strings = |pairs: Vec<(String, String)>| -> Map<String, Value> {
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    };
    let attributes = strings(args.attributes);
    let context = strings(args.context);
    let request = crate::engine::Request {
        principal: &principal,
        action: &args.action,
        resource: crate::engine::Resource {
            kind,
            id,
            attributes: &attributes,
        },
        context: &context,
        now: crate::token::unix_now(),
    };
    let (decision, explanation) = crate::engine::decide_explained(&set, &request);
    let verdict = if decision.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    let mut report = format!(
        "{verdict} by rule {} (strategy {}, policy revision {})\n{}\n",
        decision.rule,
        explanation.strategy,
        set.revision(),
        decision.reason(&request)
    );
    for entry in &explanation.entries {
        let result = match &entry.result {
            crate::engine::TraceResult::Vote(crate::policy::Effect::Allow) => "PERMIT".to_owned(),
            crate::engine::TraceResult::Vote(crate::policy::Effect::Deny) => "DENY".to_owned(),
            crate::engine::TraceResult::NotApplicable(why) => format!("not applicable: {why}"),
            crate::engine::TraceResult::Error(e) => format!("error: {e}"),
        };
        report.push_str(&format!(
            "  {} {} (priority {}): {result}\n",
            entry.origin, entry.name, entry.priority
        ));
        for policy in &entry.policies {
            push_policy(&mut report, policy, 2);
        }
    }
    Ok(CheckOutcome {
        allowed: decision.allowed,
        report: report.trim_end().to_owned(),
    })
}

fn push_policy(report: &mut String, policy: &crate::engine::PolicyTrace, depth: usize) {
    let verdict = if policy.granted {
        "granted"
    } else {
        "not granted"
    };
    let logic = if policy.negative {
        " (negative logic)"
    } else {
        ""
    };
    let detail = if policy.detail.is_empty() {
        String::new()
    } else {
        format!(" [{}]", policy.detail)
    };
    report.push_str(&format!(
        "{}policy {}: {verdict}{logic}{detail}\n",
        "  ".repeat(depth),
        policy.name
    ));
    for child in &policy.children {
        push_policy(report, child, depth + 1);
    }
}

/// Whose decisions, from which decision log files, since when.
#[derive(clap::Args)]
pub struct LogQuery {
    /// The decision log file (GATEHOUSE_DECISION_LOG_FILE); rotated files are read with --log too.
    #[arg(long = "log", required = true)]
    pub logs: Vec<PathBuf>,
    /// The policy directory that made the decisions (`suggest` checks its suggestion against it);
    /// the built-in preset when not given.
    // `suggest` keeps only what the live policies cannot have decided on anything but the subject.
    #[arg(long, env = "GATEHOUSE_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,
    #[arg(
        long = "user",
        conflicts_with = "role",
        required_unless_present = "role"
    )]
    pub user_id: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
    /// Only decisions at or after this time: RFC 3339 (2026-11-22T10:00:00Z) or an age (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
}

impl LogQuery {
    fn subject(&self) -> Result<crate::audit::Subject, CliError> {
        match (&self.user_id, &self.role) {
            (Some(id), None) => Ok(crate::audit::Subject::User(id.clone())),
            (None, Some(role)) => Ok(crate::audit::Subject::Role(role.clone())),
            _ => Err(CliError::Usage("give --user or --role".to_owned())),
        }
    }

    /// The entries of every file, and the lower time bound in milliseconds.
    fn load(&self) -> Result<(Vec<crate::audit::DecisionEntry>, i64), CliError> {
        let mut entries = Vec::new();
        for path in &self.logs {
            let (mut read, bad) = crate::audit::read_file(path)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
            if bad > 0 {
                eprintln!(
                    "gatehouse: {}: {bad} lines are not decision log entries and were skipped",
                    path.display()
                );
            }
            entries.append(&mut read);
        }
        entries.sort_by_key(|e| e.time_ms);
        let since = match &self.since {
            None => i64::MIN,
            Some(text) => since_ms(text)?,
        };
        Ok((entries, since))
    }
}

/// RFC 3339, or an age such as `24h` counted back from now.
fn since_ms(text: &str) -> Result<i64, CliError> {
    let instant = match humantime::parse_rfc3339_weak(text) {
        Ok(time) => time,
        Err(_) => {
            let age = humantime::parse_duration(text).map_err(|_| {
                CliError::Usage(format!(
                    "--since: '{text}' is neither an RFC 3339 time nor an age such as 24h"
                ))
            })?;
            std::time::SystemTime::now()
                .checked_sub(age)
                .unwrap_or(std::time::UNIX_EPOCH)
        }
    };
    Ok(instant
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0))
}

/// `gatehouse exercised`: one line per distinct exercised permission.
pub fn exercised(query: LogQuery) -> Result<String, CliError> {
    let subject = query.subject()?;
    let (entries, since) = query.load()?;
    let items = crate::audit::exercised(&entries, &subject, since);
    let mut out = String::from("decision  count  action  kind  id-or-pattern  rule  last-seen\n");
    for item in &items {
        let last = time_text(item.last_seen_ms);
        let id = if item.is_pattern {
            format!("{} (pattern)", item.resource_id_pattern)
        } else {
            item.resource_id_pattern.clone()
        };
        out.push_str(&format!(
            "{}  {}  {}  {}  {}  {}  {}\n",
            if item.allowed { "allow" } else { "deny" },
            item.count,
            item.action,
            item.resource_kind,
            id,
            item.rule,
            last
        ));
    }
    out.push_str(&format!(
        "{} distinct permissions from {} decisions",
        items.len(),
        entries.len()
    ));
    Ok(out)
}

/// `gatehouse suggest`: the least-privilege policy file.
pub fn suggest(query: LogQuery) -> Result<String, CliError> {
    let subject = query.subject()?;
    let (entries, since) = query.load()?;
    let items = crate::audit::exercised(&entries, &subject, since);
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let live = match &query.policy_dir {
        Some(dir) => crate::store::load_dir(dir),
        None => crate::policy::FeedsPreset::default().compile(),
    }
    .map_err(CliError::Policy)?;
    let suggestion = crate::audit::suggest(&live, &subject, &items, &now);
    for note in &suggestion.notes {
        eprintln!("gatehouse: note: {note}");
    }
    Ok(suggestion.yaml.trim_end().to_owned())
}

fn time_text(ms: i64) -> String {
    let seconds = u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}
