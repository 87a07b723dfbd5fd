//! [`Remote`]: asks a gatehouse server's `Check` over gRPC, each ask bounded by a deadline.

use std::time::Duration;

use gatehouse::grpc::map_to_struct;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use thiserror::Error;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::decider::{Answer, Credential, DecideError, Decider, Question};

/// How long an ask may take unless set: gatehouse runs beside the app, and a decision is in-memory
/// work, so half a second is long past a healthy answer.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(500);

/// Why a [`Remote`] cannot be made.
#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("invalid gatehouse address: {0}")]
    Address(#[source] tonic::transport::Error),
}

/// A gatehouse server, asked over gRPC.
#[derive(Debug, Clone)]
pub struct Remote {
    client: GatehouseClient<Channel>,
    deadline: Duration,
}

impl Remote {
    /// Asks over `channel`, with the [`DEFAULT_DEADLINE`].
    pub fn new(channel: Channel) -> Remote {
        Remote {
            client: GatehouseClient::new(channel),
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// Asks the server at `address` (`http://127.0.0.1:50051`), connecting on the first ask and
    /// again after a connection is lost, so the app starts whether or not gatehouse is up yet. Call
    /// within a tokio runtime.
    pub fn connect_lazy(address: impl Into<String>) -> Result<Remote, RemoteError> {
        let endpoint = Endpoint::from_shared(address.into()).map_err(RemoteError::Address)?;
        Ok(Remote::new(endpoint.connect_lazy()))
    }

    /// Each ask, connecting included, gives up after `deadline`; gatehouse is told the deadline too
    /// (`grpc-timeout`).
    pub fn with_deadline(mut self, deadline: Duration) -> Remote {
        self.deadline = deadline;
        self
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn ask(&self, question: &Question) -> Result<Answer, DecideError> {
        let (token, anonymous) = match &question.credential {
            Credential::Token(token) => (token.expose().to_owned(), false),
            Credential::Anonymous => (String::new(), true),
        };
        let resource = &question.resource;
        let mut request = tonic::Request::new(pb::CheckRequest {
            token,
            anonymous,
            action: question.action.clone(),
            resource: Some(pb::Resource {
                kind: resource.kind.clone(),
                id: resource.id.clone(),
                attributes: Some(map_to_struct(&resource.attributes)),
            }),
            ..pb::CheckRequest::default()
        });
        request.set_timeout(self.deadline);
        let mut client = self.client.clone();
        let started = std::time::Instant::now();
        let response = tokio::time::timeout(self.deadline, client.check(request))
            .await
            .map_err(|_| DecideError::Deadline(self.deadline))?
            .map_err(|status| {
                // tonic enforces the same `grpc-timeout` itself, and either timer may fire first.
                let timed_out = matches!(
                    status.code(),
                    Code::Cancelled | Code::DeadlineExceeded | Code::Unavailable
                ) && started.elapsed() >= self.deadline;
                if timed_out {
                    DecideError::Deadline(self.deadline)
                } else {
                    from_status(status)
                }
            })?
            .into_inner();
        Ok(Answer {
            allowed: response.allowed,
            user_id: response.principal.map(|p| p.user_id).unwrap_or_default(),
            rule: response.rule,
            reason: response.reason,
        })
    }
}

impl Decider for Remote {
    async fn decide(&self, question: &Question) -> Result<Answer, DecideError> {
        self.ask(question).await
    }
}

/// gatehouse's statuses: a refused token, a question it will not answer, or a failure to answer.
/// Only the last may be let through by [`crate::FailureMode::Open`], so anything that says the
/// question is wrong stays on the refusing side.
fn from_status(status: tonic::Status) -> DecideError {
    let message = status.message().to_owned();
    match status.code() {
        Code::Unauthenticated => DecideError::Unauthenticated(message),
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::PermissionDenied
        | Code::NotFound
        | Code::AlreadyExists
        | Code::Unimplemented => DecideError::Rejected(message),
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => DecideError::Unavailable(message),
    }
}
