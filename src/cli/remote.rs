//! The commands that call a running server: `check`, `status`, `reload`, and `token issue --addr` /
//! `token verify --addr`. Each prints text by default and JSON with `--json`.
//!
//! A command that calls with a server token obtains it in exactly one way per invocation
//! ([`server_token`]): the token given (`--token`, or `GATEHOUSE_SERVER_TOKEN` when the flag is
//! absent), or, only when asked with `--secret-from-config`, one minted from the configured API
//! secret. Asking for both is refused rather than resolved by a guess.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tonic::transport::Channel;

use super::commands::{CheckOutcome, CliError, load_secret_config, parse_pair, parse_value};
use super::print::{self, time_text};
use crate::grpc::pb;
use crate::grpc::pb::gatehouse_client::GatehouseClient;
use crate::token::{Issuer, Keyring};

/// The address commands call when `--addr` is not given: `serve`'s default listener.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// The server token a command calls with, and the configuration to mint one from.
#[derive(Debug, clap::Args)]
pub struct ServerAuth {
    /// The server token to call with; without the flag, GATEHOUSE_SERVER_TOKEN.
    #[arg(long, env = "GATEHOUSE_SERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Mint the server token from the configured API secret instead (GATEHOUSE_API_SECRET,
    /// GATEHOUSE_API_SECRET_FILE or --config); refused together with a token.
    #[arg(long)]
    pub secret_from_config: bool,
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ServerAuth {
    fn resolve(self) -> Result<String, CliError> {
        server_token(self.token, self.secret_from_config, self.config.as_deref())
    }
}

/// The one way this invocation obtains its server token; see the module's documentation.
pub fn server_token(
    token: Option<String>,
    secret_from_config: bool,
    config: Option<&Path>,
) -> Result<String, CliError> {
    match (token, secret_from_config) {
        (Some(_), true) => Err(CliError::Usage(
            "a server token (flag or GATEHOUSE_SERVER_TOKEN) and --secret-from-config both name the credential: give one"
                .to_owned(),
        )),
        (Some(token), false) if token.trim().is_empty() => {
            Err(CliError::Usage("the server token is empty".to_owned()))
        }
        (Some(token), false) => Ok(token),
        (None, true) => {
            let config = load_secret_config(config)?;
            Ok(Issuer::with_keyring(Keyring::new(config.secrets.clone())).server_token()?)
        }
        (None, false) => Err(CliError::Usage(
            "this command calls with a server token: give --token, set GATEHOUSE_SERVER_TOKEN, or mint one from the configured secret with --secret-from-config"
                .to_owned(),
        )),
    }
}

async fn connect(addr: &str) -> Result<GatehouseClient<Channel>, CliError> {
    GatehouseClient::connect(addr.to_owned())
        .await
        .map_err(CliError::Connect)
}

/// `message` with the server token in the `authorization` metadata.
fn authorized<T>(message: T, token: &str) -> Result<tonic::Request<T>, CliError> {
    let mut request = tonic::Request::new(message);
    // The token is never echoed: a value that is no header value is only said to be one.
    let value = format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| CliError::Usage("the server token is not a valid header value".to_owned()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn call_error(status: tonic::Status) -> CliError {
    CliError::Call(format!("{:?}: {}", status.code(), status.message()))
}

/// What `gatehouse check` asks.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// The caller's token, checked by the server.
    #[arg(
        long,
        conflicts_with_all = ["anonymous", "principal"],
        required_unless_present_any = ["anonymous", "principal"]
    )]
    pub token: Option<String>,
    /// Decide for the anonymous caller (no token).
    #[arg(long, conflicts_with = "principal")]
    pub anonymous: bool,
    /// The caller, described by this service holding a server token: a user id, or JSON
    /// '{"user_id": "jack", "roles": ["admin"], "groups": [], "channel_roles": {}, "claims": {}}'.
    #[arg(long)]
    pub principal: Option<String>,
    /// A role of the --principal (repeatable).
    #[arg(long = "role", requires = "principal")]
    pub roles: Vec<String>,
    /// A group of the --principal (repeatable).
    #[arg(long = "group", requires = "principal")]
    pub groups: Vec<String>,
    /// The server token --principal calls with; without the flag, GATEHOUSE_SERVER_TOKEN. The flag is
    /// refused without --principal; the variable is then unused.
    #[arg(long, env = "GATEHOUSE_SERVER_TOKEN", hide_env_values = true)]
    pub server_token: Option<String>,
    /// Mint the server token for --principal from the configured API secret.
    #[arg(long, requires = "principal")]
    pub secret_from_config: bool,
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// Print the evaluation trace: every candidate and its result.
    #[arg(long)]
    pub explain: bool,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--principal` as JSON: the fields of the API's `PrincipalInput`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalArg {
    #[serde(alias = "id")]
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    channel_roles: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

fn principal_input(args: &CheckArgs, text: &str) -> Result<pb::PrincipalInput, CliError> {
    let mut parsed: PrincipalArg = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| CliError::Usage(format!("--principal: {e}")))?
    } else {
        PrincipalArg {
            user_id: text.to_owned(),
            ..PrincipalArg::default()
        }
    };
    parsed.roles.extend(args.roles.iter().cloned());
    parsed.groups.extend(args.groups.iter().cloned());
    Ok(pb::PrincipalInput {
        user_id: parsed.user_id,
        roles: parsed.roles,
        groups: parsed.groups,
        channel_roles: parsed.channel_roles.into_iter().collect(),
        claims: Some(crate::grpc::map_to_struct(&parsed.claims)),
    })
}

fn to_struct(pairs: &[(String, String)]) -> prost_types::Struct {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    crate::grpc::map_to_struct(&map)
}

/// The Check request `args` describe, and the server token it calls with when it describes the caller.
fn check_request(args: &CheckArgs) -> Result<(pb::CheckRequest, Option<String>), CliError> {
    let (kind, id) = args
        .resource
        .split_once(':')
        .unwrap_or((&args.resource, ""));
    let mut request = pb::CheckRequest {
        token: args.token.clone().unwrap_or_default(),
        action: args.action.clone(),
        resource: Some(pb::Resource {
            kind: kind.to_owned(),
            id: id.to_owned(),
            attributes: Some(to_struct(&args.attributes)),
        }),
        context: Some(to_struct(&args.context)),
        anonymous: args.anonymous,
        explain: args.explain,
        principal: None,
    };
    let Some(text) = &args.principal else {
        return Ok((request, None));
    };
    request.principal = Some(principal_input(args, text)?);
    let token = server_token(
        args.server_token.clone(),
        args.secret_from_config,
        args.config.as_deref(),
    )?;
    Ok((request, Some(token)))
}

/// `gatehouse check`: asks the server at `--addr`.
pub async fn check(args: CheckArgs) -> Result<CheckOutcome, CliError> {
    let (request, server) = check_request(&args)?;
    let mut client = connect(&args.addr).await?;
    let request = match &server {
        Some(token) => authorized(request, token)?,
        None => tonic::Request::new(request),
    };
    let response = client
        .check(request)
        .await
        .map_err(call_error)?
        .into_inner();
    let report = if args.json {
        print::json(&print::check_json(&response))
    } else {
        print::check_text(&response)
    };
    Ok(CheckOutcome {
        allowed: response.allowed,
        report,
    })
}

/// `gatehouse status` and `gatehouse reload`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub addr: String,
    #[command(flatten)]
    pub auth: ServerAuth,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `gatehouse status`: the serving set and the reload history (PolicyStatus).
pub async fn status(args: AdminArgs) -> Result<String, CliError> {
    let token = args.auth.resolve()?;
    let mut client = connect(&args.addr).await?;
    let status = client
        .policy_status(authorized(pb::PolicyStatusRequest {}, &token)?)
        .await
        .map_err(call_error)?
        .into_inner();
    Ok(if args.json {
        print::json(&print::status_json(&status))
    } else {
        print::status_text(&status)
    })
}

/// `gatehouse reload`: reloads the policy directory now (ReloadPolicies). Passed is false when the
/// directory did not load and the previous set keeps serving.
pub async fn reload(args: AdminArgs) -> Result<(bool, String), CliError> {
    let token = args.auth.resolve()?;
    let mut client = connect(&args.addr).await?;
    let reloaded = client
        .reload_policies(authorized(pb::ReloadPoliciesRequest {}, &token)?)
        .await
        .map_err(call_error)?
        .into_inner();
    let report = if args.json {
        print::json(&json!({
            "ok": reloaded.ok,
            "policy_revision": reloaded.policy_revision,
            "error": Some(&reloaded.error).filter(|e| !e.is_empty()),
        }))
    } else if reloaded.ok {
        format!(
            "reloaded; serving policy revision {}",
            reloaded.policy_revision
        )
    } else {
        format!(
            "reload failed; policy revision {} keeps serving\n{}",
            reloaded.policy_revision,
            reloaded.error.trim_end()
        )
    };
    Ok((reloaded.ok, report))
}

/// What `gatehouse token issue --addr` asks the server to mint.
pub struct RemoteIssue {
    pub addr: String,
    pub auth: ServerAuth,
    pub user_id: String,
    pub ttl_seconds: i64,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub claims: Vec<(String, String)>,
}

/// Mints a user token through IssueToken: the server signs with its own secret, so this works against
/// a development-mode server whose secret is random. Returns the token and its expiry.
pub async fn issue(args: RemoteIssue) -> Result<(String, Option<i64>), CliError> {
    let token = args.auth.resolve()?;
    let claims: Map<String, Value> = args
        .claims
        .into_iter()
        .map(|(k, v)| (k, parse_value(&v)))
        .collect();
    let request = pb::IssueTokenRequest {
        user_id: args.user_id,
        expires_in_seconds: args.ttl_seconds,
        claims: Some(crate::grpc::map_to_struct(&claims)),
        roles: args.roles,
        groups: args.groups,
    };
    let mut client = connect(&args.addr).await?;
    let issued = client
        .issue_token(authorized(request, &token)?)
        .await
        .map_err(call_error)?
        .into_inner();
    Ok((issued.token, issued.expires_at.map(|t| t.seconds)))
}

/// `gatehouse token issue` output: the bare token, or JSON with its expiry.
pub fn issued_report(token: String, expires_at: Option<i64>, as_json: bool) -> String {
    if as_json {
        print::json(&json!({
            "token": token,
            "expires_at": expires_at.map(|s| time_text(s.saturating_mul(1000))),
        }))
    } else {
        token
    }
}

/// Verifies `token` with the server at `addr` (Verify) and returns its principal as JSON.
pub async fn verify(addr: &str, token: &str) -> Result<Value, CliError> {
    let mut client = connect(addr).await?;
    let verified = client
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map_err(call_error)?
        .into_inner();
    Ok(verified
        .principal
        .as_ref()
        .map(print::principal_json)
        .unwrap_or(Value::Null))
}
