//! The [`Gate`] of offline evaluation (policy test suites, `gatehouse eval --http`): the same token
//! check and the same mode handling as the live doors, with nothing counted, logged or traced.

use std::cell::RefCell;
use std::sync::Arc;

use super::Gate;
use crate::decider::{Verdict, judge};
use crate::door::Door;
use crate::engine::{self, Explanation};
use crate::policy::{PolicySet, Route};
use crate::principal::Principal;
use crate::token::{TokenError, Verifier};

/// The caller `token` speaks for: verified at `now`, and not revoked by `policy` (the set that decides
/// the call). The one path from a token to a caller, live ([`crate::App::authenticate`]) or offline.
pub fn verify_caller(
    verifier: &Verifier,
    token: &str,
    policy: &PolicySet,
    now: i64,
) -> Result<Arc<Principal>, TokenError> {
    verifier.verify_shared_at(token, now).and_then(|principal| {
        if policy.revokes(&principal) {
            Err(TokenError::Revoked)
        } else {
            Ok(principal)
        }
    })
}

/// Authenticates with a verifier and decides under the set's route mode for `door`, keeping the
/// sentence and the explanation of the last verdict, so that any answer can be explained (offline,
/// an explanation costs nothing anyone waits for).
pub struct OfflineGate<'a> {
    pub verifier: &'a Verifier,
    pub door: Door,
    last_reason: RefCell<Option<String>>,
    last_explanation: RefCell<Option<Explanation>>,
}

impl<'a> OfflineGate<'a> {
    pub fn new(verifier: &'a Verifier, door: Door) -> Self {
        OfflineGate {
            verifier,
            door,
            last_reason: RefCell::new(None),
            last_explanation: RefCell::new(None),
        }
    }

    /// The explanation of the last verdict this gate gave, if it decided anything.
    pub fn take_explanation(&self) -> Option<Explanation> {
        self.last_explanation.take()
    }

    /// The sentence of the last verdict this gate gave, if it decided anything.
    pub fn last_reason(&self) -> Option<String> {
        self.last_reason.borrow().clone()
    }
}

impl Gate for OfflineGate<'_> {
    fn authenticate(
        &self,
        token: &str,
        policy: &PolicySet,
        now: i64,
    ) -> Result<Arc<Principal>, TokenError> {
        verify_caller(self.verifier, token, policy, now)
    }

    /// Offline evaluation keeps no decision log: the refusal is the answer itself.
    fn refused(&self, _policy: &PolicySet, _route: &Route, _error: &TokenError) {}

    fn decide<'p>(
        &self,
        policy: &'p PolicySet,
        request: &engine::Request<'_>,
        _route: &str,
    ) -> Verdict<'p> {
        let (verdict, explanation) = judge(policy, request, self.door, true);
        self.last_reason.replace(Some(verdict.reason(request)));
        self.last_explanation.replace(explanation);
        verdict
    }
}
