//! One decision as the decision log keeps it. Never a token, a secret or a request body: who, what, on
//! what, the answer, the rule and revision that gave it, and how long it took.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A logged decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionEntry {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// Milliseconds since the Unix epoch (the same instant as `time`), for filtering.
    pub time_ms: i64,
    pub principal_id: String,
    /// `user`, `server`, `scoped` or `anonymous`.
    pub principal_kind: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: String,
    /// The policy's verdict: `allow` or `deny`.
    pub decision: String,
    /// What the caller was told; differs from `decision` only in a dry run.
    pub allowed: bool,
    pub rule: String,
    /// The deciding rule's id pattern, when it has one: the ids it covers, not just this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id_pattern: Option<String>,
    pub revision: String,
    /// `enforcing`, `permissive` or `disabled`.
    pub mode: String,
    #[serde(default)]
    pub dry_run: bool,
    /// `check`, `batch`, `ext_authz` or `http`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowVerdict>,
    /// The W3C trace id of the request, when it had one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    pub latency_us: u64,
}

/// What the shadow set would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowVerdict {
    pub decision: String,
    pub rule: String,
    pub revision: String,
}

/// Fields that can be masked in the decision log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskedField {
    PrincipalId,
    Roles,
    ResourceId,
    TraceId,
}

impl MaskedField {
    pub fn parse(name: &str) -> Option<MaskedField> {
        match name.trim() {
            "principal_id" => Some(MaskedField::PrincipalId),
            "roles" => Some(MaskedField::Roles),
            "resource_id" => Some(MaskedField::ResourceId),
            "trace_id" => Some(MaskedField::TraceId),
            _ => None,
        }
    }
}

impl DecisionEntry {
    /// The entry with `fields` replaced by a pseudonym (`sha256:` and 16 hex digits of the value's
    /// hash), so entries can still be grouped by the masked value but not read.
    pub fn masked(&self, fields: &[MaskedField]) -> DecisionEntry {
        let mut entry = self.clone();
        for field in fields {
            match field {
                MaskedField::PrincipalId => entry.principal_id = pseudonym(&entry.principal_id),
                MaskedField::ResourceId => entry.resource_id = pseudonym(&entry.resource_id),
                MaskedField::TraceId => entry.trace_id = pseudonym(&entry.trace_id),
                MaskedField::Roles => {
                    entry.roles = entry.roles.iter().map(|r| pseudonym(r)).collect();
                }
            }
        }
        entry
    }
}

/// `sha256:` and the first 16 hex digits of the value's SHA-256; empty stays empty.
pub fn pseudonym(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An entry for unit tests: user `user<n>` read `feed user:bob` at `time_ms` n.
#[cfg(test)]
pub(super) fn sample(n: i64) -> DecisionEntry {
    DecisionEntry {
        time: String::new(),
        time_ms: n,
        principal_id: format!("user{n}"),
        principal_kind: "user".to_owned(),
        roles: vec!["admin".to_owned()],
        action: "read".to_owned(),
        resource_kind: "feed".to_owned(),
        resource_id: "user:bob".to_owned(),
        decision: "allow".to_owned(),
        allowed: true,
        rule: "r".to_owned(),
        rule_id_pattern: None,
        revision: "x".to_owned(),
        mode: "enforcing".to_owned(),
        dry_run: false,
        source: "check".to_owned(),
        route: None,
        shadow: None,
        trace_id: String::new(),
        latency_us: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_pseudonymizes_only_the_named_fields() {
        let entry = sample(0);
        let masked = entry.masked(&[MaskedField::PrincipalId]);
        assert!(masked.principal_id.starts_with("sha256:"));
        assert_eq!(masked.principal_id.len(), "sha256:".len() + 16);
        assert_eq!(masked.resource_id, "user:bob");
        assert_eq!(
            masked.principal_id,
            entry.masked(&[MaskedField::PrincipalId]).principal_id
        );
    }
}
