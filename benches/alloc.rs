//! Heap allocations per call on the hot path, counted by dhat's global allocator: verifying a token
//! (new, and seen before), deciding, and a whole Check and ext_authz call through the gRPC services
//! (from the decoded request to the response message, decision log and metrics included; the
//! transport's own buffers are not).
//!
//! Run: `cargo bench --bench alloc`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{Authorization as _, CheckRequest as EnvoyCheckRequest};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as Asked};
use gatehouse::App;
use gatehouse::config::Config;
use gatehouse::engine::{self, Request, Resource};
use gatehouse::grpc::pb::gatehouse_server::Gatehouse as _;
use gatehouse::grpc::{ExtAuthzService, GatehouseService, pb};
use gatehouse::token::{ApiSecret, CacheLimits, IssueRequest, Issuer, Verifier, VerifyOptions};
use serde_json::Map;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";
const CALLS: u64 = 2_000;

/// Allocations and bytes per call of `call`, after one call to warm caches up.
fn per_call(mut call: impl FnMut(u64)) -> (f64, f64) {
    call(u64::MAX);
    let before = dhat::HeapStats::get();
    for i in 0..CALLS {
        call(i);
    }
    let after = dhat::HeapStats::get();
    let blocks = (after.total_blocks - before.total_blocks) as f64 / CALLS as f64;
    let bytes = (after.total_bytes - before.total_bytes) as f64 / CALLS as f64;
    (blocks, bytes)
}

fn token(user: &str) -> String {
    Issuer::new(&ApiSecret::new(SECRET))
        .issue(IssueRequest {
            user_id: user.into(),
            expires_in_seconds: 3600,
            ..IssueRequest::default()
        })
        .unwrap()
        .token
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();

    let secret = ApiSecret::new(SECRET);
    let uncached = Verifier::new(&secret, VerifyOptions::default());
    let cached =
        Verifier::new(&secret, VerifyOptions::default()).with_cache(CacheLimits::default());
    let jack = token("jack");
    let fresh: Vec<String> = (0..=CALLS).map(|i| token(&format!("user{i}"))).collect();
    let now = gatehouse::token::unix_now();
    rows.push((
        "verify, cache off",
        per_call(|_| drop(uncached.verify_shared_at(&jack, now).unwrap())),
    ));
    rows.push((
        "verify, token seen before",
        per_call(|_| drop(cached.verify_shared_at(&jack, now).unwrap())),
    ));
    rows.push((
        "verify, new token",
        per_call(|i| {
            let token = fresh.get(usize::try_from(i.min(CALLS)).unwrap()).unwrap();
            drop(cached.verify_shared_at(token, now).unwrap())
        }),
    ));

    let policy = gatehouse::policy::FeedsPreset::default().compile().unwrap();
    let principal = cached.verify_shared_at(&jack, now).unwrap();
    let empty = Map::new();
    rows.push((
        "decide (read feed user:tommaso)",
        per_call(|_| {
            let request = Request {
                principal: &principal,
                action: "read",
                resource: Resource {
                    kind: "feed",
                    id: "user:tommaso",
                    attributes: &empty,
                },
                context: &empty,
                now: 0,
            };
            assert!(engine::decide(&policy, &request).allowed);
        }),
    ));

    let env: HashMap<&str, &str> = HashMap::from([
        ("GATEHOUSE_API_SECRET", SECRET),
        ("GATEHOUSE_API_KEY", "key123"),
    ]);
    let config = Config::load_with(None, &|name| env.get(name).map(|v| (*v).to_owned())).unwrap();
    let app = Arc::new(App::from_config(&config).unwrap());
    let service = GatehouseService::new(Arc::clone(&app));
    let ext_authz = ExtAuthzService::new(Arc::clone(&app));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let check = || pb::CheckRequest {
        token: jack.clone(),
        action: "read".into(),
        resource: Some(pb::Resource {
            kind: "feed".into(),
            id: "user:tommaso".into(),
            ..pb::Resource::default()
        }),
        ..pb::CheckRequest::default()
    };
    rows.push((
        "Check RPC (request built, answered, logged)",
        per_call(|_| {
            let answer = runtime.block_on(service.check(tonic::Request::new(check())));
            assert!(answer.unwrap().into_inner().allowed);
        }),
    ));
    let envoy = || {
        let headers = HashMap::from([
            ("host".to_owned(), "api.stream-io-api.com".to_owned()),
            ("authorization".to_owned(), jack.clone()),
            ("stream-auth-type".to_owned(), "jwt".to_owned()),
        ]);
        EnvoyCheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Asked {
                    http: Some(HttpRequest {
                        method: "GET".to_owned(),
                        headers,
                        path: "/api/v1.0/feed/user/tommaso/?api_key=key123".to_owned(),
                        host: "api.stream-io-api.com".to_owned(),
                        ..HttpRequest::default()
                    }),
                    ..Asked::default()
                }),
                ..AttributeContext::default()
            }),
        }
    };
    rows.push((
        "ext_authz Check (request built, answered, logged)",
        per_call(|_| {
            let answer = runtime.block_on(ext_authz.check(tonic::Request::new(envoy())));
            let status = answer.unwrap().into_inner().status.unwrap_or_default();
            assert_eq!(status.code, 0, "{status:?}");
        }),
    ));
    // What building the requests alone costs, to subtract.
    rows.push(("  (building a CheckRequest)", per_call(|_| drop(check()))));
    rows.push((
        "  (building an ext_authz CheckRequest)",
        per_call(|_| drop(envoy())),
    ));

    println!("| call | allocations | bytes |\n|---|---|---|");
    for (name, (blocks, bytes)) in rows {
        println!("| {name} | {blocks:.1} | {bytes:.0} |");
    }
}
