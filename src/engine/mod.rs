//! Decides a request against a policy set: `decide(&PolicySet, &Request) -> Decision`.
//!
//! Pure, synchronous and stateless, in the manner of Cedar's `is_authorized`. Server principals are
//! trusted, scope tokens are held to their scope, and user principals go through the rules: any matching
//! deny rule denies, else any matching allow rule allows, else `default-deny`. A condition that cannot be
//! evaluated (a missing attribute, say) is false, so missing data can only lead to a deny.

mod scope;

use serde_json::{Map, Value};

use crate::policy::{Condition, Effect, Operand, PolicySet, Rule, split_feed_id};
use crate::principal::{Principal, PrincipalKind};

/// The rule name reported when no rule matched.
pub const DEFAULT_DENY: &str = "default-deny";
/// The rule name reported for a trusted server-side call.
pub const SERVER_TOKEN: &str = "server-token";
/// The rule name reported when a scope token covers the request.
pub const TOKEN_SCOPE: &str = "token-scope";
/// The rule name reported when a scope token does not cover the request.
pub const OUTSIDE_TOKEN_SCOPE: &str = "outside-token-scope";

/// What is being asked: may `principal` perform `action` on `resource`?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    pub action: &'a str,
    pub resource: Resource<'a>,
    pub context: &'a Map<String, Value>,
}

#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub attributes: &'a Map<String, Value>,
}

/// The answer, with the rule that decided and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    pub allowed: bool,
    pub rule: &'p str,
    pub reason: String,
}

pub fn decide<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Decision<'p> {
    match request.principal.kind {
        PrincipalKind::Server => Decision {
            allowed: true,
            rule: SERVER_TOKEN,
            reason: "server-side calls are trusted: a valid server token may do anything"
                .to_owned(),
        },
        PrincipalKind::Scoped => scope::decide(policy, request),
        PrincipalKind::User => decide_by_rules(policy, request),
    }
}

fn decide_by_rules<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Decision<'p> {
    let resource = request.resource;
    let mut allowing: Option<&Rule> = None;
    for rule in policy.candidates(resource.kind, request.action) {
        if !rule.conditions.iter().all(|c| holds(c, request)) {
            continue;
        }
        match rule.effect {
            Effect::Deny => return denial(request, rule.name.as_str(), &rule.description),
            // Candidates list every deny before the first allow, so the first allow decides.
            Effect::Allow => {
                allowing = Some(rule);
                break;
            }
        }
    }
    match allowing {
        Some(rule) => Decision {
            allowed: true,
            rule: rule.name.as_str(),
            reason: format!(
                "{} may perform {} on {}: {}",
                request.principal.describe(),
                request.action,
                describe_resource(&resource),
                rule.description
            ),
        },
        None => denial(request, DEFAULT_DENY, "no rule allows it"),
    }
}

fn denial<'p>(request: &Request<'_>, rule: &'p str, why: &str) -> Decision<'p> {
    Decision {
        allowed: false,
        rule,
        reason: format!(
            "{} is not allowed to perform {} on {}: {}",
            request.principal.describe(),
            request.action,
            describe_resource(&request.resource),
            why
        ),
    }
}

/// `feed timeline:tommaso`, or just the kind when the resource has no id.
fn describe_resource(resource: &Resource<'_>) -> String {
    if resource.id.is_empty() {
        resource.kind.to_owned()
    } else {
        format!("{} {}", resource.kind, resource.id)
    }
}

fn holds(condition: &Condition, request: &Request<'_>) -> bool {
    let user_id = request.principal.user_id.as_str();
    match condition {
        Condition::IsPrincipal(operand) => {
            !user_id.is_empty() && resolve(operand, request) == Some(user_id)
        }
        Condition::RefersToPrincipal(operand) => {
            !user_id.is_empty()
                && resolve(operand, request)
                    .is_some_and(|v| v == user_id || v.strip_prefix("SU:") == Some(user_id))
        }
        Condition::OneOf(operand, values) => {
            resolve(operand, request).is_some_and(|v| values.iter().any(|value| value == v))
        }
        Condition::Not(inner) => !holds(inner, request),
    }
}

/// Reads an operand from the request; `None` when it is absent, empty or not a string.
fn resolve<'r>(operand: &Operand, request: &Request<'r>) -> Option<&'r str> {
    let resource = request.resource;
    let value = match operand {
        Operand::ResourceId => Some(resource.id),
        Operand::FeedGroup => split_feed_id(resource.id).map(|(group, _)| group),
        Operand::FeedOwner => split_feed_id(resource.id).map(|(_, owner)| owner),
        Operand::Attribute(name) => resource.attributes.get(name).and_then(Value::as_str),
        Operand::Context(name) => request.context.get(name).and_then(Value::as_str),
    };
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::FeedsPreset;
    use serde_json::json;

    fn user(id: &str) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            user_id: id.into(),
            roles: vec![],
            groups: vec![],
            scope: None,
            claims: Map::new(),
            issued_at: None,
            expires_at: None,
        }
    }

    fn check(
        user_id: &str,
        action: &str,
        kind: &str,
        id: &str,
        attrs: Value,
        ctx: Value,
    ) -> (bool, String) {
        let policy = FeedsPreset::default().compile().unwrap();
        let principal = user(user_id);
        let attributes = attrs.as_object().cloned().unwrap_or_default();
        let context = ctx.as_object().cloned().unwrap_or_default();
        let request = Request {
            principal: &principal,
            action,
            resource: Resource {
                kind,
                id,
                attributes: &attributes,
            },
            context: &context,
        };
        let decision = decide(&policy, &request);
        (decision.allowed, decision.rule.to_owned())
    }

    #[test]
    fn impersonation_is_denied_even_on_own_feed() {
        let (allowed, rule) = check(
            "tommaso",
            "write",
            "feed",
            "user:tommaso",
            json!({}),
            json!({"actor": "jack"}),
        );
        assert!(!allowed);
        assert_eq!(rule, "no-impersonation");
        let (allowed, _) = check(
            "tommaso",
            "write",
            "feed",
            "user:tommaso",
            json!({}),
            json!({"actor": "SU:tommaso"}),
        );
        assert!(allowed);
    }

    #[test]
    fn missing_attributes_never_allow() {
        let (allowed, rule) = check("jack", "delete", "reactions", "r1", json!({}), json!({}));
        assert!(!allowed);
        assert_eq!(rule, DEFAULT_DENY);
    }
}
