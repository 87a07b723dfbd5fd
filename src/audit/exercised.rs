//! Which permissions a principal actually exercised, from decision log entries: the facts a
//! least-privilege policy is written from.

use std::collections::BTreeMap;

use super::entry::DecisionEntry;

/// Whose decisions to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Role(String),
}

impl Subject {
    fn covers(&self, entry: &DecisionEntry) -> bool {
        match self {
            Subject::User(id) => entry.principal_id == *id,
            Subject::Role(role) => entry.roles.iter().any(|r| r == role),
        }
    }
}

/// One distinct (action, kind, id or id pattern, decision) and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exercised {
    pub action: String,
    pub resource_kind: String,
    /// The deciding rule's id pattern when it had one, else the id itself.
    pub resource_id_pattern: String,
    /// Whether `resource_id_pattern` is a pattern (from the rule) rather than a literal id.
    pub is_pattern: bool,
    /// The policy's verdict (a dry run's "would deny" counts as deny).
    pub allowed: bool,
    pub rule: String,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// Aggregates `entries` of `subject` at or after `since_ms`, ordered by kind, id and action.
/// Server-token decisions are left out: they were not decided by a rule.
pub fn exercised(entries: &[DecisionEntry], subject: &Subject, since_ms: i64) -> Vec<Exercised> {
    let mut seen: BTreeMap<(String, String, String, bool), Exercised> = BTreeMap::new();
    for entry in entries {
        if entry.time_ms < since_ms || !subject.covers(entry) || entry.principal_kind == "server" {
            continue;
        }
        let allowed = entry.decision == "allow";
        let (pattern, is_pattern) = match &entry.rule_id_pattern {
            Some(pattern) if allowed => (pattern.clone(), true),
            _ => (entry.resource_id.clone(), false),
        };
        let key = (
            entry.resource_kind.clone(),
            pattern.clone(),
            entry.action.clone(),
            allowed,
        );
        let item = seen.entry(key).or_insert_with(|| Exercised {
            action: entry.action.clone(),
            resource_kind: entry.resource_kind.clone(),
            resource_id_pattern: pattern,
            is_pattern,
            allowed,
            rule: entry.rule.clone(),
            count: 0,
            first_seen_ms: entry.time_ms,
            last_seen_ms: entry.time_ms,
        });
        item.count += 1;
        item.first_seen_ms = item.first_seen_ms.min(entry.time_ms);
        if entry.time_ms >= item.last_seen_ms {
            item.last_seen_ms = entry.time_ms;
            item.rule = entry.rule.clone();
        }
    }
    seen.into_values().collect()
}
