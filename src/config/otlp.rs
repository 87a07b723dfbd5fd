//! What the OpenTelemetry SDK leaves to us among the standard `OTEL_*` variables: whether each signal
//! is exported at all, and refusing what our OTLP/gRPC exporters cannot do. The exporters, the
//! periodic reader and the resource read the values themselves (endpoints, headers, timeouts,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`, the sampler).

use super::entry::Input;
use super::parse;
use crate::telemetry::OtlpConfig;

/// The service name when `OTEL_SERVICE_NAME` gives none.
const SERVICE_NAME: &str = "gatehouse";

/// The `service.name` of the decision log's OTLP records: `OTEL_SERVICE_NAME`, as the spans and
/// metrics say, else `gatehouse`.
pub(super) fn service_name(input: &Input<'_>) -> String {
    (input.env)("OTEL_SERVICE_NAME")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SERVICE_NAME.to_owned())
}

/// OTLP export is on when an endpoint is set and the SDK is not disabled (`OTEL_SDK_DISABLED`, which
/// the SDK does not read). Each signal goes to its own endpoint if one is set, else to the common one,
/// as the exporter resolves it; `OTEL_TRACES_EXPORTER` or `OTEL_METRICS_EXPORTER` set to `none` turns
/// that signal off (the SDK reads neither). The exporter is built for gRPC and would ignore
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, and the reader would ignore an invalid interval: both are refused.
pub(super) fn load_otlp(input: &mut Input<'_>) -> Option<OtlpConfig> {
    let env = input.env;
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty());
    let mut signal = |exporter: &str, endpoint: &str| {
        let wanted = match env(exporter).map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v.is_empty() || v == "otlp" => true,
            Some(v) if v == "none" => false,
            Some(_) => {
                input.error(exporter, "only otlp and none are supported");
                false
            }
        };
        let endpoint = env(endpoint).filter(|v| !v.trim().is_empty());
        wanted.then(|| endpoint.or_else(|| base.clone())).flatten()
    };
    let traces = signal("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let metrics = signal(
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    );
    if traces.is_none() && metrics.is_none() {
        return None;
    }
    if let Some(protocol) = env("OTEL_EXPORTER_OTLP_PROTOCOL")
        && protocol.trim() != "grpc"
    {
        input.error(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "only grpc is supported (OTLP/gRPC)",
        );
    }
    if let Some(interval) = env("OTEL_METRIC_EXPORT_INTERVAL")
        && let Err(e) = parse::bounded(interval.trim(), 10, 3_600_000)
    {
        input.error("OTEL_METRIC_EXPORT_INTERVAL", e);
    }
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty());
    Some(OtlpConfig {
        traces_endpoint: traces,
        metrics_endpoint: metrics,
        fallback_service_name: (!named).then(|| SERVICE_NAME.to_owned()),
    })
}
