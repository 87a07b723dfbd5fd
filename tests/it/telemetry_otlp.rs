//! OpenTelemetry export of the real `gatehouse serve` binary: spans and metrics over OTLP/gRPC to a
//! collector built from the official OpenTelemetry protos, parented to the callers' W3C trace
//! context, with no token or secret in any attribute; and the runtime log level endpoint.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SECRET, sign, user_token};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use serde_json::json;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};

const API_KEY: &str = "key123";
const SERVICE_NAME: &str = "gatehouse-test";
/// How long anything may take on a loaded machine before the test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------
// The collector stand-in.

/// Stores every export it receives and answers success.
#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running collector; stops when dropped.
struct RunningCollector {
    collector: Collector,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl RunningCollector {
    async fn start(listener: tokio::net::TcpListener) -> RunningCollector {
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        RunningCollector {
            collector,
            addr,
            _stop: stop,
        }
    }

    fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.collector.traces.lock().unwrap().clone()
    }

    fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.collector.metrics.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------------
// The binary as a child process.

/// A `gatehouse serve` child, killed when dropped (also when the test panics).
struct Gatehouse {
    child: Child,
    /// gRPC, on loopback.
    grpc: SocketAddr,
    /// The HTTP port, reached over loopback.
    http: SocketAddr,
    stderr: tempfile::NamedTempFile,
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gatehouse {
    /// Starts the binary with the test secret and API key plus `env`, its HTTP listener on
    /// `http_ip`; retries with other ports if one was taken between choosing and binding it.
    async fn start(env: &[(&str, &str)], http_ip: IpAddr) -> Gatehouse {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let grpc = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            );
            let http_bind = SocketAddr::new(http_ip, free_port(http_ip));
            let stderr = tempfile::NamedTempFile::new().unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
            for (name, _) in std::env::vars() {
                if name.starts_with("GATEHOUSE_") || name.starts_with("OTEL_") || name == "RUST_LOG"
                {
                    command.env_remove(name);
                }
            }
            command
                .arg("serve")
                .env("GATEHOUSE_API_SECRET", SECRET)
                .env("GATEHOUSE_API_KEY", API_KEY)
                .env("GATEHOUSE_LISTEN", grpc.to_string())
                .env("GATEHOUSE_HTTP_LISTEN", http_bind.to_string())
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(File::create(stderr.path()).unwrap()));
            let child = command.spawn().expect("the binary starts");
            let mut server = Gatehouse {
                child,
                grpc,
                http: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), http_bind.port()),
                stderr,
            };
            if server.wait_ready().await {
                return server;
            }
            failures.push(server.log());
        }
        panic!("the binary did not start in 5 attempts:\n{failures:#?}");
    }

    /// True once both ports answer; false if the process exited (a port was taken).
    async fn wait_ready(&mut self) -> bool {
        let http = client();
        let started = Instant::now();
        while started.elapsed() < DEADLINE {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if tokio::net::TcpStream::connect(self.grpc).await.is_ok()
                && let Ok(response) = http.get(format!("http://{}/live", self.http)).send().await
                && response.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the binary did not answer within {DEADLINE:?}; its log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .expect("connect to the binary")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

/// A port that was free a moment ago on `ip`.
fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client that never goes through a proxy from the environment.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Trace context.

/// A caller's span: the `traceparent` a request carries.
#[derive(Clone, Copy, Debug)]
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl Parent {
    fn new() -> Parent {
        let trace = rand::random::<u128>() | 1;
        let span = rand::random::<u64>() | 1;
        Parent {
            trace_id: trace.to_be_bytes(),
            span_id: span.to_be_bytes(),
        }
    }

    fn header(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn traced<T>(message: T, parent: &Parent) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("traceparent", parent.header().parse().unwrap());
    request
}

// ---------------------------------------------------------------------------------------------------
// Requests.

fn check_request(token: &str, action: &str, kind: &str, id: &str) -> pb::CheckRequest {
    common::check_request(token, action, kind, id, json!({}), json!({}))
}

fn item(action: &str, kind: &str, id: &str) -> pb::CheckItem {
    pb::CheckItem {
        action: action.to_owned(),
        resource: Some(pb::Resource {
            kind: kind.to_owned(),
            id: id.to_owned(),
            attributes: None,
        }),
        context: None,
    }
}

/// An Envoy ext_authz CheckRequest for a Stream Feeds API call with a user's credentials.
fn envoy_request(method: &str, path: &str, token: &str, extra: &[(&str, String)]) -> CheckRequest {
    common::envoy_check(method, &format!("{path}?api_key={API_KEY}"), token, extra)
}

/// Whether ext_authz allowed, and the response headers.
fn envoy_answer(response: CheckResponse) -> (bool, HashMap<String, String>) {
    let status = response.status.expect("every answer carries a status");
    match response.http_response.expect("an HTTP response") {
        HttpResponse::OkResponse(ok) => (
            status.code == 0,
            ok.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        ),
        HttpResponse::DeniedResponse(denied) => (
            false,
            denied
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        ),
        other => panic!("unexpected response {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading what arrived.

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
        .collect()
}

/// Every value of `key` (a key may have been recorded more than once).
fn values_of(list: &[KeyValue], key: &str) -> Vec<String> {
    list.iter()
        .filter(|kv| kv.key == key)
        .map(|kv| value_text(kv.value.as_ref()))
        .collect()
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .map(|r| attributes(&r.attributes))
        .and_then(|a| a.get("service.name").cloned())
        .unwrap_or_default()
}

/// Every span received, with its resource's service.name.
fn spans(exports: &[ExportTraceServiceRequest]) -> Vec<(String, Span)> {
    exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|rs| {
            let service = service_name(rs.resource.as_ref());
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |s| (service.clone(), s.clone()))
        })
        .collect()
}

/// The spans that are children of `parent`.
fn children<'a>(spans: &'a [(String, Span)], parent: &Parent) -> Vec<&'a (String, Span)> {
    spans
        .iter()
        .filter(|(_, s)| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

fn span_summary(spans: &[(String, Span)]) -> String {
    spans
        .iter()
        .map(|(service, s)| {
            format!(
                "  [{service}] {} trace={} parent={} {:?}\n",
                s.name,
                hex(&s.trace_id),
                hex(&s.parent_span_id),
                attributes(&s.attributes)
            )
        })
        .collect()
}

/// One data point: its metric, attributes, value (sums and gauges) or count (histograms).
#[derive(Debug, Clone)]
struct Point {
    service: String,
    metric: String,
    attributes: BTreeMap<String, String>,
    value: f64,
}

fn points(exports: &[ExportMetricsServiceRequest]) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in exports.iter().flat_map(|e| &e.resource_metrics) {
        let service = service_name(rm.resource.as_ref());
        for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            for (attributes, value) in metric_points(m) {
                out.push(Point {
                    service: service.clone(),
                    metric: m.name.clone(),
                    attributes,
                    value,
                });
            }
        }
    }
    out
}

fn number(value: Option<&number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

fn metric_points(m: &Metric) -> Vec<(BTreeMap<String, String>, f64)> {
    match &m.data {
        Some(metric::Data::Sum(sum)) => sum
            .data_points
            .iter()
            .map(|p| (attributes(&p.attributes), number(p.value.as_ref())))
            .collect(),
        Some(metric::Data::Gauge(gauge)) => gauge
            .data_points
            .iter()
            .map(|p| (attributes(&p.attributes), number(p.value.as_ref())))
            .collect(),
        Some(metric::Data::Histogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|p| (attributes(&p.attributes), p.count as f64))
            .collect(),
        _ => Vec::new(),
    }
}

fn point_summary(points: &[Point]) -> String {
    let mut lines: Vec<String> = points
        .iter()
        .map(|p| format!("  [{}] {} {:?}", p.service, p.metric, p.attributes))
        .collect();
    lines.sort();
    lines.dedup();
    lines.join("\n")
}

/// Does some point of `metric` have these attributes (and maybe others) and a value satisfying `ok`?
fn has_point(
    points: &[Point],
    metric: &str,
    with: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> bool {
    points.iter().any(|p| {
        p.metric == metric
            && with
                .iter()
                .all(|(k, v)| p.attributes.get(*k).map(String::as_str) == Some(*v))
            && ok(p.value)
    })
}

/// A condition on the data points received.
type PointCheck<'a> = Box<dyn Fn(&[Point]) -> bool + 'a>;

/// A histogram point of gatehouse.request.duration for `rpc` with at least one observation.
fn rpc_count(rpc: &'static str) -> impl Fn(&[Point]) -> bool {
    move |p: &[Point]| {
        has_point(p, "gatehouse.request.duration", &[("rpc", rpc)], |c| {
            c >= 1.0
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// Traces and metrics.

/// What a span must say about its request.
struct Expected {
    what: &'static str,
    parent: Parent,
    name: &'static str,
    /// Attribute values; a key mapped to `None` must have some value.
    attributes: Vec<(&'static str, Option<String>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_collector() {
    let collector =
        RunningCollector::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let endpoint = format!("http://{}", collector.addr);
    let server = Gatehouse::start(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_SERVICE_NAME", SERVICE_NAME),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let channel = server.channel().await;
    let mut gatehouse = GatehouseClient::new(channel.clone());
    let mut envoy = AuthorizationClient::new(channel);
    let alice = user_token("alice");
    let expired = sign(json!({"user_id": "alice", "exp": common::now() - 3600}));
    let mut expected = Vec::new();

    // gatehouse.v1 Check, allowed: any user reads any user feed.
    let parent = Parent::new();
    let allowed = gatehouse
        .check(traced(
            check_request(&alice, "read", "feed", "user:bob"),
            &parent,
        ))
        .await
        .expect("Check succeeds")
        .into_inner();
    assert!(allowed.allowed, "{allowed:?}");
    let revision = allowed.policy_revision.clone();
    assert!(!revision.is_empty());
    expected.push(Expected {
        what: "Check allowed",
        parent,
        name: "gatehouse.v1.Gatehouse/Check",
        attributes: vec![
            ("action", Some("read".to_owned())),
            ("resource.kind", Some("feed".to_owned())),
            ("decision", Some("allow".to_owned())),
            ("rule", Some(allowed.rule.clone())),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });

    // gatehouse.v1 Check, denied: nobody deletes someone else's feed.
    let parent = Parent::new();
    let denied = gatehouse
        .check(traced(
            check_request(&alice, "delete", "feed", "user:bob"),
            &parent,
        ))
        .await
        .expect("Check succeeds")
        .into_inner();
    assert!(!denied.allowed, "{denied:?}");
    assert_eq!(denied.policy_revision, revision);
    expected.push(Expected {
        what: "Check denied",
        parent,
        name: "gatehouse.v1.Gatehouse/Check",
        attributes: vec![
            ("action", Some("delete".to_owned())),
            ("resource.kind", Some("feed".to_owned())),
            ("decision", Some("deny".to_owned())),
            ("rule", Some(denied.rule.clone())),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });

    // CheckBatch: one span for the call, with the number of items and how many were allowed; the
    // items' own decisions are in the decision log and metrics.
    let parent = Parent::new();
    let batch = gatehouse
        .check_batch(traced(
            pb::CheckBatchRequest {
                token: alice.clone(),
                items: vec![
                    item("read", "feed", "user:bob"),
                    item("delete", "feed", "user:bob"),
                ],
                ..Default::default()
            },
            &parent,
        ))
        .await
        .expect("CheckBatch succeeds")
        .into_inner();
    assert_eq!(
        batch.results.iter().map(|r| r.allowed).collect::<Vec<_>>(),
        [true, false]
    );
    expected.push(Expected {
        what: "CheckBatch",
        parent,
        name: "gatehouse.v1.Gatehouse/CheckBatch",
        attributes: vec![
            ("items", Some("2".to_owned())),
            ("allowed_items", Some("1".to_owned())),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });

    // Envoy ext_authz, trace context in the gRPC metadata AND in the client's headers: the proxy's
    // own (metadata) wins.
    let parent = Parent::new();
    let client_side = Parent::new();
    let (ok, headers) = envoy_answer(
        envoy
            .check(traced(
                envoy_request(
                    "GET",
                    "/api/v1.0/feed/user/bob/",
                    &alice,
                    &[("traceparent", client_side.header())],
                ),
                &parent,
            ))
            .await
            .expect("ext_authz answers")
            .into_inner(),
    );
    assert!(ok, "{headers:?}");
    assert_eq!(headers.get("x-gatehouse-revision"), Some(&revision));
    expected.push(Expected {
        what: "ext_authz allowed (traceparent in metadata and headers)",
        parent,
        name: "envoy.service.auth.v3.Authorization/Check",
        attributes: vec![
            ("action", Some("read".to_owned())),
            ("resource.kind", Some("feed".to_owned())),
            ("decision", Some("allow".to_owned())),
            ("rule", headers.get("x-gatehouse-rule").cloned()),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });
    let ext_authz_client_side = client_side;

    // Envoy ext_authz, denied, trace context only in the client's request headers.
    let parent = Parent::new();
    let (ok, headers) = envoy_answer(
        envoy
            .check(envoy_request(
                "DELETE",
                "/api/v1.0/feed/user/bob/act1/",
                &alice,
                &[("traceparent", parent.header())],
            ))
            .await
            .expect("ext_authz answers")
            .into_inner(),
    );
    assert!(!ok, "{headers:?}");
    expected.push(Expected {
        what: "ext_authz denied (traceparent in the client's headers)",
        parent,
        name: "envoy.service.auth.v3.Authorization/Check",
        attributes: vec![
            ("action", Some("delete".to_owned())),
            ("resource.kind", None),
            ("decision", Some("deny".to_owned())),
            ("rule", None),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });

    // HTTP /authz with a traceparent header.
    let parent = Parent::new();
    let http = client();
    let response = http
        .get(server.url("/authz/api/v1.0/feed/user/bob/?api_key=key123"))
        .header("authorization", &alice)
        .header("stream-auth-type", "jwt")
        .header("traceparent", parent.header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("x-gatehouse-revision"), Some(revision.clone()));
    expected.push(Expected {
        what: "HTTP /authz",
        parent,
        name: "gatehouse /authz",
        attributes: vec![
            ("action", Some("read".to_owned())),
            ("resource.kind", Some("feed".to_owned())),
            ("decision", Some("allow".to_owned())),
            ("rule", header("x-gatehouse-rule")),
            ("revision", Some(revision.clone())),
            ("principal.kind", Some("user".to_owned())),
        ],
    });

    // An expired token: rejected before any decision.
    let parent = Parent::new();
    let status = gatehouse
        .check(traced(
            check_request(&expired, "read", "feed", "user:bob"),
            &parent,
        ))
        .await
        .expect_err("an expired token is rejected");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    expected.push(Expected {
        what: "Check with an expired token",
        parent,
        name: "gatehouse.v1.Gatehouse/Check",
        attributes: Vec::new(),
    });

    // Spans: wait until every request's span arrived.
    let started = Instant::now();
    let received = loop {
        let received = spans(&collector.traces());
        if expected
            .iter()
            .all(|e| !children(&received, &e.parent).is_empty())
        {
            break received;
        }
        if started.elapsed() > DEADLINE {
            let missing: Vec<&str> = expected
                .iter()
                .filter(|e| children(&received, &e.parent).is_empty())
                .map(|e| e.what)
                .collect();
            panic!(
                "no span within {DEADLINE:?} for {missing:?}; expected parents:\n{}\nreceived:\n{}\nserver log:\n{}",
                expected
                    .iter()
                    .map(|e| format!("  {}: {}\n", e.what, e.parent.header()))
                    .collect::<String>(),
                span_summary(&received),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut problems = Vec::new();
    for e in &expected {
        let found = children(&received, &e.parent);
        if found.len() != 1 {
            problems.push(format!(
                "{}: {} spans parented to {}, expected 1",
                e.what,
                found.len(),
                e.parent.header()
            ));
        }
        let Some((service, span)) = found.first().copied() else {
            continue;
        };
        if service != SERVICE_NAME {
            problems.push(format!("{}: service.name {service:?}", e.what));
        }
        if span.name != e.name {
            problems.push(format!(
                "{}: span name {:?}, expected {:?}",
                e.what, span.name, e.name
            ));
        }
        if span.kind != span::SpanKind::Server as i32 {
            problems.push(format!(
                "{}: span kind {}, expected server",
                e.what, span.kind
            ));
        }
        for (key, want) in &e.attributes {
            let values = values_of(&span.attributes, key);
            let ok = match want {
                Some(want) => !values.is_empty() && values.iter().all(|v| v == want),
                None => !values.is_empty() && values.iter().all(|v| !v.is_empty()),
            };
            if !ok {
                problems.push(format!(
                    "{}: attribute {key} = {values:?}, expected {}",
                    e.what,
                    want.as_deref().unwrap_or("a value")
                ));
            }
        }
    }
    // The batch's span carries no per-item attributes, and none twice, however many items it has.
    for (_, batch_span) in children(&received, &expected[2].parent) {
        for key in ["decision", "rule", "action"] {
            if !values_of(&batch_span.attributes, key).is_empty() {
                problems.push(format!("CheckBatch: a per-item attribute {key}"));
            }
        }
        let mut keys: Vec<&str> = batch_span
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            problems.push(format!("CheckBatch: repeated attributes {keys:?}"));
        }
    }
    // ext_authz took the metadata's trace context, not the client's.
    if !children(&received, &ext_authz_client_side).is_empty() {
        problems
            .push("ext_authz: a span joined the client's traceparent over the metadata's".into());
    }
    assert!(
        problems.is_empty(),
        "span problems:\n  {}\nreceived:\n{}",
        problems.join("\n  "),
        span_summary(&received)
    );

    // Metrics: wait until the last request's effects have been exported.
    let started = Instant::now();
    let checks: Vec<(String, PointCheck)> = vec![
        (
            format!("gatehouse.decisions result=allow rule={}", allowed.rule),
            Box::new(|p: &[Point]| {
                has_point(
                    p,
                    "gatehouse.decisions",
                    &[("result", "allow"), ("rule", &allowed.rule)],
                    |v| v >= 1.0,
                )
            }),
        ),
        (
            format!("gatehouse.decisions result=deny rule={}", denied.rule),
            Box::new(|p: &[Point]| {
                has_point(
                    p,
                    "gatehouse.decisions",
                    &[("result", "deny"), ("rule", &denied.rule)],
                    |v| v >= 1.0,
                )
            }),
        ),
        (
            "gatehouse.request.duration rpc=Check count>=1".to_owned(),
            Box::new(rpc_count("Check")),
        ),
        (
            "gatehouse.request.duration rpc=CheckBatch count>=1".to_owned(),
            Box::new(rpc_count("CheckBatch")),
        ),
        (
            "gatehouse.request.duration rpc=ext_authz count>=1".to_owned(),
            Box::new(rpc_count("ext_authz")),
        ),
        (
            "gatehouse.request.duration rpc=http_authz count>=1".to_owned(),
            Box::new(rpc_count("http_authz")),
        ),
        (
            "gatehouse.token.rejections reason=expired >=1".to_owned(),
            Box::new(|p: &[Point]| {
                has_point(
                    p,
                    "gatehouse.token.rejections",
                    &[("reason", "expired")],
                    |v| v >= 1.0,
                )
            }),
        ),
        (
            "gatehouse.in_flight_requests".to_owned(),
            Box::new(|p: &[Point]| has_point(p, "gatehouse.in_flight_requests", &[], |_| true)),
        ),
        (
            "gatehouse.reloads result=ok".to_owned(),
            Box::new(|p: &[Point]| {
                has_point(p, "gatehouse.reloads", &[("result", "ok")], |_| true)
            }),
        ),
        (
            format!("gatehouse.policy.revision revision={revision}"),
            Box::new(|p: &[Point]| {
                has_point(
                    p,
                    "gatehouse.policy.revision",
                    &[("revision", &revision)],
                    |_| true,
                )
            }),
        ),
    ];
    let metric_points = loop {
        let received = points(&collector.metrics());
        let missing: Vec<&str> = checks
            .iter()
            .filter(|(_, ok)| !ok(&received))
            .map(|(what, _)| what.as_str())
            .collect();
        if missing.is_empty() {
            break received;
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "metrics missing after {DEADLINE:?}: {missing:#?}\nreceived:\n{}",
                point_summary(&received)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let services: Vec<&str> = metric_points.iter().map(|p| p.service.as_str()).collect();
    assert!(
        services.iter().all(|s| *s == SERVICE_NAME),
        "metrics carry service.name {SERVICE_NAME}: {services:?}"
    );
    // The revision gauge names the revision the Check responses reported, and no other.
    let revisions: Vec<&str> = metric_points
        .iter()
        .filter(|p| p.metric == "gatehouse.policy.revision")
        .filter_map(|p| p.attributes.get("revision").map(String::as_str))
        .collect();
    assert!(
        revisions.iter().all(|r| *r == revision),
        "{revisions:?} vs {revision}"
    );

    // No token and no secret anywhere in what was exported.
    let everything = format!("{:?}\n{:?}", collector.traces(), collector.metrics());
    for (what, secret) in [
        ("alice's token", alice.as_str()),
        ("the expired token", expired.as_str()),
        ("the API secret", SECRET),
    ] {
        assert!(!everything.contains(secret), "{what} was exported");
    }
    // Nor the JWT's signature alone (what is left after a `Bearer ` or header split).
    for token in [&alice, &expired] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !everything.contains(signature),
            "a token signature was exported"
        );
    }

    // A server without OTEL_* settings exports nothing, and its /metrics still works. The exporter
    // default is localhost:4317: when that port is free, a second collector listens there too.
    let default_port = tokio::net::TcpListener::bind("127.0.0.1:4317").await.ok();
    let default_collector = match default_port {
        Some(listener) => Some(RunningCollector::start(listener).await),
        None => {
            eprintln!("127.0.0.1:4317 is in use: not watching the exporter's default endpoint");
            None
        }
    };
    let quiet = Gatehouse::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let mut quiet_client = GatehouseClient::new(quiet.channel().await);
    let answer = quiet_client
        .check(traced(
            check_request(&alice, "read", "feed", "user:bob"),
            &Parent::new(),
        ))
        .await
        .expect("Check succeeds")
        .into_inner();
    assert!(answer.allowed);
    let metrics_text = common::get_text(&quiet.url("/metrics")).await;
    assert!(
        metrics_text.contains("gatehouse_decisions_total{")
            && metrics_text.contains("gatehouse_request_duration_seconds"),
        "{metrics_text}"
    );
    // Give the quiet server the time the exporting one takes for three more metric exports (an
    // event, not a clock): anything it exported would have had the same chance to arrive.
    let before = collector.metrics().len();
    let started = Instant::now();
    while collector.metrics().len() < before + 3 && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let foreign: Vec<String> = spans(&collector.traces())
        .iter()
        .map(|(s, _)| s.clone())
        .chain(points(&collector.metrics()).into_iter().map(|p| p.service))
        .filter(|s| s != SERVICE_NAME)
        .collect();
    assert!(
        foreign.is_empty(),
        "exports from another service: {foreign:?}"
    );
    if let Some(default_collector) = default_collector {
        assert!(
            default_collector.traces().is_empty() && default_collector.metrics().is_empty(),
            "the server without OTEL_* settings exported to the default endpoint"
        );
    }
    drop(quiet);
    drop(server);
}

// ---------------------------------------------------------------------------------------------------
// The runtime log level.

/// The first non-loopback IPv4 address of this machine, from `ip -4 addr` or `hostname -I`.
fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let from_ip = run("ip", &["-4", "-o", "addr", "show"]).and_then(|text| {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "inet")
            .filter_map(|w| w[1].split('/').next()?.parse::<Ipv4Addr>().ok())
            .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
    });
    from_ip.or_else(|| {
        run("hostname", &["-I"])?
            .split_whitespace()
            .filter_map(|w| w.parse::<Ipv4Addr>().ok())
            .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
    })
}

async fn get_level(http: &reqwest::Client, server: &Gatehouse) -> String {
    let response = http.get(server.url("/log/level")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().trim().to_owned()
}

async fn put_level(http: &reqwest::Client, url: String, filter: &str) -> (u16, String) {
    let response = http.put(url).body(filter.to_owned()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_changes_at_runtime_from_loopback_only() {
    let server = Gatehouse::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let http = client();
    assert_eq!(get_level(&http, &server).await, "info");
    let (status, body) = put_level(&http, server.url("/log/level"), "debug").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_level(&http, &server).await, "debug");
    let (status, body) = put_level(&http, server.url("/log/level"), "gatehouse=notalevel[").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        get_level(&http, &server).await,
        "debug",
        "an invalid filter changes nothing"
    );
    // The server still answers at the new level.
    let response = http
        .get(server.url("/authz/api/v1.0/feed/user/bob/?api_key=key123"))
        .header("authorization", user_token("alice"))
        .header("stream-auth-type", "jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(server);

    let Some(ip) = non_loopback_ipv4() else {
        eprintln!(
            "skipping the non-loopback PUT /log/level case: this machine has no non-loopback IPv4 address"
        );
        return;
    };
    let public = Gatehouse::start(&[], IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let remote = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap();
    let remote_url = format!("http://{ip}:{}/log/level", public.http.port());
    let (status, body) = put_level(&remote, remote_url, "debug").await;
    assert_eq!(
        status, 403,
        "PUT /log/level from {ip} (not loopback) is refused: {body}"
    );
    assert_eq!(
        get_level(&http, &public).await,
        "info",
        "the refused PUT changed nothing"
    );
    let (status, body) = put_level(&http, public.url("/log/level"), "warn").await;
    assert_eq!(status, 200, "loopback may still change it: {body}");
    assert_eq!(get_level(&http, &public).await, "warn");
}

/// Waits until `ready` holds of what the collector received, or fails with `what`.
async fn wait_for(
    collector: &RunningCollector,
    what: &str,
    ready: impl Fn(&RunningCollector) -> bool,
) {
    let started = Instant::now();
    while !ready(collector) {
        assert!(
            started.elapsed() < DEADLINE,
            "no {what} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn export_errors(server: &Gatehouse) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_signal_goes_only_where_its_endpoint_says() {
    let collector =
        RunningCollector::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let endpoint = format!("http://{}", collector.addr);
    let alice = user_token("alice");
    // Fast exports, so that anything sent would arrive within the pause below.
    let fast = [
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let pause = Duration::from_millis(800);

    // A metrics endpoint alone: metrics arrive, no span is exported anywhere (not to a default
    // endpoint either, which would log export errors).
    let mut env = fast.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()));
    let server = Gatehouse::start(&env, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let mut client = GatehouseClient::new(server.channel().await);
    let parent = Parent::new();
    client
        .check(traced(
            check_request(&alice, "read", "feed", "user:bob"),
            &parent,
        ))
        .await
        .unwrap();
    wait_for(&collector, "metrics export", |c| {
        rpc_count("Check")(&points(&c.metrics()))
    })
    .await;
    tokio::time::sleep(pause).await;
    assert!(collector.traces().is_empty(), "{:?}", collector.traces());
    assert_eq!(export_errors(&server), Vec::<String>::new());
    drop(server);

    // A traces endpoint alone, with the parent-based ratio sampler at 0: the span of a request whose
    // caller sampled its trace is exported, the spans of requests without a trace are not, and no
    // metrics are exported.
    let metrics_before = collector.metrics().len();
    let mut env = fast.to_vec();
    env.extend([
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ]);
    let server = Gatehouse::start(&env, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let mut client = GatehouseClient::new(server.channel().await);
    for _ in 0..20 {
        let request = tonic::Request::new(check_request(&alice, "read", "feed", "user:bob"));
        assert!(client.check(request).await.unwrap().into_inner().allowed);
    }
    let parent = Parent::new();
    client
        .check(traced(
            check_request(&alice, "read", "feed", "user:carol"),
            &parent,
        ))
        .await
        .unwrap();
    wait_for(&collector, "span of the sampled trace", |c| {
        !children(&spans(&c.traces()), &parent).is_empty()
    })
    .await;
    tokio::time::sleep(pause).await;
    let received = spans(&collector.traces());
    assert_eq!(received.len(), 1, "{}", span_summary(&received));
    assert_eq!(collector.metrics().len(), metrics_before);
    assert_eq!(export_errors(&server), Vec::<String>::new());
}
