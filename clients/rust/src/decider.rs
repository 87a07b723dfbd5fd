//! The question the layer asks, the answer, and the [`Decider`] that answers: [`crate::Remote`] over
//! gRPC or [`crate::Local`] in process. Both answer the same question the same way.

use std::future::Future;
use std::time::Duration;

use thiserror::Error;

use crate::credential::Token;
use crate::routes::Resource;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The bearer token of the request.
    Token(Token),
    /// No token, on a route that allows anonymous callers: gatehouse's anonymous principal.
    Anonymous,
}

/// May the caller perform `action` on `resource`?
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub credential: Credential,
    pub action: String,
    pub resource: Resource,
}

/// gatehouse's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    /// The principal the token speaks for; empty for an anonymous caller.
    pub user_id: String,
    /// The rule that decided (`default-deny` when none did).
    pub rule: String,
    /// A sentence a person can act on.
    pub reason: String,
}

/// Why there is no answer. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecideError {
    /// The token is expired, badly signed, malformed, revoked, ...; gatehouse's message says which.
    #[error("the token was refused: {0}")]
    Unauthenticated(String),
    /// gatehouse could not be reached or failed to answer.
    #[error("gatehouse is unavailable: {0}")]
    Unavailable(String),
    /// gatehouse did not answer within the deadline.
    #[error("gatehouse did not answer within {0:?}")]
    Deadline(Duration),
    /// gatehouse answered that the question itself is wrong (an empty resource kind, too large
    /// attributes): a mistake in the routes, never a reason to let the request through.
    #[error("gatehouse refused the question: {0}")]
    Rejected(String),
}

impl DecideError {
    /// Whether gatehouse failed to answer, as opposed to answering no: the errors the layer's
    /// [`crate::FailureMode`] applies to.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DecideError::Unavailable(_) | DecideError::Deadline(_))
    }
}

/// Answers questions: remotely ([`crate::Remote`]) or in process ([`crate::Local`]).
pub trait Decider: Send + Sync + 'static {
    fn decide(
        &self,
        question: &Question,
    ) -> impl Future<Output = Result<Answer, DecideError>> + Send;
}
