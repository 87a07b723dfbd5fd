use thiserror::Error;

/// Why a token was refused. Messages are one line and never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("missing token")]
    Missing,
    #[error("malformed token: larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm not allowed: {0} (only HS256 is accepted)")]
    AlgorithmNotAllowed(String),
    #[error("bad signature")]
    BadSignature,
    #[error("unknown key id: no configured secret has the token's kid")]
    UnknownKeyId,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf is in the future)")]
    NotYetValid,
    #[error("token issued in the future (iat is in the future)")]
    IssuedInFuture,
    #[error("development tokens are not accepted (enable them with GATEHOUSE_ALLOW_DEV_TOKENS)")]
    DevTokenNotAllowed,
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    #[error("token revoked")]
    Revoked,
    #[error("algorithm not allowed for this issuer: {0}")]
    IssuerAlgorithmNotAllowed(String),
    #[error("unknown key id: the issuer's key set has no key with the token's kid")]
    IssuerUnknownKey,
    #[error("the issuer's signing keys have not been fetched yet")]
    IssuerKeysUnavailable,
    #[error("the issuer's signing keys are too old: no successful fetch within max_key_age")]
    IssuerKeysTooOld,
    #[error("token audience is not one this issuer is configured for")]
    Audience,
}

impl TokenError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgorithmNotAllowed(_) => "algorithm",
            TokenError::BadSignature => "bad_signature",
            TokenError::UnknownKeyId => "unknown_kid",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::DevTokenNotAllowed => "dev_token",
            TokenError::InvalidClaims(_) => "invalid_claims",
            TokenError::Revoked => "revoked",
            TokenError::IssuerAlgorithmNotAllowed(_) => "algorithm",
            TokenError::IssuerUnknownKey => "unknown_kid",
            TokenError::IssuerKeysUnavailable => "issuer_keys_unavailable",
            TokenError::IssuerKeysTooOld => "issuer_keys_too_old",
            TokenError::Audience => "audience",
        }
    }
}

/// Why a token could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IssueError {
    #[error("user_id is required")]
    MissingUserId,
    #[error("user_id must be at most 255 bytes without control characters")]
    InvalidUserId,
    #[error("expires_in_seconds must not be negative")]
    NegativeLifetime,
    #[error("expires_in_seconds is too large")]
    LifetimeTooLong,
    #[error("claim '{0}' is reserved and cannot be set through extra claims")]
    ReservedClaim(String),
    #[error("role and group names must be non-empty")]
    EmptyName,
    #[error("token could not be signed")]
    Signing,
}
