//! The console's JSON API, every call already admitted and marked [`FromConsole`] by the gate.
//! Inputs are bounded (body size, parameter lengths, page sizes); an unknown parameter, a repeated
//! one or a value of the wrong shape is a 400 with `{"code", "message"}`, never read as absent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tonic::metadata::MetadataMap;

use super::ring::{self, Filter};
use super::{Console, invalid, ok_json};
use crate::browser::{check_response_json, status_response, timestamp};
use crate::grpc::pb::gatehouse_server::Gatehouse;
use crate::grpc::{FromConsole, map_to_struct, pb};
use crate::policy::{Actions, Body as RuleBody, Kinds, PolicySet};

/// The largest evaluation request.
pub const MAX_EVALUATE_BYTES: usize = 64 * 1024;
/// The longest value of a query parameter.
pub const MAX_PARAMETER_BYTES: usize = 256;
/// How far back the chart may look.
const MAX_RATE_MINUTES: i64 = 30;
/// The chart's interval.
const RATE_BUCKET_MS: i64 = 5_000;
/// Shadow differences listed on the policy page.
const SHADOW_LISTED: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalJson {
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    channel_roles: BTreeMap<String, String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceJson {
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// A request to evaluate: one of `principal`, `token` (a user's token) or `anonymous`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateJson {
    #[serde(default)]
    principal: Option<PrincipalJson>,
    #[serde(default)]
    token: String,
    #[serde(default)]
    anonymous: bool,
    action: String,
    resource: ResourceJson,
    #[serde(default)]
    context: Map<String, Value>,
}

/// Check's answer with its explanation for the request described, judged as Check judges it and
/// recorded nowhere (`"recorded": false`).
pub(super) async fn evaluate(State(console): State<Arc<Console>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return invalid("the body must be JSON: send Content-Type: application/json");
    }
    let asked: EvaluateJson = match read_json(body).await {
        Ok(asked) => asked,
        Err(message) => return invalid(message),
    };
    let message = pb::CheckRequest {
        token: asked.token,
        anonymous: asked.anonymous,
        principal: asked.principal.map(|p| pb::PrincipalInput {
            user_id: p.user_id,
            roles: p.roles,
            groups: p.groups,
            channel_roles: p.channel_roles.into_iter().collect(),
            claims: Some(map_to_struct(&p.claims)),
        }),
        action: asked.action,
        resource: Some(pb::Resource {
            kind: asked.resource.kind,
            id: asked.resource.id,
            attributes: Some(map_to_struct(&asked.resource.attributes)),
        }),
        context: Some(map_to_struct(&asked.context)),
        explain: true,
    };
    match console.service.evaluate(console_call(message)).await {
        Ok(answer) => {
            let mut value = check_response_json(&answer);
            if let Value::Object(map) = &mut value {
                map.insert("recorded".to_owned(), Value::Bool(false));
            }
            ok_json(&value)
        }
        Err(status) => status_response(&status),
    }
}

/// A page of the decision log's ring, newest first, filtered, after a cursor when polling.
pub(super) async fn decisions(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Response {
    const NAMES: [&str; 7] = ["user", "decision", "rule", "kind", "door", "after", "limit"];
    let mut params = match params(query.as_deref(), &NAMES) {
        Ok(params) => params,
        Err(message) => return invalid(message),
    };
    let allowed = match params.remove("decision").as_deref() {
        None | Some("") => None,
        Some("allow") => Some(true),
        Some("deny") => Some(false),
        Some(_) => return invalid("decision is allow or deny"),
    };
    let door = params.remove("door").filter(|d| !d.is_empty());
    if let Some(door) = &door
        && !crate::door::Door::ALL.iter().any(|d| d.as_str() == door)
    {
        return invalid("door is check, batch, ext_authz or http");
    }
    let limit = match limit(params.remove("limit")) {
        Ok(limit) => limit,
        Err(message) => return invalid(message),
    };
    let after = params.remove("after").filter(|a| !a.is_empty());
    let after = match &after {
        None => None,
        Some(cursor) => match ring::cursor_time(cursor) {
            Some(time) => Some((cursor.as_str(), time)),
            None => return invalid("after is a cursor the console was given"),
        },
    };
    let mut text = |name: &str| params.remove(name).filter(|v| !v.is_empty());
    let filter = Filter {
        user: text("user"),
        allowed,
        rule: text("rule"),
        kind: text("kind"),
        door,
    };
    let entries = console.app.decider.recent();
    let page = ring::page(&entries, &filter, after, limit);
    ok_json(&json!({
        "entries": page.entries.iter().map(|e| ring::entry_json(e)).collect::<Vec<_>>(),
        "cursor": page.cursor,
        "truncated": page.truncated,
        "gap": page.gap,
        "kept": entries.len(),
        "oldest_ms": entries.first().map(|e| e.time_ms),
    }))
}

/// Allowed and denied decisions per 5 s over the last `minutes` (1 to 30, 5 by default), from the
/// ring's timestamps.
pub(super) async fn rate(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut params = match params(query.as_deref(), &["minutes"]) {
        Ok(params) => params,
        Err(message) => return invalid(message),
    };
    let minutes = match params.remove("minutes").as_deref() {
        None => 5,
        Some(text) => match text.parse::<i64>() {
            Ok(m) if (1..=MAX_RATE_MINUTES).contains(&m) => m,
            _ => return invalid("minutes is a whole number from 1 to 30"),
        },
    };
    let buckets = usize::try_from(minutes * 60_000 / RATE_BUCKET_MS).unwrap_or(0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let entries = console.app.decider.recent();
    let counts = ring::rate(&entries, now_ms, RATE_BUCKET_MS, buckets);
    ok_json(&json!({
        "bucket_ms": RATE_BUCKET_MS,
        "end_ms": now_ms,
        "allow": counts.iter().map(|c| c.0).collect::<Vec<_>>(),
        "deny": counts.iter().map(|c| c.1).collect::<Vec<_>>(),
        "kept": entries.len(),
        "oldest_ms": entries.first().map(|e| e.time_ms),
    }))
}

/// The ExercisedPermissions RPC's answer for `user` or `role`.
pub(super) async fn exercised(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Response {
    let subject = match subject(query.as_deref()) {
        Ok(subject) => subject,
        Err(message) => return invalid(message),
    };
    let asked = pb::ExercisedPermissionsRequest {
        subject: Some(subject),
        since: None,
    };
    match console
        .service
        .exercised_permissions(console_call(asked))
        .await
    {
        Ok(answer) => {
            let r = answer.into_inner();
            let permissions: Vec<Value> = r
                .permissions
                .iter()
                .map(|p| {
                    json!({
                        "action": p.action,
                        "resource_kind": p.resource_kind,
                        "resource_id_pattern": p.resource_id_pattern,
                        "pattern": p.pattern,
                        "allowed": p.allowed,
                        "count": p.count,
                        "first_seen": p.first_seen.as_ref().map(timestamp),
                        "last_seen": p.last_seen.as_ref().map(timestamp),
                        "rule": p.rule,
                    })
                })
                .collect();
            ok_json(&json!({
                "permissions": permissions,
                "entries_kept": r.entries_kept,
                "oldest_entry": r.oldest_entry.as_ref().map(timestamp),
            }))
        }
        Err(status) => status_response(&status),
    }
}

/// The SuggestPolicy RPC's answer for `user` or `role`, with a file name for the download.
pub(super) async fn suggest(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Response {
    let subject = match subject(query.as_deref()) {
        Ok(subject) => subject,
        Err(message) => return invalid(message),
    };
    let file = match &subject.who {
        Some(pb::subject::Who::UserId(id)) => format!("user-{}.yaml", file_safe(id)),
        Some(pb::subject::Who::Role(role)) => format!("role-{}.yaml", file_safe(role)),
        None => "suggested.yaml".to_owned(),
    };
    let asked = pb::SuggestPolicyRequest {
        subject: Some(subject),
        since: None,
    };
    match console.service.suggest_policy(console_call(asked)).await {
        Ok(answer) => {
            let r = answer.into_inner();
            ok_json(&json!({
                "policy": r.policy, "rules": r.rules, "notes": r.notes, "file": file,
            }))
        }
        Err(status) => status_response(&status),
    }
}

/// The PolicyStatus RPC's answer, with the reload history, the last error by file and line, the
/// rules per resource kind and the shadow set's differences.
pub(super) async fn policy(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(message) = params(query.as_deref(), &[]) {
        return invalid(message);
    }
    let asked = pb::PolicyStatusRequest {};
    let r = match console.service.policy_status(console_call(asked)).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_response(&status),
    };
    let store = &console.app.policies;
    let policy = store.current();
    let status = store.status().clone();
    let history: Vec<Value> = status.history.iter().rev().map(reload_json).collect();
    let last_error = status.last_error.as_ref().map(|(at, text)| {
        let errors = status
            .history
            .back()
            .filter(|r| !r.errors.is_empty())
            .map(|r| r.errors.iter().map(load_error_json).collect::<Vec<_>>());
        json!({"at": at_json(*at), "text": text, "errors": errors.unwrap_or_default()})
    });
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| json!({"path": f.path, "sha256": f.sha256}))
        .collect();
    ok_json(&json!({
        "revision": r.policy_revision,
        "loaded_at": r.loaded_at.as_ref().map(timestamp),
        "policy_dir": r.policy_dir,
        "files": files,
        "reloads_ok": r.reloads_ok,
        "reloads_failed": r.reloads_failed,
        "history": history,
        "last_error": last_error,
        "strategy": policy.strategy(),
        "modes": policy.modes(),
        "kinds": rules_by_kind(&policy),
        "shadow": shadow_json(&console),
    }))
}

fn reload_json(reload: &crate::store::Reload) -> Value {
    json!({
        "at": at_json(reload.at),
        "ok": reload.errors.is_empty(),
        "revision": reload.revision,
        "errors": reload.errors.iter().map(load_error_json).collect::<Vec<_>>(),
    })
}

fn load_error_json(error: &crate::policy::LoadError) -> Value {
    json!({"file": error.file, "line": error.line, "message": error.message})
}

fn at_json(seconds: i64) -> Value {
    timestamp(&prost_types::Timestamp { seconds, nanos: 0 })
}

/// Every candidate (rule, chat policy, permission) under each kind it covers (`*`: every kind), in
/// the set's order.
fn rules_by_kind(policy: &PolicySet) -> BTreeMap<String, Vec<Value>> {
    let mut kinds: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for candidate in policy.candidates() {
        let effect = match &candidate.body {
            RuleBody::Rule { effect, .. } => json!(effect),
            RuleBody::Permission { .. } => json!("permission"),
        };
        let actions = match &candidate.actions {
            Actions::Any => vec!["*".to_owned()],
            Actions::Only(actions) => actions.clone(),
        };
        let row = json!({
            "name": candidate.name,
            "origin": candidate.origin.to_string(),
            "priority": candidate.priority,
            "effect": effect,
            "actions": actions,
            "id": candidate.id,
            "description": candidate.description,
        });
        let names = match &candidate.kinds {
            Kinds::Any => vec!["*".to_owned()],
            Kinds::Only(kinds) => kinds.clone(),
        };
        for kind in names {
            kinds.entry(kind).or_default().push(row.clone());
        }
    }
    kinds
}

/// The shadow set's revision and where it decided otherwise, from the ring; `null` without one.
fn shadow_json(console: &Console) -> Value {
    let Some(shadow) = console.app.decider.shadow() else {
        return Value::Null;
    };
    let entries = console.app.decider.recent();
    let (count, latest) = ring::shadow_differences(&entries, SHADOW_LISTED);
    json!({
        "revision": shadow.current().revision(),
        "differences_in_ring": count,
        "latest": latest.iter().map(|e| ring::entry_json(e)).collect::<Vec<_>>(),
    })
}

/// A message for the service, marked as the console's.
fn console_call<T>(message: T) -> tonic::Request<T> {
    let mut extensions = tonic::Extensions::new();
    extensions.insert(FromConsole);
    tonic::Request::from_parts(MetadataMap::new(), extensions, message)
}

/// `user` or `role`, exactly one, as the RPCs' subject.
fn subject(query: Option<&str>) -> Result<pb::Subject, String> {
    let mut params = params(query, &["user", "role"])?;
    let who = match (params.remove("user"), params.remove("role")) {
        (Some(user), None) if !user.trim().is_empty() => pb::subject::Who::UserId(user),
        (None, Some(role)) if !role.trim().is_empty() => pb::subject::Who::Role(role),
        _ => return Err("give one of user or role".to_owned()),
    };
    Ok(pb::Subject { who: Some(who) })
}

/// The query's parameters: each at most once, each named in `names`, each at most
/// [`MAX_PARAMETER_BYTES`].
fn params(query: Option<&str>, names: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !names.contains(&name.as_ref()) {
            return Err(format!(
                "unknown parameter; this call reads: {}",
                names.join(", ")
            ));
        }
        if value.len() > MAX_PARAMETER_BYTES {
            return Err(format!("{name} is longer than 256 bytes"));
        }
        if params
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(format!("{name} is given more than once"));
        }
    }
    Ok(params)
}

fn limit(text: Option<String>) -> Result<usize, String> {
    match text.as_deref() {
        None | Some("") => Ok(ring::DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=ring::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err("limit is a whole number from 1 to 200".to_owned()),
        },
    }
}

/// Letters, digits, `-` and `_` of `name` (others become `_`), at most 64: a download's file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_json<M: serde::de::DeserializeOwned>(body: Body) -> Result<M, String> {
    let read = axum::body::to_bytes(body, MAX_EVALUATE_BYTES);
    let bytes = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) | Err(_) => {
            return Err("the body must arrive at once and be at most 64 KiB".to_owned());
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("the body is not the expected JSON: {e}"))
}
