//! Evaluating one candidate, its conditions and its policies against one request.

use std::cell::{OnceCell, RefCell};

use serde_json::{Map, Value, json};

use super::explain::{Explanation, Part, PolicyTrace, TraceEntry, TraceResult};
use super::{ConditionError, Request};
use crate::policy::Captures;
use crate::policy::{
    Actions, Body, Candidate, CelInput, Condition, Effect, KindDecl, Logic, NamedPolicy, Operand,
    PolicyBody, PolicySet, PrincipalFilter,
};
use crate::principal::PrincipalKind;

/// Stream's default role for users without one, and the role of anonymous callers.
const DEFAULT_USER_ROLE: &str = "user";
const ANONYMOUS_ROLE: &str = "anonymous";

/// One request under evaluation, with what is computed at most once for it.
pub(super) struct Eval<'r, 'p> {
    set: &'p PolicySet,
    pub(super) request: &'r Request<'r>,
    pub(super) decl: Option<&'p KindDecl>,
    captures: OnceCell<Option<Captures<'r>>>,
    cel_values: OnceCell<(Value, Value)>,
    errors: RefCell<Vec<ConditionError>>,
}

impl<'r, 'p> Eval<'r, 'p> {
    pub(super) fn new(set: &'p PolicySet, request: &'r Request<'r>) -> Self {
        Eval {
            set,
            request,
            decl: set.kind(request.resource.kind),
            captures: OnceCell::new(),
            cel_values: OnceCell::new(),
            errors: RefCell::new(Vec::new()),
        }
    }

    /// The vote a candidate casts, or `None` when it does not apply.
    pub(super) fn candidate(
        &self,
        candidate: &Candidate,
        trace: Option<&mut Explanation>,
    ) -> Option<Effect> {
        if let Some(pattern) = &candidate.id_pattern
            && !pattern.is_match(self.request.resource.id)
        {
            if let Some(trace) = trace {
                trace.push(entry(
                    candidate,
                    TraceResult::NotApplicable("the id does not match".into()),
                    Vec::new(),
                ));
            }
            return None;
        }
        match &candidate.body {
            Body::Rule {
                effect,
                when,
                unless,
            } => self.rule(
                candidate,
                *effect,
                when.as_deref(),
                unless.as_deref(),
                trace,
            ),
            Body::Permission { policies, strategy } => {
                let mut policy_traces = Vec::new();
                let record = trace.is_some();
                let (mut permits, mut denies) = (0, 0);
                for &id in policies {
                    let granted = self.policy(id, record.then_some(&mut policy_traces), 0);
                    if granted {
                        permits += 1;
                    } else {
                        denies += 1;
                    }
                }
                let effect = if strategy.combine(permits, denies) {
                    Effect::Allow
                } else {
                    Effect::Deny
                };
                if let Some(trace) = trace {
                    trace.push(entry(candidate, TraceResult::Vote(effect), policy_traces));
                }
                Some(effect)
            }
        }
    }

    fn rule(
        &self,
        candidate: &Candidate,
        effect: Effect,
        when: Option<&Condition>,
        unless: Option<&Condition>,
        trace: Option<&mut Explanation>,
    ) -> Option<Effect> {
        let applies = match (when.map(|c| self.holds(c)), unless.map(|c| self.holds(c))) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            (Some(Ok(false)), _) => Ok((false, "its when condition does not hold")),
            (_, Some(Ok(true))) => Ok((false, "its unless condition holds")),
            _ => Ok((true, "")),
        };
        let (result, vote) = match applies {
            Ok((true, _)) => (TraceResult::Vote(effect), Some(effect)),
            Ok((false, why)) => (TraceResult::NotApplicable(why.to_owned()), None),
            Err(e) => {
                self.record_error(&candidate.name, &e);
                // Fail closed: a condition that cannot be evaluated never allows, and never stops a
                // deny rule from denying (a caller leaving out what the condition reads must not
                // get past it).
                let vote = (effect == Effect::Deny).then_some(Effect::Deny);
                (TraceResult::Error(e), vote)
            }
        };
        if let Some(trace) = trace {
            let mut parts = Vec::new();
            if !matches!(result, TraceResult::Vote(_)) {
                self.rule_parts(when, unless, &mut parts);
            }
            trace.push(TraceEntry {
                parts,
                ..entry(candidate, result, Vec::new())
            });
        }
        vote
    }

    /// Why a rule did not apply (or failed): its `when` when that does not hold, else its `unless`.
    fn rule_parts(
        &self,
        when: Option<&Condition>,
        unless: Option<&Condition>,
        parts: &mut Vec<Part>,
    ) {
        match (when, unless) {
            (Some(when), _) if self.holds(when) != Ok(true) => self.unmet(when, true, parts),
            (_, Some(unless)) => self.unmet(unless, false, parts),
            _ => {}
        }
    }

    /// Whether a named policy grants, after its logic; records it (and its children) when tracing.
    fn policy(&self, id: usize, trace: Option<&mut Vec<PolicyTrace>>, depth: usize) -> bool {
        let Some(policy) = self.set.policy(id) else {
            return false;
        };
        let mut children = Vec::new();
        let (raw, detail) =
            self.policy_body(policy, trace.is_some().then_some(&mut children), depth);
        // A policy that could not be evaluated (here or in a policy it aggregates) grants nothing,
        // whatever its logic: negative logic must not turn an error into a grant.
        let granted = match (raw, policy.logic) {
            (Err(()), _) => false,
            (Ok(raw), Logic::Positive) => raw,
            (Ok(raw), Logic::Negative) => !raw,
        };
        if let Some(trace) = trace {
            let parts = if granted {
                Vec::new()
            } else {
                self.policy_parts(&policy.body, policy.logic == Logic::Positive)
            };
            trace.push(PolicyTrace {
                name: policy.name.clone(),
                granted,
                negative: policy.logic == Logic::Negative,
                detail,
                parts,
                children,
            });
        }
        granted
    }

    /// The policy's own result before its logic is applied, `Err` when it could not be evaluated.
    fn policy_body(
        &self,
        policy: &NamedPolicy,
        children: Option<&mut Vec<PolicyTrace>>,
        depth: usize,
    ) -> (Result<bool, ()>, String) {
        let principal = self.request.principal;
        match &policy.body {
            PolicyBody::Role(roles) => (Ok(self.has_role(roles)), String::new()),
            PolicyBody::Group(groups) => (Ok(any_of(&principal.groups, groups)), String::new()),
            PolicyBody::User(users) => (
                Ok(principal.kind == PrincipalKind::User && users.contains(&principal.user_id)),
                String::new(),
            ),
            PolicyBody::Time {
                not_before,
                not_after,
                hours,
            } => {
                let now = self.request.now;
                let hour = u8::try_from(now.rem_euclid(86_400) / 3_600).unwrap_or(0);
                let inside = not_before.is_none_or(|t| now >= t)
                    && not_after.is_none_or(|t| now <= t)
                    && hours.is_none_or(|(from, to)| hour >= from && hour < to);
                (Ok(inside), String::new())
            }
            PolicyBody::Condition(cel) => match cel.evaluate(&self.cel_input()) {
                Ok(b) => (Ok(b), String::new()),
                Err(e) => {
                    self.record_error(&policy.name, &e);
                    (Err(()), format!("error: {e}"))
                }
            },
            PolicyBody::Aggregated { policies, strategy } => {
                // Cycles are refused at load time; the depth bound is a second line of defence.
                if depth > 64 {
                    return (Err(()), "error: aggregation too deep".to_owned());
                }
                let errors_before = self.errors.borrow().len();
                let mut children = children;
                let (mut permits, mut denies) = (0, 0);
                for &child in policies {
                    if self.policy(child, children.as_deref_mut(), depth + 1) {
                        permits += 1;
                    } else {
                        denies += 1;
                    }
                }
                let detail = format!("{strategy}: {permits} granted, {denies} not");
                if self.errors.borrow().len() > errors_before {
                    return (Err(()), format!("error in an aggregated policy; {detail}"));
                }
                (Ok(strategy.combine(permits, denies)), detail)
            }
        }
    }

    fn record_error(&self, rule: &str, message: &str) {
        self.errors.borrow_mut().push(ConditionError {
            rule: rule.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The evaluation errors met so far, handed to the decision.
    pub(super) fn take_errors(&self) -> Vec<ConditionError> {
        self.errors.take()
    }

    /// Global roles, with Stream's implicit `user` and `anonymous` roles.
    fn has_role(&self, roles: &[String]) -> bool {
        let principal = self.request.principal;
        if any_of(&principal.roles, roles) {
            return true;
        }
        let implicit = match principal.kind {
            PrincipalKind::User if principal.roles.is_empty() => DEFAULT_USER_ROLE,
            PrincipalKind::Anonymous => ANONYMOUS_ROLE,
            _ => return false,
        };
        roles.iter().any(|r| r == implicit)
    }

    pub(super) fn holds(&self, condition: &Condition) -> Result<bool, String> {
        let principal = self.request.principal;
        let user_id = principal.user_id.as_str();
        let is_user = principal.kind == PrincipalKind::User && !user_id.is_empty();
        Ok(match condition {
            Condition::All(items) => {
                for item in items {
                    if !self.holds(item)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Any(items) => {
                let mut error = None;
                for item in items {
                    match self.holds(item) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => error = Some(e),
                    }
                }
                return error.map_or(Ok(false), Err);
            }
            Condition::Not(inner) => !self.holds(inner)?,
            Condition::Roles(roles) => self.has_role(roles),
            Condition::Groups(groups) => any_of(&principal.groups, groups),
            Condition::Users(users) => is_user && users.iter().any(|u| u == user_id),
            Condition::Principal(filter) => match filter {
                PrincipalFilter::User => is_user,
                PrincipalFilter::Anonymous => principal.kind == PrincipalKind::Anonymous,
                PrincipalFilter::Authenticated => principal.kind != PrincipalKind::Anonymous,
            },
            Condition::ChannelRoles(roles) => self
                .decl
                .and_then(|d| d.channel.as_ref())
                .and_then(|op| self.operand(op))
                .and_then(|channel| principal.channel_roles.get(channel))
                .is_some_and(|role| roles.contains(role)),
            Condition::Owner => {
                is_user
                    && self
                        .decl
                        .and_then(|d| d.owner.as_ref())
                        .and_then(|op| self.operand(op))
                        == Some(user_id)
            }
            Condition::IsPrincipal(op) => is_user && self.operand(op) == Some(user_id),
            Condition::RefersToPrincipal(op) => {
                is_user
                    && self
                        .operand(op)
                        .is_some_and(|v| v == user_id || v.strip_prefix("SU:") == Some(user_id))
            }
            Condition::In(op, values) => self
                .operand(op)
                .is_some_and(|v| values.iter().any(|x| x == v)),
            Condition::Equals(op, value) => self.operand(op) == Some(value.as_str()),
            Condition::Cel(cel) => cel.evaluate(&self.cel_input())?,
        })
    }

    /// Reads an operand from the request; `None` when absent, empty or not a string.
    pub(super) fn operand(&self, operand: &Operand) -> Option<&'r str> {
        let request = self.request;
        let value = match operand {
            Operand::Id => Some(request.resource.id),
            Operand::Kind => Some(request.resource.kind),
            Operand::Action => Some(request.action),
            Operand::PrincipalId => Some(request.principal.user_id.as_str()),
            Operand::Attribute(key) => request.resource.attributes.get(key).and_then(Value::as_str),
            Operand::Context(key) => request.context.get(key).and_then(Value::as_str),
            Operand::Capture(name) => self.capture(name),
        };
        value.filter(|v| !v.is_empty())
    }

    fn capture(&self, name: &str) -> Option<&'r str> {
        let pattern = self.decl.and_then(|d| d.id_pattern.as_ref())?;
        let values = self
            .captures
            .get_or_init(|| pattern.captures(self.request.resource.id))
            .as_ref()?;
        let index = pattern.capture_names().iter().position(|n| n == name)?;
        values.get(index)
    }

    fn captures_map(&self) -> Map<String, Value> {
        let Some(pattern) = self.decl.and_then(|d| d.id_pattern.as_ref()) else {
            return Map::new();
        };
        pattern
            .capture_names()
            .iter()
            .filter_map(|name| self.capture(name).map(|v| (name.clone(), Value::from(v))))
            .collect()
    }

    pub(super) fn cel_input(&self) -> CelInput<'_> {
        let (principal, resource) = self.cel_values.get_or_init(|| {
            let p = self.request.principal;
            let kind = p.kind.as_str();
            let principal = json!({
                "id": p.user_id, "kind": kind, "roles": p.roles, "groups": p.groups,
                "channel_roles": p.channel_roles, "claims": p.claims,
                "issuer": p.issuer.as_deref().unwrap_or(""),
            });
            let r = self.request.resource;
            let resource = json!({
                "kind": r.kind, "id": r.id, "attributes": r.attributes, "captures": self.captures_map(),
            });
            (principal, resource)
        });
        CelInput {
            principal,
            resource,
            action: self.request.action,
            context: self.request.context,
        }
    }
}

fn any_of(have: &[String], wanted: &[String]) -> bool {
    have.iter().any(|h| wanted.contains(h))
}

fn entry(candidate: &Candidate, result: TraceResult, policies: Vec<PolicyTrace>) -> TraceEntry {
    TraceEntry {
        name: candidate.name.clone(),
        origin: super::origin_name(candidate.origin),
        priority: candidate.priority,
        actions: match &candidate.actions {
            Actions::Any => vec!["*".to_owned()],
            Actions::Only(actions) => actions.clone(),
        },
        result,
        parts: Vec::new(),
        policies,
    }
}
