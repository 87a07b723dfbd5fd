//! Decides a request against a policy set: `decide(&PolicySet, &Request) -> Decision`.
//!
//! Pure, synchronous and stateless, in the manner of Cedar's `is_authorized`. Server principals are
//! trusted, scope tokens are held to their scope, and users and anonymous callers go through the
//! candidates the index finds for the request's kind and action. Each candidate that applies votes; the
//! set's strategy turns the votes into the decision (see `docs/policies.md`). A condition that cannot
//! be evaluated fails closed and is reported: it never lets an allow rule allow, nor stops a deny rule
//! from denying, nor lets a Keycloak policy grant.

pub mod bounds;
mod eval;
mod explain;
mod parts;
mod scope;

use std::fmt;

use serde_json::{Map, Value};

use crate::policy::{Candidate, Effect, Origin, PolicySet, Strategy};
use crate::principal::{Principal, PrincipalKind};

pub use bounds::TooLarge;
pub use explain::{Explanation, Part, PolicyTrace, TraceEntry, TraceResult, explain_summary};

/// The rule name reported when no candidate voted.
pub const DEFAULT_DENY: &str = "default-deny";
/// The rule name reported for a trusted server-side call.
pub const SERVER_TOKEN: &str = "server-token";
/// The rule name reported when the set's mode is `disabled`.
pub const MODE_DISABLED: &str = "mode-disabled";
/// The rule name reported when a scope token covers the request.
pub const TOKEN_SCOPE: &str = "token-scope";
/// The rule name reported when a scope token does not cover the request.
pub const OUTSIDE_TOKEN_SCOPE: &str = "outside-token-scope";
/// The rule name reported when the action is not in the kind's vocabulary.
pub const UNDECLARED_ACTION: &str = "undeclared-action";

/// What is being asked: may `principal` perform `action` on `resource`?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    pub action: &'a str,
    pub resource: Resource<'a>,
    pub context: &'a Map<String, Value>,
    /// Seconds since the Unix epoch, for time policies; the caller owns the clock.
    pub now: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    pub attributes: &'a Map<String, Value>,
}

/// Why a decision was made, kept as data so that the sentence is only built when someone reads it.
#[derive(Debug, Clone)]
pub enum Why<'p> {
    ServerToken,
    /// A scope token's verdict, already phrased.
    Scope(String),
    /// A candidate decided.
    Candidate {
        candidate: &'p Candidate,
        strategy: Strategy,
        permits: usize,
        denies: usize,
    },
    /// Votes were cast but the strategy denied without a denying candidate to name.
    Votes {
        strategy: Strategy,
        permits: usize,
        denies: usize,
    },
    DefaultDeny,
    /// The action is not one the set knows for the kind, so no rule (not even `actions: "*"`) covers
    /// it.
    UndeclaredAction,
    /// The set's mode is `disabled`: nothing was evaluated.
    Disabled,
}

/// The answer, with the rule that decided.
#[derive(Debug, Clone)]
pub struct Decision<'p> {
    pub allowed: bool,
    pub rule: &'p str,
    pub why: Why<'p>,
    /// Conditions that failed to evaluate, each counted against the request (see the module docs).
    pub errors: Vec<ConditionError>,
}

/// A condition that could not be evaluated (a CEL error, say) and so did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// The rule, chat policy, permission or named policy it belongs to.
    pub rule: String,
    pub message: String,
}

impl Decision<'_> {
    /// A sentence a person can act on, in the spirit of Stream's permission errors. Written into
    /// one string made large enough at once, since it is built for every answered Check.
    pub fn reason(&self, request: &Request<'_>) -> String {
        let mut sentence = String::with_capacity(REASON_CAPACITY);
        // Writing into a String cannot fail.
        let _ = self.write_reason(request, &mut sentence);
        sentence
    }

    fn write_reason(&self, request: &Request<'_>, out: &mut String) -> fmt::Result {
        use fmt::Write as _;
        let who = request.principal.described();
        let what = Describe(request);
        match &self.why {
            Why::ServerToken => {
                out.push_str("server-side calls are trusted: a valid server token may do anything");
            }
            Why::Scope(sentence) => out.push_str(sentence),
            Why::Disabled => out
                .push_str("the policy set is disabled (mode: disabled): every request is allowed"),
            Why::DefaultDeny => {
                write!(
                    out,
                    "{who} is not allowed to perform {what}: no rule allows it"
                )?;
            }
            Why::UndeclaredAction => write!(
                out,
                "{who} is not allowed to perform {what}: the action is not one the policy declares for the kind"
            )?,
            Why::Votes {
                strategy,
                permits,
                denies,
            } => write!(
                out,
                "{who} is not allowed to perform {what}: the {strategy} strategy denies with {permits} permit and {denies} deny votes"
            )?,
            Why::Candidate {
                candidate,
                strategy,
                permits,
                denies,
            } => {
                if self.allowed {
                    write!(out, "{who} may perform {what}: ")?;
                } else {
                    write!(out, "{who} is not allowed to perform {what}: ")?;
                }
                if candidate.description.is_empty() {
                    write!(out, "{} '{}'", candidate.origin, candidate.name)?;
                } else {
                    out.push_str(&candidate.description);
                }
                if *strategy != Strategy::Priority {
                    write!(out, " ({strategy}: {permits} permit, {denies} deny)")?;
                }
            }
        }
        Ok(())
    }
}

/// Room for nearly every reason sentence, so that writing one allocates once.
const REASON_CAPACITY: usize = 192;

/// `write on feed timeline:tommaso`.
struct Describe<'r>(&'r Request<'r>);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if r.resource.id.is_empty() {
            write!(f, "{} on {}", r.action, r.resource.kind)
        } else {
            write!(f, "{} on {} {}", r.action, r.resource.kind, r.resource.id)
        }
    }
}

impl Decision<'_> {
    /// The answer for a set whose mode is `disabled`: allowed, nothing evaluated.
    pub fn disabled() -> Decision<'static> {
        Decision {
            allowed: true,
            rule: MODE_DISABLED,
            why: Why::Disabled,
            errors: Vec::new(),
        }
    }

    /// The id pattern of the deciding rule, when it has one.
    pub fn rule_id_pattern(&self) -> Option<&str> {
        match &self.why {
            Why::Candidate { candidate, .. } => candidate.id.as_deref(),
            _ => None,
        }
    }
}

/// Decides `request`.
pub fn decide<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Decision<'p> {
    decide_inner(policy, request, None)
}

/// Decides `request` and records every candidate considered, like Keycloak's evaluation tool.
pub fn decide_explained<'p>(
    policy: &'p PolicySet,
    request: &Request<'_>,
) -> (Decision<'p>, Explanation) {
    let mut explanation = Explanation::new(policy.strategy());
    let decision = decide_inner(policy, request, Some(&mut explanation));
    explanation.finish(&decision);
    (decision, explanation)
}

/// Every action the set knows for the request's kind that the principal may perform on the resource.
pub fn allowed_actions<'p>(policy: &'p PolicySet, request: &Request<'_>) -> Vec<&'p str> {
    allowed_actions_among(policy, request, &[])
}

/// As [`allowed_actions`], considering only the actions in `only` when it is not empty; an action the
/// kind does not declare is never allowed, so it never appears.
pub fn allowed_actions_among<'p>(
    policy: &'p PolicySet,
    request: &Request<'_>,
    only: &[String],
) -> Vec<&'p str> {
    policy
        .known_actions(request.resource.kind)
        .iter()
        .filter(|action| only.is_empty() || only.contains(action))
        .filter(|action| {
            let asked = Request {
                action: action.as_str(),
                ..*request
            };
            decide(policy, &asked).allowed
        })
        .map(String::as_str)
        .collect()
}

fn decide_inner<'p>(
    policy: &'p PolicySet,
    request: &Request<'_>,
    trace: Option<&mut Explanation>,
) -> Decision<'p> {
    let trusted = request.principal.kind == PrincipalKind::Server;
    if !trusted && !policy.knows_action(request.resource.kind, request.action) {
        return Decision {
            allowed: false,
            rule: UNDECLARED_ACTION,
            why: Why::UndeclaredAction,
            errors: Vec::new(),
        };
    }
    match request.principal.kind {
        PrincipalKind::Server => Decision {
            allowed: true,
            rule: SERVER_TOKEN,
            why: Why::ServerToken,
            errors: Vec::new(),
        },
        PrincipalKind::Scoped => scope::decide(policy, request),
        PrincipalKind::User | PrincipalKind::Anonymous | PrincipalKind::Service => {
            vote(policy, request, trace)
        }
    }
}

/// The running count of votes.
#[derive(Default)]
struct Tally<'p> {
    permits: usize,
    denies: usize,
    first_permit: Option<&'p Candidate>,
    first_deny: Option<&'p Candidate>,
}

impl<'p> Tally<'p> {
    fn add(&mut self, candidate: &'p Candidate, effect: Effect) {
        match effect {
            Effect::Allow => {
                self.permits += 1;
                self.first_permit.get_or_insert(candidate);
            }
            Effect::Deny => {
                self.denies += 1;
                self.first_deny.get_or_insert(candidate);
            }
        }
    }
}

fn vote<'p>(
    policy: &'p PolicySet,
    request: &Request<'_>,
    mut trace: Option<&mut Explanation>,
) -> Decision<'p> {
    let strategy = policy.strategy();
    let eval = eval::Eval::new(policy, request);
    let mut tally = Tally::default();
    // Under the priority strategy, the first vote decides unless a deny of the same priority follows.
    let mut decided_at: Option<i32> = None;
    for &id in policy.candidate_ids(request.resource.kind, request.action) {
        let Some(candidate) = policy.candidate(id) else {
            continue;
        };
        if strategy == Strategy::Priority && trace.is_none() {
            if decided_at.is_some_and(|p| candidate.priority < p) {
                break;
            }
            if decided_at.is_some() && candidate.fixed_effect() == Some(Effect::Allow) {
                continue;
            }
        }
        let outcome = eval.candidate(candidate, trace.as_deref_mut());
        if let Some(effect) = outcome {
            if strategy == Strategy::Priority && decided_at.is_some_and(|p| candidate.priority < p)
            {
                // Explaining: later candidates are listed but no longer count.
                continue;
            }
            tally.add(candidate, effect);
            decided_at.get_or_insert(candidate.priority);
        }
    }
    let mut decision = conclude(strategy, tally);
    decision.errors = eval.take_errors();
    decision
}

fn conclude(strategy: Strategy, tally: Tally<'_>) -> Decision<'_> {
    let Tally {
        permits,
        denies,
        first_permit,
        first_deny,
    } = tally;
    if permits == 0 && denies == 0 {
        return Decision {
            allowed: false,
            rule: DEFAULT_DENY,
            why: Why::DefaultDeny,
            errors: Vec::new(),
        };
    }
    let allowed = match strategy {
        Strategy::Priority => denies == 0,
        counting => counting.combine(permits, denies),
    };
    let decider = if allowed { first_permit } else { first_deny };
    match decider {
        Some(candidate) => Decision {
            allowed,
            rule: candidate.name.as_str(),
            why: Why::Candidate {
                candidate,
                strategy,
                permits,
                denies,
            },
            errors: Vec::new(),
        },
        None => Decision {
            allowed,
            rule: DEFAULT_DENY,
            why: Why::Votes {
                strategy,
                permits,
                denies,
            },
            errors: Vec::new(),
        },
    }
}

/// The origin names used in explanations and reasons.
/// How a decision is named in spans, metrics and the decision log.
pub fn verdict_name(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

pub fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Rule => "rule",
        Origin::ChatPolicy => "chat_policy",
        Origin::Permission => "permission",
    }
}
