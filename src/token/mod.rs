//! Stream-compatible JWTs: verifying them into a [`Principal`](crate::principal::Principal) and issuing
//! user tokens.
//!
//! Owns the API secrets (several while a rotation is under way). Knows nothing of gRPC or of policies: it answers "who is this?", never "may they?".
//! Tokens whose `iss` is a configured OpenID Connect issuer are verified with that issuer's published
//! keys (`oidc`), which the `jwks` module fetches; every other token takes the Stream path.
//! No error, log line or `Debug` output of this module contains a token or the secret.

mod cache;
mod claims;
mod error;
mod issue;
mod issuer_config;
mod jwt;
mod keyring;
mod oidc;
mod secret;
mod verify;

pub use cache::{CacheLimits, CacheReport, TokenCache};
pub use error::{IssueError, TokenError};
pub use issue::{IssueRequest, IssuedToken, Issuer};
pub use issuer_config::{IssuerConfig, IssuerConfigs, MAX_ISSUERS, check_url};
pub use keyring::{KeyedSecret, Keyring, MAX_SECRETS, Secrets, SecretsError};
pub use oidc::{IssuerKey, IssuerKeys, Issuers, JwksError, KeySet, algorithm_name};
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

/// The token in an `Authorization` value: `Bearer <jwt>` (the prefix in any case) or the bare JWT, as
/// Stream's clients send either. The one reading of the header, for every door.
pub fn bearer_token(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => {
            value.get(7..).unwrap_or("").trim()
        }
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), "abc");
        assert_eq!(bearer_token("bearer  abc "), "abc");
        assert_eq!(bearer_token("abc"), "abc");
        assert_eq!(bearer_token("Bearer"), "Bearer");
    }
}
