//! The commands people run: issue and verify tokens from the local secret, and ask a running server.
//!
//! Each returns its output as text and leaves printing and exit codes to [`super::run`].

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use thiserror::Error;

use super::print::{self, time_text};
use crate::config::Config;
use crate::principal::Principal;
use crate::token::{IssueError, IssueRequest, Issuer, Keyring, TokenError, Verifier};

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
    #[error("{0}")]
    Read(#[from] crate::audit::ReadError),
}

/// Loads the configuration and insists on a real secret: tokens signed with a random one are useless.
pub(super) fn load_secret_config(config: Option<&Path>) -> Result<Config, CliError> {
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

/// Signs a token locally with the configured secret; returns it and its expiry (`exp`).
pub fn issue_token(
    config: Option<&Path>,
    args: IssueArgs,
) -> Result<(String, Option<i64>), CliError> {
    let config = load_secret_config(config)?;
    let issuer = Issuer::with_keyring(Keyring::new(config.secrets.clone()));
    if args.server {
        return Ok((issuer.server_token()?, None));
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
    Ok((issued.token, issued.expires_at))
}

/// Verifies a token locally and returns its principal as [`principal_json`] builds it.
pub fn verify_token(config: Option<&Path>, token: &str) -> Result<Value, CliError> {
    let config = load_secret_config(config)?;
    let principal =
        Verifier::with_keyring(Keyring::new(config.secrets.clone()), config.verify.clone())
            .verify(token)?;
    Ok(principal_json(&principal))
}

/// A verified principal as `token verify` prints it; the kind in the crate's lower-case vocabulary,
/// the same one `check` and the decision log use.
pub fn principal_json(principal: &Principal) -> Value {
    let kind = principal.kind.as_str();
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
        "channel_roles": principal.channel_roles,
        "scope": scope,
        "claims": principal.claims,
        "issued_at": principal.issued_at,
        "expires_at": principal.expires_at,
    })
}

/// The outcome of a command that decides: whether it was allowed, and the text to print.
pub struct CheckOutcome {
    pub allowed: bool,
    pub report: String,
}

/// Values that read as JSON (numbers, booleans, lists) keep their type; anything else is a string.
pub(super) fn parse_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => {
            value
        }
        _ => Value::String(text.to_owned()),
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
/// `1 test`, `2 tests`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

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
    // The suites beside the policies are parsed and what they name is checked against the set, so a
    // broken suite fails validation; running them is `gatehouse test`.
    let suites = crate::store::load_test_suites(dir).map_err(CliError::Policy)?;
    let checked = crate::suite::check(&set, &suites).map_err(CliError::Policy)?;
    let tests: usize = checked
        .iter()
        .map(|(_, suite)| suite.cases.len() + suite.routes.len())
        .sum();
    let mut text = format!(
        "ok: {} rules, chat policies and permissions; {} routes; strategy {}; revision {}; {} with {} checked (not run)",
        set.candidates().len(),
        set.routes().routes().len(),
        set.strategy(),
        set.revision(),
        counted(checked.len(), "test suite"),
        counted(tests, "test"),
    );
    // Warnings never fail validation: they follow the ok line.
    let principals = crate::suite::principal_warnings(&set, &checked);
    for warning in set.warnings().iter().chain(&principals) {
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
        let at = failure.line.map(|l| format!(":{l}")).unwrap_or_default();
        text.push_str(&format!(
            "FAIL {}{at}: test '{}': {}\n",
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

/// What `gatehouse eval` asks, offline: a request to the engine (`--action`, `--resource`) or a request
/// through a door (`--http`).
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A user id, or JSON: '{"id": "jack", "roles": ["admin"]}', '{"anonymous": true}'. With --http,
    /// a token is minted for it with a throwaway secret (unless -H gives an authorization header).
    #[arg(long, required_unless_present = "http")]
    pub principal: Option<String>,
    #[arg(long, required_unless_present = "http", conflicts_with = "http")]
    pub action: Option<String>,
    /// kind:id, e.g. message:m1.
    #[arg(long, required_unless_present = "http", conflicts_with = "http")]
    pub resource: Option<String>,
    #[arg(long = "attr", value_parser = parse_pair, conflicts_with = "http")]
    pub attributes: Vec<(String, String)>,
    #[arg(long, value_parser = parse_pair, conflicts_with = "http")]
    pub context: Vec<(String, String)>,
    /// A proxied request, 'METHOD /path?query', decided through the route table and a door.
    #[arg(long)]
    pub http: Option<String>,
    /// A request header 'name: value' (repeatable), with --http.
    #[arg(short = 'H', long = "header", requires = "http")]
    pub headers: Vec<String>,
    /// The door: envoy (gRPC ext_authz, the default), envoy-http, nginx or traefik.
    #[arg(long, default_value = "envoy", requires = "http")]
    pub door: String,
    /// The request body (JSON, sent as given), with --http.
    #[arg(long, requires = "http")]
    pub body: Option<String>,
    /// The config whose API secret verifies a token given with -H (without --principal).
    #[arg(long, env = "GATEHOUSE_CONFIG", requires = "http")]
    pub config: Option<PathBuf>,
}

fn principal_doc(text: &str) -> Result<crate::suite::PrincipalDoc, CliError> {
    let doc = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| CliError::Usage(format!("--principal: {e}")))?
    } else {
        crate::suite::PrincipalDoc {
            id: Some(text.to_owned()),
            ..Default::default()
        }
    };
    doc.to_principal().map_err(CliError::Usage)?;
    Ok(doc)
}

/// `gatehouse eval DIR ...`: the explained decision, without a server.
pub fn eval(dir: &Path, args: EvalArgs) -> Result<CheckOutcome, CliError> {
    let set = crate::store::load_dir(dir).map_err(CliError::Policy)?;
    if let Some(line) = &args.http {
        return eval_http(&set, line, &args);
    }
    let (Some(principal), Some(action), Some(resource)) =
        (&args.principal, &args.action, &args.resource)
    else {
        return Err(CliError::Usage(
            "give --principal, --action and --resource, or --http".to_owned(),
        ));
    };
    let principal = principal_doc(principal)?
        .to_principal()
        .map_err(CliError::Usage)?;
    let (action, resource) = (action.clone(), resource.clone());
    let (kind, id) = resource.split_once(':').unwrap_or((&resource, ""));
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
        action: &action,
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
    let report = format!(
        "{verdict} by rule {} (strategy {}, policy revision {})\n{}\n{}",
        decision.rule,
        explanation.strategy,
        set.revision(),
        decision.reason(&request),
        print::trace_text(&crate::grpc::explanation_to_pb(&explanation))
    );
    Ok(CheckOutcome {
        allowed: decision.allowed,
        report: report.trim_end().to_owned(),
    })
}

/// `gatehouse eval DIR --http 'METHOD /path'`: the request through a door, offline: status, rule,
/// reason and the headers the upstream would receive.
fn eval_http(
    set: &crate::policy::PolicySet,
    line: &str,
    args: &EvalArgs,
) -> Result<CheckOutcome, CliError> {
    let usage = |m: String| CliError::Usage(m);
    let (method, path) = line
        .trim()
        .split_once(' ')
        .ok_or_else(|| usage("--http: expected 'METHOD /path'".to_owned()))?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            // The text is not echoed: a header written without its colon may be a credential.
            .ok_or_else(|| usage("-H: expected 'name: value'".to_owned()))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let request = crate::suite::HttpRequest {
        method: method.trim().to_owned(),
        path: path.trim().to_owned(),
        headers,
        body: args.body.clone().map(String::into_bytes),
    };
    request.check().map_err(|e| usage(format!("--http: {e}")))?;
    let door = crate::suite::SuiteDoor::parse(&args.door).ok_or_else(|| {
        usage(format!(
            "--door must be one of {}",
            crate::suite::SuiteDoor::NAMES.join(", ")
        ))
    })?;
    let now = crate::token::unix_now();
    let principal = args.principal.as_deref().map(principal_doc).transpose()?;
    let offline = match (&principal, request.header("authorization")) {
        // A token the caller brings is verified with the app's secrets, as the server would.
        (None, Some(_)) => {
            let config = load_secret_config(args.config.as_deref())?;
            crate::suite::Offline::with_secrets(set, &config.secrets, now)
        }
        _ => crate::suite::Offline::new(set, now),
    };
    let request = offline
        .with_credentials(&request, principal.as_ref())
        .map_err(CliError::Usage)?;
    let answer = offline.ask(&request, door);
    let mut report = format!(
        "{} {} through {}: status {}, rule {}\n{}\n",
        if answer.allowed() {
            "ALLOWED"
        } else {
            "DENIED"
        },
        line.trim(),
        door.as_str(),
        answer.status,
        answer.rule.as_deref().unwrap_or("none"),
        answer.reason
    );
    for (name, value) in &answer.upstream_headers {
        if value.is_empty() {
            report.push_str(&format!("  upstream {name}: (removed)\n"));
        } else {
            report.push_str(&format!("  upstream {name}: {value}\n"));
        }
    }
    if let Some(explanation) = &answer.explanation {
        report.push_str(&format!("strategy: {}\n", explanation.strategy));
        report.push_str(&print::trace_text(&crate::grpc::explanation_to_pb(
            explanation,
        )));
    }
    Ok(CheckOutcome {
        allowed: answer.allowed(),
        report: report.trim_end().to_owned(),
    })
}

/// Whose decisions, from which decision log files, since when.
#[derive(clap::Args)]
pub struct LogQuery {
    /// A decision log file (GATEHOUSE_DECISION_LOG_FILE; rotated files are given with --log too),
    /// or a file an OpenTelemetry Collector's file exporter wrote (OTLP JSON); the first line of
    /// each file says which it is.
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
        let read = crate::audit::read_logs(&self.logs).map_err(CliError::Read)?;
        for file in &read.files {
            if file.skipped > 0 {
                eprintln!(
                    "gatehouse: {}: {} lines are not decision log entries and were skipped",
                    file.path.display(),
                    file.skipped
                );
            }
        }
        let mut entries = read.entries;
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

/// How `gatehouse exercised` folds and prints its rows.
#[derive(clap::Args)]
pub struct ExercisedView {
    /// Fold the ids of a kind that match an id pattern into one row: KIND:ID_PATTERN in the policy
    /// language's pattern syntax (`feed:user:*`; `*:PATTERN` for every kind). Repeatable; the first
    /// that matches an id takes it.
    #[arg(long = "group-by-id", value_name = "KIND:ID_PATTERN", value_parser = crate::audit::IdGroup::parse)]
    pub groups: Vec<crate::audit::IdGroup>,
    /// Print the rows as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `gatehouse exercised`: one row per distinct exercised permission, in aligned columns.
pub fn exercised(query: LogQuery, view: ExercisedView) -> Result<String, CliError> {
    let subject = query.subject()?;
    let (entries, since) = query.load()?;
    let items = crate::audit::exercised(&entries, &subject, since);
    let items = crate::audit::group_by_id(items, &view.groups);
    if view.json {
        let rows: Vec<Value> = items
            .iter()
            .map(|item| {
                json!({
                    "decision": if item.allowed { "allow" } else { "deny" },
                    "count": item.count,
                    "action": item.action,
                    "resource_kind": item.resource_kind,
                    "resource_id_pattern": item.resource_id_pattern,
                    "pattern": item.is_pattern,
                    "rule": item.rule,
                    "first_seen": time_text(item.first_seen_ms),
                    "last_seen": time_text(item.last_seen_ms),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default());
    }
    let header = [
        "decision",
        "count",
        "action",
        "kind",
        "id-or-pattern",
        "rule",
        "last-seen",
    ]
    .map(str::to_owned);
    let mut rows = vec![header];
    for item in &items {
        let id = if item.is_pattern {
            format!("{} (pattern)", item.resource_id_pattern)
        } else {
            item.resource_id_pattern.clone()
        };
        rows.push([
            if item.allowed { "allow" } else { "deny" }.to_owned(),
            item.count.to_string(),
            item.action.clone(),
            item.resource_kind.clone(),
            id,
            item.rule.clone(),
            time_text(item.last_seen_ms),
        ]);
    }
    let mut out = aligned(&rows);
    out.push_str(&format!(
        "{} distinct permissions from {} decisions",
        items.len(),
        entries.len()
    ));
    Ok(out)
}

/// Rows as columns padded to their widest cell (counted in characters), two spaces apart, the count
/// column right-aligned; the last column is not padded.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (n, (cell, width)) in row.iter().zip(widths).enumerate() {
            if n > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if n == 1 {
                line.push_str(&pad);
                line.push_str(cell);
            } else if n + 1 < N {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
