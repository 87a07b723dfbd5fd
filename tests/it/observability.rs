//! Observability and audit over a real server on loopback: the Prometheus (OpenMetrics) exposition at
//! `/metrics` after a known set of requests, `/live` and `/ready` (also while draining), and the
//! decision log file: its fields, that it never holds credentials, masking, rotation by size, and a
//! stalled file sink that drops and counts entries without slowing a single request.
//!
//! Nothing here asserts how long anything takes: every wait polls a condition under a generous deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{
    SECRET, TestServer, check, check_request, check_status, now, now_ms, server_token, sign,
    sign_with, user_token, with_server_token,
};
use envoy_types::ext_authz::v3::pb::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{Value, json};
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
const API_KEY: &str = "key123";

/// Stream's default Feeds permissions and routes, as shipped.
const FEEDS_YAML: &str = include_str!("../../policies/stream-feeds/feeds.yaml");
const ROUTES_YAML: &str = include_str!("../../policies/stream-feeds/routes.yaml");

/// The bounded queue in front of each decision log sink.
const SINK_QUEUE: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------------------
// Calling the server

/// An HTTP client that never goes through a proxy from the environment.
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let response = http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} answers: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A read of a feed, as Stream's JS client sends it through the HTTP `/authz` endpoint (Envoy style).
async fn http_authz(server: &TestServer, token: &str, feed_path: &str) -> u16 {
    http()
        .get(format!(
            "http://{}/authz/api/v1.0/feed/{feed_path}/?api_key={API_KEY}&location=unspecified",
            server.http_addr
        ))
        .header("authorization", token)
        .header("stream-auth-type", "jwt")
        .send()
        .await
        .expect("the /authz endpoint answers")
        .status()
        .as_u16()
}

/// A read of a feed, as Envoy's gRPC ext_authz filter asks; true when allowed.
async fn ext_authz(server: &TestServer, token: &str, feed_path: &str) -> bool {
    let path = format!("/api/v1.0/feed/{feed_path}/?api_key={API_KEY}");
    let request = common::envoy_check("GET", &path, token, &[]);
    let response = AuthorizationClient::new(server.channel().await)
        .check(request)
        .await
        .expect("ext_authz answers without a gRPC error")
        .into_inner();
    let code = response.status.expect("a status").code;
    matches!(response.http_response, Some(HttpResponse::OkResponse(_))) && code == 0
}

fn read_feed(token: &str, feed: &str) -> pb::CheckRequest {
    check_request(token, "read", "feed", feed, json!({}), json!({}))
}

fn batch(token: &str, feeds: &[String]) -> pb::CheckBatchRequest {
    pb::CheckBatchRequest {
        token: token.to_owned(),
        items: feeds
            .iter()
            .map(|feed| pb::CheckItem {
                action: "read".to_owned(),
                resource: Some(pb::Resource {
                    kind: "feed".to_owned(),
                    id: feed.clone(),
                    attributes: None,
                }),
                context: None,
            })
            .collect(),
        ..Default::default()
    }
}

async fn check_batch(
    client: &mut GatehouseClient<Channel>,
    request: pb::CheckBatchRequest,
) -> pb::CheckBatchResponse {
    client
        .check_batch(request)
        .await
        .expect("check_batch succeeds")
        .into_inner()
}

/// Polls `probe` until it returns something, failing the test after the deadline.
async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// Metrics

/// `/metrics`, its raw text and as prometheus-parse reads it.
async fn scrape(server: &TestServer) -> (String, Scrape) {
    let response = http()
        .get(format!("http://{}/metrics", server.http_addr))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("prometheus-parse reads /metrics ({e}):\n{text}"));
    (text, parsed)
}

/// The samples of one metric (its sample name, e.g. `..._total`), with their labels.
fn samples<'s>(scrape: &'s Scrape, metric: &str) -> Vec<&'s Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .collect()
}

fn labels(sample: &Sample) -> BTreeMap<String, String> {
    sample
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A scalar sample's value. prometheus-parse types a sample by the `# TYPE` line of the same name, so
/// OpenMetrics counters (`# TYPE x counter`, sample `x_total`) come out untyped; both are accepted.
fn scalar(sample: &Sample) -> f64 {
    match sample.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
        ref other => panic!("{} is not a scalar: {other:?}", sample.metric),
    }
}

/// The value of the sample of `metric` with exactly `wanted` labels, if there is one.
fn value(scrape: &Scrape, metric: &str, wanted: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = wanted
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples(scrape, metric)
        .into_iter()
        .find(|s| labels(s) == wanted)
        .map(scalar)
}

/// PolicyStatus and a scrape taken between two equal PolicyStatus answers, so that no reload fell
/// between them.
async fn reloads_held_still(
    server: &TestServer,
    client: &mut GatehouseClient<Channel>,
) -> (pb::PolicyStatusResponse, Scrape) {
    let mut status = policy_status(client).await;
    for _ in 0..20 {
        let (_, scrape) = scrape(server).await;
        let after = policy_status(client).await;
        if (after.reloads_ok, after.reloads_failed) == (status.reloads_ok, status.reloads_failed) {
            return (after, scrape);
        }
        status = after;
    }
    panic!("reloads never stopped: {status:?}");
}

async fn policy_status(client: &mut GatehouseClient<Channel>) -> pb::PolicyStatusResponse {
    client
        .policy_status(with_server_token(pb::PolicyStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
}

fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feeds.yaml"), FEEDS_YAML).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), ROUTES_YAML).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_latency_token_rejections_and_the_serving_revision() {
    let policies = policy_dir();
    let server = TestServer::start_with(&[
        ("GATEHOUSE_POLICY_DIR", policies.path().to_str().unwrap()),
        ("GATEHOUSE_API_KEY", API_KEY),
    ])
    .await;
    let mut client = server.client().await;
    let alice = user_token("alice");

    // Before anything: parseable, nothing in flight, no decisions.
    let (_, before) = scrape(&server).await;
    assert!(samples(&before, "gatehouse_decisions_total").is_empty());

    // Check: allowed by read-global-read-feeds, denied by default-deny.
    let allowed = check(&mut client, read_feed(&alice, "user:bob")).await;
    assert!(allowed.allowed);
    assert_eq!(allowed.rule, "read-global-read-feeds");
    let denied = check(&mut client, read_feed(&alice, "timeline:bob")).await;
    assert!(!denied.allowed);
    assert_eq!(denied.rule, "default-deny");
    let revision = allowed.policy_revision.clone();
    assert!(!revision.is_empty());

    // Tokens refused: expired, and signed with another secret.
    let expired = sign(json!({"user_id": "alice", "exp": now() - 3600}));
    let status = check_status(&mut client, read_feed(&expired, "user:bob")).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let forged = sign_with(
        json!({"user_id": "alice"}),
        b"another-secret-that-is-long-enough-for-hs256",
    );
    let status = check_status(&mut client, read_feed(&forged, "user:bob")).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    // The proxies: Envoy's gRPC ext_authz and the HTTP endpoint.
    assert!(ext_authz(&server, &alice, "user/carol").await);
    assert_eq!(http_authz(&server, &alice, "user/carol").await, 200);

    // A batch of 3: two allowed, one denied.
    let feeds = ["user:carol", "user:dave", "timeline:carol"].map(str::to_owned);
    let results = check_batch(&mut client, batch(&alice, &feeds)).await;
    let verdicts: Vec<bool> = results.results.iter().map(|r| r.allowed).collect();
    assert_eq!(verdicts, [true, true, false]);

    // A reload, so that the reload counter moves.
    let reload = client
        .reload_policies(with_server_token(pb::ReloadPoliciesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(reload.ok, "{reload:?}");
    assert_eq!(reload.policy_revision, revision);

    let (text, scrape) = scrape(&server).await;
    let context = || format!("/metrics:\n{text}");

    // Decisions: exactly these label sets with exactly these counts.
    let mut decisions: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for sample in samples(&scrape, "gatehouse_decisions_total") {
        let l = labels(sample);
        assert_eq!(l.len(), 3, "{l:?}");
        let key = (l["result"].clone(), l["rule"].clone(), l["source"].clone());
        assert!(decisions.insert(key, scalar(sample)).is_none());
    }
    let key = |result: &str, rule: &str, source: &str| {
        (result.to_owned(), rule.to_owned(), source.to_owned())
    };
    let expected = BTreeMap::from([
        (key("allow", "read-global-read-feeds", "check"), 1.0),
        (key("deny", "default-deny", "check"), 1.0),
        (key("allow", "read-global-read-feeds", "ext_authz"), 1.0),
        (key("allow", "read-global-read-feeds", "http"), 1.0),
        (key("allow", "read-global-read-feeds", "batch"), 2.0),
        (key("deny", "default-deny", "batch"), 1.0),
    ]);
    assert_eq!(decisions, expected, "{}", context());

    // Latency of Check: a histogram with cumulative buckets up to +Inf and a count covering the 4
    // Check calls (the refused ones too).
    let histogram = samples(&scrape, "gatehouse_request_duration_seconds")
        .into_iter()
        .find(|s| labels(s) == BTreeMap::from([("rpc".to_owned(), "Check".to_owned())]))
        .unwrap_or_else(|| panic!("a Check histogram; {}", context()));
    let PromValue::Histogram(buckets) = &histogram.value else {
        panic!("the Check latency is a histogram: {histogram:?}")
    };
    assert!(buckets.len() >= 2, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].less_than < w[1].less_than),
        "{buckets:?}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative: {buckets:?}"
    );
    let last = buckets.last().unwrap();
    assert!(last.less_than.is_infinite(), "{buckets:?}");
    let count = value(
        &scrape,
        "gatehouse_request_duration_seconds_count",
        &[("rpc", "Check")],
    )
    .unwrap_or_else(|| panic!("a Check count; {}", context()));
    assert!(count >= 4.0, "{count}");
    assert!((last.count - count).abs() < f64::EPSILON, "+Inf == count");
    let sum = value(
        &scrape,
        "gatehouse_request_duration_seconds_sum",
        &[("rpc", "Check")],
    )
    .unwrap_or_else(|| panic!("a Check sum; {}", context()));
    assert!(sum > 0.0);
    for rpc in ["CheckBatch", "ext_authz", "http_authz"] {
        let count = value(
            &scrape,
            "gatehouse_request_duration_seconds_count",
            &[("rpc", rpc)],
        );
        assert_eq!(count, Some(1.0), "{rpc}; {}", context());
    }

    // Token rejections by reason.
    let rejected = |reason| {
        value(
            &scrape,
            "gatehouse_token_rejections_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejected("expired"), Some(1.0), "{}", context());
    assert_eq!(rejected("bad_signature"), Some(1.0), "{}", context());
    assert_eq!(
        samples(&scrape, "gatehouse_token_rejections_total").len(),
        2,
        "{}",
        context()
    );

    // The verified-token cache: alice's token was verified once and then answered from the cache
    // (by Check, ext_authz, the HTTP endpoint and the batch alike), and so was the server token
    // of the reload; the refused tokens were verified and not kept.
    let cache = |name| value(&scrape, name, &[]).unwrap_or_else(|| panic!("{name}; {}", context()));
    assert_eq!(cache("gatehouse_token_cache_entries"), 2.0, "{}", context());
    assert_eq!(
        cache("gatehouse_token_cache_hits_total"),
        4.0,
        "{}",
        context()
    );
    assert_eq!(
        cache("gatehouse_token_cache_misses_total"),
        4.0,
        "{}",
        context()
    );
    assert_eq!(
        cache("gatehouse_token_cache_flushes_total"),
        0.0,
        "{}",
        context()
    );
    assert!(cache("gatehouse_token_cache_bytes") > 0.0, "{}", context());

    // Nothing in flight at rest.
    assert_eq!(
        value(&scrape, "gatehouse_in_flight_requests", &[]),
        Some(0.0),
        "{}",
        context()
    );

    // Reloads, agreeing with PolicyStatus. The watcher's start-up look may reload at any moment, so
    // the scrape compared is one taken while PolicyStatus held still.
    let (status, reload_scrape) = reloads_held_still(&server, &mut client).await;
    let reloads_ok = value(
        &reload_scrape,
        "gatehouse_reloads_total",
        &[("result", "ok")],
    );
    let reloads_failed = value(
        &reload_scrape,
        "gatehouse_reloads_total",
        &[("result", "failed")],
    );
    assert!(status.reloads_ok >= 1, "{status:?}");
    assert_eq!(reloads_ok, Some(status.reloads_ok as f64), "{}", context());
    assert_eq!(reloads_failed, Some(0.0), "{}", context());

    // The serving revision, the one Check reports.
    let info = samples(&scrape, "gatehouse_policy_info");
    assert_eq!(info.len(), 1, "{}", context());
    assert_eq!(
        labels(info[0]),
        BTreeMap::from([("revision".to_owned(), revision.clone())])
    );
    assert_eq!(scalar(info[0]), 1.0);
    let loaded = value(&scrape, "gatehouse_policy_loaded_timestamp_seconds", &[])
        .unwrap_or_else(|| panic!("a load time; {}", context()));
    assert!(loaded > 0.0);

    // No drops and no shadow differences on a quiet server.
    let dropped = samples(&scrape, "gatehouse_decision_log_dropped_total");
    assert!(dropped.iter().all(|s| scalar(s) == 0.0), "{}", context());

    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Health

/// Every RPC goes through the same call layer: the admin RPCs, health and reflection are timed and
/// counted in flight like Check, an RPC that fails is timed too, and a path that is no RPC is counted
/// under one `unknown` label, whatever its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_is_timed_under_its_own_name_and_unknown_paths_under_one() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    fn with_server<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", common::server_token())
                .parse()
                .unwrap(),
        );
        request
    }
    client
        .policy_status(with_server(pb::PolicyStatusRequest {}))
        .await
        .unwrap();
    client
        .reload_policies(with_server(pb::ReloadPoliciesRequest {}))
        .await
        .unwrap();
    // Refused (no server token): still timed under its name.
    assert!(
        client
            .policy_status(tonic::Request::new(pb::PolicyStatusRequest {}))
            .await
            .is_err()
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    for name in ["Nope", "Another"] {
        let mut grpc = tonic::client::Grpc::new(server.channel().await);
        grpc.ready().await.unwrap();
        let path = format!("/gatehouse.v1.Gatehouse/{name}").parse().unwrap();
        let answer: Result<tonic::Response<pb::PolicyStatusResponse>, _> = grpc
            .unary(
                tonic::Request::new(pb::PolicyStatusRequest {}),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    }
    let (text, scrape) = scrape(&server).await;
    let count = |rpc: &str| {
        value(
            &scrape,
            "gatehouse_request_duration_seconds_count",
            &[("rpc", rpc)],
        )
    };
    assert_eq!(count("PolicyStatus"), Some(2.0), "{text}");
    assert_eq!(count("ReloadPolicies"), Some(1.0), "{text}");
    assert_eq!(count("Health/Check"), Some(1.0), "{text}");
    assert_eq!(count("unknown"), Some(2.0), "{text}");
    assert_eq!(count("Nope"), None, "{text}");
    assert_eq!(
        value(&scrape, "gatehouse_in_flight_requests", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_ready_answer_and_ready_turns_503_while_draining() {
    let mut server = TestServer::start_with(&[("GATEHOUSE_DRAIN_DELAY", "2s")]).await;
    let mut client = server.client().await;
    let alice = user_token("alice");
    let revision = check(&mut client, read_feed(&alice, "user:bob"))
        .await
        .policy_revision;

    assert_eq!(get(server.http_addr, "/live").await.0, 200);
    let (status, body) = get(server.http_addr, "/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body.trim(), format!("ready {revision}"));

    server.signal_shutdown();
    let addr = server.http_addr;
    let body = poll("/ready to answer 503", || async move {
        let (status, body) = get(addr, "/ready").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body.trim(), "draining");
    // Still answering gRPC while draining, on the connection it already has.
    let answer = check(&mut client, read_feed(&alice, "user:bob")).await;
    assert!(answer.allowed);
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Decision log file

/// The file's lines, each parsed; None while a line does not parse (never expected: lines are written
/// whole) or the file is missing (briefly, during a rotation).
fn lines(path: &Path) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls until the file holds `count` entries.
async fn wait_for_lines(path: &Path, count: usize) -> Vec<Value> {
    let path = path.to_owned();
    poll(&format!("{count} lines in {}", path.display()), || {
        let path = path.clone();
        async move { lines(&path).filter(|l| l.len() >= count) }
    })
    .await
}

fn field<'v>(entry: &'v Value, name: &str) -> &'v Value {
    entry
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {entry}"))
}

fn text(entry: &Value, name: &str) -> String {
    field(entry, name)
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string in {entry}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_logged_to_the_file_with_its_fields_and_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_FILE", path.to_str().unwrap()),
        ("GATEHOUSE_API_KEY", API_KEY),
    ])
    .await;
    let mut client = server.client().await;
    let alice = user_token("alice");
    let server_jwt = server_token();
    let started_ms = now_ms();

    let user = check(&mut client, read_feed(&alice, "user:bob")).await;
    assert!(user.allowed);
    let trusted = check(
        &mut client,
        check_request(
            &server_jwt,
            "delete",
            "feed",
            "timeline:carol",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(trusted.allowed);
    assert!(ext_authz(&server, &alice, "user/dave").await);
    assert_eq!(http_authz(&server, &alice, "user/erin").await, 200);
    let mut anonymous = read_feed("", "user:bob");
    anonymous.anonymous = true;
    let nobody = check(&mut client, anonymous).await;
    assert!(!nobody.allowed);

    let entries = wait_for_lines(&path, 5).await;
    let ended_ms = now_ms();
    assert_eq!(entries.len(), 5, "{entries:#?}");
    let revision = user.policy_revision.clone();

    // (principal_id, principal_kind, action, resource_kind, resource_id, decision, rule, source, route)
    let expected = [
        (
            "alice",
            "user",
            "read",
            "feed",
            "user:bob",
            "allow",
            user.rule.as_str(),
            "check",
            None,
        ),
        (
            "",
            "server",
            "delete",
            "feed",
            "timeline:carol",
            "allow",
            trusted.rule.as_str(),
            "check",
            None,
        ),
        (
            "alice",
            "user",
            "read",
            "feed",
            "user:dave",
            "allow",
            "read-global-read-feeds",
            "ext_authz",
            Some("feed-read"),
        ),
        (
            "alice",
            "user",
            "read",
            "feed",
            "user:erin",
            "allow",
            "read-global-read-feeds",
            "http",
            Some("feed-read"),
        ),
        (
            "",
            "anonymous",
            "read",
            "feed",
            "user:bob",
            "deny",
            nobody.rule.as_str(),
            "check",
            None,
        ),
    ];
    assert_eq!(user.rule, "read-global-read-feeds");
    assert_eq!(nobody.rule, "default-deny");
    for (entry, want) in entries.iter().zip(expected) {
        let (id, kind, action, resource_kind, resource_id, decision, rule, source, route) = want;
        assert_eq!(text(entry, "principal_id"), id, "{entry}");
        assert_eq!(text(entry, "principal_kind"), kind, "{entry}");
        assert_eq!(text(entry, "action"), action, "{entry}");
        assert_eq!(text(entry, "resource_kind"), resource_kind, "{entry}");
        assert_eq!(text(entry, "resource_id"), resource_id, "{entry}");
        assert_eq!(text(entry, "decision"), decision, "{entry}");
        assert_eq!(
            field(entry, "allowed"),
            &json!(decision == "allow"),
            "{entry}"
        );
        assert_eq!(text(entry, "rule"), rule, "{entry}");
        assert_eq!(text(entry, "revision"), revision, "{entry}");
        assert_eq!(text(entry, "mode"), "enforcing", "{entry}");
        assert_eq!(field(entry, "dry_run"), &json!(false), "{entry}");
        assert_eq!(text(entry, "source"), source, "{entry}");
        assert_eq!(entry.get("route").and_then(Value::as_str), route, "{entry}");
        assert!(field(entry, "roles").is_array(), "{entry}");
        assert!(field(entry, "latency_us").is_u64(), "{entry}");
        // `time` (RFC 3339, milliseconds) and `time_ms` are the same instant, during the test.
        let time_ms = field(entry, "time_ms").as_i64().unwrap();
        assert!((started_ms..=ended_ms).contains(&time_ms), "{entry}");
        let time = text(entry, "time");
        let parsed = humantime::parse_rfc3339(&time).unwrap_or_else(|e| panic!("{time}: {e}"));
        let parsed_ms = i64::try_from(parsed.duration_since(UNIX_EPOCH).unwrap().as_millis());
        assert_eq!(parsed_ms.unwrap(), time_ms, "{entry}");
        assert!(time.ends_with('Z') && time.contains('.'), "{time}");
        assert!(entry.get("shadow").is_none(), "{entry}");
    }

    // Never a credential.
    let raw = std::fs::read_to_string(&path).unwrap();
    for secret in [alice.as_str(), server_jwt.as_str(), SECRET] {
        assert!(!raw.contains(secret), "the log holds a credential: {raw}");
    }
    // Nor the JWTs' parts (the signature alone identifies a token).
    for token in [&alice, &server_jwt] {
        for part in token.split('.') {
            assert!(!raw.contains(part), "the log holds part of a token: {raw}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_fields_are_pseudonyms_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_FILE", path.to_str().unwrap()),
        ("GATEHOUSE_DECISION_LOG_MASK", "principal_id,resource_id"),
    ])
    .await;
    let mut client = server.client().await;
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    check(&mut client, read_feed(&alice, "user:bob")).await;
    check(&mut client, read_feed(&alice, "user:carol")).await;
    check(&mut client, read_feed(&bob, "user:bob")).await;

    let entries = wait_for_lines(&path, 3).await;
    assert_eq!(entries.len(), 3);
    let pseudonym = |value: &str| {
        let rest = value
            .strip_prefix("hmac:")
            .unwrap_or_else(|| panic!("not a pseudonym: {value}"));
        assert_eq!(rest.len(), 16, "{value}");
        assert!(
            rest.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{value}"
        );
        value.to_owned()
    };
    let who: Vec<String> = entries
        .iter()
        .map(|e| pseudonym(&text(e, "principal_id")))
        .collect();
    let what: Vec<String> = entries
        .iter()
        .map(|e| pseudonym(&text(e, "resource_id")))
        .collect();
    // Equal values, equal pseudonyms; different values, different ones.
    assert_eq!(who[0], who[1]);
    assert_ne!(who[0], who[2]);
    assert_eq!(what[0], what[2]);
    assert_ne!(what[0], what[1]);
    assert_ne!(who[2], what[0], "bob and user:bob are different values");
    // Keyed by the app's secret: the same as another replica of the app would write, and not what
    // anyone without the secret can compute from a list of likely ids.
    let key = gatehouse::audit::MaskKey::derive(common::SECRET.as_bytes());
    assert_eq!(who[0], gatehouse::audit::pseudonym(&key, "alice"));
    assert_eq!(what[1], gatehouse::audit::pseudonym(&key, "user:carol"));
    let other = gatehouse::audit::MaskKey::derive(b"some other app's secret, 32 bytes long");
    assert_ne!(who[0], gatehouse::audit::pseudonym(&other, "alice"));
    // Only those fields are masked.
    let rules: Vec<String> = entries.iter().map(|e| text(e, "rule")).collect();
    assert_eq!(
        rules,
        [
            "read-global-read-feeds",
            "read-global-read-feeds",
            "own-feeds"
        ]
    );
    for entry in &entries {
        assert_eq!(text(entry, "principal_kind"), "user");
        assert_eq!(text(entry, "resource_kind"), "feed");
    }
    let raw = std::fs::read_to_string(&path).unwrap();
    for name in ["alice", "bob", "carol"] {
        assert!(!raw.contains(name), "{name} in the masked log: {raw}");
    }
    server.stop().await.unwrap();
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_rotates_by_size_and_keeps_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_FILE", path.to_str().unwrap()),
        ("GATEHOUSE_DECISION_LOG_MAX_BYTES", "4096"),
        ("GATEHOUSE_DECISION_LOG_MAX_FILES", "2"),
    ])
    .await;
    let mut client = server.client().await;
    let feeds: Vec<String> = (0..100).map(|n| format!("user:u{n:03}")).collect();
    let results = check_batch(&mut client, batch(&user_token("alice"), &feeds)).await;
    assert!(results.results.iter().all(|r| r.allowed));

    // Done once the newest entry is in the current file and a rotated one exists.
    let first_rotated = numbered(&path, 1);
    let current = {
        let (path, first_rotated) = (path.clone(), first_rotated.clone());
        poll(
            "the last entry in the current file, after a rotation",
            || {
                let (path, first_rotated) = (path.clone(), first_rotated.clone());
                async move {
                    let current = lines(&path)?;
                    let last = text(current.last()?, "resource_id");
                    (last == "user:u099" && first_rotated.exists()).then_some(current)
                }
            },
        )
        .await
    };
    assert!(!numbered(&path, 3).exists(), "at most 2 rotated files");
    assert!(
        numbered(&path, 2).exists(),
        "100 entries fill more than 3 files"
    );
    let rotated = lines(&first_rotated).expect("every line of FILE.1 parses");
    let oldest = lines(&numbered(&path, 2)).expect("every line of FILE.2 parses");
    for file in [&path, &first_rotated, &numbered(&path, 2)] {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= 4096, "{}: {size} bytes", file.display());
    }
    // Newest last: FILE.2, then FILE.1, then FILE, in the order decided, ending with u099.
    let order: Vec<String> = oldest
        .iter()
        .chain(&rotated)
        .chain(&current)
        .map(|e| text(e, "resource_id"))
        .collect();
    assert!(!rotated.is_empty() && !current.is_empty() && !oldest.is_empty());
    let tail = &feeds[feeds.len() - order.len()..];
    assert_eq!(order, tail, "the newest entries, in order");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// A stalled sink

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_file_sink_drops_and_counts_entries_and_never_slows_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("decisions.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let server =
        TestServer::start_with(&[("GATEHOUSE_DECISION_LOG_FILE", fifo.to_str().unwrap())]).await;
    let mut client = server.client().await;
    let alice = user_token("alice");

    // Nobody reads the pipe: the file sink's writer waits to open it, and its queue fills up.
    const CALLS: usize = 20;
    const ITEMS: usize = 1000;
    let feeds: Vec<String> = (0..ITEMS).map(|n| format!("user:u{n}")).collect();
    for _ in 0..CALLS {
        let results = check_batch(&mut client, batch(&alice, &feeds)).await;
        assert_eq!(results.results.len(), ITEMS);
        assert!(results.results.iter().all(|r| r.allowed));
    }
    // Requests go on being answered.
    assert!(
        check(&mut client, read_feed(&alice, "user:bob"))
            .await
            .allowed
    );

    let (text, scrape) = scrape(&server).await;
    let decided = CALLS * ITEMS + 1;
    let file_dropped = value(
        &scrape,
        "gatehouse_decision_log_dropped_total",
        &[("sink", "file")],
    )
    .unwrap_or_else(|| panic!("file drops are counted:\n{text}"));
    // The queue holds SINK_QUEUE entries; every later one is dropped and counted.
    assert_eq!(file_dropped, (decided - SINK_QUEUE) as f64, "{text}");
    // The ring has its own queue and thread; it may fall behind under this burst, but never drops
    // what the file sink drops.
    let ring_dropped = value(
        &scrape,
        "gatehouse_decision_log_dropped_total",
        &[("sink", "ring")],
    )
    .unwrap_or(0.0);
    assert!(ring_dropped < file_dropped, "{text}");
    assert_eq!(
        value(&scrape, "gatehouse_in_flight_requests", &[]),
        Some(0.0)
    );

    // A reader unblocks the writer: the queued entries come out whole, then the pipe is closed.
    let reader = std::thread::spawn(move || {
        let pipe = std::fs::File::open(&fifo).expect("open the pipe for reading");
        let mut lines = BufReader::new(pipe).lines();
        let mut count = 0;
        while count < SINK_QUEUE {
            let line = lines.next().expect("a line").expect("readable");
            serde_json::from_str::<Value>(&line).expect("a JSON line");
            count += 1;
        }
        count
    });
    poll("the reader to drain the queue", || {
        let done = reader.is_finished();
        async move { done.then_some(()) }
    })
    .await;
    assert_eq!(reader.join().unwrap(), SINK_QUEUE);
    server.stop().await.unwrap();
}
