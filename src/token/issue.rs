use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use std::sync::Arc;

use super::keyring::{Keyring, Secrets};
use super::{ApiSecret, IssueError, RESERVED_CLAIMS, unix_now};

/// The longest lifetime a token may be given; longer requests are almost certainly unit mistakes.
const MAX_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 60 * 60;

/// What a user token should say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssueRequest {
    pub user_id: String,
    /// 0: the token never expires, Stream's default.
    pub expires_in_seconds: i64,
    pub claims: Map<String, Value>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// `exp`, when the token expires.
    pub expires_at: Option<i64>,
}

/// Mints user tokens exactly as Stream's server SDKs do: HS256, `{"user_id": ...}`, signed with the
/// current secret (and naming it in the header's `kid` when it has a key id).
pub struct Issuer {
    keyring: Arc<Keyring>,
}

impl Issuer {
    /// An issuer signing with one secret.
    pub fn new(secret: &ApiSecret) -> Self {
        Issuer::with_keyring(Keyring::new(Secrets::single(secret.clone())))
    }

    /// An issuer signing with whatever secret is current in `keyring` at each call.
    pub fn with_keyring(keyring: Arc<Keyring>) -> Self {
        Issuer { keyring }
    }

    /// Signs `claims` with the current secret.
    fn sign(&self, claims: &Map<String, Value>) -> Result<String, IssueError> {
        let keys = self.keyring.keys();
        let current = keys.secrets.current();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = current.key_id.clone();
        let key = EncodingKey::from_secret(current.secret.expose());
        jsonwebtoken::encode(&header, claims, &key).map_err(|_| IssueError::Signing)
    }

    pub fn issue(&self, request: IssueRequest) -> Result<IssuedToken, IssueError> {
        self.issue_at(request, unix_now())
    }

    /// Issues a token as of `now`. It carries `iat`, so that revoking "every token issued before T" can
    /// reach it.
    pub fn issue_at(&self, request: IssueRequest, now: i64) -> Result<IssuedToken, IssueError> {
        validate_user_id(&request.user_id)?;
        if let Some(reserved) = request
            .claims
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(IssueError::ReservedClaim(reserved.clone()));
        }
        if request
            .roles
            .iter()
            .chain(&request.groups)
            .any(String::is_empty)
        {
            return Err(IssueError::EmptyName);
        }
        let expires_at = expiry(now, request.expires_in_seconds)?;

        let mut claims = request.claims;
        claims.insert("user_id".to_owned(), Value::String(request.user_id));
        claims.insert("iat".to_owned(), Value::from(now));
        if let Some(exp) = expires_at {
            claims.insert("exp".to_owned(), Value::from(exp));
        }
        if !request.roles.is_empty() {
            claims.insert("roles".to_owned(), Value::from(request.roles));
        }
        if !request.groups.is_empty() {
            claims.insert("groups".to_owned(), Value::from(request.groups));
        }
        let token = self.sign(&claims)?;
        Ok(IssuedToken { token, expires_at })
    }
}

impl Issuer {
    /// A server token in Stream Chat's form, `{"server": true}`, for trusted server-side calls.
    pub fn server_token(&self) -> Result<String, IssueError> {
        self.server_token_at(unix_now())
    }

    /// A server token issued as of `now`, for evaluation at a time other than the clock's (test suites
    /// decide every case at one instant, so a token minted later is not "issued in the future").
    pub fn server_token_at(&self, now: i64) -> Result<String, IssueError> {
        let mut claims = Map::new();
        claims.insert("server".to_owned(), Value::Bool(true));
        claims.insert("iat".to_owned(), Value::from(now));
        self.sign(&claims)
    }
}

fn validate_user_id(user_id: &str) -> Result<(), IssueError> {
    if user_id.is_empty() {
        return Err(IssueError::MissingUserId);
    }
    if user_id.len() > 255 || user_id.chars().any(char::is_control) {
        return Err(IssueError::InvalidUserId);
    }
    Ok(())
}

fn expiry(now: i64, expires_in_seconds: i64) -> Result<Option<i64>, IssueError> {
    match expires_in_seconds {
        0 => Ok(None),
        s if s < 0 => Err(IssueError::NegativeLifetime),
        s if s > MAX_LIFETIME_SECONDS => Err(IssueError::LifetimeTooLong),
        s => Ok(Some(now.saturating_add(s))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::principal::PrincipalKind;
    use crate::token::{Verifier, VerifyOptions};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let secret = ApiSecret::new(SECRET);
        let issued = Issuer::new(&secret)
            .issue(IssueRequest {
                user_id: "tommaso".into(),
                expires_in_seconds: 3600,
                claims: json!({"plan": "pro"}).as_object().cloned().unwrap(),
                roles: vec!["admin".into()],
                groups: vec!["staff".into()],
            })
            .unwrap();
        let principal = Verifier::new(&secret, VerifyOptions::default())
            .verify(&issued.token)
            .unwrap();
        assert_eq!(principal.kind, PrincipalKind::User);
        assert_eq!(principal.user_id, "tommaso");
        assert_eq!(principal.roles, vec!["admin"]);
        assert_eq!(principal.groups, vec!["staff"]);
        assert_eq!(principal.claims["plan"], "pro");
        assert_eq!(principal.expires_at, issued.expires_at);
    }

    #[test]
    fn reserved_claims_and_bad_lifetimes_are_refused() {
        let issuer = Issuer::new(&ApiSecret::new(SECRET));
        let with_claims = |claims: Value| IssueRequest {
            user_id: "a".into(),
            claims: claims.as_object().cloned().unwrap(),
            ..IssueRequest::default()
        };
        assert_eq!(
            issuer.issue(with_claims(json!({"server": true}))),
            Err(IssueError::ReservedClaim("server".into()))
        );
        let negative = IssueRequest {
            user_id: "a".into(),
            expires_in_seconds: -1,
            ..IssueRequest::default()
        };
        assert_eq!(issuer.issue(negative), Err(IssueError::NegativeLifetime));
        assert_eq!(
            issuer.issue(IssueRequest::default()),
            Err(IssueError::MissingUserId)
        );
    }

    #[test]
    fn the_current_secret_signs_and_is_named_by_its_key_id() {
        let old = "old-secret-old-secret-old-secret-old-secret";
        let keyring = Keyring::new(Secrets::parse(&format!("v2 {SECRET}\nv1 {old}")).unwrap());
        let issuer = Issuer::with_keyring(Arc::clone(&keyring));
        let token = issuer.server_token().unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
            Some("v2")
        );
        let only_new = Verifier::new(&ApiSecret::new(SECRET), VerifyOptions::default());
        assert!(only_new.verify(&token).is_ok());
        keyring.replace(Secrets::parse(old).unwrap());
        let token = issuer.server_token().unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid, None);
        assert_eq!(
            only_new.verify(&token),
            Err(crate::token::TokenError::BadSignature)
        );
    }
}
