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

/// A named policy's result inside a permission (or an aggregated policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTrace {
    pub name: String,
    /// After the policy's logic.
    pub granted: bool,
    pub negative: bool,
    pub detail: String,
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
