//! Conditions (`when`, `unless`) and what they refer to: lists, operands, the kinds' declarations.

use std::collections::BTreeMap;

use super::super::cel::CelCondition;
use super::super::file::{self, ConditionDoc, OneOrMany, Spanned};
use super::super::model::{Condition, KindDecl, Kinds, Operand, PrincipalFilter};
use super::parse::Namespace;
use super::references::Family;
use super::{At, Compiler, hint};

/// Collects the operands `condition` compares with the caller.
pub(super) fn compared_with_principal(condition: &Condition, out: &mut Vec<Operand>) {
    match condition {
        Condition::All(all) | Condition::Any(all) => {
            for c in all {
                compared_with_principal(c, out);
            }
        }
        Condition::Not(inner) => compared_with_principal(inner, out),
        Condition::IsPrincipal(op) | Condition::RefersToPrincipal(op) => out.push(op.clone()),
        _ => {}
    }
}

/// Whether the kind's id pattern captures `name`.
pub(super) fn has_capture(decl: Option<&KindDecl>, name: &str) -> bool {
    decl.and_then(|d| d.id_pattern.as_ref())
        .is_some_and(|p| p.capture_names().iter().any(|n| n == name))
}

pub(super) fn unknown_capture(name: &str) -> String {
    format!("captures.{name} is not a capture of the kind's id pattern")
}

impl Compiler {
    /// Every named kind must declare what a condition needs (an owner, a channel). Reported at the
    /// item (`at`), whose `resource` names the kinds.
    pub(super) fn require_decl(
        &mut self,
        kinds: &Kinds,
        has: fn(&KindDecl) -> bool,
        what: &str,
        at: At,
    ) {
        let Kinds::Only(kinds) = kinds else { return };
        for kind in kinds {
            // A kind not declared, or one that did not read, has its own error.
            if self.kinds.get(kind).is_some_and(|decl| !has(decl)) {
                self.error(
                    at,
                    format!("kind '{kind}' declares no {what} (add it under resources)"),
                );
            }
        }
    }

    /// The condition `doc` of the item at `item`.
    pub(super) fn condition(
        &mut self,
        doc: &Spanned<ConditionDoc>,
        kinds: &Kinds,
        item: At,
    ) -> Condition {
        let here = item.of(doc);
        let errors_before = self.errors.len();
        let mut all = Vec::new();
        self.caller_conditions(doc, kinds, item, &mut all);
        self.operand_conditions(doc, kinds, item, &mut all);
        self.nested_conditions(doc, kinds, item, &mut all);
        match all.len() {
            0 => {
                // A condition whose parts all failed has had its errors reported already. One that
                // holds nothing without an error (`{}`, `equals: {}`) must not load either: it would
                // silently never match, and a deny rule that never matches is a grant.
                if self.errors.len() == errors_before {
                    self.error(here, "empty condition");
                }
                Condition::Any(Vec::new())
            }
            1 => all.pop().unwrap_or(Condition::Any(Vec::new())),
            _ => Condition::All(all),
        }
    }

    /// The keys about the caller: roles, groups, users, principal, channel_roles, owner.
    fn caller_conditions(
        &mut self,
        doc: &ConditionDoc,
        kinds: &Kinds,
        item: At,
        all: &mut Vec<Condition>,
    ) {
        if let Some(roles) = &doc.roles {
            let names = self.non_empty(roles, "roles", item);
            self.use_names(Family::Role, &names, item.of(roles));
            all.push(Condition::Roles(names));
        }
        if let Some(groups) = &doc.groups {
            let names = self.non_empty(groups, "groups", item);
            self.use_names(Family::Group, &names, item.of(groups));
            all.push(Condition::Groups(names));
        }
        if let Some(users) = &doc.users {
            all.push(Condition::Users(self.non_empty(users, "users", item)));
        }
        if let Some(kind) = &doc.principal {
            let filter = file::principal(kind).unwrap_or_else(|e| {
                self.error(item.of(kind), e);
                PrincipalFilter::User
            });
            all.push(Condition::Principal(filter));
        }
        if let Some(roles) = &doc.channel_roles {
            self.require_decl(kinds, |d| d.channel.is_some(), "channel", item);
            let names = self.non_empty(roles, "channel_roles", item);
            self.use_names(Family::Role, &names, item.of(roles));
            let roles = names;
            all.push(Condition::ChannelRoles(roles));
        }
        match doc.owner.as_ref().map(|owner| (**owner, owner)) {
            Some((true, _)) => {
                self.require_decl(kinds, |d| d.owner.is_some(), "owner", item);
                all.push(Condition::Owner);
            }
            Some((false, owner)) => self.error(
                item.of(owner),
                "owner: false is not a condition; leave it out",
            ),
            None => {}
        }
    }

    /// The keys that compare operands: is_principal, refers_to_principal, in, equals, cel.
    fn operand_conditions(
        &mut self,
        doc: &ConditionDoc,
        kinds: &Kinds,
        item: At,
        all: &mut Vec<Condition>,
    ) {
        if let Some(texts) = &doc.is_principal {
            for text in (**texts).clone().into_vec() {
                if let Some(op) = self.operand(&text, kinds, item.of(texts)) {
                    all.push(Condition::IsPrincipal(op));
                }
            }
        }
        if let Some(texts) = &doc.refers_to_principal {
            for text in (**texts).clone().into_vec() {
                if let Some(op) = self.operand(&text, kinds, item.of(texts)) {
                    all.push(Condition::RefersToPrincipal(op));
                }
            }
        }
        // An empty map or list compares nothing; it is an error, never a condition that holds.
        for (key, empty) in [
            (
                "is_principal",
                doc.is_principal.as_deref().is_some_and(no_names),
            ),
            (
                "refers_to_principal",
                doc.refers_to_principal.as_deref().is_some_and(no_names),
            ),
            ("in", doc.in_.as_ref().is_some_and(BTreeMap::is_empty)),
            (
                "equals",
                doc.equals.as_ref().is_some_and(BTreeMap::is_empty),
            ),
        ] {
            if empty {
                self.error(item, format!("{key} needs one or more operands"));
            }
        }
        for (text, values) in doc.in_.iter().flatten() {
            let values = self.values(values.clone(), item.of(text));
            if let Some(op) = self.operand(text, kinds, item.of(text)) {
                all.push(Condition::In(op, values));
            }
        }
        for (text, value) in doc.equals.iter().flatten() {
            if let Some(op) = self.operand(text, kinds, item.of(text)) {
                all.push(Condition::Equals(op, value.clone()));
            }
        }
        if let Some(source) = &doc.cel {
            match CelCondition::compile(source) {
                Ok(cel) => all.push(Condition::Cel(cel)),
                Err(e) => self.error(item.of(source), format!("cel: {e}")),
            }
        }
    }

    /// The keys that combine conditions: all, any, not.
    fn nested_conditions(
        &mut self,
        doc: &ConditionDoc,
        kinds: &Kinds,
        item: At,
        all: &mut Vec<Condition>,
    ) {
        if let Some(items) = &doc.all {
            let conditions: Vec<Condition> = items
                .iter()
                .map(|c| self.condition(c, kinds, item))
                .collect();
            // All of nothing always holds: `when: {all: []}` would make a rule unconditional.
            if conditions.is_empty() {
                self.error(item, "all needs one or more conditions");
            }
            all.push(Condition::All(conditions));
        }
        if let Some(items) = &doc.any {
            let conditions: Vec<Condition> = items
                .iter()
                .map(|c| self.condition(c, kinds, item))
                .collect();
            if conditions.is_empty() {
                self.error(item.of(items), "any needs one or more conditions");
            }
            all.push(Condition::Any(conditions));
        }
        if let Some(inner) = &doc.not {
            all.push(Condition::Not(Box::new(self.condition(inner, kinds, item))));
        }
    }

    fn non_empty(&mut self, values: &Spanned<Vec<String>>, field: &str, item: At) -> Vec<String> {
        if values.is_empty() {
            self.error(item.of(values), format!("{field} needs one or more values"));
        }
        values.to_vec()
    }

    /// A list of values, or `$name` of a list.
    pub(super) fn values(&mut self, values: OneOrMany, at: At) -> Vec<String> {
        match values {
            OneOrMany::One(name) => match name.strip_prefix('$') {
                Some(list) => match self.lists.get(list) {
                    Some(values) => values.clone(),
                    None if self.is_broken(Namespace::List, list) => Vec::new(),
                    None => {
                        let hint = hint::suggest(list, self.lists.keys().map(String::as_str));
                        self.error(at, format!("list '{list}' is not defined{hint}"));
                        Vec::new()
                    }
                },
                None => vec![name],
            },
            OneOrMany::Many(values) => values,
        }
    }

    fn operand(&mut self, text: &str, kinds: &Kinds, at: At) -> Option<Operand> {
        match Operand::parse(text) {
            Ok(op) => {
                // Kinds not declared, or that did not read, have their own errors.
                if let (Operand::Capture(name), Kinds::Only(names)) = (&op, kinds)
                    && names
                        .iter()
                        .filter_map(|kind| self.kinds.get(kind))
                        .any(|decl| !has_capture(Some(decl), name))
                {
                    self.error(at, unknown_capture(name));
                }
                Some(op)
            }
            Err(e) => {
                self.error(at, e);
                None
            }
        }
    }
}

/// An empty list of operands.
fn no_names(names: &OneOrMany) -> bool {
    matches!(names, OneOrMany::Many(names) if names.is_empty())
}
