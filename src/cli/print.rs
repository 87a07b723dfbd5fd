//! How the commands print what a server answered: readable text by default, one JSON object with
//! `--json`. Principal kinds are printed in the crate's one lower-case vocabulary
//! ([`PrincipalKind::as_str`]), in text and JSON alike.

use serde_json::{Value, json};

use super::commands::time_text;
use crate::grpc::pb;
use crate::principal::PrincipalKind;

/// `value` as pretty JSON.
pub fn json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A wire kind's name: `user`, `server`, `scoped`, `anonymous`, or `unspecified`.
fn kind_name(kind: i32) -> &'static str {
    crate::grpc::principal_kind_from_pb(kind).map_or("unspecified", PrincipalKind::as_str)
}

fn seconds(timestamp: Option<&prost_types::Timestamp>) -> Option<i64> {
    timestamp.map(|t| t.seconds)
}

fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    seconds(timestamp).map(|s| time_text(s.saturating_mul(1000)))
}

/// A principal from the wire, in the shape `token verify` prints a locally verified one.
pub fn principal_json(principal: &pb::Principal) -> Value {
    let scope = principal.scope.as_ref().map(|s| {
        let optional = |text: &str| Some(text.to_owned()).filter(|t| !t.is_empty());
        json!({
            "resource": s.resource,
            "action": s.action,
            "feed_id": optional(&s.feed_id),
            "user_id": optional(&s.user_id),
        })
    });
    let channel_roles: serde_json::Map<String, Value> = principal
        .channel_roles
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "kind": kind_name(principal.kind),
        "user_id": principal.user_id,
        "roles": principal.roles,
        "groups": principal.groups,
        "channel_roles": channel_roles,
        "scope": scope,
        "claims": crate::grpc::struct_to_map(principal.claims.clone()),
        "issued_at": seconds(principal.issued_at.as_ref()),
        "expires_at": seconds(principal.expires_at.as_ref()),
    })
}

/// A principal's JSON (as [`principal_json`] or `token verify` build it) as aligned lines.
pub fn principal_text(principal: &Value) -> String {
    let list = |key: &str| match principal.get(key).and_then(Value::as_array) {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    };
    let object = |key: &str| match principal.get(key) {
        Some(Value::Object(map)) if !map.is_empty() => Value::Object(map.clone()).to_string(),
        _ => "-".to_owned(),
    };
    let time = |key: &str, absent: &str| {
        principal
            .get(key)
            .and_then(Value::as_i64)
            .map_or(absent.to_owned(), |s| time_text(s.saturating_mul(1000)))
    };
    let text = |key: &str| {
        principal
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("-")
            .to_owned()
    };
    let rows = [
        ("kind", text("kind")),
        ("user_id", text("user_id")),
        ("roles", list("roles")),
        ("groups", list("groups")),
        ("channel_roles", object("channel_roles")),
        ("scope", object("scope")),
        ("issued_at", time("issued_at", "-")),
        ("expires_at", time("expires_at", "never")),
        ("claims", object("claims")),
    ];
    table(&rows)
}

/// Two columns, the first padded to its widest entry.
fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `check`'s text: the verdict and rule, the reason, the principal, and the trace when asked for.
pub fn check_text(response: &pb::CheckResponse) -> String {
    let verdict = if response.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    let dry_run = if response.dry_run { " (dry run)" } else { "" };
    let mut out = format!(
        "{verdict}{dry_run} by rule {} (policy revision {})\n{}",
        response.rule, response.policy_revision, response.reason
    );
    if let Some(principal) = &response.principal {
        let who = if principal.user_id.is_empty() {
            String::new()
        } else {
            format!(" {}", principal.user_id)
        };
        out.push_str(&format!("\nprincipal: {}{who}", kind_name(principal.kind)));
    }
    if let Some(explanation) = &response.explanation {
        out.push_str(&format!("\nstrategy: {}", explanation.strategy));
        for entry in &explanation.entries {
            let detail = if entry.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", entry.detail)
            };
            out.push_str(&format!(
                "\n  {} {} (priority {}): {}{detail}",
                entry.origin, entry.name, entry.priority, entry.result
            ));
            // The part of the rule that did not hold is what the reader came for.
            for part in &entry.details {
                out.push_str(&format!("\n    - {part}"));
            }
            for policy in &entry.policies {
                push_policy(&mut out, policy, 2);
            }
        }
    }
    out
}

fn push_policy(out: &mut String, policy: &pb::PolicyResult, depth: usize) {
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
    out.push_str(&format!(
        "\n{}policy {}: {verdict}{logic}{detail}",
        "  ".repeat(depth),
        policy.name
    ));
    for child in &policy.children {
        push_policy(out, child, depth + 1);
    }
}

fn policy_json(policy: &pb::PolicyResult) -> Value {
    json!({
        "name": policy.name,
        "granted": policy.granted,
        "negative": policy.negative,
        "detail": policy.detail,
        "children": policy.children.iter().map(policy_json).collect::<Vec<_>>(),
    })
}

/// `check --json`.
pub fn check_json(response: &pb::CheckResponse) -> Value {
    let explanation = response.explanation.as_ref().map(|e| {
        json!({
            "strategy": e.strategy,
            "entries": e.entries.iter().map(|entry| json!({
                "name": entry.name,
                "origin": entry.origin,
                "priority": entry.priority,
                "actions": entry.actions,
                "result": entry.result,
                "detail": entry.detail,
                "policies": entry.policies.iter().map(policy_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "allowed": response.allowed,
        "rule": response.rule,
        "reason": response.reason,
        "policy_revision": response.policy_revision,
        "dry_run": response.dry_run,
        "principal": response.principal.as_ref().map(principal_json),
        "explanation": explanation,
    })
}

/// `status`'s text: the serving set, its files, and the reload history with the last error.
pub fn status_text(status: &pb::PolicyStatusResponse) -> String {
    let dir = if status.policy_dir.is_empty() {
        "(the built-in preset)".to_owned()
    } else {
        status.policy_dir.clone()
    };
    let last_error = match rfc3339(status.last_error_at.as_ref()) {
        Some(at) if !status.last_error.is_empty() => format!("at {at}"),
        _ => "none".to_owned(),
    };
    let rows = [
        ("policy revision", status.policy_revision.clone()),
        (
            "loaded at",
            rfc3339(status.loaded_at.as_ref()).unwrap_or_else(|| "-".to_owned()),
        ),
        ("policy dir", dir),
        (
            "reloads",
            format!("{} ok, {} failed", status.reloads_ok, status.reloads_failed),
        ),
        ("last error", last_error),
    ];
    let mut out = table(&rows);
    if !status.last_error.is_empty() {
        for line in status.last_error.lines() {
            out.push_str(&format!("\n  {line}"));
        }
    }
    out.push_str(&format!("\nfiles ({})", status.files.len()));
    let width = status.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for file in &status.files {
        out.push_str(&format!("\n  {:width$}  sha256:{}", file.path, file.sha256));
    }
    out
}

/// `status --json`.
pub fn status_json(status: &pb::PolicyStatusResponse) -> Value {
    json!({
        "policy_revision": status.policy_revision,
        "loaded_at": rfc3339(status.loaded_at.as_ref()),
        "policy_dir": Some(&status.policy_dir).filter(|d| !d.is_empty()),
        "files": status.files.iter().map(|f| json!({"path": f.path, "sha256": f.sha256})).collect::<Vec<_>>(),
        "reloads_ok": status.reloads_ok,
        "reloads_failed": status.reloads_failed,
        "last_error": Some(&status.last_error).filter(|e| !e.is_empty()),
        "last_error_at": rfc3339(status.last_error_at.as_ref()),
    })
}
