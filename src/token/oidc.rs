//! Tokens of OpenID Connect issuers: the keys each issuer published (held here, replaced by the
//! `jwks` fetcher), the choice of key for a token, and the reading of its claims into a principal.
//!
//! Synchronous and free of I/O: fetching keys is `jwks`'s job. A token reaches this path only when its
//! `iss` is exactly a configured issuer; only asymmetric algorithms are ever accepted here, keys come
//! only from the issuer's key set (never from the token's `jku`, `x5u`, `jwk` or `x5c` headers), and
//! no error or `Debug` output carries a key or a token.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::TokenError;
use super::claims::numeric_claim;
use super::issuer_config::IssuerConfig;
use super::jwt::{
    check_times, decode_json_segment, printable, signed_payload, strict_json_segment,
};
use crate::principal::{Principal, PrincipalKind};

/// A token without `kid` is tried against at most this many keys fitting its algorithm.
const MAX_KEYS_WITHOUT_KID: usize = 4;

/// The shortest RSA modulus taken from a key set. The verifier refuses shorter keys anyway, so
/// taking one would only turn its tokens' refusal into a misleading "bad signature".
const MIN_RSA_BITS: usize = 2048;

/// Which kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 => Some(Family::P256),
        Algorithm::ES384 => Some(Family::P384),
        Algorithm::EdDSA => Some(Family::Ed25519),
        _ => None,
    }
}

/// One signing key of an issuer.
pub struct IssuerKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it names one.
    pub alg: Option<Algorithm>,
    family: Family,
    key: DecodingKey,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// An issuer's key set as last fetched.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<IssuerKey>,
    /// When the fetch that produced these keys succeeded.
    pub fetched_at: Instant,
}

/// Why a JWKS document was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the key set is not a JSON object with a keys list")]
    Malformed,
    #[error("the key set holds more than {0} keys")]
    TooManyKeys(usize),
    #[error("the key set holds no usable signing key")]
    NoUsableKey,
}

impl KeySet {
    /// Reads a JWKS document, keeping the public signing keys it can use: RSA (of at least
    /// [`MIN_RSA_BITS`]), P-256/P-384 and Ed25519 keys whose `use`, if present, is `sig`. Symmetric
    /// (`oct`) keys are never taken.
    pub fn from_jwks(
        body: &[u8],
        max_keys: usize,
        fetched_at: Instant,
    ) -> Result<KeySet, JwksError> {
        let Ok(Value::Object(mut document)) = serde_json::from_slice::<Value>(body) else {
            return Err(JwksError::Malformed);
        };
        let Some(Value::Array(entries)) = document.remove("keys") else {
            return Err(JwksError::Malformed);
        };
        if entries.len() > max_keys {
            return Err(JwksError::TooManyKeys(max_keys));
        }
        let keys: Vec<IssuerKey> = entries.into_iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeySet { keys, fetched_at })
    }

    /// Whether a key with this id is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn usable_key(entry: Value) -> Option<IssuerKey> {
    let jwk: Jwk = serde_json::from_value(entry).ok()?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return None,
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) if rsa_bits(&rsa.n) >= MIN_RSA_BITS => Family::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Family::P256,
            EllipticCurve::P384 => Family::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Family::Ed25519
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
        Some(named) => {
            let alg = named.to_string().parse::<Algorithm>().ok()?;
            // A key whose own alg does not fit its type is useless and suspicious.
            if family_of(alg) != Some(family) {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(IssuerKey {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key,
    })
}

/// The size in bits of a JWK's base64url modulus (`n`); 0 if it does not decode.
fn rsa_bits(n: &str) -> usize {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(n) else {
        return 0;
    };
    let significant = bytes.iter().skip_while(|b| **b == 0);
    let mut bits = significant.clone().count() * 8;
    if let Some(first) = significant.clone().next() {
        bits -= first.leading_zeros() as usize;
    }
    bits
}

/// A configured issuer and its current keys.
pub struct IssuerKeys {
    pub config: IssuerConfig,
    keys: ArcSwapOption<KeySet>,
}

impl IssuerKeys {
    pub fn new(config: IssuerConfig) -> Self {
        IssuerKeys {
            config,
            keys: ArcSwapOption::empty(),
        }
    }

    /// The keys last fetched, if any fetch has succeeded.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Replaces the keys with a freshly fetched set.
    pub fn replace(&self, keys: KeySet) {
        self.keys.store(Some(Arc::new(keys)));
    }
}

/// Every configured issuer, found by `iss`.
#[derive(Default)]
pub struct Issuers {
    list: Vec<Arc<IssuerKeys>>,
}

impl Issuers {
    pub fn new(configs: Vec<IssuerConfig>) -> Self {
        Issuers {
            list: configs
                .into_iter()
                .map(|c| Arc::new(IssuerKeys::new(c)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn all(&self) -> &[Arc<IssuerKeys>] {
        &self.list
    }

    /// The issuer a token's (unverified) payload names in `iss`, if it is exactly a configured one.
    pub(super) fn route(&self, payload: &str) -> Option<&Arc<IssuerKeys>> {
        if self.list.is_empty() {
            return None;
        }
        let Some(Value::Object(claims)) = decode_json_segment(payload) else {
            return None;
        };
        let Some(Value::String(iss)) = claims.get("iss") else {
            return None;
        };
        self.list.iter().find(|i| &i.config.issuer == iss)
    }

    /// The issuer of a token whose `kid` its current keys lack: the one case where a refetch may let
    /// the token through. Reads the token unverified and only to decide whether to fetch.
    pub fn missing_kid(&self, token: &str, max_token_bytes: usize) -> Option<Arc<IssuerKeys>> {
        let token = token.trim();
        if self.list.is_empty() || token.len() > max_token_bytes {
            return None;
        }
        let mut parts = token.split('.');
        let (header, payload) = (parts.next()?, parts.next()?);
        let issuer = self.route(payload)?;
        let Some(Value::Object(header)) = decode_json_segment(header) else {
            return None;
        };
        let Some(Value::String(kid)) = header.get("kid") else {
            return None;
        };
        match issuer.keys() {
            Some(keys) if keys.has_kid(kid) => None,
            _ => Some(Arc::clone(issuer)),
        }
    }
}

/// Verifies a token routed to `issuer` and reads it into a principal.
pub(super) fn verify_issuer_token(
    issuer: &IssuerKeys,
    parts: (&str, &str, &str, &str),
    now: i64,
    leeway_seconds: u64,
) -> Result<(Principal, Arc<KeySet>), TokenError> {
    let (header, signed_part, payload, signature) = parts;
    let config = &issuer.config;
    let (alg, kid) = issuer_header(header, &config.algorithms)?;
    let keys = issuer.keys().ok_or(TokenError::IssuerKeysUnavailable)?;
    if keys.fetched_at.elapsed() > config.max_key_age {
        return Err(TokenError::IssuerKeysTooOld);
    }
    let candidates = candidate_keys(&keys, alg, kid.as_deref())?;
    let mut verified = false;
    for key in candidates {
        if jsonwebtoken::crypto::verify(signature, signed_part.as_bytes(), &key.key, alg)
            .map_err(|_| TokenError::BadSignature)?
        {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(TokenError::BadSignature);
    }
    let claims = signed_payload(payload)?;
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == config.issuer => {}
        _ => return Err(TokenError::InvalidClaims("iss does not match".to_owned())),
    }
    check_audience(&claims, &config.audiences)?;
    if numeric_claim(&claims, "exp")?.is_none() {
        return Err(TokenError::InvalidClaims("exp is required".to_owned()));
    }
    check_times(&claims, now, leeway_seconds)?;
    Ok((principal_from_issuer_claims(config, claims)?, keys))
}

/// The token's algorithm (one the issuer allows) and key id; every other header is ignored.
fn issuer_header(
    header: &str,
    allowed: &[Algorithm],
) -> Result<(Algorithm, Option<String>), TokenError> {
    let Some(Value::Object(mut header)) = strict_json_segment(header) else {
        return Err(TokenError::Malformed(
            "header is not base64url-encoded JSON",
        ));
    };
    let alg = match header.get("alg") {
        Some(Value::String(name)) => allowed
            .iter()
            .copied()
            .find(|a| alg_name(*a) == name)
            .ok_or_else(|| TokenError::IssuerAlgorithmNotAllowed(printable(name)))?,
        _ => return Err(TokenError::Malformed("header has no alg")),
    };
    match header.remove("kid") {
        None => Ok((alg, None)),
        Some(Value::String(kid)) => Ok((alg, Some(kid))),
        Some(_) => Err(TokenError::Malformed("header kid is not a string")),
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// The name of an algorithm as JOSE spells it (for status output).
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    alg_name(alg)
}

/// The keys a token may have been signed with: the one its `kid` names, or without a `kid` the
/// first few fitting its algorithm. A key's own `alg`, when present, must be the token's.
fn candidate_keys<'k>(
    keys: &'k KeySet,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Vec<&'k IssuerKey>, TokenError> {
    let family = family_of(alg).ok_or(TokenError::IssuerAlgorithmNotAllowed(
        "unrecognized".to_owned(),
    ))?;
    let fits = |k: &&IssuerKey| k.family == family && k.alg.is_none_or(|a| a == alg);
    match kid {
        Some(kid) => {
            let named: Vec<&IssuerKey> = keys
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .take(MAX_KEYS_WITHOUT_KID)
                .collect();
            if named.is_empty() {
                return Err(TokenError::IssuerUnknownKey);
            }
            let fitting: Vec<&IssuerKey> = named.into_iter().filter(fits).collect();
            if fitting.is_empty() {
                return Err(TokenError::IssuerAlgorithmNotAllowed(
                    "key-mismatch".to_owned(),
                ));
            }
            Ok(fitting)
        }
        None => {
            let fitting: Vec<&IssuerKey> = keys
                .keys
                .iter()
                .filter(fits)
                .take(MAX_KEYS_WITHOUT_KID)
                .collect();
            if fitting.is_empty() {
                return Err(TokenError::IssuerUnknownKey);
            }
            Ok(fitting)
        }
    }
}

fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), TokenError> {
    let matches = |a: &Value| matches!(a, Value::String(s) if audiences.contains(s));
    match claims.get("aud") {
        Some(aud @ Value::String(_)) if matches(aud) => Ok(()),
        Some(Value::Array(list)) if list.len() <= 64 && list.iter().any(matches) => Ok(()),
        _ => Err(TokenError::Audience),
    }
}

/// The claim at a dotted path: absent when a step is missing, an error when a step that should hold
/// an object holds something else (a claim of the wrong shape is never read as "no roles").
fn claim_at<'c>(claims: &'c Map<String, Value>, path: &[String]) -> Result<Option<&'c Value>, ()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(mut value) = claims.get(first) else {
        return Ok(None);
    };
    for step in rest {
        value = match value {
            Value::Object(object) => match object.get(step) {
                Some(next) => next,
                None => return Ok(None),
            },
            Value::Null => return Ok(None),
            _ => return Err(()),
        };
    }
    Ok(Some(value))
}

/// A list of non-empty strings at a path; absent (or null) is empty, any other shape is an error.
fn strings_at(
    claims: &Map<String, Value>,
    path: &[String],
    what: &str,
) -> Result<Vec<String>, TokenError> {
    let invalid =
        || TokenError::InvalidClaims(format!("{what} must be a list of non-empty strings"));
    match claim_at(claims, path).map_err(|()| invalid())? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// The principal an issuer's verified claims describe, per the issuer's claim mapping.
pub(super) fn principal_from_issuer_claims(
    config: &IssuerConfig,
    claims: Map<String, Value>,
) -> Result<Principal, TokenError> {
    let user_id = match claims.get(&config.user_id_claim) {
        Some(Value::String(id))
            if !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control) =>
        {
            id.clone()
        }
        _ => {
            return Err(TokenError::InvalidClaims(
                "the user id claim must be a non-empty string of at most 255 bytes without control characters".to_owned(),
            ));
        }
    };
    let mut roles: Vec<String> = Vec::new();
    for path in &config.roles_claims {
        for role in strings_at(&claims, path, "roles claims")? {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    let mut groups = Vec::new();
    if let Some(path) = &config.groups_claim {
        for group in strings_at(&claims, path, "the groups claim")? {
            let group = match group.strip_prefix('/') {
                Some(stripped) if config.strip_group_slash && !stripped.is_empty() => {
                    stripped.to_owned()
                }
                _ => group,
            };
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    Ok(Principal {
        kind: PrincipalKind::User,
        user_id,
        roles,
        groups,
        issued_at: numeric_claim(&claims, "iat")?,
        expires_at: numeric_claim(&claims, "exp")?,
        issuer: Some(config.issuer.clone()),
        claims,
        ..Principal::anonymous()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::issuer_config::IssuerConfigs;
    use super::*;
    use serde_json::json;

    fn config() -> IssuerConfig {
        let configs: IssuerConfigs = serde_norway::from_str(
            "- issuer: https://sso.example.com/realms/bank\n  audiences: [bank-api]\n  user_id_claim: preferred_username\n  roles_claims: [realm_access.roles, resource_access.bank-api.roles]\n  groups_claim: groups\n  strip_group_slash: true\n",
        )
        .unwrap();
        configs.0.into_iter().next().unwrap()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn keycloak_claims_map_to_roles_groups_and_user() {
        let principal = principal_from_issuer_claims(
            &config(),
            claims(json!({
                "preferred_username": "alice",
                "realm_access": {"roles": ["teller", "offline_access"]},
                "resource_access": {"bank-api": {"roles": ["teller", "auditor"]}},
                "groups": ["/branch-north", "/branch-north"],
            })),
        )
        .unwrap();
        assert_eq!(principal.user_id, "alice");
        assert_eq!(principal.roles, vec!["teller", "offline_access", "auditor"]);
        assert_eq!(principal.groups, vec!["branch-north"]);
        assert_eq!(
            principal.issuer.as_deref(),
            Some("https://sso.example.com/realms/bank")
        );
    }

    #[test]
    fn wrong_shapes_are_errors_and_absent_paths_are_empty() {
        let config = config();
        let absent =
            principal_from_issuer_claims(&config, claims(json!({"preferred_username": "a"})));
        assert!(absent.unwrap().roles.is_empty());
        for bad in [
            json!({"preferred_username": ""}),
            json!({"sub": "a"}),
            json!({"preferred_username": "a", "realm_access": {"roles": "teller"}}),
            json!({"preferred_username": "a", "realm_access": ["teller"]}),
            json!({"preferred_username": "a", "resource_access": {"bank-api": "teller"}}),
            json!({"preferred_username": "a", "groups": [1]}),
        ] {
            assert!(principal_from_issuer_claims(&config, claims(bad)).is_err());
        }
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let audiences = vec!["bank-api".to_owned()];
        assert!(check_audience(&claims(json!({"aud": "bank-api"})), &audiences).is_ok());
        assert!(check_audience(&claims(json!({"aud": ["x", "bank-api"]})), &audiences).is_ok());
        assert!(check_audience(&claims(json!({"aud": "x"})), &audiences).is_err());
        assert!(check_audience(&claims(json!({})), &audiences).is_err());
    }

    #[test]
    fn key_set_keeps_only_public_signing_keys() {
        let jwks = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "mismatch", "alg": "RS256"},
            {"kty": "weird"}
        ]});
        let set = KeySet::from_jwks(jwks.to_string().as_bytes(), 10, Instant::now()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, vec!["ed"]);
        assert!(set.has_kid("ed"));
        assert_eq!(
            KeySet::from_jwks(b"{\"keys\": []}", 10, Instant::now()).unwrap_err(),
            JwksError::NoUsableKey
        );
        assert_eq!(
            KeySet::from_jwks(b"[]", 10, Instant::now()).unwrap_err(),
            JwksError::Malformed
        );
        assert_eq!(
            KeySet::from_jwks(jwks.to_string().as_bytes(), 2, Instant::now()).unwrap_err(),
            JwksError::TooManyKeys(2)
        );
    }

    #[test]
    fn key_choice_follows_kid_then_family() {
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed2", "alg": "EdDSA"}
        ]});
        let set = KeySet::from_jwks(jwks.to_string().as_bytes(), 10, Instant::now()).unwrap();
        assert_eq!(
            candidate_keys(&set, Algorithm::EdDSA, Some("ed2"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            candidate_keys(&set, Algorithm::EdDSA, None).unwrap().len(),
            2
        );
        assert_eq!(
            candidate_keys(&set, Algorithm::EdDSA, Some("other")).unwrap_err(),
            TokenError::IssuerUnknownKey
        );
        assert!(candidate_keys(&set, Algorithm::RS256, Some("ed")).is_err());
        assert_eq!(
            candidate_keys(&set, Algorithm::RS256, None).unwrap_err(),
            TokenError::IssuerUnknownKey
        );
    }
}
