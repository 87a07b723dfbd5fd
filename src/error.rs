//! Error enums of the service layer and their one mapping to gRPC status codes.
//!
//! Messages are lower-case, one line, and never contain a token or the secret.

use thiserror::Error;
use tonic::{Code, Status};

use crate::policy::LoadErrors;
use crate::token::{IssueError, TokenError};

/// Why a call was refused.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot issue token: {0}")]
    Issue(#[from] IssueError),
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error(transparent)]
    TooLarge(#[from] crate::engine::TooLarge),
    #[error(transparent)]
    RateLimited(#[from] crate::ratelimit::Limited),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let code = match &error {
            Error::Token(_) => Code::Unauthenticated,
            Error::Issue(IssueError::Signing) => Code::Internal,
            Error::Issue(_) | Error::InvalidRequest(_) | Error::TooLarge(_) => {
                Code::InvalidArgument
            }
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::RateLimited(limited) => {
                let mut status = Status::resource_exhausted(error.to_string());
                let wait = crate::ratelimit::retry_after_secs(limited.retry_after);
                status.metadata_mut().insert(
                    "retry-after",
                    wait.to_string().parse().unwrap_or_else(|_| 1.into()),
                );
                return status;
            }
        };
        Status::new(code, error.to_string())
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("invalid policies:\n{0}")]
    Policy(#[from] LoadErrors),
    #[error("reflection descriptors are invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot watch the policy directory: {0}")]
    Watch(#[source] notify::Error),
    #[error("cannot watch the policy directory: {0}")]
    Signal(#[source] std::io::Error),
    #[error("cannot start the decision log: {0}")]
    DecisionLog(#[source] std::io::Error),
    #[error("cannot serve TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot watch the TLS files: {0}")]
    TlsWatch(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch OpenID Connect keys: {0}")]
    Jwks(#[from] crate::jwks::FetchError),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_unauthenticated_and_named() {
        let status = Status::from(Error::Token(TokenError::Expired));
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().contains("expired"));
    }

    #[test]
    fn issue_errors_are_invalid_arguments() {
        let status = Status::from(Error::Issue(IssueError::NegativeLifetime));
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
