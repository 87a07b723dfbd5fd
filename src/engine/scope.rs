//! Scope tokens: allowed exactly what lies inside their scope, nothing else.
//!
//! A request is inside when its kind is in `resource`, its action in `action`, and, when the token
//! names feeds or users, the resource belongs to one of them. A resource whose kind has no feed (or no
//! owner) cannot be shown to belong to a named feed (or user), so it is outside.

use super::{Decision, OUTSIDE_TOKEN_SCOPE, Request, TOKEN_SCOPE, describe_resource, resolve};
use crate::policy::{Operand, PolicySet};
use crate::principal::{Scope, ScopeList};

pub(super) fn decide<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Decision<'p> {
    let Some(scope) = &request.principal.scope else {
        return outside(request, "the token carries no scope".to_owned());
    };
    match uncovered(policy, scope, request) {
        None => Decision {
            allowed: true,
            rule: TOKEN_SCOPE,
            reason: format!(
                "the token's scope ({}) covers {} on {}",
                describe_scope(scope),
                request.action,
                describe_resource(&request.resource)
            ),
        },
        Some(why) => outside(request, why),
    }
}

/// Why the request lies outside the scope, or `None` when it lies inside.
fn uncovered(policy: &PolicySet, scope: &Scope, request: &Request<'_>) -> Option<String> {
    let kind = request.resource.kind;
    if !scope.resource.allows(kind) {
        return Some(format!("resource kind '{kind}' is not in its resources"));
    }
    if !scope.action.allows(request.action) {
        return Some(format!("action '{}' is not in its actions", request.action));
    }
    let binding = policy.scope_binding(kind);
    if let Some(feeds) = scope.feed_id.as_ref().filter(|l| !l.is_any()) {
        let feed = binding.and_then(|b| b.feed.as_ref());
        if !belongs(feed, feeds, request, |id| id.replacen(':', "", 1)) {
            return Some(format!("the {kind} is not one of its feeds"));
        }
    }
    if let Some(users) = scope.user_id.as_ref().filter(|l| !l.is_any()) {
        let owner = binding.and_then(|b| b.owner.as_ref());
        if !belongs(owner, users, request, str::to_owned) {
            return Some(format!("the {kind} does not belong to one of its users"));
        }
    }
    None
}

/// Whether the operand, read from the request and put in the claim's form, is in the list.
fn belongs(
    operand: Option<&Operand>,
    list: &ScopeList,
    request: &Request<'_>,
    to_claim_form: impl Fn(&str) -> String,
) -> bool {
    operand
        .and_then(|operand| resolve(operand, request))
        .is_some_and(|value| list.allows(&to_claim_form(value)))
}

fn outside<'p>(request: &Request<'_>, why: String) -> Decision<'p> {
    Decision {
        allowed: false,
        rule: OUTSIDE_TOKEN_SCOPE,
        reason: format!(
            "{} is not allowed to perform {} on {}: outside the token's scope ({})",
            request.principal.describe(),
            request.action,
            describe_resource(&request.resource),
            why
        ),
    }
}

fn describe_scope(scope: &Scope) -> String {
    let mut parts = vec![
        format!("resource '{}'", scope.resource),
        format!("action '{}'", scope.action),
    ];
    if let Some(feeds) = &scope.feed_id {
        parts.push(format!("feed_id '{feeds}'"));
    }
    if let Some(users) = &scope.user_id {
        parts.push(format!("user_id '{users}'"));
    }
    parts.join(", ")
}
