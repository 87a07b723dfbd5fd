//! What items refer to by name. Kinds and actions must be declared under `resources` (an error with a
//! hint otherwise); roles and groups come from tokens, so they cannot be checked, but one used only
//! once and spelt almost like another is a warning.

use std::collections::{BTreeMap, BTreeSet};

use super::super::model::{Actions, Kinds};
use super::parse::Namespace;
use super::{At, Compiler, hint};

/// What a role or group name is: roles (global and channel roles alike) and groups are compared apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Family {
    Role,
    Group,
}

impl Family {
    fn word(self) -> &'static str {
        match self {
            Family::Role => "role",
            Family::Group => "group",
        }
    }
}

/// Where a name is used, and by which item ("rule 'x'").
type Use = (At, Option<String>);

/// Every use of a role or group name.
#[derive(Default)]
pub(super) struct Usage {
    uses: BTreeMap<(Family, String), Vec<Use>>,
}

impl Compiler {
    /// Each kind in `kinds` must be declared under `resources`.
    pub(super) fn declared_kinds(&mut self, kinds: &[String], at: At) {
        for kind in kinds {
            if kind != "*"
                && !kind.trim().is_empty()
                && !self.kinds.contains_key(kind)
                && !self.is_broken(Namespace::Kind, kind)
            {
                let hint = hint::suggest(kind, self.kinds.keys().map(String::as_str));
                self.error(
                    at,
                    format!("resource kind '{kind}' is not declared under resources{hint}"),
                );
            }
        }
    }

    /// Each action in `actions` must be declared by every kind of `kinds`, or for every kind (`*`)
    /// by at least one. Kinds not declared are reported by [`Self::declared_kinds`]; a kind that did
    /// not read is reported on its own, and the actions it may have declared are not judged.
    pub(super) fn declared_actions(&mut self, kinds: &Kinds, actions: &Actions, at: At) {
        let Actions::Only(actions) = actions else {
            return;
        };
        for action in actions.iter().filter(|a| !a.trim().is_empty()) {
            match kinds {
                Kinds::Any => {
                    let declared = self.kinds.values().any(|d| d.actions.contains(action));
                    if !declared && !self.any_broken_kind() {
                        let all: BTreeSet<&str> = self
                            .kinds
                            .values()
                            .flat_map(|d| d.actions.iter().map(String::as_str))
                            .collect();
                        let hint = hint::suggest(action, all.iter().copied());
                        self.error(
                            at,
                            format!("no resource kind declares action '{action}'{hint}"),
                        );
                    }
                }
                Kinds::Only(kinds) => self.declared_action(kinds, action, at),
            }
        }
    }

    fn declared_action(&mut self, kinds: &[String], action: &str, at: At) {
        for kind in kinds {
            let Some(decl) = self.kinds.get(kind) else {
                continue;
            };
            if !decl.actions.iter().any(|a| a == action) {
                let hint = hint::suggest(action, decl.actions.iter().map(String::as_str));
                self.error(
                    at,
                    format!("kind '{kind}' declares no action '{action}'{hint}"),
                );
            }
        }
    }

    /// Records that the current item names these roles or groups.
    pub(super) fn use_names(&mut self, family: Family, names: &[String], at: At) {
        for name in names.iter().filter(|n| n.as_str() != "*") {
            self.usage
                .uses
                .entry((family, name.clone()))
                .or_default()
                .push((at, self.item.clone()));
        }
    }

    /// Every role (`Family::Role`, channel roles included) or group the set's items name.
    pub(super) fn names_used(&self, family: Family) -> BTreeSet<String> {
        self.usage
            .uses
            .keys()
            .filter(|(f, _)| *f == family)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// A role or group named once in the whole set and spelt within a small edit distance of another
    /// one the set uses is most likely a typo: a warning with the other name.
    pub(super) fn role_warnings(&mut self) {
        let usage = std::mem::take(&mut self.usage);
        for ((family, name), uses) in &usage.uses {
            let [(at, item)] = uses.as_slice() else {
                continue;
            };
            let others = usage
                .uses
                .keys()
                .filter(|(f, _)| f == family)
                .map(|(_, other)| other.as_str());
            let Some(other) = hint::closest(name, others) else {
                continue;
            };
            let word = family.word();
            let message = format!("{word} '{name}' is used nowhere else (did you mean '{other}'?)");
            let outer = std::mem::replace(&mut self.item, item.clone());
            self.warning(*at, message);
            self.item = outer;
        }
    }
}
