//! Explanations: every candidate considered, how it voted and why, like Keycloak's evaluation tool.
//! Only built when asked for, so ordinary checks pay nothing for it.

use super::Decision;
use crate::policy::{Effect, Strategy};

/// How one candidate fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceResult {
    /// It applied and cast this vote.
    Vote(Effect),
    /// It did not apply, and why.
    NotApplicable(String),
    /// A condition failed to evaluate; counted as not applying.
    Error(String),
}

/// One part of a condition that decided how a candidate fared: the role, operand or CEL
/// sub-expression that did not hold (or, for `unless`, that held), or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// For the caller who asked for the explanation: may quote the request's values and the
    /// principal's own roles, groups and id (`owner: attributes.owner_id is 'alice', the principal
    /// is 'bob'`).
    pub detail: String,
    /// For logs and decision logs: names what was read and what was required, never a value from the
    /// request (`owner: attributes.owner_id is not the principal`).
    pub redacted: String,
}

/// A named policy's result inside a permission (or an aggregated policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTrace {
    pub name: String,
    /// After the policy's logic.
    pub granted: bool,
    pub negative: bool,
    pub detail: String,
    /// Why the policy's own condition (before its logic) did not grant, when it did not.
    pub parts: Vec<Part>,
    pub children: Vec<PolicyTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub name: String,
    /// `rule`, `chat_policy` or `permission`.
    pub origin: &'static str,
    pub priority: i32,
    pub actions: Vec<String>,
    pub result: TraceResult,
    /// For a rule that did not apply or failed: the parts of its `when` that did not hold, or of its
    /// `unless` that held.
    pub parts: Vec<Part>,
    pub policies: Vec<PolicyTrace>,
}

/// The whole evaluation of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub strategy: Strategy,
    pub entries: Vec<TraceEntry>,
    pub allowed: bool,
    pub rule: String,
}

impl Explanation {
    pub(super) fn new(strategy: Strategy) -> Self {
        Explanation {
            strategy,
            entries: Vec::new(),
            allowed: false,
            rule: String::new(),
        }
    }

    pub(super) fn push(&mut self, entry: TraceEntry) {
        self.entries.push(entry);
    }

    pub(super) fn finish(&mut self, decision: &Decision<'_>) {
        self.allowed = decision.allowed;
        self.rule = decision.rule.to_owned();
    }

    /// Errors met while evaluating, for logs and responses.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|e| match &e.result {
            TraceResult::Error(message) => Some((e.name.as_str(), message.as_str())),
            _ => None,
        })
    }
}
