//! Token verification (`gatehouse::token::Verifier`) on arbitrary text and on mutations of validly
//! signed HS256 tokens, differential against `jsonwebtoken::decode` and an HMAC check written here.
//!
//! Invariants, for every input:
//! - no panic, and bounded time;
//! - a token gatehouse accepts is one `jsonwebtoken::decode` (HS256, the same secret, the same
//!   validation) accepts, with the same claims: gatehouse never accepts a token that jsonwebtoken
//!   rejects as badly signed or malformed;
//! - independently of jsonwebtoken: its header says `alg: HS256`, its signature is the HMAC-SHA256 of
//!   `header.payload` under the secret, and its time claims hold at the verification time;
//! - the only exception is a development token (signature `devtoken`), accepted only by a verifier
//!   that allows them, and only for a user;
//! - a principal says what the claims say (a server token is `server: true` or the wildcard scope).
//!
//! The first byte chooses the mode: even, the rest is the token text; odd, the rest drives
//! `gatehouse_fuzz::token::Structured`, a signed token and mutations of it.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::principal::PrincipalKind;
use gatehouse::token::{ApiSecret, Verifier, VerifyOptions};
use gatehouse_fuzz::token::{NOW, SECRET, Structured, hs256};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

static STRICT: LazyLock<Verifier> =
    LazyLock::new(|| Verifier::new(&ApiSecret::new(SECRET), VerifyOptions::default()));

static LENIENT: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(
        &ApiSecret::new(SECRET),
        VerifyOptions {
            leeway_seconds: 30,
            max_token_bytes: 8 * 1024,
            allow_dev_tokens: true,
        },
    )
});

/// jsonwebtoken's own decode, configured as gatehouse documents its validation: HS256 only, no
/// required claims, time claims checked separately (below), no audience.
static REFERENCE: LazyLock<(DecodingKey, Validation)> = LazyLock::new(|| {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    (DecodingKey::from_secret(SECRET), validation)
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(structured) = Structured::arbitrary(&mut u) else {
            return;
        };
        structured.token()
    };
    check(&STRICT, &token, 0, false);
    check(&LENIENT, &token, 30, true);
});

fn check(verifier: &Verifier, token: &str, leeway: i64, dev_tokens: bool) {
    let Ok(principal) = verifier.verify_at(token, NOW) else {
        return;
    };
    let trimmed = token.trim();
    let mut parts = trimmed.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("accepted a token that is not three dot-separated parts: {token:?}");
    };

    let claims: Map<String, Value> = if signature == "devtoken" {
        assert!(
            dev_tokens,
            "accepted a development token without allow_dev_tokens: {token:?}"
        );
        assert_eq!(
            principal.kind,
            PrincipalKind::User,
            "a development token may only identify a user: {token:?}"
        );
        let payload = gatehouse_fuzz::token::lenient_segment(payload);
        assert_eq!(
            payload,
            Some(Value::Object(principal.claims.clone())),
            "a development token's claims are not its payload: {token:?}"
        );
        principal.claims.clone()
    } else {
        let (key, validation) = &*REFERENCE;
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(trimmed, key, validation)
            .unwrap_or_else(|e| {
                panic!("gatehouse accepted, jsonwebtoken refused ({e}): {token:?}")
            });
        assert_eq!(
            decoded.claims, principal.claims,
            "claims differ from jsonwebtoken's: {token:?}"
        );
        let mac = URL_SAFE_NO_PAD.decode(signature).unwrap_or_else(|e| {
            panic!("accepted a signature that is not base64url ({e}): {token:?}")
        });
        assert_eq!(
            mac.as_slice(),
            hs256(format!("{header}.{payload}").as_bytes()).as_slice(),
            "accepted a signature that is not the HMAC of the token: {token:?}"
        );
        decoded.claims
    };

    let header_json = gatehouse_fuzz::token::lenient_segment(header)
        .unwrap_or_else(|| panic!("accepted a header that is not base64 JSON: {token:?}"));
    assert_eq!(
        header_json.get("alg").and_then(Value::as_str),
        Some("HS256"),
        "accepted an algorithm other than HS256: {token:?}"
    );

    // NumericDates may have fractions; gatehouse compares whole seconds, so a fraction of a second
    // either way is within the rule.
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    let (now, leeway) = (NOW as f64, leeway as f64);
    if let Some(exp) = number("exp") {
        assert!(
            now - leeway < exp,
            "accepted an expired token (exp {exp}, now {NOW}, leeway {leeway}): {token:?}"
        );
    }
    for (name, what) in [("nbf", "before its nbf"), ("iat", "issued in the future")] {
        if let Some(time) = number(name) {
            assert!(
                now + leeway + 1.0 > time,
                "accepted a token {what} ({name} {time}, now {NOW}, leeway {leeway}): {token:?}"
            );
        }
    }

    match principal.kind {
        PrincipalKind::Server => {
            let server_flag = claims.get("server") == Some(&Value::Bool(true));
            let wildcard = ["resource", "action", "feed_id"].iter().all(|name| {
                claims
                    .get(*name)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.split(',').any(|part| part.trim() == "*"))
            });
            assert!(
                server_flag || wildcard,
                "a server principal from claims that are neither server: true nor the wildcard scope: {token:?}"
            );
            assert!(principal.scope.is_none());
        }
        PrincipalKind::User => {
            assert!(
                !principal.user_id.is_empty(),
                "a user without an id: {token:?}"
            );
            assert_eq!(
                claims.get("user_id").and_then(Value::as_str),
                Some(principal.user_id.as_str()),
                "the user id is not the user_id claim: {token:?}"
            );
        }
        PrincipalKind::Scoped => {
            assert!(
                principal.scope.is_some(),
                "a scoped principal without a scope: {token:?}"
            );
            assert!(claims.contains_key("resource") && claims.contains_key("action"));
        }
        PrincipalKind::Anonymous => panic!("a token verified as anonymous: {token:?}"),
        // Services are named by client certificates, never by a token.
        PrincipalKind::Service => panic!("a token verified as a service: {token:?}"),
    }
}
