//! A least-privilege policy from what was exercised: allow exactly the (kind, id, action) that were
//! allowed, for the one user or role, and nothing else (default deny). Ids are generalized into
//! patterns only where the deciding rule's own id pattern did; otherwise each id is named as it was
//! seen. The result is a policy file in our language that loads as is.
//!
//! A suggestion never allows what the live set denies. It grants an item unconditionally to its
//! subject, so an item is kept only when its live decision cannot have depended on anything else: the
//! deciding rule is an allow rule of the live set whose conditions name only roles, groups, users or
//! the kind of principal, the set decides by priority, and no deny rule, permission or chat policy of
//! the set could apply to the item's kind and action. Every other item is left out and named in the
//! notes (a workspace condition, an ownership test, a suspension rule would otherwise be dropped).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::exercised::{Exercised, Subject};
use crate::policy::{Body, Condition, Effect, Operand, PolicySet, PrincipalFilter, Strategy};

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
pub fn suggest(
    live: &PolicySet,
    subject: &Subject,
    exercised: &[Exercised],
    generated_at: &str,
) -> Suggestion {
    // (kind, id or pattern) -> actions
    let mut grants: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut notes = Vec::new();
    for item in exercised.iter().filter(|e| e.allowed) {
        if let Err(why) = carried_by_subject_alone(live, subject, item) {
            notes.push(format!(
                "{} on {} '{}' is left out: {why}",
                item.action, item.resource_kind, item.resource_id_pattern
            ));
            continue;
        }
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
    declare_kinds(&mut yaml, live, &grants);
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

/// Declares every kind a granted rule names, with the live set's vocabulary for it, so the suggestion
/// loads on its own and knows the same actions the live set does.
fn declare_kinds(
    yaml: &mut String,
    live: &PolicySet,
    grants: &BTreeMap<(String, String), Vec<String>>,
) {
    let kinds: BTreeSet<&String> = grants.keys().map(|(kind, _)| kind).collect();
    if !kinds.is_empty() {
        yaml.push_str("resources:\n");
    }
    for kind in kinds {
        let granted = grants
            .iter()
            .filter(|((k, _), _)| k == kind)
            .flat_map(|(_, actions)| actions.iter());
        let mut vocabulary: BTreeSet<&String> = granted.collect();
        vocabulary.extend(live.kind(kind).into_iter().flat_map(|d| d.actions.iter()));
        let list: Vec<String> = vocabulary.iter().map(|a| quote(a)).collect();
        let _ = writeln!(yaml, "  - kind: {}", quote(kind));
        let _ = writeln!(yaml, "    actions: [{}]", list.join(", "));
    }
}

/// Whether granting `item` to the subject cannot allow more than the live set does. That holds when
/// every condition that took part (the deciding allow rule's, and every deny rule's that could apply
/// to the item's kind and action) reads only what the grant fixes: for a user, its id and the
/// resource's kind, id and action; for a role, only that role. The live set then answers every later
/// request of the subject for the item as it answered the recorded one: allowed.
fn carried_by_subject_alone(
    live: &PolicySet,
    subject: &Subject,
    item: &Exercised,
) -> Result<(), &'static str> {
    if live.strategy() != Strategy::Priority {
        return Err("the live set counts votes, which a single grant cannot reproduce");
    }
    let fixed = Fixed {
        subject,
        literal_id: !item.is_pattern,
        owner: live
            .kind(&item.resource_kind)
            .and_then(|decl| decl.owner.as_ref()),
    };
    let mut decider = None;
    for id in live.candidate_ids(&item.resource_kind, &item.action) {
        let Some(candidate) = live.candidate(*id) else {
            continue;
        };
        match &candidate.body {
            Body::Permission { .. } => return Err("a permission of the live set decides it"),
            Body::Rule {
                effect,
                when,
                unless,
            } => {
                let is_decider = candidate.name == item.rule && *effect == Effect::Allow;
                if is_decider {
                    decider = Some(());
                }
                if (is_decider || *effect == Effect::Deny)
                    && !(when.as_deref().is_none_or(|c| fixed.reads_only_fixed(c))
                        && unless.as_deref().is_none_or(|c| fixed.reads_only_fixed(c)))
                {
                    return Err(if is_decider {
                        "the rule that allowed it has conditions on the request (context, attributes, claims or CEL), which the suggestion would drop"
                    } else {
                        "a deny rule of the live set could apply to it, depending on the request"
                    });
                }
            }
        }
    }
    decider.ok_or("the rule that allowed it is not in the live set")
}

/// What a suggested grant fixes about the requests it covers.
struct Fixed<'a> {
    subject: &'a Subject,
    /// The grant names one id (not a pattern), so the id and its captures are fixed.
    literal_id: bool,
    /// Where the kind's owner is read from.
    owner: Option<&'a Operand>,
}

impl Fixed<'_> {
    /// Whether `condition` reads only what the grant fixes, so that it holds or not the same way for
    /// every request the grant covers.
    fn reads_only_fixed(&self, condition: &Condition) -> bool {
        let user = matches!(self.subject, Subject::User(_));
        let resource = |op: &Operand| match op {
            Operand::Kind | Operand::Action => true,
            Operand::Id | Operand::Capture(_) => self.literal_id,
            Operand::PrincipalId => user,
            Operand::Attribute(_) | Operand::Context(_) => false,
        };
        match condition {
            Condition::All(all) | Condition::Any(all) => {
                all.iter().all(|c| self.reads_only_fixed(c))
            }
            Condition::Not(inner) => self.reads_only_fixed(inner),
            Condition::Users(_) => user,
            // A role's holders are signed-in users, so `principal: user` holds for all of them.
            Condition::Principal(filter) => {
                user || matches!(
                    filter,
                    PrincipalFilter::User | PrincipalFilter::Authenticated
                )
            }
            Condition::Roles(roles) => {
                matches!(self.subject, Subject::Role(role) if roles.contains(role))
            }
            // Fixed when the kind reads its owner from the id (a capture), not from attributes.
            Condition::Owner => user && self.owner.is_some_and(resource),
            Condition::IsPrincipal(op) | Condition::RefersToPrincipal(op) => user && resource(op),
            Condition::In(op, _) | Condition::Equals(op, _) => resource(op),
            Condition::Groups(_) | Condition::ChannelRoles(_) | Condition::Cel(_) => false,
        }
    }
}

/// A YAML double-quoted string.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::engine::{Request, Resource, decide};
    use crate::policy::{Source, compile};
    use crate::principal::Principal;
    use serde_json::{Map, Value, json};

    /// A set like the one of the reported case: editors may edit documents of their own workspace
    /// (a CEL condition), suspended users may do nothing (a deny rule), and everyone may read the
    /// help pages (a plain role grant).
    const LIVE: &str = r#"
resources:
  - kind: doc
    actions: [read, edit]
  - kind: help
    actions: [read]
rules:
  - name: suspended-users-do-nothing
    effect: deny
    priority: 10
    resource: doc
    actions: "*"
    when:
      roles: [suspended]
  - name: editors-edit-their-workspace
    effect: allow
    resource: doc
    actions: [read, edit]
    when:
      all:
        - roles: [editor]
        - cel: "resource.attributes.workspace == principal.claims.workspace"
  - name: editors-read-help
    effect: allow
    resource: help
    actions: [read]
    when:
      roles: [editor]
"#;

    fn set(text: &str) -> PolicySet {
        compile(
            &[Source {
                path: "p.yaml".to_owned(),
                text: text.to_owned(),
            }],
            &BTreeMap::new(),
        )
        .unwrap()
    }

    fn principal(id: &str, roles: &[&str], workspace: &str) -> Principal {
        let mut p = Principal::user(id.to_owned());
        p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        p.claims = json!({ "workspace": workspace })
            .as_object()
            .cloned()
            .unwrap_or_default();
        p
    }

    fn allowed(
        policy: &PolicySet,
        who: &Principal,
        action: &str,
        kind: &str,
        id: &str,
        ws: &str,
    ) -> bool {
        let attributes: Map<String, Value> = json!({ "workspace": ws })
            .as_object()
            .cloned()
            .unwrap_or_default();
        let context = Map::new();
        let request = Request {
            principal: who,
            action,
            resource: Resource {
                kind,
                id,
                attributes: &attributes,
            },
            context: &context,
            now: 0,
        };
        decide(policy, &request).allowed
    }

    fn exercised(kind: &str, id: &str, action: &str, rule: &str) -> Exercised {
        Exercised {
            action: action.to_owned(),
            resource_kind: kind.to_owned(),
            resource_id_pattern: id.to_owned(),
            is_pattern: false,
            allowed: true,
            rule: rule.to_owned(),
            count: 1,
            first_seen_ms: 0,
            last_seen_ms: 0,
        }
    }

    #[test]
    fn a_suggestion_never_allows_what_the_live_set_denies() {
        let live = set(LIVE);
        let items = vec![
            exercised("doc", "d1", "edit", "editors-edit-their-workspace"),
            exercised("doc", "d1", "read", "editors-edit-their-workspace"),
            exercised("help", "h1", "read", "editors-read-help"),
        ];
        let suggestion = suggest(&live, &Subject::Role("editor".to_owned()), &items, "now");
        let suggested = set(&suggestion.yaml);
        // Conditions and deny rules that decided are not dropped: those items are left out, and said.
        assert_eq!(suggestion.rules, 1, "{}", suggestion.yaml);
        assert_eq!(suggestion.notes.len(), 2, "{:?}", suggestion.notes);
        // Over everything exercised and its neighbours: other users, workspaces, roles, ids, actions.
        let people = [
            principal("ann", &["editor"], "w1"),
            principal("bob", &["editor"], "w2"),
            principal("sue", &["editor", "suspended"], "w1"),
            principal("eve", &["viewer"], "w1"),
        ];
        let mut checked = 0;
        for who in &people {
            for (kind, id) in [("doc", "d1"), ("doc", "d2"), ("help", "h1"), ("help", "h2")] {
                for action in ["read", "edit"] {
                    for ws in ["w1", "w2"] {
                        if allowed(&suggested, who, action, kind, id, ws) {
                            assert!(
                                allowed(&live, who, action, kind, id, ws),
                                "the suggestion allows {} {action} {kind} {id} in {ws}, which the live set denies",
                                who.user_id
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 0, "the suggestion allows something");
    }
}
