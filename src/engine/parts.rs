//! Which part of a condition decided: the role the principal lacks, the operand that is not the
//! principal, the CEL sub-expression that is false. Computed only for explanations, after the
//! decision, by evaluating the condition's parts again; a decision without an explanation never
//! comes here.
//!
//! Each part is phrased twice (see [`Part`]): for the caller, with the request's values and the
//! principal's own memberships, and for logs, with names only.

use serde_json::Value;

use super::eval::Eval;
use super::explain::Part;
use crate::policy::{CelCondition, Condition, Operand, PolicyBody, PrincipalFilter};
use crate::principal::PrincipalKind;

/// The longest request value quoted in a part, in bytes; longer ones are cut, so that an
/// explanation's size does not follow the request's.
const MAX_QUOTED_BYTES: usize = 128;

impl Eval<'_, '_> {
    /// Appends to `out` why `condition` does not evaluate to `want` (or fails): for `all`, the first
    /// part that does not hold (every part when it holds and should not); for `any`, every part (the
    /// first that holds when it should not); for `not`, its condition the other way round.
    pub(super) fn unmet(&self, condition: &Condition, want: bool, out: &mut Vec<Part>) {
        match condition {
            Condition::All(items) if want => {
                if let Some(item) = items.iter().find(|c| self.holds(c) != Ok(true)) {
                    self.unmet(item, true, out);
                }
            }
            Condition::Any(items) if !want => {
                if let Some(item) = items.iter().find(|c| self.holds(c) == Ok(true)) {
                    self.unmet(item, false, out);
                }
            }
            Condition::All(items) | Condition::Any(items) => {
                for item in items {
                    if self.holds(item) != Ok(want) {
                        self.unmet(item, want, out);
                    }
                }
            }
            Condition::Not(inner) => self.unmet(inner, !want, out),
            Condition::Cel(cel) => self.unmet_cel(cel, want, out),
            leaf => out.push(self.leaf(leaf)),
        }
    }

    /// What a native condition required and what the request held.
    fn leaf(&self, condition: &Condition) -> Part {
        let principal = self.request.principal;
        match condition {
            Condition::Roles(roles) => self.roles(roles),
            Condition::Groups(groups) => self.groups(groups),
            Condition::Users(users) => self.users(users),
            Condition::Principal(filter) => {
                let wanted = match filter {
                    PrincipalFilter::User => "a user",
                    PrincipalFilter::Anonymous => "an anonymous",
                    PrincipalFilter::Authenticated => "an authenticated",
                };
                same(format!(
                    "principal: requires {wanted} principal; the principal is {}",
                    principal.kind.as_str()
                ))
            }
            Condition::ChannelRoles(roles) => self.channel_roles(roles),
            Condition::Owner => match self.decl.and_then(|d| d.owner.as_ref()) {
                None => same("owner: the kind declares no owner operand".to_owned()),
                Some(operand) => self.against_principal("owner", operand, |v, id| v == id),
            },
            Condition::IsPrincipal(operand) => {
                self.against_principal("is_principal", operand, |v, id| v == id)
            }
            Condition::RefersToPrincipal(operand) => {
                self.against_principal("refers_to_principal", operand, |v, id| {
                    v == id || v.strip_prefix("SU:") == Some(id)
                })
            }
            Condition::In(operand, values) => self.in_values(operand, values),
            Condition::Equals(operand, value) => self.equals(operand, value),
            Condition::All(_) | Condition::Any(_) | Condition::Not(_) | Condition::Cel(_) => {
                same("the condition does not hold".to_owned())
            }
        }
    }

    /// Why a named policy's own condition (before its logic) is not `want`.
    pub(super) fn policy_parts(&self, body: &PolicyBody, want: bool) -> Vec<Part> {
        match body {
            PolicyBody::Role(roles) => vec![self.roles(roles)],
            PolicyBody::Group(groups) => vec![self.groups(groups)],
            PolicyBody::User(users) => vec![self.users(users)],
            PolicyBody::Time { .. } => vec![same(format!(
                "time: the request's time is {} the policy's window",
                if want { "outside" } else { "inside" }
            ))],
            PolicyBody::Condition(cel) => {
                let mut out = Vec::new();
                self.unmet_cel(cel, want, &mut out);
                out
            }
            // Its policies are explained as its children.
            PolicyBody::Aggregated { .. } => Vec::new(),
        }
    }

    fn unmet_cel(&self, cel: &CelCondition, want: bool, out: &mut Vec<Part>) {
        out.extend(
            cel.explain(&self.cel_input(), want)
                .into_iter()
                .map(|line| {
                    let line = format!("cel: {line}");
                    Part {
                        detail: line.clone(),
                        redacted: line,
                    }
                }),
        );
    }

    fn roles(&self, roles: &[String]) -> Part {
        let required = format!("requires one of roles {}", list(roles));
        let has = self.effective_roles();
        let held = has.iter().any(|r| roles.contains(r));
        membership(required, &has, held)
    }

    fn groups(&self, groups: &[String]) -> Part {
        let principal = self.request.principal;
        let required = format!("requires one of groups {}", list(groups));
        let held = principal.groups.iter().any(|g| groups.contains(g));
        membership(required, &principal.groups, held)
    }

    fn users(&self, users: &[String]) -> Part {
        let principal = self.request.principal;
        let is_user = principal.kind == PrincipalKind::User && !principal.user_id.is_empty();
        let held = is_user && users.contains(&principal.user_id);
        Part {
            detail: format!(
                "requires one of users {}; the principal is {}",
                list(users),
                self.who()
            ),
            redacted: format!(
                "requires one of users {}; the principal is {}one of them",
                list(users),
                if held { "" } else { "not " }
            ),
        }
    }

    /// The principal's global roles, with Stream's implicit ones.
    fn effective_roles(&self) -> Vec<String> {
        let principal = self.request.principal;
        match principal.kind {
            PrincipalKind::User if principal.roles.is_empty() => vec!["user".to_owned()],
            PrincipalKind::Anonymous => {
                let mut roles = principal.roles.clone();
                roles.push("anonymous".to_owned());
                roles
            }
            _ => principal.roles.clone(),
        }
    }

    /// `'bob'` for a user, else the principal's kind.
    fn who(&self) -> String {
        let principal = self.request.principal;
        if principal.kind == PrincipalKind::User && !principal.user_id.is_empty() {
            quote(&principal.user_id)
        } else {
            principal.kind.as_str().to_owned()
        }
    }

    fn channel_roles(&self, roles: &[String]) -> Part {
        let required = format!("channel_roles: requires one of {}", list(roles));
        let Some(operand) = self.decl.and_then(|d| d.channel.as_ref()) else {
            return same(format!("{required}; the kind declares no channel operand"));
        };
        let channel = match self.value(operand) {
            Ok(channel) => channel,
            Err(missing) => return same(format!("{required}; {missing}")),
        };
        let role = self.request.principal.channel_roles.get(channel);
        let held = role.is_some_and(|r| roles.contains(r));
        Part {
            detail: format!(
                "{required} in the channel {operand} ({}); the principal's role there is {}",
                quote(channel),
                role.map_or_else(|| "none".to_owned(), |r| quote(r))
            ),
            redacted: format!(
                "{required} in the channel {operand}; the principal's role there is {}one of them",
                if held { "" } else { "not " }
            ),
        }
    }

    /// `owner`, `is_principal` and `refers_to_principal`: the operand against the principal's id.
    fn against_principal(
        &self,
        key: &str,
        operand: &Operand,
        matches: impl Fn(&str, &str) -> bool,
    ) -> Part {
        let principal = self.request.principal;
        if principal.kind != PrincipalKind::User || principal.user_id.is_empty() {
            return same(format!(
                "{key}: the principal is {}, not a user",
                principal.kind.as_str()
            ));
        }
        let value = match self.value(operand) {
            Ok(value) => value,
            Err(missing) => return same(format!("{key}: {missing}")),
        };
        let verb = if key == "refers_to_principal" {
            ("refers to", "does not refer to")
        } else {
            ("is", "is not")
        };
        if matches(value, &principal.user_id) {
            same(format!("{key}: {operand} {} the principal", verb.0))
        } else {
            Part {
                detail: format!(
                    "{key}: {operand} is {}, the principal is {}",
                    quote(value),
                    quote(&principal.user_id)
                ),
                redacted: format!("{key}: {operand} {} the principal", verb.1),
            }
        }
    }

    fn in_values(&self, operand: &Operand, values: &[String]) -> Part {
        let value = match self.value(operand) {
            Ok(value) => value,
            Err(missing) => return same(format!("in: {missing}")),
        };
        let not = if values.iter().any(|v| v == value) {
            ""
        } else {
            "not "
        };
        Part {
            detail: format!(
                "in: {operand} is {}, {not}one of {}",
                quote(value),
                list(values)
            ),
            redacted: format!("in: {operand} is {not}one of {}", list(values)),
        }
    }

    fn equals(&self, operand: &Operand, wanted: &str) -> Part {
        let value = match self.value(operand) {
            Ok(value) => value,
            Err(missing) => return same(format!("equals: {missing}")),
        };
        if value == wanted {
            return same(format!("equals: {operand} is {}", quote(wanted)));
        }
        Part {
            detail: format!(
                "equals: {operand} is {}, not {}",
                quote(value),
                quote(wanted)
            ),
            redacted: format!("equals: {operand} is not {}", quote(wanted)),
        }
    }

    /// The operand's value, or why there is none (`attributes.x is absent`), naming no value.
    fn value(&self, operand: &Operand) -> Result<&str, String> {
        if let Some(value) = self.operand(operand) {
            return Ok(value);
        }
        let request = self.request;
        let raw = match operand {
            Operand::Attribute(key) => request.resource.attributes.get(key),
            Operand::Context(key) => request.context.get(key),
            _ => None,
        };
        Err(match raw {
            None | Some(Value::Null) => format!("{operand} is absent"),
            Some(Value::String(_)) => format!("{operand} is empty"),
            Some(other) => format!("{operand} is a {}, not a string", json_type(other)),
        })
    }
}

/// `roles`/`groups`: what was required and what the principal holds.
fn membership(required: String, has: &[String], held: bool) -> Part {
    let redacted = format!(
        "{required}; the principal has {} of them",
        if held { "one" } else { "none" }
    );
    Part {
        detail: format!("{required}; the principal has {}", list(has)),
        redacted,
    }
}

/// A part that names no request value, so both phrasings are the same.
fn same(text: String) -> Part {
    Part {
        detail: text.clone(),
        redacted: text,
    }
}

/// `[a, b]`, each name cut at [`MAX_QUOTED_BYTES`].
fn list(names: &[String]) -> String {
    let names: Vec<&str> = names.iter().map(|n| cut(n)).collect();
    format!("[{}]", names.join(", "))
}

/// `'value'`, cut at [`MAX_QUOTED_BYTES`].
fn quote(value: &str) -> String {
    let short = cut(value);
    if short.len() < value.len() {
        format!("'{short}...'")
    } else {
        format!("'{short}'")
    }
}

fn cut(value: &str) -> &str {
    let mut end = value.len().min(MAX_QUOTED_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::{Map, Value, json};

    use super::super::{Part, Request, Resource, decide_explained, explain_summary};
    use crate::policy::{PolicySet, Source, compile};
    use crate::principal::Principal;

    const POLICY: &str = r#"
resources:
  - kind: doc
    owner: attributes.owner_id
    channel: attributes.channel
    actions: [read, edit, share, publish, view]
policies:
  - name: editors
    type: role
    roles: [editor]
  - name: same-branch
    type: condition
    condition: "principal.kind == 'user' && principal.claims.branch == resource.attributes.branch"
permissions:
  - name: view
    type: scope
    resource: doc
    scopes: [view]
    policies: [editors, same-branch]
    strategy: affirmative
rules:
  - name: by-role
    effect: allow
    resource: doc
    actions: [read]
    when: { roles: [editor, admin] }
  - name: by-owner
    effect: allow
    resource: doc
    actions: [edit]
    when: { owner: true }
  - name: by-status
    effect: allow
    resource: doc
    actions: [publish]
    when:
      all:
        - in: { attributes.status: [draft, review] }
        - equals: { context.via: console }
  - name: by-channel
    effect: allow
    resource: doc
    actions: [share]
    when:
      any:
        - channel_roles: [channel_moderator]
        - principal: anonymous
        - refers_to_principal: context.actor
        - cel: "action == 'share' && resource.attributes.owner_id == principal.id"
  - name: not-locked
    effect: allow
    resource: doc
    actions: [view]
    unless: { not: { equals: { attributes.locked: "no" } } }
"#;

    fn set() -> PolicySet {
        let source = Source {
            path: "doc.yaml".to_owned(),
            text: POLICY.to_owned(),
        };
        match compile(&[source], &BTreeMap::new()) {
            Ok(set) => set,
            Err(errors) => panic!("{errors}"),
        }
    }

    fn explained(
        principal: &Principal,
        action: &str,
        attributes: Value,
        context: Value,
    ) -> super::super::Explanation {
        let set = set();
        let object = |v: Value| v.as_object().cloned().unwrap_or_else(Map::new);
        let (attributes, context) = (object(attributes), object(context));
        let request = Request {
            principal,
            action,
            resource: Resource {
                kind: "doc",
                id: "d1",
                attributes: &attributes,
            },
            context: &context,
            now: 0,
        };
        decide_explained(&set, &request).1
    }

    /// The parts reported for `rule` when `principal` asks for `action` on a doc.
    fn parts(
        principal: &Principal,
        action: &str,
        attributes: Value,
        context: Value,
        rule: &str,
    ) -> Vec<Part> {
        let explanation = explained(principal, action, attributes, context);
        let entry = explanation.entries.iter().find(|e| e.name == rule);
        let Some(entry) = entry else {
            panic!("{rule} not in {explanation:?}")
        };
        if entry.policies.is_empty() {
            return entry.parts.clone();
        }
        entry
            .policies
            .iter()
            .flat_map(|p| p.parts.clone())
            .collect()
    }

    fn details(parts: &[Part]) -> Vec<&str> {
        parts.iter().map(|p| p.detail.as_str()).collect()
    }

    fn redacted(parts: &[Part]) -> Vec<&str> {
        parts.iter().map(|p| p.redacted.as_str()).collect()
    }

    fn viewer(id: &str) -> Principal {
        Principal {
            roles: vec!["viewer".to_owned()],
            ..Principal::user(id)
        }
    }

    #[test]
    fn a_missing_role_names_the_required_and_held_roles() {
        let found = parts(&viewer("bob"), "read", json!({}), json!({}), "by-role");
        assert_eq!(
            details(&found),
            ["requires one of roles [editor, admin]; the principal has [viewer]"]
        );
        assert_eq!(
            redacted(&found),
            ["requires one of roles [editor, admin]; the principal has none of them"]
        );
        let found = parts(
            &Principal::user("bob"),
            "read",
            json!({}),
            json!({}),
            "by-role",
        );
        assert_eq!(
            details(&found),
            ["requires one of roles [editor, admin]; the principal has [user]"],
            "a user without roles has Stream's implicit role"
        );
    }

    #[test]
    fn a_failing_owner_names_the_operand_and_the_logs_get_no_value() {
        let attributes = json!({"owner_id": "alice"});
        let found = parts(&viewer("bob"), "edit", attributes, json!({}), "by-owner");
        assert_eq!(
            details(&found),
            ["owner: attributes.owner_id is 'alice', the principal is 'bob'"]
        );
        assert_eq!(
            redacted(&found),
            ["owner: attributes.owner_id is not the principal"]
        );
        let found = parts(&viewer("bob"), "edit", json!({}), json!({}), "by-owner");
        assert_eq!(details(&found), ["owner: attributes.owner_id is absent"]);
        let found = parts(
            &Principal::anonymous(),
            "edit",
            json!({}),
            json!({}),
            "by-owner",
        );
        assert_eq!(
            details(&found),
            ["owner: the principal is anonymous, not a user"]
        );
    }

    #[test]
    fn all_names_its_first_failing_part_with_operand_and_required_values() {
        let bob = viewer("bob");
        let found = parts(
            &bob,
            "publish",
            json!({"status": "final"}),
            json!({}),
            "by-status",
        );
        assert_eq!(
            details(&found),
            ["in: attributes.status is 'final', not one of [draft, review]"]
        );
        assert_eq!(
            redacted(&found),
            ["in: attributes.status is not one of [draft, review]"]
        );
        let attributes = json!({"status": "draft"});
        let context = json!({"via": "api"});
        let found = parts(&bob, "publish", attributes, context, "by-status");
        assert_eq!(
            details(&found),
            ["equals: context.via is 'api', not 'console'"]
        );
        assert_eq!(redacted(&found), ["equals: context.via is not 'console'"]);
        let found = parts(
            &bob,
            "publish",
            json!({"status": 3}),
            json!({}),
            "by-status",
        );
        assert_eq!(
            details(&found),
            ["in: attributes.status is a number, not a string"]
        );
    }

    #[test]
    fn any_names_every_part_with_the_channel_looked_at() {
        let bob = Principal {
            channel_roles: HashMap::from([("messaging:a".to_owned(), "member".to_owned())])
                .into_iter()
                .collect(),
            ..viewer("bob")
        };
        let attributes = json!({"channel": "messaging:a", "owner_id": "alice"});
        let context = json!({"actor": "SU:carol"});
        let found = parts(&bob, "share", attributes, context, "by-channel");
        assert_eq!(
            details(&found),
            [
                "channel_roles: requires one of [channel_moderator] in the channel attributes.channel ('messaging:a'); the principal's role there is 'member'",
                "principal: requires an anonymous principal; the principal is user",
                "refers_to_principal: context.actor is 'SU:carol', the principal is 'bob'",
                "cel: `resource.attributes.owner_id == principal.id` is false",
            ]
        );
        assert_eq!(
            redacted(&found),
            [
                "channel_roles: requires one of [channel_moderator] in the channel attributes.channel; the principal's role there is not one of them",
                "principal: requires an anonymous principal; the principal is user",
                "refers_to_principal: context.actor does not refer to the principal",
                "cel: `resource.attributes.owner_id == principal.id` is false",
            ]
        );
    }

    #[test]
    fn an_unless_that_holds_names_what_held() {
        let found = parts(
            &viewer("bob"),
            "view",
            json!({"locked": "yes"}),
            json!({}),
            "not-locked",
        );
        assert_eq!(
            details(&found),
            ["equals: attributes.locked is 'yes', not 'no'"]
        );
    }

    #[test]
    fn a_permission_names_why_each_policy_did_not_grant() {
        let bob = Principal {
            claims: json!({"branch": "north"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..viewer("bob")
        };
        let found = parts(&bob, "view", json!({"branch": "south"}), json!({}), "view");
        assert_eq!(
            details(&found),
            [
                "requires one of roles [editor]; the principal has [viewer]",
                "cel: `principal.claims.branch == resource.attributes.branch` is false",
            ]
        );
        let found = parts(&bob, "view", json!({}), json!({}), "view");
        assert_eq!(
            details(&found).get(1).copied(),
            Some(
                "cel: `principal.claims.branch == resource.attributes.branch` failed: no such key 'branch'"
            )
        );
    }

    #[test]
    fn the_summary_lists_the_expected_rule_with_its_parts() {
        let explanation = explained(&viewer("bob"), "read", json!({}), json!({}));
        assert_eq!(explanation.rule, "default-deny");
        assert_eq!(
            explain_summary(&explanation, Some("by-role")),
            "rule 'by-role': not applicable, its when condition does not hold\n  - requires one of roles [editor, admin]; the principal has [viewer]"
        );
        let explanation = explained(&viewer("bob"), "view", json!({}), json!({}));
        let summary = explain_summary(&explanation, None);
        assert!(
            summary.contains(
                "permission 'view': deny\n  - policy 'editors': requires one of roles [editor]"
            ),
            "{summary}"
        );
    }
}
