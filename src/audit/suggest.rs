//! A least-privilege policy from what was exercised: allow exactly the (kind, id, action) that were
//! allowed, for the one user or role, and nothing else (default deny). Ids are generalized into
//! patterns only where the deciding rule's own id pattern did; otherwise each id is named as it was
//! seen. The result is a policy file in our language that loads as is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::exercised::{Exercised, Subject};

/// A suggested policy file and what it could not express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub yaml: String,
    pub rules: usize,
    pub notes: Vec<String>,
}

/// Characters with a meaning in id patterns; an id holding one cannot be named literally.
const PATTERN_CHARACTERS: [char; 3] = ['*', '{', '}'];

/// Writes the policy for `subject` from `exercised` (only allowed items are granted).
pub fn suggest(subject: &Subject, exercised: &[Exercised], generated_at: &str) -> Suggestion {
    // (kind, id or pattern) -> actions
    let mut grants: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut notes = Vec::new();
    for item in exercised.iter().filter(|e| e.allowed) {
        if !item.is_pattern && item.resource_id_pattern.contains(PATTERN_CHARACTERS) {
            notes.push(format!(
                "{} on {} '{}' is left out: the id holds pattern characters",
                item.action, item.resource_kind, item.resource_id_pattern
            ));
            continue;
        }
        let actions = grants
            .entry((item.resource_kind.clone(), item.resource_id_pattern.clone()))
            .or_default();
        if !actions.contains(&item.action) {
            actions.push(item.action.clone());
        }
    }
    let (who, condition) = match subject {
        Subject::User(id) => (format!("user '{id}'"), format!("users: [{}]", quote(id))),
        Subject::Role(role) => (
            format!("role '{role}'"),
            format!("roles: [{}]", quote(role)),
        ),
    };
    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Least-privilege policy for {who}, generated {generated_at}"
    );
    let _ = writeln!(
        yaml,
        "# from the decisions it was allowed; everything else is denied by default."
    );
    if grants.is_empty() {
        yaml.push_str("rules: []\n");
    } else {
        yaml.push_str("rules:\n");
    }
    for (n, ((kind, id), actions)) in grants.iter().enumerate() {
        let mut actions = actions.clone();
        actions.sort();
        let _ = writeln!(yaml, "  - name: {}", quote(&format!("exercised-{}", n + 1)));
        let _ = writeln!(yaml, "    effect: allow");
        let _ = writeln!(yaml, "    resource: {}", quote(kind));
        let _ = writeln!(yaml, "    id: {}", quote(id));
        let list: Vec<String> = actions.iter().map(|a| quote(a)).collect();
        let _ = writeln!(yaml, "    actions: [{}]", list.join(", "));
        let _ = writeln!(yaml, "    when:");
        let _ = writeln!(yaml, "      {condition}");
    }
    Suggestion {
        yaml,
        rules: grants.len(),
        notes,
    }
}

/// A YAML double-quoted string.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}
