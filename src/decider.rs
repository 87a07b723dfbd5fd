//! Where every service decides a request: the live set under its enforcement mode, the shadow set
//! beside it, and the record of it (metrics, the decision log and the request's span).
//!
//! The gRPC Check RPCs and the proxy front ends all come through [`Decider::decide`], so a decision is
//! recorded the same way whichever door it came through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use crate::audit::{Decided, DecisionEntry, DecisionLog, ShadowDecided};
use crate::door::Door;
use crate::engine::{self, Decision, Explanation, Request, verdict_name};
use crate::policy::{Mode, PolicySet};
use crate::store::PolicyStore;
use crate::telemetry::context::RequestSpan;
use crate::telemetry::metrics::Metrics;
use crate::token::TokenError;

/// The rule a decision log entry names for a request refused for its credentials.
pub const UNAUTHENTICATED_RULE: &str = "unauthenticated";
/// The principal kind a decision log entry names when the credentials did not say who called.
pub const UNKNOWN_PRINCIPAL: &str = "unknown";

/// A request refused for its credentials: what it asked, as far as it is known, and why.
pub struct Refusal<'a> {
    pub action: &'a str,
    pub resource_kind: &'a str,
    pub resource_id: &'a str,
    /// The decision log's `source` when it is not the call's door (`allowed_actions`).
    pub source: Option<&'a str>,
    pub error: &'a TokenError,
}

/// What the caller knows about the call besides the request.
pub struct Call<'a> {
    pub door: Door,
    pub route: Option<&'a str>,
    /// The request's span, which gets the decision's attributes.
    pub span: &'a RequestSpan,
    pub started: Instant,
}

/// The policy's decision and what is answered.
#[derive(Debug)]
pub struct Verdict<'p> {
    pub decision: Decision<'p>,
    /// What the caller is told: the decision, unless the mode is permissive or disabled.
    pub allowed: bool,
    /// A denial answered as allowed because the set is permissive.
    pub dry_run: bool,
    pub mode: Mode,
}

impl Verdict<'_> {
    /// The decision's sentence, marked when it was a dry run.
    pub fn reason(&self, request: &Request<'_>) -> String {
        let reason = self.decision.reason(request);
        if self.dry_run {
            format!("dry run (mode: permissive), allowed although the policy denies: {reason}")
        } else {
            reason
        }
    }
}

/// The verdict on `request` with `policy` under the set's mode for `door`, recorded nowhere: the one
/// place the mode turns a decision into an answer, for the live doors (through [`Decider::decide`])
/// and for offline evaluation (policy test suites, `gatehouse eval --http`) alike.
pub fn judge<'p>(
    policy: &'p PolicySet,
    request: &Request<'_>,
    door: Door,
    explain: bool,
) -> (Verdict<'p>, Option<Explanation>) {
    let mode = door.mode(policy);
    let (decision, explanation) = match mode {
        Mode::Disabled => (Decision::disabled(), None),
        _ if explain => {
            let (decision, explanation) = engine::decide_explained(policy, request);
            (decision, Some(explanation))
        }
        _ => (engine::decide(policy, request), None),
    };
    let dry_run = mode == Mode::Permissive && !decision.allowed;
    let verdict = Verdict {
        allowed: decision.allowed || mode != Mode::Enforcing,
        dry_run,
        mode,
        decision,
    };
    (verdict, explanation)
}

/// Decides and records; shared by every service.
pub struct Decider {
    metrics: Arc<Metrics>,
    log: DecisionLog,
    /// A second set evaluated beside the live one; differences are counted and logged.
    shadow: Option<Arc<PolicyStore>>,
    /// Callers can make a condition fail on every request they send; its warning is let through at
    /// most once a second, so the log stays the operator's.
    condition_warnings: OncePerSecond,
}

/// Lets an event through at most once a second, counting the ones held back in between.
#[derive(Debug, Default)]
struct OncePerSecond {
    last_second: AtomicU64,
    held_back: AtomicU64,
}

impl OncePerSecond {
    /// `Some(held back since the last one let through)` when this one may go through.
    fn admit(&self, now_second: u64) -> Option<u64> {
        let last = self.last_second.load(Ordering::Relaxed);
        let turn = now_second != last
            && self
                .last_second
                .compare_exchange(last, now_second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if turn {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Decider {
    pub fn new(metrics: Arc<Metrics>, log: DecisionLog, shadow: Option<Arc<PolicyStore>>) -> Self {
        Decider {
            metrics,
            log,
            shadow,
            condition_warnings: OncePerSecond::default(),
        }
    }

    /// The shadow set's store, when there is one (its watcher reloads it).
    pub fn shadow(&self) -> Option<&Arc<PolicyStore>> {
        self.shadow.as_ref()
    }

    /// The decisions kept in memory, oldest first, for the exercised-permission RPCs.
    pub fn recent(&self) -> Vec<DecisionEntry> {
        self.log.snapshot()
    }

    /// Writes out the decision log file and stops its writer; see [`DecisionLog::close`].
    pub fn close_log(&self) {
        self.log.close();
    }

    /// Decides `request` with `policy` under the set's mode for `call.door`, and records it.
    pub fn decide<'p>(
        &self,
        policy: &'p PolicySet,
        request: &Request<'_>,
        call: &Call<'_>,
        explain: bool,
    ) -> (Verdict<'p>, Option<Explanation>) {
        let (verdict, explanation) = judge(policy, request, call.door, explain);
        self.record(policy, request, call, &verdict);
        (verdict, explanation)
    }

    fn record(
        &self,
        policy: &PolicySet,
        request: &Request<'_>,
        call: &Call<'_>,
        verdict: &Verdict<'_>,
    ) {
        let decision = &verdict.decision;
        if let Some(error) = decision.errors.first() {
            let now_second = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Some(held_back) = self.condition_warnings.admit(now_second) {
                tracing::warn!(
                    rule = %error.rule,
                    error = %error.message,
                    revision = policy.revision(),
                    others_in_this_decision = decision.errors.len() - 1,
                    held_back_since_last_warning = held_back,
                    "a condition failed to evaluate and counted against the request"
                );
            }
        }
        self.metrics
            .decision(decision.allowed, decision.rule, call.door);
        let shadow_set = self.shadow.as_ref().map(|store| store.current());
        let shadow = shadow_set
            .as_deref()
            .map(|set| (set, self.shadow_decide(set, request, verdict)));
        let span = call.span;
        // A batch's span is the call's: its items' decisions are in the decision log and metrics,
        // and the span keeps the call's own attributes (a span's attributes would pile up per item).
        if call.door != Door::Batch && span.is_recording() {
            span.set("decision", verdict_name(decision.allowed));
            span.set("rule", decision.rule.to_owned());
            span.set("revision", policy.revision().to_owned());
            span.set("action", request.action.to_owned());
            span.set("resource.kind", request.resource.kind.to_owned());
            span.set("principal.kind", request.principal.kind.as_str());
            if verdict.dry_run {
                span.set("dry_run", true);
            }
        }
        if !self.log.is_enabled() {
            return;
        }
        self.log.record(&Decided {
            time_ms: now_ms(),
            principal_id: &request.principal.user_id,
            principal_kind: request.principal.kind.as_str(),
            roles: &request.principal.roles,
            action: request.action,
            resource_kind: request.resource.kind,
            resource_id: request.resource.id,
            decision: verdict_name(decision.allowed),
            allowed: verdict.allowed,
            rule: decision.rule,
            rule_id_pattern: decision.rule_id_pattern(),
            revision: policy.revision(),
            mode: verdict.mode.as_str(),
            dry_run: verdict.dry_run,
            source: call.door.as_str(),
            route: call.route,
            reason: None,
            shadow: shadow.as_ref().map(|(set, shadow)| ShadowDecided {
                decision: verdict_name(shadow.allowed),
                rule: shadow.rule,
                revision: set.revision(),
            }),
            trace_id: call.span.trace_id(),
            latency_us: u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
    }

    /// Records a request refused for its credentials before any rule was asked: a deny by the rule
    /// [`UNAUTHENTICATED_RULE`], with the token error's message as the reason (the message never
    /// quotes the token). Refusals are already counted by reason when the token is verified, so no
    /// decision metric is counted here.
    pub fn refused(&self, policy: &PolicySet, refusal: &Refusal<'_>, call: &Call<'_>) {
        if !self.log.is_enabled() {
            return;
        }
        let reason = refusal.error.to_string();
        self.log.record(&Decided {
            time_ms: now_ms(),
            principal_id: "",
            principal_kind: UNKNOWN_PRINCIPAL,
            roles: &[],
            action: refusal.action,
            resource_kind: refusal.resource_kind,
            resource_id: refusal.resource_id,
            decision: verdict_name(false),
            allowed: false,
            rule: UNAUTHENTICATED_RULE,
            rule_id_pattern: None,
            revision: policy.revision(),
            mode: call.door.mode(policy).as_str(),
            dry_run: false,
            source: refusal.source.unwrap_or(call.door.as_str()),
            route: call.route,
            reason: Some(&reason),
            shadow: None,
            trace_id: call.span.trace_id(),
            latency_us: u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
    }

    /// Decides `request` with the shadow set too, counting and logging a difference from the live
    /// set's decision. A disabled live set decides nothing, so there is nothing to differ from.
    fn shadow_decide<'s>(
        &self,
        shadow_set: &'s PolicySet,
        request: &Request<'_>,
        verdict: &Verdict<'_>,
    ) -> Decision<'s> {
        let shadow = engine::decide(shadow_set, request);
        let live = &verdict.decision;
        if verdict.mode != Mode::Disabled && shadow.allowed != live.allowed {
            self.metrics.shadow_difference(live.allowed, shadow.allowed);
            tracing::info!(
                live = verdict_name(live.allowed),
                live_rule = live.rule,
                shadow = verdict_name(shadow.allowed),
                shadow_rule = shadow.rule,
                shadow_revision = shadow_set.revision(),
                action = request.action,
                kind = request.resource.kind,
                "the shadow policy set decides differently"
            );
        }
        shadow
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::OncePerSecond;

    #[test]
    fn once_per_second_lets_one_through_each_second_and_counts_the_rest() {
        let gate = OncePerSecond::default();
        assert_eq!(gate.admit(100), Some(0));
        assert_eq!(gate.admit(100), None);
        assert_eq!(gate.admit(100), None);
        assert_eq!(gate.admit(101), Some(2));
        assert_eq!(gate.admit(101), None);
        assert_eq!(gate.admit(105), Some(1));
    }
}
