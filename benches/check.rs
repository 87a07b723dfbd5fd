//! In-process cost of answering a Check with Stream's default Feeds policy: verifying the JWT, then
//! deciding. No network, so the figures are the floor under any RPC. `verify_issuer_token` measures
//! OpenID Connect issuers' tokens (RS256, ES256, EdDSA) against keys already fetched.
//!
//! Run: `cargo bench --bench check`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::engine::{self, Request, Resource};
use gatehouse::policy::FeedsPreset;
use gatehouse::token::{
    ApiSecret, CacheLimits, IssueRequest, Issuer, IssuerConfigs, Issuers, KeySet, Verifier,
    VerifyOptions, unix_now,
};
use serde_json::{Map, Value, json};

const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";

/// The allocator the binary ships with, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn bench(c: &mut Criterion) {
    let secret = ApiSecret::new(SECRET);
    let verifier = Verifier::new(&secret, VerifyOptions::default());
    let token = Issuer::new(&secret)
        .issue(IssueRequest {
            user_id: "tommaso".into(),
            expires_in_seconds: 3600,
            ..IssueRequest::default()
        })
        .unwrap()
        .token;
    let policy = FeedsPreset::default().compile().unwrap();
    let principal = verifier.verify(&token).unwrap();
    let no_attributes = Map::new();
    let actor = object(json!({"actor": "tommaso"}));
    let reaction_by_jack = object(json!({"user_id": "jack"}));

    // (name, action, kind, id, attributes, context)
    let cases = [
        (
            "allow_own_feed_write",
            "write",
            "feed",
            "timeline:tommaso",
            &no_attributes,
            &actor,
        ),
        (
            "allow_global_read",
            "read",
            "feed",
            "user:jack",
            &no_attributes,
            &no_attributes,
        ),
        (
            "deny_others_reaction",
            "delete",
            "reactions",
            "r1",
            &reaction_by_jack,
            &no_attributes,
        ),
        (
            "deny_unknown_kind",
            "read",
            "personalization",
            "x",
            &no_attributes,
            &no_attributes,
        ),
    ];

    c.bench_function("verify_user_token", |b| {
        b.iter(|| verifier.verify(black_box(&token)).unwrap())
    });
    // The same token again and again: after the first call, answered from the verified-token cache.
    let cached =
        Verifier::new(&secret, VerifyOptions::default()).with_cache(CacheLimits::default());
    let now = unix_now();
    c.bench_function("verify_user_token_cached", |b| {
        b.iter(|| cached.verify_shared_at(black_box(&token), now).unwrap())
    });
    let mut group = c.benchmark_group("decide");
    for (name, action, kind, id, attributes, context) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request {
                    principal: &principal,
                    action: black_box(action),
                    resource: Resource {
                        kind,
                        id,
                        attributes,
                    },
                    context,
                    now: 0,
                };
                engine::decide(&policy, &request).allowed
            })
        });
    }
    group.finish();
    // A Check with a token seen before (a cache hit), and with one never seen (a miss: each
    // iteration takes the next of more distinct tokens than the cache holds).
    let fresh: Vec<String> = (0..FRESH_TOKENS)
        .map(|i| {
            Issuer::new(&secret)
                .issue(IssueRequest {
                    user_id: format!("tommaso{i}"),
                    expires_in_seconds: 3600,
                    ..IssueRequest::default()
                })
                .unwrap()
                .token
        })
        .collect();
    // After the fresh tokens' `iat`.
    let now = unix_now();
    let mut group = c.benchmark_group("verify_and_decide");
    for (name, action, kind, id, attributes, context) in cases {
        // Verify `token`, then decide the case for its principal.
        let check = |token: &str| {
            let principal = cached.verify_shared_at(black_box(token), now).unwrap();
            let request = Request {
                principal: &principal,
                action,
                resource: Resource {
                    kind,
                    id,
                    attributes,
                },
                context,
                now: 0,
            };
            engine::decide(&policy, &request).allowed
        };
        group.bench_function(format!("{name}/seen"), |b| b.iter(|| check(&token)));
        let mut next = fresh.iter().cycle();
        group.bench_function(format!("{name}/new"), |b| {
            b.iter(|| check(next.next().unwrap()))
        });
    }
    group.finish();
}

const ISSUER: &str = "https://sso.example.com/realms/bank";

/// More distinct tokens than the default cache holds, so that cycling through them always misses.
const FRESH_TOKENS: usize = 20_000;

/// A signing key of each algorithm, made afresh: (algorithm, key id, private key, public JWK).
fn issuer_keys() -> Vec<(Algorithm, &'static str, EncodingKey, Value)> {
    let public = |key: &EncodingKey, alg, kid: &str| {
        let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(jwk).unwrap()
    };
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    // aws-lc-rs writes PKCS#8; jsonwebtoken reads RSA keys as PKCS#1, which a 2048-bit PKCS#8 key
    // holds in its OCTET STRING after a fixed 26-byte prefix.
    let pkcs8 = rsa.as_der().unwrap();
    assert_eq!(pkcs8.as_ref().get(22..24), Some(&[0x04, 0x82][..]));
    let rsa = EncodingKey::from_rsa_der(pkcs8.as_ref().get(26..).unwrap());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EncodingKey::from_ec_der(ec.as_ref());
    let ed = Ed25519KeyPair::generate().unwrap();
    // jsonwebtoken reads no public key out of an Ed25519 private key; the JWK is written by hand.
    let ed_public = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
    });
    let ed = EncodingKey::from_ed_der(ed.to_pkcs8().unwrap().as_ref());
    vec![
        (
            Algorithm::RS256,
            "rsa",
            public(&rsa, Algorithm::RS256, "rsa"),
            rsa,
        ),
        (
            Algorithm::ES256,
            "ec",
            public(&ec, Algorithm::ES256, "ec"),
            ec,
        ),
        (Algorithm::EdDSA, "ed", ed_public, ed),
    ]
    .into_iter()
    .map(|(alg, kid, jwk, key)| (alg, kid, key, jwk))
    .collect()
}

/// A Keycloak-shaped access token signed with each key, and a verifier holding the public keys as an
/// issuer's fetched key set.
fn bench_issuer_tokens(c: &mut Criterion) {
    let keys = issuer_keys();
    let jwks: Vec<&Value> = keys.iter().map(|(_, _, _, jwk)| jwk).collect();
    let configs: IssuerConfigs = serde_norway::from_str(&format!(
        "- issuer: {ISSUER}\n  audiences: [bank-api]\n  algorithms: [RS256, ES256, EdDSA]\n  user_id_claim: preferred_username\n  roles_claims: [realm_access.roles, resource_access.bank-api.roles]\n  groups_claim: groups\n  strip_group_slash: true\n"
    ))
    .unwrap();
    let issuers = Arc::new(Issuers::new(configs.0));
    let body = json!({"keys": jwks}).to_string();
    for issuer in issuers.all() {
        issuer.replace(KeySet::from_jwks(body.as_bytes(), 64, Instant::now()).unwrap());
    }
    let verifier =
        Verifier::new(&ApiSecret::new(SECRET), VerifyOptions::default()).with_issuers(issuers);
    let now = unix_now();
    let claims = json!({
        "iss": ISSUER, "aud": "bank-api", "azp": "bank-web", "sub": "f1c3a6e2",
        "preferred_username": "bob", "realm_access": {"roles": ["bank_teller", "offline_access"]},
        "resource_access": {"bank-api": {"roles": ["account_viewer"]}}, "groups": ["/tellers"],
        "iat": now, "exp": now + 3600,
    });
    let mut group = c.benchmark_group("verify_issuer_token");
    for (alg, kid, key, _) in &keys {
        let mut header = Header::new(*alg);
        header.kid = Some((*kid).to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().user_id, "bob");
        group.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| verifier.verify(black_box(&token)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_issuer_tokens);
criterion_main!(benches);
