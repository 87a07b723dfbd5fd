//! In-process cost of answering a Check with Stream's default Feeds policy: verifying the JWT, then
//! deciding. No network, so the figures are the floor under any RPC.
//!
//! Run: `cargo bench --bench check`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::engine::{self, Request, Resource};
use gatehouse::policy::FeedsPreset;
use gatehouse::token::{ApiSecret, IssueRequest, Issuer, Verifier, VerifyOptions};
use serde_json::{Map, Value, json};

const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";

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
    let mut group = c.benchmark_group("verify_and_decide");
    for (name, action, kind, id, attributes, context) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let principal = verifier.verify(black_box(&token)).unwrap();
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
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
