//! Scope tokens: allowed exactly what lies inside their scope, nothing else.
//!
//! A request is inside when its kind is in `resource`, its action in `action`, and, when the token
//! names feeds or users, the resource belongs to one of them. A resource whose kind has no feed (or no
//! owner) cannot be shown to belong to a named feed (or user), so it is outside.

use super::eval::Eval;
use super::{Decision, Describe, OUTSIDE_TOKEN_SCOPE, Request, TOKEN_SCOPE, Why};
use crate::policy::{KindDecl, Operand, PolicySet};
use crate::principal::{Scope, ScopeList};

pub(super) fn decide<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Decision<'p> {
    let Some(scope) = &request.principal.scope else {
        return outside(request, "the token carries no scope".to_owned());
    };
    match uncovered(policy, scope, request) {
        None => Decision {
            allowed: true,
            rule: TOKEN_SCOPE,
            why: Why::Scope(format!(
                "the token's scope ({}) covers {}",
                describe_scope(scope),
                Describe(request)
            )),
            errors: Vec::new(),
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
    let decl = policy.kind(kind);
    let eval = Eval::new(policy, request);
    if let Some(feeds) = scope.feed_id.as_ref().filter(|l| !l.is_any()) {
        let covered = decl.is_some_and(|decl| {
            decl.feed
                .as_ref()
                .and_then(|feed| eval.operand(feed))
                .is_some_and(|feed| feed_in_list(decl, feed, feeds))
        });
        if !covered {
            return Some(format!("the {kind} is not one of its feeds"));
        }
    }
    if let Some(users) = scope.user_id.as_ref().filter(|l| !l.is_any()) {
        let owner = decl.and_then(|d| d.owner.as_ref());
        if !belongs(&eval, owner, users) {
            return Some(format!("the {kind} does not belong to one of its users"));
        }
    }
    None
}

/// Whether the operand, read from the request, is in the list.
fn belongs(eval: &Eval<'_, '_>, operand: Option<&Operand>, list: &ScopeList) -> bool {
    operand
        .and_then(|operand| eval.operand(operand))
        .is_some_and(|value| list.allows(value))
}

/// Whether feed `group:id` is named by the list, in its colon form or in Stream's compact form
/// (`userjack`). The feed's group must be one the kind declares, and a compact entry counts only
/// when exactly one declared group begins it: `userjack` never covers `userj:ack`, `:userjack` or
/// `userjack:`, and an entry two groups could begin covers nothing.
fn feed_in_list(decl: &KindDecl, feed: &str, list: &ScopeList) -> bool {
    let Some((group, id)) = feed.split_once(':') else {
        return false;
    };
    if id.is_empty() || !decl.feed_groups.iter().any(|g| g == group) {
        return false;
    }
    let ScopeList::Values(entries) = list else {
        return true;
    };
    entries.iter().any(|entry| {
        if entry.contains(':') {
            entry == feed
        } else {
            matches!(decl.split_compact_feed(entry).as_slice(), [(g, rest)] if *g == group && *rest == id)
        }
    })
}

fn outside<'p>(request: &Request<'_>, why: String) -> Decision<'p> {
    Decision {
        allowed: false,
        rule: OUTSIDE_TOKEN_SCOPE,
        why: Why::Scope(format!(
            "{} is not allowed to perform {}: outside the token's scope ({})",
            request.principal.describe(),
            Describe(request),
            why
        )),
        errors: Vec::new(),
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
