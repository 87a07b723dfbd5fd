//! Stream-compatible JWTs: verifying them into a [`Principal`](crate::principal::Principal) and issuing
//! user tokens.
//!
//! Owns the API secret. Knows nothing of gRPC or of policies: it answers "who is this?", never "may they?".
//! No error, log line or `Debug` output of this module contains a token or the secret.

mod claims;
mod error;
mod issue;
mod secret;
mod verify;

pub use error::{IssueError, TokenError};
pub use issue::{IssueRequest, IssuedToken, Issuer};
pub use secret::ApiSecret;
pub use verify::{Verifier, VerifyOptions};

/// Claims that callers of [`Issuer::issue`] may not set through extra claims, because they decide who the
/// token speaks for or how long it lives.
pub const RESERVED_CLAIMS: &[&str] = &[
    "user_id", "exp", "iat", "nbf", "server", "resource", "action", "feed_id", "role", "roles",
    "groups",
];

/// Seconds since the Unix epoch, the unit of JWT time claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
