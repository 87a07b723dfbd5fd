//! Telemetry set-up: structured `tracing` events on stderr (text or JSON, with a filter that can be
//! changed at runtime), and, when OTLP is configured, OpenTelemetry traces and metrics exported over
//! OTLP/gRPC. With no OTLP endpoint nothing is exported and request spans are nothing at all.

pub mod context;
pub mod metrics;
mod token_cache;

pub use token_cache::register_token_cache_metrics;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// How logs are written; the configuration fills it in, telemetry only reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub json: bool,
    /// A `tracing` filter such as `info` or `gatehouse=debug`.
    pub filter: String,
}

/// Which OpenTelemetry signals are exported over OTLP/gRPC. The exporters, the periodic reader and
/// the resource read the other standard `OTEL_*` variables themselves (endpoints, headers, timeouts,
/// `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, the
/// sampler); this holds what the SDK leaves to us: whether each signal is exported at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Where spans go, as the exporter resolves it (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`); none exports no spans (and makes none).
    pub traces_endpoint: Option<String>,
    /// Where metrics go, resolved the same way; none exports no metrics over OTLP (`/metrics` is
    /// unaffected).
    pub metrics_endpoint: Option<String>,
    /// The service name when `OTEL_SERVICE_NAME` gives none, instead of the SDK's `unknown_service`.
    pub fallback_service_name: Option<String>,
}

/// The runtime-adjustable log filter, when this process installed the subscriber.
struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

static LOG_CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// Keeps the OpenTelemetry providers; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporters.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown()
        {
            eprintln!("gatehouse: flushing traces failed: {e}");
        }
        if let Some(meter) = self.meter
            && let Err(e) = meter.shutdown()
        {
            eprintln!("gatehouse: flushing metrics failed: {e}");
        }
    }
}

/// Installs the global subscriber (logs only). A second call is a no-op.
pub fn init(log: &LogConfig) {
    let _ = install(log, None);
}

/// Installs the global subscriber and, with `otlp`, the OpenTelemetry tracer and meter providers.
/// Must run inside a Tokio runtime (the OTLP/gRPC exporter is tonic).
pub fn init_with_otlp(
    log: &LogConfig,
    otlp: Option<&OtlpConfig>,
) -> Result<Telemetry, TelemetryError> {
    install(log, otlp)
}

fn install(log: &LogConfig, otlp: Option<&OtlpConfig>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if log.json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let layers = vec![fmt];
    let mut telemetry = Telemetry::default();
    if let Some(otlp) = otlp {
        let resource = match &otlp.fallback_service_name {
            Some(name) => Resource::builder().with_service_name(name.clone()).build(),
            None => Resource::builder().build(),
        };
        if otlp.traces_endpoint.is_some() {
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let tracer_provider = SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build();
            opentelemetry::global::set_tracer_provider(tracer_provider.clone());
            context::set_tracer(tracer_provider.tracer("gatehouse"));
            telemetry.tracer = Some(tracer_provider);
        }
        if otlp.metrics_endpoint.is_some() {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let reader = PeriodicReader::builder(exporter).build();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource)
                .build();
            opentelemetry::global::set_meter_provider(meter_provider.clone());
            telemetry.meter = Some(meter_provider);
        }
    }
    if tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok()
    {
        let _ = LOG_CONTROL.set(LogControl {
            handle,
            current: Mutex::new(log.filter.clone()),
        });
    }
    Ok(telemetry)
}

/// The log filter in force, when this process manages it.
pub fn log_filter() -> Option<String> {
    let control = LOG_CONTROL.get()?;
    let current = control
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Some(current.clone())
}

/// Why the log filter could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LogFilterError {
    #[error("invalid log filter: {0}")]
    Invalid(String),
    #[error("the log filter is not managed by this process")]
    NotManaged,
}

/// Replaces the log filter (e.g. `debug`, `info,gatehouse=trace`); a filter that does not parse
/// changes nothing.
pub fn set_log_filter(filter: &str) -> Result<(), LogFilterError> {
    let control = LOG_CONTROL.get().ok_or(LogFilterError::NotManaged)?;
    let parsed = EnvFilter::try_new(filter).map_err(|e| LogFilterError::Invalid(e.to_string()))?;
    if filter.trim().is_empty() {
        return Err(LogFilterError::Invalid("empty".to_owned()));
    }
    control
        .handle
        .reload(parsed)
        .map_err(|_| LogFilterError::NotManaged)?;
    let mut current = control
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    *current = filter.trim().to_owned();
    Ok(())
}
