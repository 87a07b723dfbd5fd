use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::DecodeSliceError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::cache::{CacheLimits, Lookup, TokenCache, Vouched};
use super::claims::principal_from_claims;
use super::jwt::{
    check_times, decode_json_segment, printable, signed_part, signed_payload, split_token,
    strict_json_segment,
};
use super::keyring::{Keyring, Keys, Secrets};
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
    /// Tokens verified before, with the keys that verified them.
    cache: Arc<TokenCache>,
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
            cache: Arc::new(TokenCache::off()),
        }
    }

    /// The same verifier, keeping the principals of tokens it verified within `limits`.
    pub fn with_cache(mut self, limits: CacheLimits) -> Self {
        self.cache = Arc::new(TokenCache::new(limits));
        self
    }

    /// The verified-token cache, for the metrics to read.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
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
        self.verify_shared_at(token, now)
            .map(|principal| Principal::clone(&principal))
    }

    /// Verifies `token` as of `now`, sharing the principal with the cache: a token verified before
    /// with keys still in use is answered from the cache after its time claims are checked again.
    pub fn verify_shared_at(&self, token: &str, now: i64) -> Result<Arc<Principal>, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > self.options.max_token_bytes {
            return Err(TokenError::TooLarge {
                max: self.options.max_token_bytes,
            });
        }
        let keys = self.keyring.keys();
        if let Lookup::Hit(principal) = self.cache.get(token, &keys) {
            if let Err(error) = check_times(&principal.claims, now, self.options.leeway_seconds) {
                self.cache.remove(token);
                return Err(error);
            }
            return Ok(principal);
        }
        let (principal, vouched) = self.verify_fresh(token, now, &keys)?;
        let principal = Arc::new(principal);
        if let Some(vouched) = vouched {
            self.cache.insert(token, Arc::clone(&principal), vouched);
        }
        Ok(principal)
    }

    /// Verifies `token` without the cache, returning the keys that vouched for it (none for a
    /// development token: nothing vouches for those, and they cost nothing to read again).
    fn verify_fresh(
        &self,
        token: &str,
        now: i64,
        keys: &Arc<Keys>,
    ) -> Result<(Principal, Option<Vouched>), TokenError> {
        let (header, payload, signature) = split_token(token)?;
        if let Some(issuer) = self.issuers.route(payload) {
            let signed_part = signed_part(token, signature)?;
            let parts = (header, signed_part, payload, signature);
            let (principal, set) =
                verify_issuer_token(issuer, parts, now, self.options.leeway_seconds)?;
            return Ok((principal, Some(Vouched::Issuer(Arc::clone(issuer), set))));
        }
        let development = signature == DEV_TOKEN_SIGNATURE;
        let key_id = check_header(header, development)?;
        let claims = if development {
            self.dev_token_claims(payload)?
        } else {
            signed_claims(keys, token, key_id.as_deref(), payload, signature)?
        };
        check_times(&claims, now, self.options.leeway_seconds)?;
        let principal = principal_from_claims(claims)?;
        if development {
            if principal.kind != PrincipalKind::User {
                return Err(TokenError::InvalidClaims(
                    "development tokens can only identify a user".to_owned(),
                ));
            }
            return Ok((principal, None));
        }
        Ok((principal, Some(Vouched::Secrets(Arc::clone(keys)))))
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

/// The claims of a token signed by one of the secrets: the one its `kid` names when the secrets
/// have key ids, else each in turn (at most [`MAX_SECRETS`](super::keyring::MAX_SECRETS)).
/// Time claims are checked by `check_times`, so signed and development tokens share one rule and
/// one clock.
fn signed_claims(
    keys: &Keys,
    token: &str,
    key_id: Option<&str>,
    payload: &str,
    signature: &str,
) -> Result<Map<String, Value>, TokenError> {
    let signed_part = signed_part(token, signature)?;
    let by_id = match key_id {
        Some(id) if keys.any_key_id => Some(id),
        _ => None,
    };
    let mut candidates = keys
        .decoding
        .iter()
        .filter(|(id, _)| by_id.is_none() || id.as_deref() == by_id)
        .peekable();
    if candidates.peek().is_none() {
        return Err(TokenError::UnknownKeyId);
    }
    let tag = decode_tag(signature)?;
    for (_, key) in candidates {
        // Compared in constant time.
        if hmac::verify(key, signed_part.as_bytes(), tag.as_slice()).is_ok() {
            return signed_payload(payload);
        }
    }
    Err(TokenError::BadSignature)
}

/// A signature's bytes, decoded as jsonwebtoken decodes it (base64url, no padding), onto the stack:
/// an HS256 tag is 32 bytes, and anything longer than the largest HMAC tag cannot match.
fn decode_tag(signature: &str) -> Result<TagBytes, TokenError> {
    let mut bytes = [0_u8; 64];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) {
        Ok(len) => Ok(TagBytes { bytes, len }),
        Err(DecodeSliceError::OutputSliceTooSmall) => Err(TokenError::BadSignature),
        Err(DecodeSliceError::DecodeError(_)) => {
            Err(TokenError::Malformed("a part is not base64url-encoded"))
        }
    }
}

struct TagBytes {
    bytes: [u8; 64],
    len: usize,
}

impl TagBytes {
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// The headers nearly every token carries, as text: `{"alg":"HS256","typ":"JWT"}` as Stream's JS,
/// Python and Go SDKs encode it, and `{"typ":"JWT","alg":"HS256"}` as Rust's jsonwebtoken (and so
/// `IssueToken`, without key ids) does. Recognised as text, each is HS256 without a key id, read
/// without decoding.
const COMMON_HEADERS: [&str; 2] = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9",
];

/// Pins HS256 before any signature work, so `none` and algorithm switching are refused by name, and
/// returns the header's key id (`kid`), if any. A signed token's header is strict base64url; only a
/// development token's may be padded or use the standard alphabet, as Stream's SDKs encode those.
fn check_header(header: &str, development: bool) -> Result<Option<String>, TokenError> {
    if COMMON_HEADERS.contains(&header) {
        return Ok(None);
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::cache::CacheReport;
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
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

    fn cached(limits: CacheLimits) -> Verifier {
        verifier(VerifyOptions::default()).with_cache(limits)
    }

    #[test]
    fn a_token_seen_before_is_answered_from_the_cache() {
        let verifier = cached(CacheLimits::default());
        let token = sign(json!({"user_id": "a", "exp": NOW + 60}));
        let first = verifier.verify_shared_at(&token, NOW).unwrap();
        let again = verifier.verify_shared_at(&token, NOW).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let report = verifier.cache().report();
        assert_eq!((report.hits, report.misses, report.entries), (1, 1, 1));
        assert!(report.bytes > token.len() as u64);
    }

    #[test]
    fn a_cached_token_is_checked_against_the_clock_on_every_hit() {
        let verifier = cached(CacheLimits::default());
        let token = sign(json!({"user_id": "a", "exp": NOW + 60, "nbf": NOW - 5}));
        assert!(verifier.verify_shared_at(&token, NOW).is_ok());
        assert_eq!(
            verifier.verify_shared_at(&token, NOW + 60).unwrap_err(),
            TokenError::Expired
        );
        assert!(verifier.verify_shared_at(&token, NOW).is_ok());
        assert_eq!(
            verifier.verify_shared_at(&token, NOW - 10).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn the_whole_token_is_the_key_so_another_signature_is_verified_afresh() {
        let verifier = cached(CacheLimits::default());
        let token = sign(json!({"user_id": "a"}));
        assert!(verifier.verify_shared_at(&token, NOW).is_ok());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut forged = signature.to_owned();
        let last = if forged.ends_with('A') { "B" } else { "A" };
        forged.replace_range(forged.len() - 1.., last);
        assert_eq!(
            verifier
                .verify_shared_at(&format!("{signed}.{forged}"), NOW)
                .unwrap_err(),
            TokenError::BadSignature
        );
        // The same payload signed with another secret is another token, refused.
        let other = sign_kid(json!({"user_id": "a"}), OLD, None);
        assert_eq!(
            verifier.verify_shared_at(&other, NOW).unwrap_err(),
            TokenError::BadSignature
        );
        // Failures are not kept.
        assert_eq!(verifier.cache().report().entries, 1);
    }

    #[test]
    fn a_rotated_secret_empties_the_cache_and_its_tokens_are_refused() {
        let keyring = Keyring::new(Secrets::parse(&format!("{SECRET}\n{OLD}\n")).unwrap());
        let verifier = Verifier::with_keyring(Arc::clone(&keyring), VerifyOptions::default())
            .with_cache(CacheLimits::default());
        let old = sign_kid(json!({"user_id": "a"}), OLD, None);
        let new = sign_kid(json!({"user_id": "b"}), SECRET, None);
        assert!(verifier.verify_shared_at(&old, NOW).is_ok());
        assert!(verifier.verify_shared_at(&new, NOW).is_ok());
        assert!(verifier.verify_shared_at(&old, NOW).is_ok());
        keyring.replace(Secrets::parse(SECRET).unwrap());
        assert_eq!(
            verifier.verify_shared_at(&old, NOW).unwrap_err(),
            TokenError::BadSignature
        );
        let report = verifier.cache().report();
        assert_eq!(report.flushes, 1);
        assert_eq!(report.entries, 0, "emptied, and the refused token not kept");
        assert!(verifier.verify_shared_at(&new, NOW).is_ok());
        assert_eq!(verifier.cache().report().entries, 1);
    }

    #[test]
    fn the_cache_holds_at_most_its_entries_and_bytes_and_counts_evictions() {
        let verifier = cached(CacheLimits {
            max_entries: 16,
            max_bytes: 1024 * 1024,
        });
        for i in 0..200 {
            let token = sign(json!({"user_id": format!("user{i}")}));
            assert!(verifier.verify_shared_at(&token, NOW).is_ok());
        }
        let report = verifier.cache().report();
        assert!(report.entries <= 16, "{report:?}");
        assert!(report.evictions >= 200 - 16, "{report:?}");
        let verifier = cached(CacheLimits {
            max_entries: 1000,
            max_bytes: 8 * 1024,
        });
        for i in 0..200 {
            let token = sign(json!({"user_id": format!("user{i}"), "pad": "x".repeat(500)}));
            assert!(verifier.verify_shared_at(&token, NOW).is_ok());
        }
        let report = verifier.cache().report();
        assert!(report.bytes <= 8 * 1024, "{report:?}");
        assert!(report.entries < 10, "{report:?}");
    }

    #[test]
    fn development_tokens_and_a_cache_turned_off_keep_nothing() {
        let verifier = verifier(VerifyOptions {
            allow_dev_tokens: true,
            ..VerifyOptions::default()
        })
        .with_cache(CacheLimits::default());
        let dev = format!(
            "{}.{}.devtoken",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"user_id":"a"}"#)
        );
        assert!(verifier.verify_shared_at(&dev, NOW).is_ok());
        assert_eq!(verifier.cache().report().entries, 0);
        let off = cached(CacheLimits {
            max_entries: 0,
            max_bytes: 1 << 20,
        });
        let token = sign(json!({"user_id": "a"}));
        assert!(off.verify_shared_at(&token, NOW).is_ok());
        assert!(off.verify_shared_at(&token, NOW).is_ok());
        assert_eq!(off.cache().report(), CacheReport::default());
    }

    #[test]
    fn the_headers_read_as_text_are_what_they_decode_to() {
        for header in COMMON_HEADERS {
            assert_eq!(
                strict_json_segment(header),
                Some(json!({"alg": "HS256", "typ": "JWT"}))
            );
            assert_eq!(check_header(header, false), Ok(None));
        }
        assert!(sign(json!({"user_id": "a"})).starts_with(&format!("{}.", COMMON_HEADERS[1])));
    }
}
