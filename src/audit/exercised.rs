//! Which permissions a principal actually exercised, from decision log entries: the facts a
//! least-privilege policy is written from.

use std::collections::BTreeMap;

use super::entry::DecisionEntry;
use crate::policy::Pattern;

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

/// Ids that fold into one row of [`group_by_id`]: a resource kind (`*` for any) and an id pattern.
#[derive(Debug, Clone)]
pub struct IdGroup {
    pub kind: String,
    pub pattern: Pattern,
}

impl IdGroup {
    /// `KIND:ID_PATTERN`, e.g. `feed:user:*` (the kind `feed`, the ids `user:*`), in the policy
    /// language's id pattern syntax; `*:PATTERN` for every kind.
    pub fn parse(text: &str) -> Result<IdGroup, String> {
        let (kind, pattern) = text
            .split_once(':')
            .filter(|(kind, _)| !kind.is_empty())
            .ok_or_else(|| format!("'{text}' is not KIND:ID_PATTERN, e.g. feed:user:*"))?;
        Ok(IdGroup {
            kind: kind.to_owned(),
            pattern: Pattern::parse(pattern)?,
        })
    }

    fn covers(&self, item: &Exercised) -> bool {
        !item.is_pattern
            && (self.kind == "*" || self.kind == item.resource_kind)
            && self.pattern.is_match(&item.resource_id_pattern)
    }
}

/// Folds the literal ids the first covering group matches into one row per (kind, group, action,
/// decision), with summed counts, the earliest first-seen and the latest last-seen (and its rule).
/// Rows whose id is a rule's pattern, or that no group covers, stay as they are. Ordered as
/// [`exercised`] orders.
pub fn group_by_id(items: Vec<Exercised>, groups: &[IdGroup]) -> Vec<Exercised> {
    let mut rows: BTreeMap<(String, String, String, bool), Exercised> = BTreeMap::new();
    for mut item in items {
        if let Some(group) = groups.iter().find(|g| g.covers(&item)) {
            item.resource_id_pattern = group.pattern.source().to_owned();
            item.is_pattern = true;
        }
        let key = (
            item.resource_kind.clone(),
            item.resource_id_pattern.clone(),
            item.action.clone(),
            item.allowed,
        );
        match rows.get_mut(&key) {
            None => {
                rows.insert(key, item);
            }
            Some(row) => {
                row.count = row.count.saturating_add(item.count);
                row.first_seen_ms = row.first_seen_ms.min(item.first_seen_ms);
                if item.last_seen_ms >= row.last_seen_ms {
                    row.last_seen_ms = item.last_seen_ms;
                    row.rule = item.rule;
                }
            }
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, id: &str, count: u64, last: i64) -> Exercised {
        Exercised {
            action: "read".to_owned(),
            resource_kind: kind.to_owned(),
            resource_id_pattern: id.to_owned(),
            is_pattern: false,
            allowed: true,
            rule: format!("rule-{last}"),
            count,
            first_seen_ms: last - 10,
            last_seen_ms: last,
        }
    }

    #[test]
    fn grouped_ids_fold_into_one_row_with_summed_counts_and_the_latest_time() {
        let items = vec![
            item("feed", "user:a", 2, 100),
            item("feed", "user:b", 3, 300),
            item("feed", "timeline:a", 1, 200),
            item("users", "user:c", 7, 50),
        ];
        let groups = [IdGroup::parse("feed:user:*").unwrap()];
        let rows = group_by_id(items, &groups);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let grouped = rows
            .iter()
            .find(|r| r.resource_id_pattern == "user:*")
            .unwrap();
        assert_eq!(grouped.resource_kind, "feed");
        assert!(grouped.is_pattern);
        assert_eq!(grouped.count, 5);
        assert_eq!(grouped.last_seen_ms, 300);
        assert_eq!(grouped.first_seen_ms, 90);
        assert_eq!(grouped.rule, "rule-300");
        // Another kind with a matching id is not folded.
        assert!(
            rows.iter()
                .any(|r| r.resource_kind == "users" && r.resource_id_pattern == "user:c")
        );
    }

    #[test]
    fn a_group_needs_a_kind_and_a_valid_pattern() {
        assert!(IdGroup::parse("user").is_err());
        assert!(IdGroup::parse(":user:*").is_err());
        assert!(IdGroup::parse("feed:{unclosed").is_err());
        assert!(IdGroup::parse("*:**").is_ok());
    }
}
