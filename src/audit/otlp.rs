//! The decision log's OTLP sink: every entry also leaves as an OpenTelemetry log record over
//! OTLP/gRPC, so a Collector gathers the decisions of every replica. It owns the names a record
//! carries (scope, event, attributes), which the reader of a Collector's files (`read.rs`) shares.
//!
//! The record is made from the line the file gets (masked the same way), so both sinks always say
//! the same thing: the body is that line, and the attributes are its fields under the names below.
//! Recording only appends the line to a bounded queue, under a lock of its own; one exporter
//! thread, with a runtime of its own so a stalled collector cannot hold a worker of the service,
//! takes the queue every [`BATCH_INTERVAL`] (or as soon as a batch is full) and sends it in requests
//! of at most [`BATCH_RECORDS`] records and [`BATCH_BYTES`] bytes of lines, each with a timeout.
//! Entries that find the queue full, and those of a request that fails or times out (with the rest
//! of what was taken with it), are dropped and counted; nothing is retried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

use super::CountDropped;

/// The instrumentation scope of every decision record; a Collector's file is read by it.
pub const SCOPE_NAME: &str = "gatehouse.decisions";
/// The event name of every decision record.
pub const EVENT_NAME: &str = "gatehouse.decision";
/// The name drops of this sink are counted under.
const SINK: &str = "otlp";

/// The most records in one request.
const BATCH_RECORDS: usize = 512;
/// The most bytes of lines in one request: with the attributes a request is about twice this,
/// well under the 4 MiB a Collector's OTLP receiver accepts by default.
const BATCH_BYTES: usize = 1024 * 1024;
/// How long an entry may wait for its batch to fill before it is sent anyway.
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes the queue may hold whatever its number of entries (lines are at most tens of kilobytes).
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Queued text kept allocated between batches, at most.
const KEPT_CAPACITY: usize = 4 * 1024 * 1024;

/// Where the records go, and how many may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpLogConfig {
    /// `http://HOST:PORT` of an OTLP/gRPC receiver (a Collector's `otlp` receiver).
    pub endpoint: String,
    /// Entries that may wait for the exporter before new ones are dropped.
    pub queue_entries: usize,
    /// The longest one export (connecting included) may take before its batch is dropped.
    pub timeout: Duration,
    /// The resource's `service.name`.
    pub service_name: String,
}

impl OtlpLogConfig {
    pub const DEFAULT_QUEUE_ENTRIES: usize = 4096;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// Lines waiting for the exporter.
#[derive(Default)]
struct Queue {
    text: String,
    lines: usize,
    /// Set by the exporter as it takes its last batch: later lines would never be sent.
    gone: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The exporter thread, and what tells that it has finished.
struct Exporter {
    thread: std::thread::Thread,
    finished: mpsc::Receiver<()>,
}

/// The sink's recording end.
pub(super) struct OtlpSink {
    shared: Arc<Shared>,
    max_lines: usize,
    count_dropped: CountDropped,
    exporter: Mutex<Option<Exporter>>,
}

impl OtlpSink {
    /// Starts the exporter thread. Nothing is connected yet: a collector that is not there is
    /// only found out by the first export, whose entries are then counted as dropped.
    pub(super) fn start(
        config: &OtlpLogConfig,
        count_dropped: CountDropped,
    ) -> std::io::Result<OtlpSink> {
        let shared = Arc::new(Shared::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let endpoint = tonic::transport::Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
            .connect_timeout(config.timeout)
            .timeout(config.timeout);
        let spec = ExportSpec {
            resource: resource(&config.service_name),
            timeout: config.timeout,
        };
        let queue = Arc::clone(&shared);
        let count = Arc::clone(&count_dropped);
        let (finished_tx, finished) = mpsc::sync_channel::<()>(0);
        let handle = std::thread::Builder::new()
            .name("decision-otlp".to_owned())
            .spawn(move || {
                let _finished = finished_tx;
                let client = {
                    let _entered = runtime.enter();
                    LogsServiceClient::new(endpoint.connect_lazy())
                };
                export_loop(&queue, &runtime, client, &spec, &*count);
            })?;
        Ok(OtlpSink {
            shared,
            max_lines: config.queue_entries,
            count_dropped,
            exporter: Mutex::new(Some(Exporter {
                thread: handle.thread().clone(),
                finished,
            })),
        })
    }

    /// Queues `line` (newline included), or counts it as dropped when the queue is full.
    pub(super) fn record(&self, line: &str) {
        let mut queue = self.shared.lock();
        let fits = !queue.gone
            && queue.lines < self.max_lines
            && queue.text.len().saturating_add(line.len()) <= QUEUE_BYTES;
        if !fits {
            drop(queue);
            (self.count_dropped)(SINK, 1);
            return;
        }
        queue.text.push_str(line);
        queue.lines += 1;
        let full_batch = queue.lines == BATCH_RECORDS;
        drop(queue);
        if full_batch {
            // Once per batch, not per entry: the exporter sends a full batch without waiting.
            if let Some(exporter) = &*self.exporter.lock().unwrap_or_else(PoisonError::into_inner) {
                exporter.thread.unpark();
            }
        }
    }

    /// Tells the exporter to send what is queued and stop.
    pub(super) fn signal_close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(exporter) = &*self.exporter.lock().unwrap_or_else(PoisonError::into_inner) {
            exporter.thread.unpark();
        }
    }

    /// Waits until `deadline` for the exporter to finish; what it has not taken by then is counted
    /// as dropped.
    pub(super) fn wait_closed(&self, deadline: Instant) {
        let exporter = self
            .exporter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(exporter) = exporter else {
            return;
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = exporter.finished.recv_timeout(wait) {
            let lost = {
                let mut queue = self.shared.lock();
                queue.gone = true;
                queue.text.clear();
                std::mem::take(&mut queue.lines)
            };
            (self.count_dropped)(SINK, u64::try_from(lost).unwrap_or(u64::MAX));
            tracing::warn!(
                lost,
                "the OTLP collector did not take the last decision log entries in time"
            );
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.signal_close();
    }
}

/// What every request carries besides its records.
struct ExportSpec {
    resource: Resource,
    timeout: Duration,
}

/// Takes the queue every interval (or when a batch is full) and sends it; once closed, sends what is
/// left and stops.
fn export_loop(
    shared: &Shared,
    runtime: &tokio::runtime::Runtime,
    mut client: LogsServiceClient<tonic::transport::Channel>,
    spec: &ExportSpec,
    count_dropped: &(dyn Fn(&'static str, u64) + Send + Sync),
) {
    let mut taken = String::new();
    let mut failing = false;
    loop {
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            std::thread::park_timeout(BATCH_INTERVAL);
        }
        let closed = shared.closed.load(Ordering::Acquire);
        {
            let mut queue = shared.lock();
            std::mem::swap(&mut queue.text, &mut taken);
            queue.lines = 0;
            queue.gone = closed;
        }
        let mut lines = taken.split_inclusive('\n').peekable();
        while lines.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(line) = lines.next_if(|line| {
                batch.is_empty()
                    || (batch.len() < BATCH_RECORDS && bytes + line.len() <= BATCH_BYTES)
            }) {
                bytes += line.len();
                batch.push(record(line));
            }
            let sent = batch.len();
            match runtime.block_on(export(&mut client, spec, batch)) {
                Ok(rejected) => {
                    if failing {
                        failing = false;
                        tracing::info!("decision log entries reach the OTLP collector again");
                    }
                    if rejected > 0 {
                        count_dropped(SINK, rejected);
                    }
                }
                Err(why) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(
                            error = %why,
                            "cannot export decision log entries over OTLP; they are dropped until it can"
                        );
                    }
                    // The rest of what was taken goes too: a collector that just failed would most
                    // likely make each further request wait out its timeout as well.
                    let rest = lines.by_ref().count();
                    let lost = u64::try_from(sent + rest).unwrap_or(u64::MAX);
                    count_dropped(SINK, lost);
                }
            }
        }
        taken.clear();
        if taken.capacity() > KEPT_CAPACITY {
            taken.shrink_to(KEPT_CAPACITY);
        }
        if closed {
            break;
        }
    }
}

/// Sends one request; the records the collector rejected, or why it failed.
async fn export(
    client: &mut LogsServiceClient<tonic::transport::Channel>,
    spec: &ExportSpec,
    records: Vec<LogRecord>,
) -> Result<u64, String> {
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(spec.resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    // The channel's own timeout bounds the call once connected; this one also bounds a connection
    // whose handshake never ends.
    match tokio::time::timeout(spec.timeout, client.export(request)).await {
        Err(_) => Err(format!("no answer within {:?}", spec.timeout)),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Ok(Ok(response)) => Ok(response
            .into_inner()
            .partial_success
            .map_or(0, |p| u64::try_from(p.rejected_log_records).unwrap_or(0))),
    }
}

fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![string("service.name", service_name)],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// The attribute each member of a line becomes; members not listed (`time`, `time_ms`: the record's
/// own timestamp) are not repeated as attributes.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("principal_id", "gatehouse.decision.principal.id"),
    ("principal_kind", "gatehouse.decision.principal.kind"),
    ("roles", "gatehouse.decision.principal.roles"),
    ("action", "gatehouse.decision.action"),
    ("resource_kind", "gatehouse.decision.resource.kind"),
    ("resource_id", "gatehouse.decision.resource.id"),
    ("decision", "gatehouse.decision.verdict"),
    ("allowed", "gatehouse.decision.allowed"),
    ("rule", "gatehouse.decision.rule"),
    ("rule_id_pattern", "gatehouse.decision.rule_id_pattern"),
    ("revision", "gatehouse.decision.policy_revision"),
    ("mode", "gatehouse.decision.mode"),
    ("dry_run", "gatehouse.decision.dry_run"),
    ("source", "gatehouse.decision.door"),
    ("route", "gatehouse.decision.route"),
    ("reason", "gatehouse.decision.reason"),
    ("trace_id", "gatehouse.decision.trace_id"),
    ("latency_us", "gatehouse.decision.latency_us"),
];

/// The attributes of the `shadow` member.
const SHADOW_ATTRIBUTES: &[(&str, &str)] = &[
    ("decision", "gatehouse.decision.shadow.verdict"),
    ("rule", "gatehouse.decision.shadow.rule"),
    ("revision", "gatehouse.decision.shadow.policy_revision"),
];

/// A line of the decision log (newline included) as a log record: the line is the body, its
/// members the attributes; INFO when the caller was allowed, WARN when refused. A line that does
/// not parse (never written by this crate) still leaves, as a body alone.
pub(super) fn record(line: &str) -> LogRecord {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let members: Map<String, Value> = serde_json::from_str(line).unwrap_or_default();
    let mut attributes = Vec::with_capacity(ATTRIBUTES.len());
    for (member, name) in ATTRIBUTES {
        if let Some(value) = members.get(*member).and_then(any_value) {
            attributes.push(attribute(name, value));
        }
    }
    if let Some(Value::Object(shadow)) = members.get("shadow") {
        for (member, name) in SHADOW_ATTRIBUTES {
            if let Some(value) = shadow.get(*member).and_then(any_value) {
                attributes.push(attribute(name, value));
            }
        }
    }
    let allowed = members.get("allowed").and_then(Value::as_bool);
    let (severity, severity_text) = match allowed {
        Some(false) => (SeverityNumber::Warn, "WARN"),
        _ => (SeverityNumber::Info, "INFO"),
    };
    let time_unix_nano = members
        .get("time_ms")
        .and_then(Value::as_i64)
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(0, |ms| ms.saturating_mul(1_000_000));
    // A masked trace id is a pseudonym, not 32 hex digits, and stays an attribute only.
    let trace_id = members
        .get("trace_id")
        .and_then(Value::as_str)
        .and_then(|hex| {
            u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)
        })
        .map(|id| id.to_be_bytes().to_vec())
        .unwrap_or_default();
    LogRecord {
        time_unix_nano,
        observed_time_unix_nano: time_unix_nano,
        severity_number: severity as i32,
        severity_text: severity_text.to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(line.to_owned())),
        }),
        attributes,
        dropped_attributes_count: 0,
        flags: 0,
        trace_id,
        span_id: Vec::new(),
        event_name: EVENT_NAME.to_owned(),
    }
}

/// A member's value as an attribute value: strings, booleans, whole numbers and lists of strings.
fn any_value(value: &Value) -> Option<AnyValue> {
    let value = match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => any_value::Value::IntValue(
            n.as_i64()
                .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))?,
        ),
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().filter_map(any_value).collect(),
        }),
        Value::Null | Value::Object(_) => return None,
    };
    Some(AnyValue { value: Some(value) })
}

fn string(key: &str, value: &str) -> KeyValue {
    let value = AnyValue {
        value: Some(any_value::Value::StringValue(value.to_owned())),
    };
    attribute(key, value)
}

fn attribute(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::{Mask, MaskKey, MaskedField, sample};

    fn attribute<'a>(record: &'a LogRecord, name: &str) -> Option<&'a any_value::Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == name)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn text(value: Option<&any_value::Value>) -> Option<&str> {
        match value {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn a_record_carries_the_line_as_body_and_its_fields_as_attributes() {
        let mut entry = sample(1_700_000_000_123);
        entry.allowed = false;
        entry.decision = "deny".into();
        entry.trace_id = Some(0x0af7651916cd43dd8448eb211c80319c);
        entry.shadow = Some(crate::audit::ShadowVerdict {
            decision: "allow".into(),
            rule: "s".into(),
            revision: "y".into(),
        });
        let mut line = String::new();
        entry.decided().write_line(None, &mut line);
        let record = record(&line);
        let Some(any_value::Value::StringValue(body)) =
            record.body.as_ref().and_then(|b| b.value.as_ref())
        else {
            panic!("no string body: {record:?}");
        };
        assert_eq!(format!("{body}\n"), line);
        assert_eq!(record.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(record.time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(record.event_name, EVENT_NAME);
        assert_eq!(
            record.trace_id,
            0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes()
        );
        assert_eq!(
            attribute(&record, "gatehouse.decision.allowed"),
            Some(&any_value::Value::BoolValue(false))
        );
        assert_eq!(
            text(attribute(&record, "gatehouse.decision.principal.id")),
            Some("user1700000000123")
        );
        assert_eq!(
            text(attribute(&record, "gatehouse.decision.door")),
            Some("check")
        );
        assert_eq!(
            text(attribute(&record, "gatehouse.decision.shadow.verdict")),
            Some("allow")
        );
        assert_eq!(
            attribute(&record, "gatehouse.decision.latency_us"),
            Some(&any_value::Value::IntValue(1))
        );
        let Some(any_value::Value::ArrayValue(roles)) =
            attribute(&record, "gatehouse.decision.principal.roles")
        else {
            panic!("no roles: {record:?}");
        };
        assert_eq!(roles.values.len(), 1);
        assert!(attribute(&record, "gatehouse.decision.route").is_none());
    }

    #[test]
    fn masked_fields_stay_masked_and_a_masked_trace_id_is_no_record_trace_id() {
        let mut entry = sample(5);
        entry.trace_id = Some(7);
        let mask = Mask {
            fields: vec![MaskedField::PrincipalId, MaskedField::TraceId],
            key: MaskKey::derive(b"an app secret of at least thirty-two bytes"),
        };
        let mut line = String::new();
        entry.decided().write_line(Some(&mask), &mut line);
        let record = record(&line);
        let id = text(attribute(&record, "gatehouse.decision.principal.id")).unwrap();
        assert!(id.starts_with("hmac:"), "{id}");
        let trace = text(attribute(&record, "gatehouse.decision.trace_id")).unwrap();
        assert!(trace.starts_with("hmac:"), "{trace}");
        assert!(record.trace_id.is_empty());
        assert_eq!(record.severity_number, SeverityNumber::Info as i32);
        assert!(!format!("{record:?}").contains("user5"));
    }
}
