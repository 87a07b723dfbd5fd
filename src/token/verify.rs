use std::sync::Arc;

use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::claims::principal_from_claims;
use super::jwt::{
    check_times, decode_json_segment, printable, signed_part, signed_payload, split_token,
    strict_json_segment,
};
use super::keyring::{Keyring, Secrets};
use super::oidc::{Issuers, verify_issuer_token};
use super::{ApiSecret, TokenError, unix_now};
use crate::principal::{Principal, PrincipalKind};

/// The signature Stream's chat SDKs put on development tokens (`client.devToken(id)`).
const DEV_TOKEN_SIGNATURE: &str = "devtoken";

/// How strictly tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// Longer tokens are refused before any decoding, bounding the work an attacker can cause.
    pub max_token_bytes: usize,
    /// Accept Stream's unsigned development tokens. Never on in production.
    pub allow_dev_tokens: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            leeway_seconds: 0,
            max_token_bytes: 8 * 1024,
            allow_dev_tokens: false,
        }
    }
}

/// Verifies Stream-format JWTs: HS256 only, signed with one of the app's API secrets. Tokens whose
/// `iss` is a configured OpenID Connect issuer are routed to that issuer's keys instead (`oidc`).
pub struct Verifier {
    keyring: Arc<Keyring>,
    options: VerifyOptions,
    /// OpenID Connect issuers; a token whose `iss` is one of them is verified with its keys.
    issuers: Arc<Issuers>,
}

impl Verifier {
    /// A verifier accepting tokens signed with `secret` only.
    pub fn new(secret: &ApiSecret, options: VerifyOptions) -> Self {
        Verifier::with_keyring(Keyring::new(Secrets::single(secret.clone())), options)
    }

    /// A verifier accepting tokens signed with any secret `keyring` holds at the time of the call.
    pub fn with_keyring(keyring: Arc<Keyring>, options: VerifyOptions) -> Self {
        Verifier {
            keyring,
            options,
            issuers: Arc::default(),
        }
    }

    /// The same verifier, also accepting tokens of these OpenID Connect issuers.
    pub fn with_issuers(mut self, issuers: Arc<Issuers>) -> Self {
        self.issuers = issuers;
        self
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.verify_at(token, unix_now())
    }

    /// Verifies `token` as of `now` (seconds since the Unix epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Principal, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > self.options.max_token_bytes {
            return Err(TokenError::TooLarge {
                max: self.options.max_token_bytes,
            });
        }
        let (header, payload, signature) = split_token(token)?;
        if let Some(issuer) = self.issuers.route(payload) {
            let signed_part = signed_part(token, signature)?;
            let parts = (header, signed_part, payload, signature);
            return verify_issuer_token(issuer, parts, now, self.options.leeway_seconds);
        }
        let development = signature == DEV_TOKEN_SIGNATURE;
        let key_id = check_header(header, development)?;
        let claims = if development {
            self.dev_token_claims(payload)?
        } else {
            self.signed_claims(token, key_id.as_deref(), payload, signature)?
        };
        check_times(&claims, now, self.options.leeway_seconds)?;
        let principal = principal_from_claims(claims)?;
        if development && principal.kind != PrincipalKind::User {
            return Err(TokenError::InvalidClaims(
                "development tokens can only identify a user".to_owned(),
            ));
        }
        Ok(principal)
    }

    /// The claims of a token signed by one of the secrets: the one its `kid` names when the secrets
    /// have key ids, else each in turn (at most [`MAX_SECRETS`](super::keyring::MAX_SECRETS)).
    /// Time claims are checked by `check_times`, so signed and development tokens share one rule and
    /// one clock.
    fn signed_claims(
        &self,
        token: &str,
        key_id: Option<&str>,
        payload: &str,
        signature: &str,
    ) -> Result<Map<String, Value>, TokenError> {
        let signed_part = signed_part(token, signature)?;
        let keys = self.keyring.keys();
        let by_id = match key_id {
            Some(id) if keys.any_key_id => Some(id),
            _ => None,
        };
        let mut tried = 0;
        for (_, key) in keys
            .decoding
            .iter()
            .filter(|(id, _)| by_id.is_none() || id.as_deref() == by_id)
        {
            tried += 1;
            let valid = jsonwebtoken::crypto::verify(
                signature,
                signed_part.as_bytes(),
                key,
                Algorithm::HS256,
            )
            .map_err(|e| map_jwt_error(e.kind()))?;
            if valid {
                return signed_payload(payload);
            }
        }
        if tried == 0 {
            return Err(TokenError::UnknownKeyId);
        }
        Err(TokenError::BadSignature)
    }

    fn dev_token_claims(&self, payload: &str) -> Result<Map<String, Value>, TokenError> {
        if !self.options.allow_dev_tokens {
            return Err(TokenError::DevTokenNotAllowed);
        }
        match decode_json_segment(payload) {
            Some(Value::Object(claims)) => Ok(claims),
            _ => Err(TokenError::Malformed("payload is not a JSON object")),
        }
    }
}

/// Pins HS256 before any signature work, so `none` and algorithm switching are refused by name, and
/// returns the header's key id (`kid`), if any. A signed token's header is strict base64url; only a
/// development token's may be padded or use the standard alphabet, as Stream's SDKs encode those.
fn check_header(header: &str, development: bool) -> Result<Option<String>, TokenError> {
    let decoded = if development {
        decode_json_segment(header)
    } else {
        strict_json_segment(header)
    };
    let Some(Value::Object(mut header)) = decoded else {
        return Err(TokenError::Malformed(
            "header is not base64url-encoded JSON",
        ));
    };
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(Value::String(alg)) => return Err(TokenError::AlgorithmNotAllowed(printable(alg))),
        _ => return Err(TokenError::Malformed("header has no alg")),
    }
    match header.remove("kid") {
        None => Ok(None),
        Some(Value::String(kid)) => Ok(Some(kid)),
        Some(_) => Err(TokenError::Malformed("header kid is not a string")),
    }
}

fn map_jwt_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::AlgorithmNotAllowed("unrecognized".to_owned())
        }
        ErrorKind::Base64(_) => TokenError::Malformed("a part is not base64url-encoded"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            TokenError::Malformed("payload is not a JSON object")
        }
        _ => TokenError::Malformed("not a valid JWT"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn sign(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn verifier(options: VerifyOptions) -> Verifier {
        Verifier::new(&ApiSecret::new(SECRET), options)
    }

    fn verify(token: &str) -> Result<Principal, TokenError> {
        verifier(VerifyOptions::default()).verify_at(token, NOW)
    }

    #[test]
    fn user_token_without_exp_verifies() {
        let principal = verify(&sign(json!({"user_id": "tommaso"}))).unwrap();
        assert_eq!(principal.kind, PrincipalKind::User);
        assert_eq!(principal.user_id, "tommaso");
    }

    #[test]
    fn time_claims_are_checked_with_leeway() {
        assert_eq!(
            verify(&sign(json!({"user_id": "a", "exp": NOW}))),
            Err(TokenError::Expired)
        );
        assert!(verify(&sign(json!({"user_id": "a", "exp": NOW + 1}))).is_ok());
        assert_eq!(
            verify(&sign(json!({"user_id": "a", "nbf": NOW + 1}))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            verify(&sign(json!({"user_id": "a", "iat": NOW + 1}))),
            Err(TokenError::IssuedInFuture)
        );
        let lenient = verifier(VerifyOptions {
            leeway_seconds: 5,
            ..VerifyOptions::default()
        });
        assert!(
            lenient
                .verify_at(&sign(json!({"user_id": "a", "exp": NOW - 4})), NOW)
                .is_ok()
        );
        assert!(
            lenient
                .verify_at(&sign(json!({"user_id": "a", "iat": NOW + 5})), NOW)
                .is_ok()
        );
    }

    #[test]
    fn non_numeric_exp_is_invalid() {
        assert!(matches!(
            verify(&sign(json!({"user_id": "a", "exp": "soon"}))),
            Err(TokenError::InvalidClaims(_))
        ));
    }

    #[test]
    fn dev_tokens_need_to_be_enabled() {
        let payload = base64::engine::general_purpose::STANDARD.encode(r#"{"user_id":"jack"}"#);
        let token = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.devtoken");
        assert_eq!(verify(&token), Err(TokenError::DevTokenNotAllowed));
        let dev = verifier(VerifyOptions {
            allow_dev_tokens: true,
            ..VerifyOptions::default()
        });
        assert_eq!(dev.verify_at(&token, NOW).unwrap().user_id, "jack");
    }

    #[test]
    fn dev_tokens_cannot_be_server_tokens() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"server":true}"#);
        let token = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.devtoken");
        let dev = verifier(VerifyOptions {
            allow_dev_tokens: true,
            ..VerifyOptions::default()
        });
        assert!(matches!(
            dev.verify_at(&token, NOW),
            Err(TokenError::InvalidClaims(_))
        ));
    }

    #[test]
    fn algorithm_is_pinned() {
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"user_id":"a"}"#);
        assert_eq!(
            verify(&format!("{none_header}.{payload}.")),
            Err(TokenError::AlgorithmNotAllowed("none".to_owned()))
        );
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"user_id": "a"}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verify(&hs512),
            Err(TokenError::AlgorithmNotAllowed("HS512".to_owned()))
        );
    }

    #[test]
    fn size_is_capped_and_shape_is_checked() {
        let big = "a".repeat(9000);
        assert_eq!(verify(&big), Err(TokenError::TooLarge { max: 8192 }));
        assert!(matches!(verify("abc"), Err(TokenError::Malformed(_))));
        assert!(matches!(verify("a.b.c.d"), Err(TokenError::Malformed(_))));
        assert_eq!(verify("  "), Err(TokenError::Missing));
    }

    #[test]
    fn wrong_secret_is_a_bad_signature() {
        let other = encode(
            &Header::new(Algorithm::HS256),
            &json!({"user_id": "a"}),
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        )
        .unwrap();
        assert_eq!(verify(&other), Err(TokenError::BadSignature));
    }

    fn sign_kid(claims: Value, secret: &str, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    const OLD: &str = "old-secret-old-secret-old-secret-old-secret";

    #[test]
    fn every_configured_secret_verifies_until_it_is_removed() {
        let both = Secrets::parse(&format!("{SECRET}\n{OLD}\n")).unwrap();
        let keyring = Keyring::new(both);
        let verifier = Verifier::with_keyring(Arc::clone(&keyring), VerifyOptions::default());
        let old = sign_kid(json!({"user_id": "a"}), OLD, None);
        let new = sign_kid(json!({"user_id": "b"}), SECRET, None);
        assert_eq!(verifier.verify_at(&old, NOW).unwrap().user_id, "a");
        assert_eq!(verifier.verify_at(&new, NOW).unwrap().user_id, "b");
        keyring.replace(Secrets::parse(SECRET).unwrap());
        assert_eq!(verifier.verify_at(&old, NOW), Err(TokenError::BadSignature));
        assert!(verifier.verify_at(&new, NOW).is_ok());
    }

    #[test]
    fn a_kid_picks_its_secret_when_secrets_have_key_ids() {
        let keyring = Keyring::new(Secrets::parse(&format!("new {SECRET}\nold {OLD}")).unwrap());
        let verifier = Verifier::with_keyring(keyring, VerifyOptions::default());
        let claims = json!({"user_id": "a"});
        assert!(
            verifier
                .verify_at(&sign_kid(claims.clone(), OLD, Some("old")), NOW)
                .is_ok()
        );
        assert!(
            verifier
                .verify_at(&sign_kid(claims.clone(), OLD, None), NOW)
                .is_ok()
        );
        // The kid names the secret: the other one is not tried.
        assert_eq!(
            verifier.verify_at(&sign_kid(claims.clone(), OLD, Some("new")), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verifier.verify_at(&sign_kid(claims, OLD, Some("gone")), NOW),
            Err(TokenError::UnknownKeyId)
        );
    }

    #[test]
    fn a_kid_is_not_looked_at_when_no_secret_has_a_key_id() {
        let token = sign_kid(json!({"user_id": "a"}), SECRET, Some("cerbos"));
        assert!(verify(&token).is_ok());
    }

    #[test]
    fn a_non_string_kid_is_malformed() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":7}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"user_id":"a"}"#);
        assert!(matches!(
            verify(&format!("{header}.{payload}.sig")),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn a_signed_token_header_is_strict_base64url() {
        // Found by the differential fuzz target: a padded header under a valid signature, which
        // jsonwebtoken (and Stream) refuse.
        let token = sign(json!({"user_id": "a"}));
        let (header, rest) = token.split_once('.').unwrap();
        let padded_header = format!("{header}=");
        let padded = format!("{padded_header}.{}", rest.split_once('.').unwrap().0);
        let signature = jsonwebtoken::crypto::sign(
            padded.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(matches!(
            verify(&format!("{padded}.{signature}")),
            Err(TokenError::Malformed(_))
        ));
    }
}
