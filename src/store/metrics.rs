//! The store's own metrics, read when scraped or exported rather than recorded: reloads by result,
//! the serving revision, and when it was loaded.

use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::PolicyStore;

/// Adds `store`'s metrics to the Prometheus registry and, when OTLP is configured, to the meter.
pub fn register(store: &Arc<PolicyStore>, registry: &mut Registry, meter: Option<&Meter>) {
    registry.register_collector(Box::new(StoreCollector {
        store: Arc::clone(store),
    }));
    if let Some(meter) = meter {
        register_otel(store, meter);
    }
}

fn register_otel(store: &Arc<PolicyStore>, meter: &Meter) {
    let reloads_store = Arc::clone(store);
    let store = Arc::clone(store);
    let _reloads = meter
        .u64_observable_counter("gatehouse.reloads")
        .with_description("Policy reloads by result")
        .with_callback(move |observer| {
            let status = reloads_store.status().clone();
            observer.observe(status.reloads_ok, &[KeyValue::new("result", "ok")]);
            observer.observe(status.reloads_failed, &[KeyValue::new("result", "failed")]);
        })
        .build();
    let _revision = meter
        .u64_observable_gauge("gatehouse.policy.revision")
        .with_description("The serving policy revision (value 1, revision as attribute)")
        .with_callback(move |observer| {
            let revision = store.current().revision().to_owned();
            observer.observe(1, &[KeyValue::new("revision", revision)]);
        })
        .build();
}

/// Reads the store at scrape time: reload counts, the serving revision and when it was loaded.
struct StoreCollector {
    store: Arc<PolicyStore>,
}

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCollector").finish_non_exhaustive()
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let status = self.store.status().clone();
        let reloads = [("ok", status.reloads_ok), ("failed", status.reloads_failed)];
        {
            let mut family = encoder.encode_descriptor(
                "reloads",
                "Policy reloads by result",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (result, count) in reloads {
                let labels = [("result", result)];
                let metric = family.encode_family(&labels)?;
                ConstCounter::new(count).encode(metric)?;
            }
        }
        let revision = self.store.current().revision().to_owned();
        let info = Info::new(vec![("revision".to_owned(), revision)]);
        let metric = encoder.encode_descriptor(
            "policy",
            "The serving policy revision",
            None,
            info.metric_type(),
        )?;
        info.encode(metric)?;
        let loaded = status.loaded_at;
        let metric = encoder.encode_descriptor(
            "policy_loaded_timestamp_seconds",
            "When the serving policy set was loaded",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        ConstGauge::new(loaded).encode(metric)?;
        Ok(())
    }
}
