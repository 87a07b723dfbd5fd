//! The second pass's items: rules, chat policies and permissions (the candidates), and the named
//! policies permissions refer to.

use super::super::cel::CelCondition;
use super::super::file::{
    self, ChatPolicyDoc, OneOrMany, PermissionDoc, PermissionKind, PolicyDoc, PolicyKind, RuleDoc,
    Spanned,
};
use super::super::model::{
    Actions, Body, Candidate, Condition, Effect, Kinds, Logic, NamedPolicy, Origin, PolicyBody,
    Strategy,
};
use super::super::pattern::Pattern;
use super::parse::Namespace;
use super::references::Family;
use super::{At, Compiler, MAX_PRIORITY, hint};

impl Compiler {
    /// An item's name may not be blank; names defined twice are reported by
    /// [`Self::register_second_pass`].
    pub(super) fn named(&mut self, name: &str, at: At) {
        if name.trim().is_empty() {
            self.error(at, "every rule, chat policy and permission needs a name");
        }
    }

    /// A priority within `range` (0 when absent), reported at the priority itself.
    fn priority(&mut self, value: Option<&Spanned<i64>>, range: (i64, i64), at: At) -> i32 {
        let (value, at) = value.map_or((0, at), |v| (**v, at.of(v)));
        if !(range.0..=range.1).contains(&value) {
            self.error(
                at,
                format!("priority {value} is out of range {}..={}", range.0, range.1),
            );
            return 0;
        }
        i32::try_from(value).unwrap_or(0)
    }

    /// The kinds an item names, each declared under `resources`.
    fn kinds(&mut self, resource: &Spanned<OneOrMany>, at: At) -> Kinds {
        let kinds = (**resource).clone().into_vec();
        if kinds.iter().any(|k| k == "*") {
            return Kinds::Any;
        }
        self.declared_kinds(&kinds, at.of(resource));
        if kinds.is_empty() || kinds.iter().any(|k| k.trim().is_empty()) {
            self.error(
                at.of(resource),
                "resource must name one or more kinds, or '*'",
            );
        }
        Kinds::Only(kinds)
    }

    fn actions(&mut self, actions: Vec<String>, at: At) -> Actions {
        if actions.iter().any(|a| a == "*") {
            return Actions::Any;
        }
        if actions.is_empty() || actions.iter().any(|a| a.trim().is_empty()) {
            self.error(at, "actions must name one or more actions, or '*'");
        }
        Actions::Only(actions)
    }

    fn id_pattern(&mut self, id: Option<&Spanned<String>>, at: At) -> Option<Pattern> {
        let id = id?;
        match Pattern::parse(id) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(at.of(id), e);
                None
            }
        }
    }

    /// A rule. A bad `effect` is reported at the rule's name, as the rule as a whole is at fault.
    pub(super) fn rule(&mut self, doc: RuleDoc, at: At) -> Option<Candidate> {
        let effect = file::effect(&doc.effect).unwrap_or_else(|e| {
            self.error(at, e);
            Effect::Deny
        });
        let priority = self.priority(doc.priority.as_ref(), (-MAX_PRIORITY, MAX_PRIORITY), at);
        let kinds = self.kinds(&doc.resource, at);
        let actions = self.actions((*doc.actions).clone().into_vec(), at.of(&doc.actions));
        self.declared_actions(&kinds, &actions, at.of(&doc.actions));
        let id_pattern = self.id_pattern(doc.id.as_ref(), at);
        let when = doc.when.map(|c| Box::new(self.condition(&c, &kinds, at)));
        let unless = doc.unless.map(|c| Box::new(self.condition(&c, &kinds, at)));
        Some(Candidate {
            name: doc.name.into_inner(),
            description: doc.description,
            origin: Origin::Rule,
            priority,
            kinds,
            id: doc.id.map(Spanned::into_inner),
            id_pattern,
            actions,
            body: Body::Rule {
                effect,
                when,
                unless,
            },
        })
    }

    pub(super) fn chat_policy(&mut self, doc: ChatPolicyDoc, at: At) -> Option<Candidate> {
        let effect = file::chat_action(&doc.action).unwrap_or_else(|e| {
            self.error(at.of(&doc.action), e);
            Effect::Deny
        });
        let priority = self.priority(Some(&doc.priority), (1, 999), at);
        let kinds = match &doc.kinds {
            Some(kinds) => self.kinds(kinds, at),
            None => Kinds::Any,
        };
        let actions = self.actions((*doc.resources).clone().into_vec(), at.of(&doc.resources));
        self.declared_actions(&kinds, &actions, at.of(&doc.resources));
        let roles = (*doc.roles).clone().into_vec();
        self.use_names(Family::Role, &roles, at.of(&doc.roles));
        let mut conditions = Vec::new();
        if !roles.iter().any(|r| r == "*") {
            if roles.is_empty() {
                self.error(
                    at.of(&doc.roles),
                    "roles must name one or more roles, or '*'",
                );
            }
            // Stream Chat matches a policy's roles against the user's global role and its role in the
            // resource's channel.
            conditions.push(Condition::Any(vec![
                Condition::Roles(roles.clone()),
                Condition::ChannelRoles(roles),
            ]));
        }
        if doc.owner {
            self.require_decl(&kinds, |d| d.owner.is_some(), "owner", at);
            conditions.push(Condition::Owner);
        }
        let when = match conditions.len() {
            0 => None,
            1 => conditions.pop().map(Box::new),
            _ => Some(Box::new(Condition::All(conditions))),
        };
        Some(Candidate {
            name: doc.name.into_inner(),
            description: String::new(),
            origin: Origin::ChatPolicy,
            priority,
            kinds,
            id: None,
            id_pattern: None,
            actions,
            body: Body::Rule {
                effect,
                when,
                unless: None,
            },
        })
    }

    /// What a permission covers: every action of some kinds, or some scopes (actions).
    fn permission_target(&mut self, doc: &PermissionDoc, at: At) -> Option<(Kinds, Actions)> {
        let kind = file::permission_kind(&doc.kind)
            .map_err(|e| self.error(at.of(&doc.kind), e))
            .ok()?;
        match kind {
            PermissionKind::Resource => {
                let Some(resource) = &doc.resource else {
                    self.error(at, "a resource permission needs a resource");
                    return None;
                };
                if let Some(scopes) = &doc.scopes {
                    self.error(
                        at.of(scopes),
                        "a resource permission applies to every action; use type: scope for scopes",
                    );
                }
                Some((self.kinds(resource, at), Actions::Any))
            }
            PermissionKind::Scope => {
                let kinds = match &doc.resource {
                    Some(resource) => self.kinds(resource, at),
                    None => Kinds::Any,
                };
                let scopes = doc.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default();
                let actions = self.actions(scopes, at.of_opt(doc.scopes.as_ref()));
                self.declared_actions(&kinds, &actions, at.of_opt(doc.scopes.as_ref()));
                Some((kinds, actions))
            }
        }
    }

    pub(super) fn permission(&mut self, doc: PermissionDoc, at: At) -> Option<Candidate> {
        let (kinds, actions) = self.permission_target(&doc, at)?;
        let strategy = self.counting_strategy(doc.strategy.as_ref(), at);
        let policies = self.policy_refs(&doc.policies, at);
        if doc.policies.is_empty() {
            self.error(at, "a permission needs one or more policies");
        }
        let priority = self.priority(doc.priority.as_ref(), (-MAX_PRIORITY, MAX_PRIORITY), at);
        let id_pattern = self.id_pattern(doc.id.as_ref(), at);
        Some(Candidate {
            name: doc.name.into_inner(),
            description: doc.description,
            origin: Origin::Permission,
            priority,
            kinds,
            id: doc.id.map(Spanned::into_inner),
            id_pattern,
            actions,
            body: Body::Permission { policies, strategy },
        })
    }

    /// A permission's or an aggregated policy's strategy: unanimous unless it says otherwise.
    fn counting_strategy(&mut self, value: Option<&Spanned<String>>, at: At) -> Strategy {
        let Some(value) = value else {
            return Strategy::Unanimous;
        };
        file::strategy(value, false).unwrap_or_else(|e| {
            self.error(at.of(value), e);
            Strategy::Unanimous
        })
    }

    fn policy_refs(&mut self, names: &[Spanned<String>], at: At) -> Vec<usize> {
        let mut ids = Vec::new();
        for name in names {
            match self.policy_names.get(name.as_str()) {
                Some(&id) => ids.push(id),
                // Its own error is the one to fix.
                None if self.is_broken(Namespace::Policy, name) => {}
                None => {
                    let known = self.policy_names.keys().map(String::as_str);
                    let hint = hint::suggest(name, known);
                    let message = format!("policy '{}' is not defined{hint}", name.as_str());
                    self.error(at.of(name), message);
                }
            }
        }
        ids
    }

    pub(super) fn policies(&mut self, docs: Vec<(usize, PolicyDoc)>) -> Vec<NamedPolicy> {
        let mut compiled = Vec::with_capacity(docs.len());
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(docs.len());
        let mut places = Vec::with_capacity(docs.len());
        for (file, doc) in docs {
            let at = At::new(file, &doc.name);
            places.push((at, doc.name.to_string()));
            let label = format!("policy '{}'", doc.name.as_str());
            let policy = self.within(label, |c| c.policy(doc, at));
            edges.push(match &policy.body {
                PolicyBody::Aggregated { policies, .. } => policies.clone(),
                _ => Vec::new(),
            });
            compiled.push(policy);
        }
        if let Some(cycle) = find_cycle(&edges) {
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|&i| places.get(i).map(|(_, n)| n.clone()))
                .collect();
            if let Some(&(at, _)) = cycle.first().and_then(|&i| places.get(i)) {
                self.error(
                    at,
                    format!("aggregated policies form a cycle: {}", names.join(" -> ")),
                );
            }
        }
        compiled
    }

    fn policy(&mut self, doc: PolicyDoc, at: At) -> NamedPolicy {
        let logic = match &doc.logic {
            None => Logic::Positive,
            Some(word) => file::logic(word).unwrap_or_else(|e| {
                self.error(at.of(word), e);
                Logic::Positive
            }),
        };
        let body = match file::policy_kind(&doc.kind) {
            Ok(kind) => self.policy_body(kind, &doc, at),
            Err(e) => {
                self.error(at.of(&doc.kind), e);
                PolicyBody::Role(Vec::new())
            }
        };
        NamedPolicy {
            name: doc.name.into_inner(),
            logic,
            body,
        }
    }

    fn policy_body(&mut self, kind: PolicyKind, doc: &PolicyDoc, at: At) -> PolicyBody {
        let needs = |values: Option<&Vec<String>>, field: &str, this: &mut Self| {
            let values = values.cloned().unwrap_or_default();
            if values.is_empty() {
                this.error(at, format!("a {} policy needs {field}", doc.kind.as_str()));
            }
            values
        };
        match kind {
            PolicyKind::Role => {
                let roles = needs(doc.roles.as_ref(), "roles", self);
                self.use_names(Family::Role, &roles, at);
                PolicyBody::Role(roles)
            }
            PolicyKind::Group => {
                let groups = needs(doc.groups.as_ref(), "groups", self);
                self.use_names(Family::Group, &groups, at);
                PolicyBody::Group(groups)
            }
            PolicyKind::User => PolicyBody::User(needs(doc.users.as_ref(), "users", self)),
            PolicyKind::Time => self.time_policy(doc, at),
            PolicyKind::Condition => match &doc.condition {
                Some(source) => match CelCondition::compile(source) {
                    Ok(cel) => PolicyBody::Condition(cel),
                    Err(e) => {
                        self.error(at.of(source), format!("condition: {e}"));
                        PolicyBody::Role(Vec::new())
                    }
                },
                None => {
                    self.error(at, "a condition policy needs condition");
                    PolicyBody::Role(Vec::new())
                }
            },
            PolicyKind::Aggregated => {
                if doc.policies.as_ref().is_none_or(Vec::is_empty) {
                    self.error(at, format!("a {} policy needs policies", doc.kind.as_str()));
                }
                let names = doc.policies.as_deref().unwrap_or_default();
                let policies = self.policy_refs(names, at);
                let strategy = self.counting_strategy(doc.strategy.as_ref(), at);
                PolicyBody::Aggregated { policies, strategy }
            }
        }
    }

    fn time_policy(&mut self, doc: &PolicyDoc, at: At) -> PolicyBody {
        let time = |value: Option<&Spanned<String>>, this: &mut Self| {
            value.and_then(|v| this.time(v, at.of(v)))
        };
        let not_before = time(doc.not_before.as_ref(), self);
        let not_after = time(doc.not_after.as_ref(), self);
        let hours = doc.hours.as_ref().map(|h| (h.from, h.to));
        if hours.is_some_and(|(from, to)| from > 23 || to > 24 || from >= to) {
            self.error(
                at.of_opt(doc.hours.as_ref()),
                "hours need 0 <= from < to <= 24",
            );
        }
        if not_before.is_none() && not_after.is_none() && hours.is_none() {
            self.error(at, "a time policy needs not_before, not_after or hours");
        }
        PolicyBody::Time {
            not_before,
            not_after,
            hours,
        }
    }
}

/// A cycle in the graph of aggregated policies, as the list of its nodes.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        match marks.get(node).copied() {
            Some(Mark::Done) | None => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|&n| n == node).unwrap_or(0);
                let mut cycle: Vec<usize> = path.get(start..).unwrap_or_default().to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            Some(Mark::New) => {}
        }
        if let Some(mark) = marks.get_mut(node) {
            *mark = Mark::Open;
        }
        path.push(node);
        for &next in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        if let Some(mark) = marks.get_mut(node) {
            *mark = Mark::Done;
        }
        None
    }
    let mut marks = vec![Mark::New; edges.len()];
    (0..edges.len()).find_map(|node| visit(node, edges, &mut marks, &mut Vec::new()))
}
