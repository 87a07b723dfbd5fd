//! Soak traffic for `scripts/soak.sh`: a mixed workload at a fixed rate against a running server, with
//! every answer checked against the policy version that the answer says decided it.
//!
//! The calls go round-robin over four doors: `gatehouse.v1.Gatehouse/Check`, `CheckBatch`, Envoy's
//! `envoy.service.auth.v3.Authorization/Check`, and the HTTP `/authz/<original path>` endpoint (Envoy's
//! HTTP ext_authz style). The policy directory of the server under test holds the built-in Feeds preset
//! plus a toggle file that `scripts/soak.sh` switches between two versions, A and B (and invalid files
//! in between, which must be refused):
//!
//! - version A allows alice to read feeds `soaka:*` (rule `soak-version-a`),
//! - version B allows alice to read feeds `soakb:*` (rule `soak-version-b`).
//!
//! Every answer names the revision that decided it (`policy_revision`, or the `x-gatehouse-revision`
//! header of ext_authz and `/authz`); the revisions of A and B are given on the command line. A probe
//! for `soaka:bob` must be allowed exactly when the revision is A's, `soakb:bob` exactly when it is B's;
//! the other requests of the mix have the same answer under both versions, and their revision must
//! still be one of the two. Credential failures (a badly signed token, a wrong API key) must be clean
//! denials: `UNAUTHENTICATED`, or 401 with Stream's error body.
//!
//! ```sh
//! target/release/examples/soak_check --addr 127.0.0.1:50581 --http 127.0.0.1:50582 --api-key KEY \
//!     --token "$(gatehouse token issue --user alice --ttl 2h)" --revision-a REV_A --revision-b REV_B \
//!     --rate 2000 --duration 30m --status-file status.txt --summary summary.json
//! ```
//!
//! Exit status: 0 when every call was answered as expected, 1 when some were not, 2 when the run could
//! not start.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest as EnvoyCheck};
use envoy_types::pb::google::protobuf::Timestamp;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

type BoxError = Box<dyn Error + Send + Sync>;

/// `google.rpc.Code` values of ext_authz answers.
const CODE_OK: i32 = 0;
const CODE_PERMISSION_DENIED: i32 = 7;
const CODE_UNAUTHENTICATED: i32 = 16;
/// Failures printed as they happen; the rest are only counted.
const PRINTED_FAILURES: u64 = 30;
/// Failures kept for the summary.
const KEPT_FAILURES: usize = 20;

#[derive(Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Mixed Check / CheckBatch / ext_authz / HTTP /authz traffic at a fixed rate, every answer \
             checked against the policy version its revision names"
)]
struct Args {
    /// The server's gRPC address (host:port).
    #[arg(long)]
    addr: String,
    /// The server's HTTP address (host:port), for `/authz`.
    #[arg(long)]
    http: String,
    /// The server's API key (GATEHOUSE_API_KEY), sent as the api_key query parameter.
    #[arg(long, env = "SOAK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// alice's user token, signed with the server's secret (`gatehouse token issue --user alice`).
    #[arg(long, env = "SOAK_TOKEN", hide_env_values = true)]
    token: String,
    /// The revision of the policy directory with toggle version A.
    #[arg(long)]
    revision_a: String,
    /// The revision of the policy directory with toggle version B.
    #[arg(long)]
    revision_b: String,
    /// Calls per second, all doors together (a CheckBatch is one call).
    #[arg(long)]
    rate: f64,
    /// How long to send traffic.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Client tasks, each with at most one call in flight, each paced at rate / workers; a task that
    /// falls behind its schedule catches up as soon as it can.
    #[arg(long, default_value_t = 256)]
    workers: usize,
    /// HTTP/2 connections the gRPC calls share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// A call not answered within this time counts as failed.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Rewritten every second with the running counts (`key value` lines).
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Where to write the final summary as JSON.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Count the rotations of this decision log file (renames of it, seen with inotify).
    #[arg(long)]
    watch_rotations: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("soak-client")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak_check: error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(soak(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak_check: error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The two valid versions of the toggle file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    A,
    B,
}

/// What a call must be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Allowed by this rule.
    Allow(&'static str),
    /// Denied by the policy; the rule that denied, when the answer names one.
    Deny(Option<&'static str>),
    /// A bad token: `UNAUTHENTICATED`, or 401 with Stream's `"code": 3`.
    Unauthenticated,
    /// A wrong API key: 401 with Stream's `"code": 2`.
    ApiKey,
}

/// A case's expected answer, which for the probes depends on the version that decided.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Fixed(Expect),
    /// Allowed under version A only.
    ProbeA,
    /// Allowed under version B only.
    ProbeB,
}

impl Rule {
    fn expect(self, version: Version) -> Expect {
        match (self, version) {
            (Rule::Fixed(expect), _) => expect,
            (Rule::ProbeA, Version::A) => Expect::Allow("soak-version-a"),
            (Rule::ProbeB, Version::B) => Expect::Allow("soak-version-b"),
            (Rule::ProbeA | Rule::ProbeB, _) => Expect::Deny(Some("default-deny")),
        }
    }

    /// Whether the answer depends on the version.
    fn is_probe(self) -> bool {
        !matches!(self, Rule::Fixed(_))
    }
}

/// The doors, in the order calls go round.
const DOORS: [&str; 4] = ["check", "check_batch", "ext_authz", "http_authz"];

struct CheckCase {
    name: &'static str,
    rule: Rule,
    request: pb::CheckRequest,
}

struct BatchCase {
    name: &'static str,
    rules: Vec<Rule>,
    request: pb::CheckBatchRequest,
}

struct ProxyCase {
    name: &'static str,
    rule: Rule,
    method: &'static str,
    /// The original path with its query string.
    path: String,
    /// `Authorization` header; none: `stream-auth-type: anonymous`.
    token: Option<String>,
    body: Option<&'static str>,
    envoy: EnvoyCheck,
}

struct Cases {
    check: Vec<CheckCase>,
    batch: Vec<BatchCase>,
    proxy: Vec<ProxyCase>,
}

/// A request of the mix as gatehouse.v1 asks it.
struct Ask {
    name: &'static str,
    rule: Rule,
    action: &'static str,
    kind: &'static str,
    id: &'static str,
    context: Option<(&'static str, &'static str)>,
}

const fn ask(
    name: &'static str,
    rule: Rule,
    action: &'static str,
    kind: &'static str,
    id: &'static str,
    context: Option<(&'static str, &'static str)>,
) -> Ask {
    Ask {
        name,
        rule,
        action,
        kind,
        id,
        context,
    }
}

fn allow(rule: &'static str) -> Rule {
    Rule::Fixed(Expect::Allow(rule))
}

fn deny(rule: &'static str) -> Rule {
    Rule::Fixed(Expect::Deny(Some(rule)))
}

/// The decisions asked of Check and CheckBatch, with alice's token.
fn asks() -> Vec<Ask> {
    vec![
        ask(
            "alice reads user:bob",
            allow("read-global-read-feeds"),
            "read",
            "feed",
            "user:bob",
            None,
        ),
        ask(
            "alice reads timeline:bob",
            deny("default-deny"),
            "read",
            "feed",
            "timeline:bob",
            None,
        ),
        ask(
            "alice follows user:bob from timeline:alice",
            allow("follow-from-own-feeds"),
            "write",
            "follower",
            "timeline:alice",
            Some(("target", "user:bob")),
        ),
        ask(
            "alice adds an activity to user:alice",
            allow("own-feeds"),
            "write",
            "feed",
            "user:alice",
            Some(("actor", "SU:alice")),
        ),
        ask(
            "alice adds an activity as bob",
            deny("no-impersonation"),
            "write",
            "feed",
            "user:alice",
            Some(("actor", "bob")),
        ),
        ask(
            "alice reads soaka:bob (probe A)",
            Rule::ProbeA,
            "read",
            "feed",
            "soaka:bob",
            None,
        ),
        ask(
            "alice reads soakb:bob (probe B)",
            Rule::ProbeB,
            "read",
            "feed",
            "soakb:bob",
            None,
        ),
    ]
}

fn string_struct(pairs: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue((*v).to_owned())),
                    },
                )
            })
            .collect(),
    }
}

fn resource(kind: &str, id: &str) -> pb::Resource {
    pb::Resource {
        kind: kind.to_owned(),
        id: id.to_owned(),
        attributes: None,
    }
}

/// A token with a broken signature (its first signature character changed).
fn badly_signed(token: &str) -> String {
    let Some(dot) = token.rfind('.') else {
        return format!("{token}x");
    };
    let (head, signature) = token.split_at(dot + 1);
    let mut chars = signature.chars();
    let replaced = match chars.next() {
        Some('A') => 'B',
        Some(_) | None => 'A',
    };
    format!("{head}{replaced}{}", chars.as_str())
}

fn cases(token: &str, api_key: &str) -> Cases {
    let bad_token = badly_signed(token);
    let mut check: Vec<CheckCase> = asks()
        .into_iter()
        .map(|a| CheckCase {
            name: a.name,
            rule: a.rule,
            request: pb::CheckRequest {
                token: token.to_owned(),
                action: a.action.to_owned(),
                resource: Some(resource(a.kind, a.id)),
                context: a.context.map(|(k, v)| string_struct(&[(k, v)])),
                ..Default::default()
            },
        })
        .collect();
    check.push(CheckCase {
        name: "a badly signed token reads user:bob",
        rule: Rule::Fixed(Expect::Unauthenticated),
        request: pb::CheckRequest {
            token: bad_token.clone(),
            action: "read".to_owned(),
            resource: Some(resource("feed", "user:bob")),
            ..Default::default()
        },
    });
    check.push(CheckCase {
        name: "anonymous reads user:bob",
        rule: deny("default-deny"),
        request: pb::CheckRequest {
            anonymous: true,
            action: "read".to_owned(),
            resource: Some(resource("feed", "user:bob")),
            ..Default::default()
        },
    });

    let items = |asks: &[Ask]| -> Vec<pb::CheckItem> {
        asks.iter()
            .map(|a| pb::CheckItem {
                action: a.action.to_owned(),
                resource: Some(resource(a.kind, a.id)),
                context: a.context.map(|(k, v)| string_struct(&[(k, v)])),
            })
            .collect()
    };
    let all = asks();
    let anonymous_asks = [
        ask("", deny("default-deny"), "read", "feed", "user:bob", None),
        ask("", deny("default-deny"), "read", "feed", "soaka:bob", None),
        ask("", deny("default-deny"), "read", "feed", "soakb:bob", None),
    ];
    let batch = vec![
        BatchCase {
            name: "alice's batch of the whole mix",
            rules: all.iter().map(|a| a.rule).collect(),
            request: pb::CheckBatchRequest {
                token: token.to_owned(),
                items: items(&all),
                ..Default::default()
            },
        },
        BatchCase {
            name: "an anonymous batch",
            rules: anonymous_asks.iter().map(|a| a.rule).collect(),
            request: pb::CheckBatchRequest {
                anonymous: true,
                items: items(&anonymous_asks),
                ..Default::default()
            },
        },
    ];

    let key = format!("api_key={api_key}&location=unspecified");
    let proxy_case = |name: &'static str,
                      rule: Rule,
                      method: &'static str,
                      path: &str,
                      token: Option<&str>,
                      body: Option<&'static str>| {
        let path = if path.contains('?') {
            path.to_owned()
        } else {
            format!("{path}?{key}")
        };
        ProxyCase {
            name,
            rule,
            method,
            envoy: envoy_request(method, &path, token, body),
            path,
            token: token.map(str::to_owned),
            body,
        }
    };
    let alice = Some(token);
    let proxy = vec![
        proxy_case(
            "alice GETs feed/user/bob",
            allow("read-global-read-feeds"),
            "GET",
            "/api/v1.0/feed/user/bob/",
            alice,
            None,
        ),
        proxy_case(
            "alice GETs feed/timeline/bob",
            deny("default-deny"),
            "GET",
            "/api/v1.0/feed/timeline/bob/",
            alice,
            None,
        ),
        proxy_case(
            "alice follows user:bob from timeline:alice",
            allow("follow-from-own-feeds"),
            "POST",
            "/api/v1.0/feed/timeline/alice/following/",
            alice,
            Some(r#"{"target":"user:bob","activity_copy_limit":100}"#),
        ),
        proxy_case(
            "alice adds an activity to user:alice",
            allow("own-feeds"),
            "POST",
            "/api/v1.0/feed/user/alice/",
            alice,
            Some(
                r#"{"actor":"SU:alice","verb":"post","object":"picture:10","foreign_id":"picture:10"}"#,
            ),
        ),
        proxy_case(
            "alice adds an activity as bob",
            deny("no-impersonation"),
            "POST",
            "/api/v1.0/feed/user/alice/",
            alice,
            Some(r#"{"actor":"bob","verb":"post","object":"picture:11"}"#),
        ),
        proxy_case(
            "alice GETs feed/soaka/bob (probe A)",
            Rule::ProbeA,
            "GET",
            "/api/v1.0/feed/soaka/bob/",
            alice,
            None,
        ),
        proxy_case(
            "alice GETs feed/soakb/bob (probe B)",
            Rule::ProbeB,
            "GET",
            "/api/v1.0/feed/soakb/bob/",
            alice,
            None,
        ),
        proxy_case(
            "alice GETs a path no route describes",
            Rule::Fixed(Expect::Deny(None)),
            "GET",
            "/api/v1.0/no/such/endpoint/",
            alice,
            None,
        ),
        proxy_case(
            "anonymous GETs feed/user/bob",
            deny("default-deny"),
            "GET",
            "/api/v1.0/feed/user/bob/",
            None,
            None,
        ),
        proxy_case(
            "a badly signed token GETs feed/user/bob",
            Rule::Fixed(Expect::Unauthenticated),
            "GET",
            "/api/v1.0/feed/user/bob/",
            Some(&bad_token),
            None,
        ),
        proxy_case(
            "a wrong api_key GETs feed/user/bob",
            Rule::Fixed(Expect::ApiKey),
            "GET",
            "/api/v1.0/feed/user/bob/?api_key=not-the-key",
            alice,
            None,
        ),
    ];
    Cases {
        check,
        batch,
        proxy,
    }
}

/// A CheckRequest as Envoy's ext_authz filter builds it (`with_request_body`, body in `raw_body`).
fn envoy_request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> EnvoyCheck {
    let host = "api.stream-io-api.com";
    let client_name = "stream-javascript-client-node-8.4.1";
    let mut headers: HashMap<String, String> = [
        (":authority", host),
        (":method", method),
        (":path", path),
        (":scheme", "https"),
        ("accept", "application/json, text/plain, */*"),
        ("user-agent", client_name),
        ("x-stream-client", client_name),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "5f0c1f4e-8a1d-4c3e-9d2b-7a6e3c1b9f20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    match token {
        Some(token) => {
            headers.insert("authorization".to_owned(), token.to_owned());
            headers.insert("stream-auth-type".to_owned(), "jwt".to_owned());
        }
        None => {
            headers.insert("stream-auth-type".to_owned(), "anonymous".to_owned());
        }
    }
    let raw_body = body.map(str::as_bytes).unwrap_or_default().to_vec();
    if body.is_some() {
        headers.insert("content-type".to_owned(), "application/json".to_owned());
        headers.insert("content-length".to_owned(), raw_body.len().to_string());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let peer = |ip: &str, port: u32| Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_owned(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    EnvoyCheck {
        attributes: Some(AttributeContext {
            source: Some(peer("10.0.3.17", 51734)),
            destination: Some(peer("10.0.0.5", 8443)),
            request: Some(Request {
                time: Some(Timestamp {
                    seconds: i64::try_from(now.as_secs()).unwrap_or_default(),
                    nanos: i32::try_from(now.subsec_nanos()).unwrap_or_default(),
                }),
                http: Some(HttpRequest {
                    id: "13840312557710950181".to_owned(),
                    method: method.to_owned(),
                    headers,
                    path: path.to_owned(),
                    host: host.to_owned(),
                    scheme: "https".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    size: i64::try_from(raw_body.len()).unwrap_or_default(),
                    raw_body,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Latencies in buckets 4% wide, from 1 µs to about an hour.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

const BUCKET_GROWTH: f64 = 1.04;
const BUCKETS: usize = 600;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, elapsed: Duration) {
        let us = elapsed.as_secs_f64() * 1e6;
        let index = if us <= 1.0 {
            0
        } else {
            ((us.ln() / BUCKET_GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
        };
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The upper bound of the bucket holding the q-th quantile, in µs.
    fn quantile_us(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BUCKET_GROWTH.powi(i32::try_from(index).unwrap_or(i32::MAX));
            }
        }
        0.0
    }
}

/// Counts of one door.
struct DoorStats {
    calls: AtomicU64,
    failed: AtomicU64,
    /// Answers whose revision was A's, B's.
    by_a: AtomicU64,
    by_b: AtomicU64,
    /// Probe answers checked against a version.
    probes: AtomicU64,
    latency: Histogram,
}

impl DoorStats {
    fn new() -> DoorStats {
        DoorStats {
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            by_a: AtomicU64::new(0),
            by_b: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            latency: Histogram::new(),
        }
    }
}

struct Shared {
    cases: Cases,
    revision_a: String,
    revision_b: String,
    doors: Vec<DoorStats>,
    failures: AtomicU64,
    kept: Mutex<Vec<String>>,
    next: AtomicU64,
    rotations: AtomicU64,
    rotation_overflow: AtomicBool,
    started: Instant,
    timeout: Duration,
}

impl Shared {
    fn version(&self, revision: Option<&str>) -> Result<Version, String> {
        match revision {
            Some(r) if r == self.revision_a => Ok(Version::A),
            Some(r) if r == self.revision_b => Ok(Version::B),
            Some(r) => Err(format!(
                "revision {r} is neither A's ({}) nor B's ({})",
                self.revision_a, self.revision_b
            )),
            None => Err("the answer names no revision".to_owned()),
        }
    }

    fn count_version(&self, door: usize, version: Version) {
        if let Some(stats) = self.doors.get(door) {
            match version {
                Version::A => stats.by_a.fetch_add(1, Ordering::Relaxed),
                Version::B => stats.by_b.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    fn fail(&self, door: usize, what: String) {
        if let Some(stats) = self.doors.get(door) {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!(
            "{:.1}s {}: {what}",
            self.started.elapsed().as_secs_f64(),
            DOORS.get(door).copied().unwrap_or("?")
        );
        if n <= PRINTED_FAILURES {
            eprintln!("soak_check: FAILED {line}");
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_FAILURES {
            kept.push(line);
        }
    }

    fn totals(&self) -> (u64, u64, u64, u64) {
        self.doors.iter().fold((0, 0, 0, 0), |(c, f, a, b), d| {
            (
                c + d.calls.load(Ordering::Relaxed),
                f + d.failed.load(Ordering::Relaxed),
                a + d.by_a.load(Ordering::Relaxed),
                b + d.by_b.load(Ordering::Relaxed),
            )
        })
    }
}

/// A clients' set for one worker.
struct Clients {
    check: GatehouseClient<Channel>,
    envoy: AuthorizationClient<Channel>,
    http: reqwest::Client,
    http_base: String,
}

async fn soak(args: Args) -> Result<bool, BoxError> {
    if args.workers == 0 || args.connections == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        return Err("--workers, --connections and --rate must be positive".into());
    }
    if args.revision_a == args.revision_b {
        return Err(
            "--revision-a and --revision-b must differ: the probes tell the versions apart".into(),
        );
    }
    let url = format!("http://{}", args.addr);
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let channel = Endpoint::from_shared(url.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        channels.push(channel);
    }
    let http = reqwest::Client::builder()
        .timeout(args.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.workers)
        // Below the server's HTTP header timeout (10 s), which closes connections idle that long: a
        // pooled connection is never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let shared = Arc::new(Shared {
        cases: cases(&args.token, &args.api_key),
        revision_a: args.revision_a.clone(),
        revision_b: args.revision_b.clone(),
        doors: DOORS.iter().map(|_| DoorStats::new()).collect(),
        failures: AtomicU64::new(0),
        kept: Mutex::new(Vec::new()),
        next: AtomicU64::new(0),
        rotations: AtomicU64::new(0),
        rotation_overflow: AtomicBool::new(false),
        started: Instant::now(),
        timeout: args.timeout,
    });

    let _watcher = match &args.watch_rotations {
        Some(file) => Some(watch_rotations(file, &shared)?),
        None => None,
    };

    let deadline = shared.started + args.duration;
    let period = Duration::from_secs_f64(args.workers as f64 / args.rate);
    let mut tasks = Vec::with_capacity(args.workers);
    for worker in 0..args.workers {
        let channel = channels
            .get(worker % channels.len())
            .cloned()
            .ok_or("no connection to the server")?;
        let clients = Clients {
            check: GatehouseClient::new(channel.clone()),
            envoy: AuthorizationClient::new(channel),
            http: http.clone(),
            http_base: format!("http://{}/authz", args.http),
        };
        // Workers start spread over one period, so calls arrive evenly.
        let offset = period.mul_f64(worker as f64 / args.workers as f64);
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            work(clients, shared, offset, period, deadline).await;
        }));
    }

    let reporter = {
        let shared = Arc::clone(&shared);
        let status_file = args.status_file.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(path) = &status_file {
                    write_status(path, &shared);
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        })
    };
    for task in tasks {
        task.await?;
    }
    let _ = reporter.await;
    let elapsed = shared.started.elapsed();
    if let Some(path) = &args.status_file {
        write_status(path, &shared);
    }

    let summary = summarize(&shared, &args, elapsed);
    let (calls, failed, _, _) = shared.totals();
    println!(
        "soak_check: {calls} calls in {:.0} s ({:.0}/s, target {:.0}/s), {failed} failed, {} decision-log rotations seen",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        args.rate,
        shared.rotations.load(Ordering::Relaxed)
    );
    for (name, stats) in DOORS.iter().zip(&shared.doors) {
        println!(
            "  {name:<11} calls {:>9}  failed {:>4}  decided by A {:>8} / B {:>8}  probes {:>8}  p50 {:>7.0} µs  p99 {:>7.0} µs  p99.9 {:>7.0} µs",
            stats.calls.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
            stats.by_a.load(Ordering::Relaxed),
            stats.by_b.load(Ordering::Relaxed),
            stats.probes.load(Ordering::Relaxed),
            stats.latency.quantile_us(0.50),
            stats.latency.quantile_us(0.99),
            stats.latency.quantile_us(0.999),
        );
    }
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(failed == 0)
}

fn summarize(shared: &Shared, args: &Args, elapsed: Duration) -> Value {
    let (calls, failed, by_a, by_b) = shared.totals();
    let doors: serde_json::Map<String, Value> = DOORS
        .iter()
        .zip(&shared.doors)
        .map(|(name, s)| {
            (
                (*name).to_owned(),
                json!({
                    "calls": s.calls.load(Ordering::Relaxed),
                    "failed": s.failed.load(Ordering::Relaxed),
                    "decided_by_a": s.by_a.load(Ordering::Relaxed),
                    "decided_by_b": s.by_b.load(Ordering::Relaxed),
                    "probes": s.probes.load(Ordering::Relaxed),
                    "p50_us": s.latency.quantile_us(0.50),
                    "p99_us": s.latency.quantile_us(0.99),
                    "p999_us": s.latency.quantile_us(0.999),
                    "max_us": s.latency.quantile_us(1.0),
                }),
            )
        })
        .collect();
    let kept = shared
        .kept
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    json!({
        "target_rate": args.rate,
        "achieved_rate": calls as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        "elapsed_s": elapsed.as_secs_f64(),
        "calls": calls,
        "failed": failed,
        "decided_by_a": by_a,
        "decided_by_b": by_b,
        "rotations": shared.rotations.load(Ordering::Relaxed),
        "rotation_events_overflowed": shared.rotation_overflow.load(Ordering::Relaxed),
        "doors": doors,
        "failures": kept,
        "workers": args.workers,
        "connections": args.connections,
    })
}

/// `key value` lines, replaced atomically.
fn write_status(path: &Path, shared: &Shared) {
    let (calls, failed, by_a, by_b) = shared.totals();
    let text = format!(
        "elapsed_s {:.1}\ncalls {calls}\nfailed {failed}\nby_a {by_a}\nby_b {by_b}\nrotations {}\n",
        shared.started.elapsed().as_secs_f64(),
        shared.rotations.load(Ordering::Relaxed)
    );
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Counts renames of `file` (the decision log's rotation moves it to `file.1`).
fn watch_rotations(
    file: &Path,
    shared: &Arc<Shared>,
) -> Result<notify::RecommendedWatcher, BoxError> {
    let dir = file
        .parent()
        .ok_or("the decision log file has no directory")?
        .to_path_buf();
    let file = file.to_path_buf();
    let counts = Arc::clone(shared);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            counts.rotation_overflow.store(true, Ordering::Relaxed);
            return;
        };
        if event.need_rescan() {
            counts.rotation_overflow.store(true, Ordering::Relaxed);
        }
        if matches!(
            event.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        ) && event.paths.first() == Some(&file)
        {
            counts.rotations.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

async fn work(
    mut clients: Clients,
    shared: Arc<Shared>,
    offset: Duration,
    period: Duration,
    deadline: Instant,
) {
    let start = tokio::time::Instant::now() + offset;
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let door = (n % DOORS.len() as u64) as usize;
        let round = (n / DOORS.len() as u64) as usize;
        let started = Instant::now();
        let call = one_call(&mut clients, &shared, door, round);
        let result = tokio::time::timeout(shared.timeout, call).await;
        if let Some(stats) = shared.doors.get(door) {
            stats.calls.fetch_add(1, Ordering::Relaxed);
            stats.latency.record(started.elapsed());
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(what)) => shared.fail(door, what),
            Err(_) => shared.fail(door, format!("no answer within {:?}", shared.timeout)),
        }
    }
}

/// Makes the call and checks its answer.
async fn one_call(
    clients: &mut Clients,
    shared: &Shared,
    door: usize,
    round: usize,
) -> Result<(), String> {
    let cases = &shared.cases;
    match door {
        0 => {
            let case = pick(&cases.check, round)?;
            let answer = clients.check.check(case.request.clone()).await;
            check_answer(shared, door, case, answer)
        }
        1 => {
            let case = pick(&cases.batch, round)?;
            let answer = clients.check.check_batch(case.request.clone()).await;
            batch_answer(shared, door, case, answer)
        }
        2 => {
            let case = pick(&cases.proxy, round)?;
            let mut request = case.envoy.clone();
            stamp(&mut request);
            let answer = clients.envoy.check(request).await;
            envoy_answer(shared, door, case, answer)
        }
        _ => {
            let case = pick(&cases.proxy, round)?;
            http_call(clients, shared, door, case).await
        }
    }
}

fn pick<T>(list: &[T], round: usize) -> Result<&T, String> {
    list.get(round % list.len().max(1))
        .ok_or_else(|| "no case".to_owned())
}

/// Sets the request time to now, as Envoy does.
fn stamp(request: &mut EnvoyCheck) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(r) = request.attributes.as_mut().and_then(|a| a.request.as_mut()) {
        r.time = Some(Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or_default(),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or_default(),
        });
    }
}

/// The version an answer's revision names, counted; an unknown or missing revision is an error.
fn version_of(shared: &Shared, door: usize, revision: Option<&str>) -> Result<Version, String> {
    let version = shared.version(revision)?;
    shared.count_version(door, version);
    Ok(version)
}

fn count_probe(shared: &Shared, door: usize, rule: Rule) {
    if rule.is_probe()
        && let Some(stats) = shared.doors.get(door)
    {
        stats.probes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Compares a decision with what the version says.
fn decision_matches(
    expect: Expect,
    allowed: bool,
    rule: Option<&str>,
    version: Option<Version>,
) -> Result<(), String> {
    let at = match version {
        Some(v) => format!(" (revision of version {v:?})"),
        None => String::new(),
    };
    match expect {
        Expect::Allow(want) if allowed && rule == Some(want) => Ok(()),
        Expect::Deny(want) if !allowed && rule == want => Ok(()),
        _ => Err(format!(
            "answered {} by {:?}, expected {expect:?}{at}",
            if allowed { "allowed" } else { "denied" },
            rule
        )),
    }
}

fn check_answer(
    shared: &Shared,
    door: usize,
    case: &CheckCase,
    answer: Result<tonic::Response<pb::CheckResponse>, tonic::Status>,
) -> Result<(), String> {
    let name = case.name;
    match (answer, case.rule) {
        (Err(status), Rule::Fixed(Expect::Unauthenticated))
            if status.code() == tonic::Code::Unauthenticated =>
        {
            Ok(())
        }
        (Err(status), _) => Err(format!(
            "{name}: error {:?} {}",
            status.code(),
            status.message()
        )),
        (Ok(response), rule) => {
            let response = response.into_inner();
            let version = version_of(shared, door, Some(&response.policy_revision))
                .map_err(|e| format!("{name}: {e}"))?;
            count_probe(shared, door, rule);
            decision_matches(
                rule.expect(version),
                response.allowed,
                Some(&response.rule),
                Some(version),
            )
            .map_err(|e| format!("{name}: {e}"))
        }
    }
}

fn batch_answer(
    shared: &Shared,
    door: usize,
    case: &BatchCase,
    answer: Result<tonic::Response<pb::CheckBatchResponse>, tonic::Status>,
) -> Result<(), String> {
    let name = case.name;
    let response = answer
        .map_err(|s| format!("{name}: error {:?} {}", s.code(), s.message()))?
        .into_inner();
    let version = version_of(shared, door, Some(&response.policy_revision))
        .map_err(|e| format!("{name}: {e}"))?;
    if response.results.len() != case.rules.len() {
        return Err(format!(
            "{name}: {} results for {} items",
            response.results.len(),
            case.rules.len()
        ));
    }
    let mut wrong = Vec::new();
    for (i, (rule, result)) in case.rules.iter().zip(&response.results).enumerate() {
        count_probe(shared, door, *rule);
        if let Err(e) = decision_matches(
            rule.expect(version),
            result.allowed,
            Some(&result.rule),
            Some(version),
        ) {
            wrong.push(format!("item {i}: {e}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", wrong.join("; ")))
    }
}

/// Stream's error code in a JSON error body.
fn stream_code(body: &str) -> Option<i64> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

/// Checks a proxied request's answer, the same for both proxy doors: its status (0/7/16 or
/// 200/403/401), the body's Stream code on 401, the rule and the revision headers.
fn proxy_outcome(
    shared: &Shared,
    door: usize,
    case: &ProxyCase,
    allowed: Option<bool>,
    unauthenticated: bool,
    body: &str,
    header: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let name = case.name;
    let revision = header("x-gatehouse-revision");
    let header_rule = header("x-gatehouse-rule");
    match case.rule {
        Rule::Fixed(Expect::Unauthenticated) | Rule::Fixed(Expect::ApiKey) => {
            let want = if matches!(case.rule, Rule::Fixed(Expect::ApiKey)) {
                2
            } else {
                3
            };
            if unauthenticated && stream_code(body) == Some(want) {
                Ok(())
            } else {
                Err(format!(
                    "{name}: expected a 401 with Stream code {want}, got allowed {allowed:?}, unauthenticated {unauthenticated}, body {body}"
                ))
            }
        }
        rule => {
            let Some(allowed) = allowed else {
                return Err(format!("{name}: not a decision: {body}"));
            };
            let version = version_of(shared, door, revision.as_deref())
                .map_err(|e| format!("{name}: {e}"))?;
            count_probe(shared, door, rule);
            decision_matches(
                rule.expect(version),
                allowed,
                header_rule.as_deref(),
                Some(version),
            )
            .map_err(|e| format!("{name}: {e}"))
        }
    }
}

fn envoy_answer(
    shared: &Shared,
    door: usize,
    case: &ProxyCase,
    answer: Result<
        tonic::Response<envoy_types::pb::envoy::service::auth::v3::CheckResponse>,
        tonic::Status,
    >,
) -> Result<(), String> {
    let response = answer
        .map_err(|s| format!("{}: error {:?} {}", case.name, s.code(), s.message()))?
        .into_inner();
    let code = response.status.as_ref().map_or(CODE_OK, |s| s.code);
    let (headers, body) = match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => (&ok.headers, ""),
        Some(HttpResponse::DeniedResponse(denied)) => (&denied.headers, denied.body.as_str()),
        _ => return Err(format!("{}: no http_response", case.name)),
    };
    let header = |name: &str| {
        headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
    };
    let allowed = match code {
        CODE_OK => Some(true),
        CODE_PERMISSION_DENIED => Some(false),
        _ => None,
    };
    proxy_outcome(
        shared,
        door,
        case,
        allowed,
        code == CODE_UNAUTHENTICATED,
        body,
        &header,
    )
}

async fn http_call(
    clients: &Clients,
    shared: &Shared,
    door: usize,
    case: &ProxyCase,
) -> Result<(), String> {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = clients
        .http
        .request(method, format!("{}{}", clients.http_base, case.path));
    request = match &case.token {
        Some(token) => request
            .header("authorization", token)
            .header("stream-auth-type", "jwt"),
        None => request.header("stream-auth-type", "anonymous"),
    };
    if let Some(body) = case.body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{}: {e}", case.name))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{}: reading the body: {e}", case.name))?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let allowed = match status {
        200 => Some(true),
        403 => Some(false),
        _ => None,
    };
    proxy_outcome(shared, door, case, allowed, status == 401, &body, &header)
        .map_err(|e| format!("{e} (HTTP {status})"))
}
