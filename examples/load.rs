//! Load generator: throughput and latency percentiles of Envoy's ext_authz Check
//! (`envoy.service.auth.v3.Authorization/Check`) and `gatehouse.v1.Gatehouse/Check` on one server, over
//! loopback, with the same decisions asked of both.
//!
//! By default the server runs in this process, on its own tokio runtime; it still shares the machine's
//! cores with the client. For figures worth reporting, run the server as its own process and point the
//! tool at it:
//!
//! ```sh
//! cargo build --release && cargo build --release --example load
//! GATEHOUSE_API_SECRET=<64 chars> GATEHOUSE_API_KEY=key GATEHOUSE_LISTEN=127.0.0.1:50051 \
//!     target/release/gatehouse serve &
//! target/release/examples/load --addr 127.0.0.1:50051 --secret <64 chars> --api-key key \
//!     --rpc both --rounds 3 --duration 10s --concurrency 16
//! ```
//!
//! `--target` compares other servers in the same run, alternating rounds with identical request bytes
//! and concurrency: `floor@ADDR` sends the Check mix to an echo server (this tool with
//! `--echo-listen ADDR`: a plain tonic server that answers every method with an empty message, the
//! transport's floor), and `raw@ADDR` sends `--raw-body`'s bytes to `--raw-method` (a peer such as
//! Cerbos, whose request the caller encodes); both count any OK answer as a success.
//!
//! The request mix follows the built-in Feeds preset: alice reads `user:bob` (allowed), reads
//! `timeline:bob` (denied), follows `user:bob` from her timeline (allowed) and adds an activity to her
//! own feed (allowed). Every answer is checked against the expected decision before the load starts and
//! during it; an unexpected answer counts as an error.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use clap::{Parser, ValueEnum};
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
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

type BoxError = Box<dyn Error + Send + Sync>;

/// The secret of the in-process server: 64 characters, like Stream's.
const DEFAULT_SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";
/// The API key of the in-process server.
const DEFAULT_API_KEY: &str = "loadtestkey";
/// `google.rpc.Code.PERMISSION_DENIED`, the status of an ext_authz denial.
const PERMISSION_DENIED: i32 = 7;

#[derive(Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Throughput and latency of ext_authz Check and gatehouse.v1 Check on one server",
    after_help = "Without --addr a server is started in this process (it shares the CPU with the \
                  client); with --addr, --secret must be the server's GATEHOUSE_API_SECRET and \
                  --api-key its GATEHOUSE_API_KEY (omit it when the server has none)."
)]
struct Args {
    /// A running server's gRPC address (host:port); default: start one in this process.
    #[arg(long)]
    addr: Option<String>,
    /// The server's API secret, to sign alice's token [default: the in-process server's].
    #[arg(long, env = "GATEHOUSE_API_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The server's API key, sent as the api_key query parameter [default: the in-process server's].
    #[arg(long, env = "GATEHOUSE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Which RPC to load; `both` alternates rounds (A/B/A/B) so that drift hits both alike.
    #[arg(long, value_enum, default_value_t = Rpc::Both)]
    rpc: Rpc,
    /// Client tasks, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the tasks share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Length of one measured round.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Measured rounds per RPC.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured load per RPC before the first round.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Worker threads of the client runtime (and of the in-process server's) [default: CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// Also print p50/p99 per request of the mix, each round.
    #[arg(long)]
    per_case: bool,
    /// In-process server only: set TCP_NODELAY on its listening socket (accepted sockets inherit it on
    /// Linux), to compare with the server's own socket settings.
    #[arg(long)]
    server_nodelay: bool,
    /// Print the summary as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// What to load, repeatable, rounds alternating: `check@ADDR`, `ext-authz@ADDR`, `floor@ADDR`
    /// (the Check mix to an echo server) or `raw@ADDR` (see --raw-method); replaces --addr/--rpc.
    #[arg(long = "target", value_parser = parse_target_spec)]
    targets: Vec<(Target, String)>,
    /// The gRPC method (`/package.Service/Method`) a `raw@` target calls.
    #[arg(long)]
    raw_method: Option<String>,
    /// A file holding the encoded request message a `raw@` target sends.
    #[arg(long)]
    raw_body: Option<std::path::PathBuf>,
    /// Load only this request of the mix (1-based; 1 is "alice reads user:bob"), to compare with a
    /// peer answering that one request.
    #[arg(long)]
    case: Option<usize>,
    /// Serve as the echo server on this address (every method answered with an empty message) until
    /// killed, instead of loading anything.
    #[arg(long, conflicts_with_all = ["addr", "targets"])]
    echo_listen: Option<SocketAddr>,
}

fn parse_target_spec(spec: &str) -> Result<(Target, String), String> {
    let (kind, addr) = spec
        .split_once('@')
        .ok_or("expected KIND@ADDR, e.g. check@127.0.0.1:50051")?;
    let target = match kind {
        "check" => Target::Check,
        "ext-authz" => Target::ExtAuthz,
        "floor" => Target::Floor,
        "raw" => Target::Raw,
        _ => {
            return Err(format!(
                "unknown target kind {kind}: check, ext-authz, floor or raw"
            ));
        }
    };
    Ok((target, addr.to_owned()))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    ExtAuthz,
    Check,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    ExtAuthz,
    Check,
    /// The Check mix sent to the echo server: any OK answer counts.
    Floor,
    /// `--raw-body` sent to `--raw-method`: any OK answer counts.
    Raw,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::ExtAuthz => "ext-authz",
            Target::Check => "check",
            Target::Floor => "floor",
            Target::Raw => "raw",
        }
    }

    /// Whether answers are checked against the mix's decisions.
    fn checks_answers(self) -> bool {
        matches!(self, Target::ExtAuthz | Target::Check)
    }
}

/// A target with its connections.
struct Loaded {
    target: Target,
    addr: String,
    channels: Vec<Channel>,
}

/// One request of the mix, in both forms, with the decision both must give.
struct Case {
    name: &'static str,
    allowed: bool,
    envoy: EnvoyCheck,
    check: pb::CheckRequest,
}

fn main() -> std::process::ExitCode {
    match load(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load(args: Args) -> Result<(), BoxError> {
    if args.concurrency == 0 || args.connections == 0 || args.rounds == 0 {
        return Err("--concurrency, --connections and --rounds must be at least 1".into());
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
    });
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load-client")
        .enable_all()
        .build()?;
    if let Some(addr) = args.echo_listen {
        return client_rt.block_on(echo::serve(addr));
    }

    let rpc_targets = |addr: &str| -> Vec<(Target, String)> {
        let targets: &[Target] = match args.rpc {
            Rpc::ExtAuthz => &[Target::ExtAuthz],
            Rpc::Check => &[Target::Check],
            Rpc::Both => &[Target::ExtAuthz, Target::Check],
        };
        targets.iter().map(|&t| (t, addr.to_owned())).collect()
    };
    let (targets, secret, api_key, server) = match (&args.addr, args.targets.is_empty()) {
        (None, true) => {
            let secret = args
                .secret
                .clone()
                .unwrap_or_else(|| DEFAULT_SECRET.to_owned());
            let api_key = args
                .api_key
                .clone()
                .unwrap_or_else(|| DEFAULT_API_KEY.to_owned());
            let server = InProcess::start(&secret, &api_key, threads, args.server_nodelay)?;
            let targets = rpc_targets(&server.addr.to_string());
            (targets, secret, Some(api_key), Some(server))
        }
        (addr, _) => {
            let targets = match addr {
                Some(addr) if args.targets.is_empty() => rpc_targets(addr),
                _ => args.targets.clone(),
            };
            let needs_secret = targets.iter().any(|(t, _)| t.checks_answers());
            let secret = match args.secret.clone() {
                Some(secret) => secret,
                None if !needs_secret => DEFAULT_SECRET.to_owned(),
                None => return Err(
                    "--secret (or GATEHOUSE_API_SECRET) is required to load a running gatehouse"
                        .into(),
                ),
            };
            (targets, secret, args.api_key.clone(), None)
        }
    };

    let result = client_rt.block_on(run(&args, &targets, &secret, api_key.as_deref()));
    if let Some(server) = server {
        server.stop();
    }
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// A server on its own runtime in this process.
struct InProcess {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    shutdown: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), gatehouse::error::ServeError>>,
}

impl InProcess {
    fn start(
        secret: &str,
        api_key: &str,
        threads: usize,
        nodelay: bool,
    ) -> Result<InProcess, BoxError> {
        let vars: HashMap<String, String> = HashMap::from([
            ("GATEHOUSE_API_SECRET".to_owned(), secret.to_owned()),
            ("GATEHOUSE_API_KEY".to_owned(), api_key.to_owned()),
        ]);
        let config = gatehouse::config::Config::load_with(None, &|name| vars.get(name).cloned())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("gatehouse")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if nodelay {
                socket.set_nodelay(true)?;
            }
            socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            socket.listen(1024)
        })?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = oneshot::channel::<()>();
        let listeners = gatehouse::Listeners {
            grpc: listener,
            http: None,
        };
        let handle = runtime.spawn(gatehouse::run_listeners(config, listeners, async {
            let _ = rx.await;
        }));
        Ok(InProcess {
            addr,
            runtime,
            shutdown,
            handle,
        })
    }

    fn stop(self) {
        let _ = self.shutdown.send(());
        let handle = self.handle;
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), handle).await });
        if let Ok(Ok(Err(e))) = result {
            eprintln!("the in-process server stopped with an error: {e}");
        }
    }
}

async fn run(
    args: &Args,
    targets: &[(Target, String)],
    secret: &str,
    api_key: Option<&str>,
) -> Result<Value, BoxError> {
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "user_id": "alice" }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )?;
    let raw = raw_request(args, targets)?;
    let mut cases = cases(&token, api_key);
    if let Some(n) = args.case {
        if n == 0 || n > cases.len() {
            return Err(format!("--case must be from 1 to {}", cases.len()).into());
        }
        cases = cases.into_iter().skip(n - 1).take(1).collect();
    }
    let cases = Arc::new(cases);
    let mut loaded = Vec::with_capacity(targets.len());
    for (target, addr) in targets {
        let channels = connect(addr, args.connections).await?;
        let first = channels
            .first()
            .cloned()
            .ok_or("no connection to the server")?;
        verify(*target, &first, &cases, raw.as_ref()).await?;
        loaded.push(Loaded {
            target: *target,
            addr: addr.clone(),
            channels,
        });
    }
    let say = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let shown: Vec<String> = loaded
        .iter()
        .map(|l| format!("{}@{}", l.target.name(), l.addr))
        .collect();
    say(format!(
        "{}: {} client tasks over {} connections each, {} x {:?} rounds, warmup {:?}",
        shown.join(", "),
        args.concurrency,
        args.connections,
        args.rounds,
        args.duration,
        args.warmup
    ));
    if !args.warmup.is_zero() {
        for l in &loaded {
            let warm = round(l, &cases, raw.clone(), args.concurrency, args.warmup).await?;
            say(format!("warmup     {:<9} {}", l.target.name(), warm.line()));
        }
    }
    let mut results: Vec<(Target, Vec<Stats>)> =
        loaded.iter().map(|l| (l.target, vec![])).collect();
    for r in 1..=args.rounds {
        for (l, (target, stats)) in loaded.iter().zip(&mut results) {
            let s = round(l, &cases, raw.clone(), args.concurrency, args.duration).await?;
            say(format!("round {r:<4} {:<9} {}", target.name(), s.line()));
            if args.per_case && target.checks_answers() {
                for (case, (p50, p99)) in cases.iter().zip(&s.per_case) {
                    say(format!(
                        "           {:<9}   {:<44} p50 {p50:>8.1}  p99 {p99:>8.1} µs",
                        "", case.name
                    ));
                }
            }
            stats.push(s);
        }
    }
    let mut summary = summarize(&results, &say);
    summary.insert(
        "settings".to_owned(),
        json!({
            "targets": shown,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "duration_s": args.duration.as_secs_f64(),
            "rounds": args.rounds,
            "warmup_s": args.warmup.as_secs_f64(),
        }),
    );
    Ok(Value::Object(summary))
}

/// The raw target's method and body, read once.
fn raw_request(args: &Args, targets: &[(Target, String)]) -> Result<Option<Raw>, BoxError> {
    if !targets.iter().any(|(t, _)| *t == Target::Raw) {
        return Ok(None);
    }
    let method = args
        .raw_method
        .clone()
        .ok_or("a raw@ target needs --raw-method")?;
    let path = axum::http::uri::PathAndQuery::try_from(method.as_str())
        .map_err(|e| format!("--raw-method {method}: {e}"))?;
    let file = args
        .raw_body
        .as_ref()
        .ok_or("a raw@ target needs --raw-body")?;
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Some(Raw {
        path,
        body: Bytes::from(body),
    }))
}

async fn connect(addr: &str, connections: usize) -> Result<Vec<Channel>, BoxError> {
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = Endpoint::from_shared(url.clone())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Medians per target, and the ratios worth reading: ext_authz against Check, and each target
/// against the floor and the raw peer.
fn summarize(
    results: &[(Target, Vec<Stats>)],
    say: &dyn Fn(String),
) -> serde_json::Map<String, Value> {
    let mut summary = serde_json::Map::new();
    let mut medians: Vec<(Target, Medians)> = Vec::new();
    say("medians over rounds:".to_owned());
    for (target, stats) in results {
        let m = Medians::of(stats);
        say(format!(
            "  {:<9} throughput {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
            target.name(),
            m.throughput,
            m.p50_us,
            m.p99_us
        ));
        summary.insert(
            target.name().to_owned(),
            json!({
                "rounds": stats.iter().map(Stats::to_json).collect::<Vec<_>>(),
                "median": {
                    "throughput_rps": m.throughput,
                    "p50_us": m.p50_us,
                    "p99_us": m.p99_us,
                },
            }),
        );
        medians.push((*target, m));
    }
    let find = |t: Target| medians.iter().find(|(m, _)| *m == t).map(|(_, m)| m);
    let pairs = [
        (
            Target::ExtAuthz,
            Target::Check,
            "ratio_ext_authz_over_check",
        ),
        (Target::Check, Target::Floor, "ratio_check_over_floor"),
        (
            Target::ExtAuthz,
            Target::Floor,
            "ratio_ext_authz_over_floor",
        ),
        (Target::Check, Target::Raw, "ratio_check_over_raw"),
    ];
    for (a, b, key) in pairs {
        let (Some(a_m), Some(b_m)) = (find(a), find(b)) else {
            continue;
        };
        let throughput = a_m.throughput / b_m.throughput;
        let p50 = a_m.p50_us / b_m.p50_us;
        let p99 = a_m.p99_us / b_m.p99_us;
        say(format!(
            "ratio {}/{}: throughput {throughput:.3}, p50 {p50:.3}, p99 {p99:.3}",
            a.name(),
            b.name()
        ));
        summary.insert(
            key.to_owned(),
            json!({ "throughput": throughput, "p50": p50, "p99": p99 }),
        );
    }
    summary
}

/// The request mix, as Envoy would send it and as a backend would ask gatehouse.v1.
fn cases(token: &str, api_key: Option<&str>) -> Vec<Case> {
    let query = match api_key {
        Some(key) => format!("?api_key={key}&location=unspecified"),
        None => "?location=unspecified".to_owned(),
    };
    let envoy = |method: &str, path: &str, body: Option<&str>| {
        envoy_request(method, &format!("{path}{query}"), token, body)
    };
    let check =
        |action: &str, kind: &str, id: &str, context: Option<(&str, &str)>| pb::CheckRequest {
            token: token.to_owned(),
            action: action.to_owned(),
            resource: Some(pb::Resource {
                kind: kind.to_owned(),
                id: id.to_owned(),
                attributes: None,
            }),
            context: context.map(|(k, v)| prost_types::Struct {
                fields: [(
                    k.to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.to_owned())),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        };
    vec![
        Case {
            name: "alice reads user:bob",
            allowed: true,
            envoy: envoy("GET", "/api/v1.0/feed/user/bob/", None),
            check: check("read", "feed", "user:bob", None),
        },
        Case {
            name: "alice reads timeline:bob",
            allowed: false,
            envoy: envoy("GET", "/api/v1.0/feed/timeline/bob/", None),
            check: check("read", "feed", "timeline:bob", None),
        },
        Case {
            name: "alice follows user:bob from timeline:alice",
            allowed: true,
            envoy: envoy(
                "POST",
                "/api/v1.0/feed/timeline/alice/following/",
                Some(r#"{"target":"user:bob","activity_copy_limit":100}"#),
            ),
            check: check(
                "write",
                "follower",
                "timeline:alice",
                Some(("target", "user:bob")),
            ),
        },
        Case {
            name: "alice adds an activity to user:alice",
            allowed: true,
            envoy: envoy(
                "POST",
                "/api/v1.0/feed/user/alice/",
                Some(
                    r#"{"actor":"SU:alice","verb":"post","object":"picture:10","foreign_id":"picture:10"}"#,
                ),
            ),
            check: check("write", "feed", "user:alice", Some(("actor", "SU:alice"))),
        },
    ]
}

/// A CheckRequest as Envoy's ext_authz filter builds it, with `with_request_body` and
/// `pack_as_bytes` (the body in `raw_body`).
fn envoy_request(method: &str, path: &str, token: &str, body: Option<&str>) -> EnvoyCheck {
    let host = "api.stream-io-api.com";
    let client_name = "stream-javascript-client-node-8.4.1";
    let request_id = "5f0c1f4e-8a1d-4c3e-9d2b-7a6e3c1b9f20";
    let mut headers: HashMap<String, String> = [
        (":authority", host),
        (":method", method),
        (":path", path),
        (":scheme", "https"),
        ("accept", "application/json, text/plain, */*"),
        ("accept-encoding", "gzip, compress, deflate, br"),
        ("authorization", token),
        ("stream-auth-type", "jwt"),
        ("user-agent", client_name),
        ("x-stream-client", client_name),
        ("x-forwarded-proto", "https"),
        ("x-request-id", request_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
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

/// Asks every case once (the raw request once); any unexpected answer aborts the run.
async fn verify(
    target: Target,
    channel: &Channel,
    cases: &[Case],
    raw: Option<&Raw>,
) -> Result<(), BoxError> {
    let mut wrong = Vec::new();
    if target == Target::Raw {
        let raw = raw.ok_or("no raw request")?;
        raw_call(channel.clone(), raw)
            .await
            .map_err(|e| format!("raw {}: {e}", raw.path))?;
        return Ok(());
    }
    for case in cases {
        match target {
            Target::ExtAuthz => {
                let mut envoy = AuthorizationClient::new(channel.clone());
                let response = envoy.check(case.envoy.clone()).await?.into_inner();
                let code = response.status.as_ref().map_or(0, |s| s.code);
                let expected = if case.allowed { 0 } else { PERMISSION_DENIED };
                if code != expected {
                    let body = match &response.http_response {
                        Some(HttpResponse::DeniedResponse(denied)) => denied.body.as_str(),
                        _ => "",
                    };
                    wrong.push(format!(
                        "ext_authz, {}: status {code}, expected {expected} {body}",
                        case.name
                    ));
                }
            }
            Target::Check | Target::Floor => {
                let mut check = GatehouseClient::new(channel.clone());
                let response = check.check(case.check.clone()).await?.into_inner();
                if target == Target::Check && response.allowed != case.allowed {
                    wrong.push(format!(
                        "gatehouse.v1 Check, {}: allowed {}, expected {} ({})",
                        case.name, response.allowed, case.allowed, response.reason
                    ));
                }
            }
            Target::Raw => {}
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected answers:\n  {}", wrong.join("\n  ")).into())
    }
}

/// A pre-encoded request for a peer's method.
#[derive(Clone)]
struct Raw {
    path: axum::http::uri::PathAndQuery,
    body: Bytes,
}

/// Sends `raw` as a unary call; the answer's bytes are not looked at.
async fn raw_call(channel: Channel, raw: &Raw) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary::<Bytes, Bytes, _>(
        tonic::Request::new(raw.body.clone()),
        raw.path.clone(),
        RawCodec,
    )
    .await
    .map(|_| ())
}

/// Passes message bytes through unchanged: the raw target's requests are encoded by the caller,
/// and the echo server's answers are empty.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The echo server: a plain tonic server (the same HTTP/2 stack gatehouse serves on, none of its
/// work) answering any unary method with an empty message, the floor a gRPC call cannot go under.
mod echo {
    use std::convert::Infallible;
    use std::future::Future;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::Bytes;
    use tonic::{Request, Response, Status};

    use super::{BoxError, RawCodec};

    pub async fn serve(addr: SocketAddr) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("echo serving on {}", listener.local_addr()?);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let routes = tonic::service::Routes::from(axum::Router::new().fallback_service(Echo));
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    }

    #[derive(Clone)]
    struct Echo;

    type Answer = axum::http::Response<tonic::body::Body>;

    impl tower::Service<axum::http::Request<axum::body::Body>> for Echo {
        type Response = Answer;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: axum::http::Request<axum::body::Body>) -> Self::Future {
            Box::pin(async move {
                Ok(tonic::server::Grpc::new(RawCodec)
                    .unary(Empty, request)
                    .await)
            })
        }
    }

    /// Answers any request with an empty message.
    struct Empty;

    impl tonic::server::UnaryService<Bytes> for Empty {
        type Response = Bytes;
        type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

        fn call(&mut self, _: Request<Bytes>) -> Self::Future {
            std::future::ready(Ok(Response::new(Bytes::new())))
        }
    }
}

/// What one worker saw: each successful request's latency in nanoseconds, per case of the mix, and how
/// many failed.
struct Sample {
    latencies_ns: Vec<Vec<u32>>,
    errors: u64,
}

impl Sample {
    fn new(cases: usize, capacity: usize) -> Sample {
        Sample {
            latencies_ns: (0..cases).map(|_| Vec::with_capacity(capacity)).collect(),
            errors: 0,
        }
    }
}

/// Runs `concurrency` tasks over the target's channels for `duration`, each with one request in
/// flight.
async fn round(
    loaded: &Loaded,
    cases: &Arc<Vec<Case>>,
    raw: Option<Raw>,
    concurrency: usize,
    duration: Duration,
) -> Result<Stats, BoxError> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let channel = loaded
            .channels
            .get(worker % loaded.channels.len().max(1))
            .cloned()
            .ok_or("no connection to the server")?;
        let cases = Arc::clone(cases);
        let raw = raw.clone();
        let target = loaded.target;
        tasks.push(tokio::spawn(async move {
            worker_loop(target, channel, &cases, raw.as_ref(), worker, deadline).await
        }));
    }
    let mut merged = Sample::new(cases.len(), 0);
    for task in tasks {
        let sample = task.await?;
        for (all, mine) in merged.latencies_ns.iter_mut().zip(&sample.latencies_ns) {
            all.extend_from_slice(mine);
        }
        merged.errors += sample.errors;
    }
    Ok(Stats::new(merged, started.elapsed()))
}

async fn worker_loop(
    target: Target,
    channel: Channel,
    cases: &[Case],
    raw: Option<&Raw>,
    worker: usize,
    deadline: Instant,
) -> Sample {
    let mut envoy = AuthorizationClient::new(channel.clone());
    let mut check = GatehouseClient::new(channel.clone());
    let mut sample = Sample::new(cases.len(), 1 << 14);
    // Each worker starts at a different case so the mix is even at every moment.
    for (index, case) in cases
        .iter()
        .enumerate()
        .cycle()
        .skip(worker % cases.len().max(1))
    {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        let ok = match (target, raw) {
            (Target::ExtAuthz, _) => match envoy.check(case.envoy.clone()).await {
                Ok(r) => {
                    let code = r.get_ref().status.as_ref().map_or(0, |s| s.code);
                    (code == 0) == case.allowed
                }
                Err(_) => false,
            },
            (Target::Check, _) => match check.check(case.check.clone()).await {
                Ok(r) => r.get_ref().allowed == case.allowed,
                Err(_) => false,
            },
            (Target::Floor, _) => check.check(case.check.clone()).await.is_ok(),
            (Target::Raw, Some(raw)) => raw_call(channel.clone(), raw).await.is_ok(),
            (Target::Raw, None) => false,
        };
        let elapsed = u32::try_from(start.elapsed().as_nanos()).unwrap_or(u32::MAX);
        match sample.latencies_ns.get_mut(index) {
            Some(latencies) if ok => latencies.push(elapsed),
            _ => sample.errors += 1,
        }
    }
    sample
}

/// One round's figures; latencies of successful requests only.
struct Stats {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    throughput: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// p50 and p99 per case of the mix, in µs.
    per_case: Vec<(f64, f64)>,
}

impl Stats {
    fn new(mut sample: Sample, elapsed: Duration) -> Stats {
        let per_case = sample
            .latencies_ns
            .iter_mut()
            .map(|l| {
                l.sort_unstable();
                (percentile(l, 0.50), percentile(l, 0.99))
            })
            .collect();
        let mut all: Vec<u32> = sample.latencies_ns.concat();
        all.sort_unstable();
        let sorted = &all;
        let ok = sorted.len() as u64;
        let requests = ok + sample.errors;
        Stats {
            requests,
            errors: sample.errors,
            elapsed,
            throughput: requests as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            p50_us: percentile(sorted, 0.50),
            p90_us: percentile(sorted, 0.90),
            p99_us: percentile(sorted, 0.99),
            p999_us: percentile(sorted, 0.999),
            max_us: sorted.last().map_or(0.0, |&n| f64::from(n) / 1_000.0),
            per_case,
        }
    }

    fn line(&self) -> String {
        format!(
            "requests {:>8}  errors {:>3}  {:>9.0} req/s  p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  \
             p99.9 {:>8.1}  max {:>9.1} µs",
            self.requests,
            self.errors,
            self.throughput,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_rps": self.throughput,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "max_us": self.max_us,
        })
    }
}

/// The nearest-rank percentile of sorted nanoseconds, in microseconds.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(index).map_or(0.0, |&n| f64::from(n) / 1_000.0)
}

/// Medians over rounds, each figure on its own.
struct Medians {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Medians {
    fn of(stats: &[Stats]) -> Medians {
        let median = |f: fn(&Stats) -> f64| {
            let mut v: Vec<f64> = stats.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            match (v.get(n / 2), n % 2) {
                (Some(&hi), 1) => hi,
                (Some(&hi), _) => v.get(n / 2 - 1).map_or(hi, |&lo| (lo + hi) / 2.0),
                (None, _) => 0.0,
            }
        };
        Medians {
            throughput: median(|s| s.throughput),
            p50_us: median(|s| s.p50_us),
            p99_us: median(|s| s.p99_us),
        }
    }
}
