//! The commands people run: issue and verify tokens from the local secret, and ask a running server.
//!
//! Each returns its output as text and leaves printing and exit codes to `main`.

use std::path::Path;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::config::Config;
use crate::grpc::pb;
use crate::grpc::pb::gatehouse_client::GatehouseClient;
use crate::principal::{Principal, PrincipalKind};
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
    #[error("cannot reach the server: {0}")]
    Connect(String),
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
#[derive(Debug, Default)]
pub struct IssueArgs {
    pub user_id: Option<String>,
    pub server: bool,
    pub ttl_seconds: i64,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub claims: Vec<(String, String)>,
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
        expires_in_seconds: args.ttl_seconds,
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
    let kind = match principal.kind {
        PrincipalKind::User => "USER",
        PrincipalKind::Server => "SERVER",
        PrincipalKind::Scoped => "SCOPED",
    };
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
#[derive(Debug)]
pub struct CheckArgs {
    pub addr: String,
    pub token: String,
    pub action: String,
    /// `kind:id`, e.g. `feed:user:tommaso`; the id may itself contain colons.
    pub resource: String,
    pub attributes: Vec<(String, String)>,
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
    };
    let mut client = GatehouseClient::connect(args.addr)
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
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
