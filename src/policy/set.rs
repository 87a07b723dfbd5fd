//! The compiled policy set: rules indexed by resource kind and action, so finding the candidate rules of a
//! request costs two hash lookups however many rules there are.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::rule::{Actions, Effect, Rule, ScopeBinding};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileError {
    #[error("rule {index} has no name")]
    UnnamedRule { index: usize },
    #[error("rule '{0}' is defined twice")]
    DuplicateRule(String),
    #[error("rule '{0}' names no resource kind")]
    NoKinds(String),
    #[error("rule '{0}' names no action")]
    NoActions(String),
    #[error("policy set could not be hashed")]
    Hash,
}

/// Candidate rules for one action of one kind, denies first, each group in declaration order.
type Candidates = Box<[usize]>;

#[derive(Debug, Default)]
struct KindIndex {
    by_action: HashMap<String, Candidates>,
    /// For actions no rule of this kind names: only the rules that cover every action.
    other_actions: Candidates,
}

/// A validated, indexed set of rules with the content hash that identifies it.
#[derive(Debug)]
pub struct PolicySet {
    revision: String,
    rules: Vec<Rule>,
    index: HashMap<String, KindIndex>,
    scope_bindings: BTreeMap<String, ScopeBinding>,
}

/// What the revision hashes: everything that can change a decision.
#[derive(Serialize)]
struct Hashed<'a> {
    rules: &'a [Rule],
    scope_bindings: &'a BTreeMap<String, ScopeBinding>,
}

impl PolicySet {
    pub fn compile(
        rules: Vec<Rule>,
        scope_bindings: BTreeMap<String, ScopeBinding>,
    ) -> Result<Self, CompileError> {
        validate(&rules)?;
        let revision = revision_of(&rules, &scope_bindings)?;
        let index = build_index(&rules);
        Ok(PolicySet {
            revision,
            rules,
            index,
            scope_bindings,
        })
    }

    /// The content hash of the set: equal sets have equal revisions.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that may decide `action` on `kind`, deny rules first.
    pub fn candidates<'s>(&'s self, kind: &str, action: &str) -> impl Iterator<Item = &'s Rule> {
        let ids: &[usize] = match self.index.get(kind) {
            Some(kind_index) => kind_index
                .by_action
                .get(action)
                .unwrap_or(&kind_index.other_actions),
            None => &[],
        };
        ids.iter().filter_map(|&i| self.rules.get(i))
    }

    pub fn scope_binding(&self, kind: &str) -> Option<&ScopeBinding> {
        self.scope_bindings.get(kind)
    }
}

fn validate(rules: &[Rule]) -> Result<(), CompileError> {
    let mut names = HashSet::new();
    for (index, rule) in rules.iter().enumerate() {
        if rule.name.is_empty() {
            return Err(CompileError::UnnamedRule { index });
        }
        if !names.insert(rule.name.as_str()) {
            return Err(CompileError::DuplicateRule(rule.name.clone()));
        }
        if rule.kinds.is_empty() {
            return Err(CompileError::NoKinds(rule.name.clone()));
        }
        if matches!(&rule.actions, Actions::Only(actions) if actions.is_empty()) {
            return Err(CompileError::NoActions(rule.name.clone()));
        }
    }
    Ok(())
}

fn revision_of(
    rules: &[Rule],
    scope_bindings: &BTreeMap<String, ScopeBinding>,
) -> Result<String, CompileError> {
    let canonical = serde_json::to_vec(&Hashed {
        rules,
        scope_bindings,
    })
    .map_err(|_| CompileError::Hash)?;
    let digest = Sha256::digest(&canonical);
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn build_index(rules: &[Rule]) -> HashMap<String, KindIndex> {
    // Rule ids per kind: those naming specific actions, and those covering any action.
    let mut named: HashMap<&str, BTreeMap<&str, Vec<usize>>> = HashMap::new();
    let mut wildcard: HashMap<&str, Vec<usize>> = HashMap::new();
    for (id, rule) in rules.iter().enumerate() {
        for kind in &rule.kinds {
            match &rule.actions {
                Actions::Any => wildcard.entry(kind).or_default().push(id),
                Actions::Only(actions) => {
                    let by_action = named.entry(kind).or_default();
                    for action in actions {
                        by_action.entry(action).or_default().push(id);
                    }
                }
            }
        }
    }
    let kinds: HashSet<&str> = named.keys().chain(wildcard.keys()).copied().collect();
    kinds
        .into_iter()
        .map(|kind| {
            let any = wildcard.get(kind).map(Vec::as_slice).unwrap_or_default();
            let by_action = named
                .get(kind)
                .into_iter()
                .flatten()
                .map(|(action, ids)| {
                    let merged: Vec<usize> = ids.iter().chain(any).copied().collect();
                    ((*action).to_owned(), order(rules, merged))
                })
                .collect();
            let index = KindIndex {
                by_action,
                other_actions: order(rules, any.to_vec()),
            };
            (kind.to_owned(), index)
        })
        .collect()
}

/// Deny rules first, then allow rules, each in declaration order: a deny always overrides an allow.
fn order(rules: &[Rule], mut ids: Vec<usize>) -> Candidates {
    ids.sort_unstable();
    ids.dedup();
    ids.sort_by_key(|&id| {
        rules
            .get(id)
            .map(|r| r.effect == Effect::Allow)
            .unwrap_or(true)
    });
    ids.into_boxed_slice()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rule(name: &str, effect: Effect, kind: &str, actions: Actions) -> Rule {
        Rule {
            name: name.into(),
            description: String::new(),
            effect,
            kinds: vec![kind.into()],
            actions,
            conditions: vec![],
        }
    }

    #[test]
    fn candidates_put_denies_first_and_include_wildcards() {
        let set = PolicySet::compile(
            vec![
                rule("a", Effect::Allow, "feed", Actions::Any),
                rule(
                    "b",
                    Effect::Allow,
                    "feed",
                    Actions::Only(vec!["read".into()]),
                ),
                rule(
                    "c",
                    Effect::Deny,
                    "feed",
                    Actions::Only(vec!["read".into()]),
                ),
            ],
            BTreeMap::new(),
        )
        .unwrap();
        let names: Vec<&str> = set
            .candidates("feed", "read")
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        let names: Vec<&str> = set
            .candidates("feed", "delete")
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
        assert_eq!(set.candidates("users", "read").count(), 0);
    }

    #[test]
    fn revision_changes_with_content_only() {
        let make = |kind: &str| {
            PolicySet::compile(
                vec![rule("a", Effect::Allow, kind, Actions::Any)],
                BTreeMap::new(),
            )
            .unwrap()
        };
        assert_eq!(make("feed").revision(), make("feed").revision());
        assert_ne!(make("feed").revision(), make("users").revision());
        assert_eq!(make("feed").revision().len(), 16);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let result = PolicySet::compile(
            vec![
                rule("a", Effect::Allow, "feed", Actions::Any),
                rule("a", Effect::Deny, "feed", Actions::Any),
            ],
            BTreeMap::new(),
        );
        assert_eq!(result.err(), Some(CompileError::DuplicateRule("a".into())));
    }
}
