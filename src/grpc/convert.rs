//! Conversions between protobuf well-known types and the JSON values the rest of the crate uses.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp};
use serde_json::{Map, Number, Value};

use super::pb;
use crate::engine::{Explanation, PolicyTrace, TraceResult};
use crate::policy::Effect;
use crate::principal::{Principal, PrincipalKind};

pub fn struct_to_map(value: Option<Struct>) -> Map<String, Value> {
    value
        .map(|s| s.fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        .unwrap_or_default()
}

fn to_json(value: prost_types::Value) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(to_json).collect()),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_map(Some(s))),
    }
}

/// protobuf numbers are doubles; whole ones become JSON integers so `30` does not turn into `30.0` in a
/// token.
fn number_to_json(n: f64) -> Value {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

pub fn map_to_struct(map: &Map<String, Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect(),
    }
}

fn from_json(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(from_json).collect(),
        }),
        Value::Object(map) => Kind::StructValue(map_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub(super) fn timestamp(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The wire kind as the crate names it; `None` for `KIND_UNSPECIFIED` or a kind this build does not
/// know.
pub fn principal_kind_from_pb(kind: i32) -> Option<PrincipalKind> {
    match pb::principal::Kind::try_from(kind).ok()? {
        pb::principal::Kind::User => Some(PrincipalKind::User),
        pb::principal::Kind::Server => Some(PrincipalKind::Server),
        pb::principal::Kind::Scoped => Some(PrincipalKind::Scoped),
        pb::principal::Kind::Anonymous => Some(PrincipalKind::Anonymous),
        pb::principal::Kind::Service => Some(PrincipalKind::Service),
        pb::principal::Kind::Unspecified => None,
    }
}

pub(super) fn principal_to_pb(principal: &Principal) -> pb::Principal {
    let kind = match principal.kind {
        PrincipalKind::User => pb::principal::Kind::User,
        PrincipalKind::Server => pb::principal::Kind::Server,
        PrincipalKind::Scoped => pb::principal::Kind::Scoped,
        PrincipalKind::Anonymous => pb::principal::Kind::Anonymous,
        PrincipalKind::Service => pb::principal::Kind::Service,
    };
    pb::Principal {
        kind: kind as i32,
        user_id: principal.user_id.clone(),
        roles: principal.roles.clone(),
        groups: principal.groups.clone(),
        scope: principal.scope.as_ref().map(|scope| pb::Scope {
            resource: scope.resource.to_string(),
            action: scope.action.to_string(),
            feed_id: scope
                .feed_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            user_id: scope
                .user_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }),
        claims: Some(map_to_struct(&principal.claims)),
        issued_at: principal.issued_at.map(timestamp),
        expires_at: principal.expires_at.map(timestamp),
        issuer: principal.issuer.clone().unwrap_or_default(),
        channel_roles: principal.channel_roles.clone().into_iter().collect(),
    }
}

/// A principal a trusted backend describes, as a user principal.
pub(super) fn principal_from_input(input: pb::PrincipalInput) -> Principal {
    Principal {
        roles: input.roles,
        groups: input.groups,
        channel_roles: input.channel_roles.into_iter().collect(),
        claims: struct_to_map(input.claims),
        ..Principal::user(input.user_id)
    }
}

/// The explanation as the API returns it; the command line prints it from this form too.
pub fn explanation_to_pb(explanation: &Explanation) -> pb::Explanation {
    pb::Explanation {
        strategy: explanation.strategy.to_string(),
        entries: explanation
            .entries
            .iter()
            .map(|entry| {
                let (result, detail) = match &entry.result {
                    TraceResult::Vote(Effect::Allow) => ("permit", String::new()),
                    TraceResult::Vote(Effect::Deny) => ("deny", String::new()),
                    TraceResult::NotApplicable(why) => ("not_applicable", why.clone()),
                    TraceResult::Error(e) => ("error", e.clone()),
                };
                pb::TraceEntry {
                    name: entry.name.clone(),
                    origin: entry.origin.to_owned(),
                    priority: entry.priority,
                    actions: entry.actions.clone(),
                    result: result.to_owned(),
                    detail,
                    policies: entry.policies.iter().map(policy_result).collect(),
                    details: entry.parts.iter().map(|p| p.detail.clone()).collect(),
                }
            })
            .collect(),
    }
}

fn policy_result(trace: &PolicyTrace) -> pb::PolicyResult {
    pb::PolicyResult {
        name: trace.name.clone(),
        granted: trace.granted,
        negative: trace.negative,
        detail: trace.detail.clone(),
        children: trace.children.iter().map(policy_result).collect(),
        details: trace.parts.iter().map(|p| p.detail.clone()).collect(),
    }
}

/// An issuer's status as `IdentityStatus` returns it: key ids and algorithms, never key material.
/// The secrets' key ids (never the secrets) and the secret file's reloads.
pub(super) fn secrets_status_to_pb(
    secrets: &crate::token::Secrets,
    file: Option<&crate::store::SecretFile>,
) -> pb::SecretsStatus {
    let key_ids = secrets
        .key_ids()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let Some(file) = file else {
        return pb::SecretsStatus {
            key_ids,
            ..pb::SecretsStatus::default()
        };
    };
    let status = file.status();
    pb::SecretsStatus {
        key_ids,
        file: file.path().display().to_string(),
        reloads_ok: status.reloads_ok,
        reloads_failed: status.reloads_failed,
        last_error: status
            .last_error
            .map(|(_, message)| message)
            .unwrap_or_default(),
        loaded_at: Some(timestamp(status.loaded_at)),
    }
}

pub(super) fn tls_status_to_pb(status: crate::tls::TlsStatus) -> pb::TlsStatus {
    pb::TlsStatus {
        enabled: true,
        client_auth: status.client_auth.to_owned(),
        certificate_not_after: Some(timestamp(status.not_after)),
        reloads_ok: status.reloads_ok,
        reloads_failed: status.reloads_failed,
    }
}

pub(super) fn issuer_status_to_pb(report: crate::jwks::IssuerReport) -> pb::IssuerStatus {
    let status = report.status;
    pb::IssuerStatus {
        issuer: status.issuer,
        jwks_uri: status.jwks_uri.unwrap_or_default(),
        keys: report
            .keys
            .into_iter()
            .map(|(kid, alg)| pb::IssuerKeyInfo { kid, alg })
            .collect(),
        key_age_seconds: report.key_age_seconds,
        fetches_ok: status.fetches_ok,
        fetches_failed: status.fetches_failed.values().sum(),
        last_error: status.last_error.unwrap_or_default(),
        ready: report.ready,
        refetches: status.refetches,
        refetches_suppressed: status.refetches_suppressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_struct_keeping_integers() {
        let original = json!({"n": 30, "f": 1.5, "s": "x", "l": [true, null], "o": {"k": "v"}});
        let map = original.as_object().cloned().unwrap_or_default();
        let back = struct_to_map(Some(map_to_struct(&map)));
        assert_eq!(Value::Object(back), original);
    }
}
