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

/// The most entries [`explain_summary`] lists when no candidate decided.
const SUMMARY_ENTRIES: usize = 8;

/// A few lines on why the decision went as it did, for messages such as a failing test case's: the
/// deciding candidate and the candidate named `also` (the one a test expected, say), each with its
/// result and the parts of its conditions that decided it; when neither is among the candidates
/// (nothing voted), the first candidates considered. Uses the caller's phrasing of each part, which
/// may quote the request's values: not for logs.
pub fn explain_summary(explanation: &Explanation, also: Option<&str>) -> String {
    let named: Vec<&TraceEntry> = explanation
        .entries
        .iter()
        .filter(|e| e.name == explanation.rule || also == Some(e.name.as_str()))
        .collect();
    let (shown, left) = if named.is_empty() {
        let all = &explanation.entries;
        let shown: Vec<&TraceEntry> = all.iter().take(SUMMARY_ENTRIES).collect();
        (shown, all.len().saturating_sub(SUMMARY_ENTRIES))
    } else {
        (named, 0)
    };
    let mut lines = Vec::new();
    for entry in shown {
        let result = match &entry.result {
            TraceResult::Vote(Effect::Allow) => "permit".to_owned(),
            TraceResult::Vote(Effect::Deny) => "deny".to_owned(),
            TraceResult::NotApplicable(why) => format!("not applicable, {why}"),
            TraceResult::Error(error) => format!("error: {error}"),
        };
        lines.push(format!(
            "{} '{}': {result}",
            entry.origin.replace('_', " "),
            entry.name
        ));
        lines.extend(entry.parts.iter().map(|p| format!("  - {}", p.detail)));
        push_policies(&mut lines, &entry.policies);
    }
    if left > 0 {
        lines.push(format!("... and {left} more candidates"));
    }
    lines.join("\n")
}

fn push_policies(lines: &mut Vec<String>, policies: &[PolicyTrace]) {
    for policy in policies.iter().filter(|p| !p.granted) {
        lines.extend(
            policy
                .parts
                .iter()
                .map(|p| format!("  - policy '{}': {}", policy.name, p.detail)),
        );
        push_policies(lines, &policy.children);
    }
}
