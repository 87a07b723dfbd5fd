//! The JSON API: `Check`, `CheckBatch`, `AllowedActions` and `Capabilities` as JSON over `POST`, for
//! pages that would rather not speak gRPC-Web. Requests are the messages' JSON (field names as in the
//! proto); each is turned into the message, asked of the same service with the caller's
//! `Authorization` header as its metadata, and the answer is turned back into JSON. A status becomes
//! its HTTP status with `{"code", "message"}`.
//!
//! `token`, `anonymous` and `principal` are read only so that the service refuses them with the same
//! words as over gRPC-Web; any other unknown field is a 400.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::{Browser, MAX_BROWSER_BODY_BYTES};
use crate::grpc::pb::gatehouse_server::Gatehouse;
use crate::grpc::{CallScope, FromBrowser, map_to_struct, pb, struct_to_map};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceJson {
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// The fields a browser may not send, read with their types so that the service refuses them by name.
#[derive(Deserialize, Default)]
struct Credentials {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    anonymous: Option<bool>,
    #[serde(default)]
    principal: Option<Value>,
}

impl Credentials {
    /// The message's credential fields as the service sees them; `null` and the proto's defaults
    /// (`""`, `false`) are the fields left unset.
    fn into_fields(self) -> (String, bool, Option<pb::PrincipalInput>) {
        let principal = self
            .principal
            .filter(|p| !p.is_null())
            .map(|_| pb::PrincipalInput::default());
        (
            self.token.unwrap_or_default(),
            self.anonymous.unwrap_or(false),
            principal,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckJson {
    action: String,
    resource: ResourceJson,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    explain: bool,
    #[serde(flatten)]
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckItemJson {
    action: String,
    resource: ResourceJson,
    #[serde(default)]
    context: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBatchJson {
    items: Vec<CheckItemJson>,
    #[serde(default)]
    explain: bool,
    #[serde(flatten)]
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedActionsJson {
    resource: ResourceJson,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(flatten)]
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilitiesJson {
    resources: Vec<ResourceJson>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(flatten)]
    credentials: Credentials,
}

fn resource(r: ResourceJson) -> pb::Resource {
    pb::Resource {
        kind: r.kind,
        id: r.id,
        attributes: Some(map_to_struct(&r.attributes)),
    }
}

fn context(map: &Map<String, Value>) -> Option<prost_types::Struct> {
    Some(map_to_struct(map))
}

pub(super) async fn check(State(browser): State<Arc<Browser>>, request: Request) -> Response {
    answer(request, |m: CheckJson, call| async move {
        let (token, anonymous, principal) = m.credentials.into_fields();
        let asked = pb::CheckRequest {
            token,
            anonymous,
            principal,
            action: m.action,
            resource: Some(resource(m.resource)),
            context: context(&m.context),
            explain: m.explain,
        };
        let r = browser.service.check(call.with(asked)).await?.into_inner();
        Ok(check_response_json(&r))
    })
    .await
}

pub(super) async fn check_batch(State(browser): State<Arc<Browser>>, request: Request) -> Response {
    answer(request, |m: CheckBatchJson, call| async move {
        let (token, anonymous, principal) = m.credentials.into_fields();
        let asked = pb::CheckBatchRequest {
            token,
            anonymous,
            principal,
            items: m
                .items
                .into_iter()
                .map(|i| pb::CheckItem {
                    action: i.action,
                    resource: Some(resource(i.resource)),
                    context: context(&i.context),
                })
                .collect(),
            explain: m.explain,
        };
        let r = browser
            .service
            .check_batch(call.with(asked))
            .await?
            .into_inner();
        let results: Vec<Value> = r
            .results
            .iter()
            .map(|c| {
                json!({
                    "allowed": c.allowed,
                    "rule": c.rule,
                    "reason": c.reason,
                    "dry_run": c.dry_run,
                    "explanation": c.explanation.as_ref().map(explanation),
                })
            })
            .collect();
        Ok(json!({
            "results": results,
            "principal": r.principal.as_ref().map(principal_json),
            "policy_revision": r.policy_revision,
        }))
    })
    .await
}

pub(super) async fn allowed_actions(
    State(browser): State<Arc<Browser>>,
    request: Request,
) -> Response {
    answer(request, |m: AllowedActionsJson, call| async move {
        let (token, anonymous, principal) = m.credentials.into_fields();
        let asked = pb::AllowedActionsRequest {
            token,
            anonymous,
            principal,
            resource: Some(resource(m.resource)),
            context: context(&m.context),
        };
        let r = browser
            .service
            .allowed_actions(call.with(asked))
            .await?
            .into_inner();
        Ok(json!({
            "actions": r.actions,
            "principal": r.principal.as_ref().map(principal_json),
            "policy_revision": r.policy_revision,
        }))
    })
    .await
}

pub(super) async fn capabilities(
    State(browser): State<Arc<Browser>>,
    request: Request,
) -> Response {
    answer(request, |m: CapabilitiesJson, call| async move {
        let (token, anonymous, principal) = m.credentials.into_fields();
        let asked = pb::CapabilitiesRequest {
            token,
            anonymous,
            principal,
            resources: m.resources.into_iter().map(resource).collect(),
            context: context(&m.context),
            actions: m.actions,
        };
        let r = browser
            .service
            .capabilities(call.with(asked))
            .await?
            .into_inner();
        let resources: Vec<Value> = r
            .resources
            .iter()
            .map(|c| json!({"kind": c.kind, "id": c.id, "actions": c.actions}))
            .collect();
        Ok(json!({
            "resources": resources,
            "principal": r.principal.as_ref().map(principal_json),
            "policy_revision": r.policy_revision,
        }))
    })
    .await
}

/// What the service needs of the HTTP request besides the message: its `Authorization` header as
/// metadata, and the call's scope and browser mark as extensions.
struct Call {
    metadata: MetadataMap,
    extensions: tonic::Extensions,
}

impl Call {
    fn with<T>(self, message: T) -> tonic::Request<T> {
        tonic::Request::from_parts(self.metadata, self.extensions, message)
    }
}

/// Reads the JSON body (bounded in size and time by the listener and the browser gate), runs `ask`
/// and answers its JSON, or the status it failed with.
async fn answer<M, F, Fut>(request: Request, ask: F) -> Response
where
    M: DeserializeOwned,
    F: FnOnce(M, Call) -> Fut,
    Fut: std::future::Future<Output = Result<Value, Status>>,
{
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return status_response(&Status::invalid_argument(
            "the body must be JSON: send Content-Type: application/json",
        ));
    }
    let message = match read_json::<M>(body).await {
        Ok(message) => message,
        Err(status) => return status_response(&status),
    };
    // The service reads the caller's token from the browser mark alone; the metadata stays empty.
    let mut extensions = tonic::Extensions::new();
    if let Some(scope) = parts.extensions.get::<Arc<CallScope>>() {
        extensions.insert(Arc::clone(scope));
    }
    if let Some(browser) = parts.extensions.get::<FromBrowser>() {
        extensions.insert(browser.clone());
    }
    let call = Call {
        metadata: MetadataMap::new(),
        extensions,
    };
    match ask(message, call).await {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(status) => status_response(&status),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_json<M: DeserializeOwned>(body: Body) -> Result<M, Status> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BROWSER_BODY_BYTES)
        .await
        .map_err(|_| Status::invalid_argument("the body is over 256 KiB or was cut short"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Status::invalid_argument(format!("the body is not the expected JSON: {e}")))
}

/// A status as HTTP: its status code, `Retry-After` when it says how long to wait, and
/// `{"code", "message"}`.
pub(crate) fn status_response(status: &Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = format!("{:?}", status.code());
    let body = json!({"code": snake(&code), "message": status.message()});
    let mut response = json_response(http, &body);
    if let Some(wait) = status.metadata().get("retry-after")
        && let Ok(wait) = HeaderValue::from_bytes(wait.as_bytes())
    {
        response.headers_mut().insert(header::RETRY_AFTER, wait);
    }
    response
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `PermissionDenied` → `permission_denied`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Check's answer as JSON: the JSON door's form, which the operator console's evaluation answers too.
pub(crate) fn check_response_json(r: &pb::CheckResponse) -> Value {
    json!({
        "allowed": r.allowed,
        "rule": r.rule,
        "reason": r.reason,
        "dry_run": r.dry_run,
        "principal": r.principal.as_ref().map(principal_json),
        "policy_revision": r.policy_revision,
        "explanation": r.explanation.as_ref().map(explanation),
    })
}

fn principal_json(p: &pb::Principal) -> Value {
    let kind = pb::principal::Kind::try_from(p.kind)
        .map(|k| k.as_str_name().to_ascii_lowercase())
        .unwrap_or_default();
    json!({
        "kind": kind,
        "user_id": p.user_id,
        "roles": p.roles,
        "groups": p.groups,
        "channel_roles": p.channel_roles,
        "issuer": p.issuer,
        "claims": struct_to_map(p.claims.clone()),
        "issued_at": p.issued_at.as_ref().map(timestamp),
        "expires_at": p.expires_at.as_ref().map(timestamp),
    })
}

/// A timestamp as RFC 3339, as proto3's JSON writes it; outside the years 1970 to 9999 (which a token
/// may claim) the seconds since the epoch as a number.
pub(crate) fn timestamp(t: &prost_types::Timestamp) -> Value {
    const YEAR_10000: u64 = 253_402_300_800;
    match u64::try_from(t.seconds) {
        Ok(seconds) if seconds < YEAR_10000 => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
            Value::String(humantime::format_rfc3339_seconds(at).to_string())
        }
        _ => Value::from(t.seconds),
    }
}

fn explanation(e: &pb::Explanation) -> Value {
    let entries: Vec<Value> = e
        .entries
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "origin": t.origin,
                "priority": t.priority,
                "actions": t.actions,
                "result": t.result,
                "detail": t.detail,
                "details": t.details,
                "policies": t.policies.iter().map(policy_result).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"strategy": e.strategy, "entries": entries})
}

fn policy_result(p: &pb::PolicyResult) -> Value {
    json!({
        "name": p.name,
        "granted": p.granted,
        "negative": p.negative,
        "detail": p.detail,
        "details": p.details,
        "children": p.children.iter().map(policy_result).collect::<Vec<_>>(),
    })
}
