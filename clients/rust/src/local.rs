//! [`Local`]: verifies and decides in process, with gatehouse's own verifier, store and engine, so
//! the same token and question get the same answer as from a gatehouse server (`Check`) with the
//! same secret and policy directory.
//!
//! What it uses of gatehouse is the path `Check` takes: `authz::verify_caller` (verify, then the
//! set's revocations), `engine::bounds::check`, and `decider::judge` (the engine under the set's
//! mode for checks). It records nothing: no metrics, no decision log.

use std::path::Path;
use std::sync::Arc;

use gatehouse::authz::verify_caller;
use gatehouse::decider::judge;
use gatehouse::door::Door;
use gatehouse::engine;
use gatehouse::policy::LoadErrors;
use gatehouse::principal::Principal;
use gatehouse::store::{self, PolicyStore};
use gatehouse::token::{ApiSecret, CacheLimits, Verifier, VerifyOptions, unix_now};
use serde_json::Map;
use thiserror::Error;

use crate::decider::{Answer, Credential, DecideError, Decider, Question};

/// Why a [`Local`] cannot be made.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("invalid policies:\n{0}")]
    Policies(#[from] LoadErrors),
}

/// gatehouse's verifier and engine, in process.
pub struct Local {
    verifier: Verifier,
    policies: Arc<PolicyStore>,
}

impl Local {
    /// Decides with `verifier` and the set `policies` serves (which the app may reload).
    pub fn new(verifier: Verifier, policies: Arc<PolicyStore>) -> Local {
        Local { verifier, policies }
    }

    /// Tokens signed with `secret`, checked as a gatehouse server checks them by default (no leeway,
    /// 8 KiB at most, the same verified-token cache), against the policy directory `dir`.
    pub fn from_dir(secret: &ApiSecret, dir: impl AsRef<Path>) -> Result<Local, LocalError> {
        let dir = dir.as_ref();
        let set = store::load_dir(dir)?;
        let verifier =
            Verifier::new(secret, VerifyOptions::default()).with_cache(CacheLimits::default());
        Ok(Local::new(
            verifier,
            Arc::new(PolicyStore::new(set, Some(dir.to_path_buf()))),
        ))
    }

    /// The live set, to reload (`reload_blocking`) or replace.
    pub fn policies(&self) -> &Arc<PolicyStore> {
        &self.policies
    }

    /// The answer `Check` would give.
    pub fn answer(&self, question: &Question) -> Result<Answer, DecideError> {
        if question.action.trim().is_empty() {
            return Err(DecideError::Rejected("action is required".to_owned()));
        }
        if question.resource.kind.trim().is_empty() {
            return Err(DecideError::Rejected(
                "resource.kind is required".to_owned(),
            ));
        }
        // One set decides the whole question, its revocations included.
        let policy = self.policies.current();
        let now = unix_now();
        let principal = match &question.credential {
            Credential::Token(token) => verify_caller(&self.verifier, token.expose(), &policy, now)
                .map_err(|e| DecideError::Unauthenticated(e.to_string()))?,
            Credential::Anonymous => Arc::new(Principal::anonymous()),
        };
        let context = Map::new();
        let request = engine::Request {
            principal: &principal,
            action: &question.action,
            resource: engine::Resource {
                kind: &question.resource.kind,
                id: &question.resource.id,
                attributes: &question.resource.attributes,
            },
            context: &context,
            now,
        };
        engine::bounds::check(&request).map_err(|e| DecideError::Rejected(e.to_string()))?;
        let (verdict, _) = judge(&policy, &request, Door::Check, false);
        Ok(Answer {
            allowed: verdict.allowed,
            user_id: principal.user_id.clone(),
            rule: verdict.decision.rule.to_owned(),
            reason: verdict.reason(&request),
        })
    }
}

impl Decider for Local {
    fn decide(
        &self,
        question: &Question,
    ) -> impl Future<Output = Result<Answer, DecideError>> + Send {
        std::future::ready(self.answer(question))
    }
}
