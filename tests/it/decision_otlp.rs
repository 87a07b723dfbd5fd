//! The decision log over OTLP: a real server sends every decision as an OpenTelemetry log record to a
//! receiver built from the official OpenTelemetry protos, masked as its file is, never with a token;
//! a collector that stalls, hangs up or never speaks costs the Checks nothing and its losses are
//! counted; and `gatehouse exercised` and `suggest` read the file a Collector's file exporter would
//! write from those records exactly as they read the decision log file.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Deadline, SECRET, TestServer, check, check_request, user_token};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use prost::Message;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Success,
    /// Takes the request and never answers (within any test's time).
    Stall,
}

/// An OTLP logs receiver keeping every request it gets.
#[derive(Clone)]
struct Receiver {
    requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    answer: Answer,
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        if self.answer == Answer::Stall {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver; stops when dropped.
struct Running {
    receiver: Receiver,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Running {
    async fn start(answer: Answer) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            requests: Arc::default(),
            answer,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Running {
            receiver,
            addr,
            _stop: stop,
        }
    }

    fn requests(&self) -> Vec<ExportLogsServiceRequest> {
        self.receiver.requests.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<LogRecord> {
        self.requests()
            .into_iter()
            .flat_map(|r| r.resource_logs)
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .collect()
    }

    async fn wait_records(&self, count: usize) -> Vec<LogRecord> {
        let deadline = Deadline::new("the decisions to reach the OTLP receiver");
        loop {
            let records = self.records();
            assert!(records.len() <= count, "{records:#?}");
            if records.len() == count {
                return records;
            }
            deadline.tick(&records.len()).await;
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn text(value: &AnyValue) -> Option<&str> {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// The record's attribute `name`, as JSON for easy comparison.
fn attribute(record: &LogRecord, name: &str) -> Value {
    let Some(value) = record
        .attributes
        .iter()
        .find(|kv| kv.key == name)
        .and_then(|kv| kv.value.as_ref())
    else {
        return Value::Null;
    };
    match &value.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| json!(text(v))).collect())
        }
        _ => Value::Null,
    }
}

fn body(record: &LogRecord) -> &str {
    record.body.as_ref().and_then(text).expect("a string body")
}

/// The decision log file's lines, whole ones only.
fn file_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .map(str::to_owned)
        .collect()
}

async fn wait_file_lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Deadline::new("the decisions to reach the decision log file");
    loop {
        let lines = file_lines(path);
        if lines.len() >= count {
            return lines;
        }
        deadline.tick(&lines.len()).await;
    }
}

/// `gatehouse_decision_log_dropped_total{sink="otlp"}` as `/metrics` shows it.
async fn otlp_dropped(server: &TestServer) -> u64 {
    let text = common::get_text(&format!("http://{}/metrics", server.http_addr)).await;
    text.lines()
        .find_map(|l| l.strip_prefix("gatehouse_decision_log_dropped_total{sink=\"otlp\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn wait_dropped(server: &TestServer, at_least: u64) -> u64 {
    let deadline = Deadline::new("the OTLP sink to count its drops");
    loop {
        let dropped = otlp_dropped(server).await;
        if dropped >= at_least {
            return dropped;
        }
        deadline.tick(&dropped).await;
    }
}

/// carol's reads: one the built-in preset allows, one it denies.
fn carols_reads(token: &str) -> [(gatehouse::grpc::pb::CheckRequest, bool); 2] {
    [
        (
            check_request(token, "read", "feed", "user:bob", json!({}), json!({})),
            true,
        ),
        (
            check_request(token, "read", "feed", "timeline:bob", json!({}), json!({})),
            false,
        ),
    ]
}

#[tokio::test]
async fn decisions_arrive_as_log_records_masked_as_the_file_and_without_a_token() {
    let receiver = Running::start(Answer::Success).await;
    let logs = TempDir::new().unwrap();
    let file = logs.path().join("decisions.jsonl");
    let endpoint = receiver.endpoint();
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", &endpoint),
        ("GATEHOUSE_DECISION_LOG_FILE", file.to_str().unwrap()),
        ("GATEHOUSE_DECISION_LOG_MASK", "principal_id"),
    ])
    .await;
    let mut client = server.client().await;
    let token = user_token("carol");
    for (request, allowed) in carols_reads(&token) {
        assert_eq!(check(&mut client, request).await.allowed, allowed);
    }
    let records = receiver.wait_records(2).await;
    let lines = wait_file_lines(&file, 2).await;

    let requests = receiver.requests();
    let resource = requests[0].resource_logs[0].resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(text);
    assert_eq!(service, Some("gatehouse"));
    for request in &requests {
        for scope_logs in request.resource_logs.iter().flat_map(|r| &r.scope_logs) {
            assert_eq!(
                scope_logs.scope.as_ref().unwrap().name,
                gatehouse::audit::SCOPE_NAME
            );
        }
    }

    let pseudonym = &serde_json::from_str::<Value>(&lines[0]).unwrap()["principal_id"];
    assert!(
        pseudonym.as_str().unwrap().starts_with("hmac:"),
        "{pseudonym}"
    );
    let (allowed, denied) = (&records[0], &records[1]);
    for (record, line) in records.iter().zip(&lines) {
        assert_eq!(body(record), line, "the body is the file's masked line");
        assert_eq!(record.event_name, gatehouse::audit::EVENT_NAME);
        assert_eq!(
            attribute(record, "gatehouse.decision.principal.id"),
            *pseudonym
        );
        assert_eq!(
            attribute(record, "gatehouse.decision.principal.kind"),
            "user"
        );
        assert_eq!(attribute(record, "gatehouse.decision.action"), "read");
        assert_eq!(
            attribute(record, "gatehouse.decision.resource.kind"),
            "feed"
        );
        assert_eq!(attribute(record, "gatehouse.decision.door"), "check");
        assert_eq!(attribute(record, "gatehouse.decision.mode"), "enforcing");
        let revision = attribute(record, "gatehouse.decision.policy_revision");
        assert_eq!(
            revision,
            serde_json::from_str::<Value>(line).unwrap()["revision"]
        );
        assert!(revision.as_str().is_some_and(|r| !r.is_empty()));
        let time_ms = serde_json::from_str::<Value>(line).unwrap()["time_ms"]
            .as_u64()
            .unwrap();
        assert_eq!(record.time_unix_nano, time_ms * 1_000_000);
    }
    assert_eq!(attribute(allowed, "gatehouse.decision.allowed"), true);
    assert_eq!(attribute(allowed, "gatehouse.decision.verdict"), "allow");
    assert_eq!(
        attribute(allowed, "gatehouse.decision.rule"),
        "read-global-read-feeds"
    );
    assert_eq!(
        attribute(allowed, "gatehouse.decision.resource.id"),
        "user:bob"
    );
    assert_eq!(allowed.severity_number, SeverityNumber::Info as i32);
    assert_eq!(attribute(denied, "gatehouse.decision.allowed"), false);
    assert_eq!(attribute(denied, "gatehouse.decision.verdict"), "deny");
    assert_eq!(attribute(denied, "gatehouse.decision.rule"), "default-deny");
    assert_eq!(denied.severity_number, SeverityNumber::Warn as i32);
    assert_eq!(denied.severity_text, "WARN");

    // Nothing secret, and no masked value, anywhere in what was sent.
    let bytes: Vec<u8> = requests.iter().flat_map(|r| r.encode_to_vec()).collect();
    let sent = String::from_utf8_lossy(&bytes);
    for secret in [token.as_str(), SECRET, "carol"] {
        assert!(!sent.contains(secret), "{secret} was sent");
    }
    // The token's signature alone, too (a token split across fields would still show it).
    let signature = token.rsplit('.').next().unwrap();
    assert!(!sent.contains(signature));
    assert_eq!(otlp_dropped(&server).await, 0);
    server.stop().await.unwrap();
}

/// `gatehouse exercised` and `suggest` over `log`, as printed; the suggestion's generation time is
/// cut from its first line.
fn cli_outputs(log: &Path) -> [String; 2] {
    let run = |args: &[&str]| {
        let output = common::gatehouse_command()
            .args(args)
            .arg("--log")
            .arg(log)
            .args(["--user", "carol"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?} {}: {}",
            log.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        // Notes (what a suggestion left out) go to stderr; they must agree too.
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!stderr.contains("skipped"), "{stderr}");
        String::from_utf8(output.stdout).unwrap() + &stderr
    };
    let exercised = run(&["exercised"]);
    let suggested = run(&["suggest"]);
    let (first, rest) = suggested.split_once('\n').unwrap();
    let first = first.split(", generated ").next().unwrap();
    [exercised, format!("{first}\n{rest}")]
}

#[tokio::test]
async fn exercised_and_suggest_read_a_collector_file_as_they_read_the_decision_log() {
    let receiver = Running::start(Answer::Success).await;
    let logs = TempDir::new().unwrap();
    let file = logs.path().join("decisions.jsonl");
    let endpoint = receiver.endpoint();
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", &endpoint),
        ("GATEHOUSE_DECISION_LOG_FILE", file.to_str().unwrap()),
    ])
    .await;
    let mut client = server.client().await;
    let carol = user_token("carol");
    let dave = user_token("dave");
    let asks = [
        (&carol, "read", "feed", "user:bob", json!({})),
        (&carol, "read", "feed", "user:bob", json!({})),
        (
            &carol,
            "write",
            "feed",
            "timeline:carol",
            json!({"actor": "carol"}),
        ),
        (&carol, "read", "users", "dave", json!({})),
        (&carol, "read", "feed", "timeline:bob", json!({})),
        (&dave, "read", "feed", "user:bob", json!({})),
    ];
    for (token, action, kind, id, context) in &asks {
        let request = check_request(token, action, kind, id, json!({}), context.clone());
        check(&mut client, request).await;
    }
    server.stop().await.unwrap();
    receiver.wait_records(asks.len()).await;
    assert_eq!(file_lines(&file).len(), asks.len());

    // What a Collector's file exporter writes: one ExportLogsServiceRequest per line in the OTLP JSON
    // mapping (the crate's serde support follows it), here with another service's logs between.
    let otlp = logs.path().join("collector.json");
    let other_service = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeLogs": [{"scope": {"name": "checkout.http"}, "logRecords": [
            {"timeUnixNano": "1", "severityNumber": 9, "body": {"stringValue": "GET /cart 200"}},
            {"body": {"kvlistValue": {"values": [{"key": "user", "value": {"stringValue": "carol"}}]}}}
        ]}]
    }]});
    let mut text = format!("{other_service}\n");
    for request in receiver.requests() {
        text.push_str(&serde_json::to_string(&request).unwrap());
        text.push('\n');
    }
    assert!(text.contains("\"resourceLogs\"") && text.contains("\"stringValue\""));
    std::fs::write(&otlp, &text).unwrap();

    let from_file = cli_outputs(&file);
    let from_collector = cli_outputs(&otlp);
    assert!(
        from_file[0].contains("from 6 decisions"),
        "{}",
        from_file[0]
    );
    assert!(from_file[1].starts_with("# Least-privilege policy for user 'carol'\n"));
    assert_eq!(from_collector, from_file);

    // A line cut short is an error naming the file and line, not decisions silently missing.
    let last = text.lines().last().unwrap();
    let cut = format!("{text}{}\n", &last[..last.len() / 2]);
    std::fs::write(&otlp, cut).unwrap();
    let output = common::gatehouse_command()
        .args(["exercised", "--user", "carol", "--log"])
        .arg(&otlp)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = text.lines().count() + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{line}: not an OTLP JSON logs request",
            otlp.display()
        )),
        "{stderr}"
    );
}

/// A listener that takes connections and closes them at once, and one that takes them and never says
/// a word; both stand for collectors that never answer an export.
async fn misbehaving_listener(hang_up: bool) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            if hang_up {
                drop(stream);
            } else {
                held.push(stream);
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_stalled_collector_never_slows_a_check_and_what_it_costs_is_counted() {
    let receiver = Running::start(Answer::Stall).await;
    let endpoint = receiver.endpoint();
    // An export may wait far longer than any Check may take, and the queue is small.
    let server = TestServer::start_with(&[
        ("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", &endpoint),
        ("GATEHOUSE_DECISION_LOG_OTLP_QUEUE", "8"),
        ("GATEHOUSE_DECISION_LOG_OTLP_TIMEOUT", "1h"),
    ])
    .await;
    let mut client = server.client().await;
    let token = user_token("carol");
    let checks = 600;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for n in 0..checks {
        let (request, allowed) = carols_reads(&token)[n % 2].clone();
        let asked = Instant::now();
        assert_eq!(check(&mut client, request).await.allowed, allowed);
        slowest = slowest.max(asked.elapsed());
    }
    let took = started.elapsed();
    // The queue holds 8 and the exporter at most what it took: every other decision was dropped
    // and counted.
    let dropped = wait_dropped(&server, 1).await;
    assert!(
        dropped >= u64::try_from(checks).unwrap() - 2 * 8,
        "{dropped} dropped of {checks} in {took:?}"
    );
    // And while an export hangs, Checks go on as fast and are counted as dropped.
    let deadline = Deadline::new("an export to reach the stalled receiver");
    while receiver.requests().is_empty() {
        deadline.tick(&"no export yet").await;
    }
    for n in 0..checks {
        let (request, allowed) = carols_reads(&token)[n % 2].clone();
        let asked = Instant::now();
        assert_eq!(check(&mut client, request).await.allowed, allowed);
        slowest = slowest.max(asked.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "the slowest Check took {slowest:?}"
    );
    let more = wait_dropped(&server, dropped + u64::try_from(checks).unwrap() - 8).await;
    assert!(more <= 2 * u64::try_from(checks).unwrap());
    assert_eq!(receiver.requests().len(), 1, "one export, still waiting");
    let stopping = Instant::now();
    server.stop().await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "shutdown waited {:?} for a stalled collector",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn exports_that_time_out_or_fail_are_counted_as_dropped() {
    let stalled = Running::start(Answer::Stall).await;
    let (reset, _reset_task) = misbehaving_listener(true).await;
    let (silent, _silent_task) = misbehaving_listener(false).await;
    let token = user_token("carol");
    for endpoint in [
        stalled.endpoint(),
        format!("http://{reset}"),
        format!("http://{silent}"),
    ] {
        let server = TestServer::start_with(&[
            ("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", &endpoint),
            ("GATEHOUSE_DECISION_LOG_OTLP_TIMEOUT", "300ms"),
        ])
        .await;
        let mut client = server.client().await;
        for n in 0..6 {
            let (request, allowed) = carols_reads(&token)[n % 2].clone();
            let asked = Instant::now();
            assert_eq!(check(&mut client, request).await.allowed, allowed);
            assert!(asked.elapsed() < Duration::from_secs(2), "{endpoint}");
        }
        // Nothing was queued past the bound: every loss is a failed or timed-out export's.
        assert_eq!(wait_dropped(&server, 6).await, 6, "{endpoint}");
        server.stop().await.unwrap();
    }
}
