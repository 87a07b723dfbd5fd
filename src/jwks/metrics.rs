//! The issuers' fetch metrics, read from their status at scrape time.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Identity;

/// Registers the per-issuer metrics: fetches by result and reason, keys held, seconds since the
/// last good fetch, and unknown-kid refetches made or suppressed by the cooldown.
pub fn register_metrics(identity: &Arc<Identity>, registry: &mut Registry) {
    if identity.is_empty() {
        return;
    }
    registry.register_collector(Box::new(IdentityCollector {
        identity: Arc::clone(identity),
    }));
}

struct IdentityCollector {
    identity: Arc<Identity>,
}

impl fmt::Debug for IdentityCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCollector").finish_non_exhaustive()
    }
}

impl Collector for IdentityCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let reports = self.identity.report();
        let mut family = encoder.encode_descriptor(
            "jwks_fetches",
            "Key set fetches per issuer, by result and failure reason",
            None,
            MetricType::Counter,
        )?;
        for report in &reports {
            let issuer = report.status.issuer.as_str();
            let ok = [("issuer", issuer), ("result", "ok"), ("reason", "")];
            ConstCounter::new(report.status.fetches_ok).encode(family.encode_family(&ok)?)?;
            for (reason, count) in &report.status.fetches_failed {
                let failed = [("issuer", issuer), ("result", "failed"), ("reason", reason)];
                ConstCounter::new(*count).encode(family.encode_family(&failed)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "jwks_refetches",
            "Refetches caused by unknown key ids per issuer: made, or suppressed by the cooldown",
            None,
            MetricType::Counter,
        )?;
        for report in &reports {
            let issuer = report.status.issuer.as_str();
            let made = [("issuer", issuer), ("outcome", "fetched")];
            ConstCounter::new(report.status.refetches).encode(family.encode_family(&made)?)?;
            let suppressed = [("issuer", issuer), ("outcome", "suppressed")];
            ConstCounter::new(report.status.refetches_suppressed)
                .encode(family.encode_family(&suppressed)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "jwks_keys",
            "Signing keys held per issuer",
            None,
            MetricType::Gauge,
        )?;
        for report in &reports {
            let labels = [("issuer", report.status.issuer.as_str())];
            let held = i64::try_from(report.keys.len()).unwrap_or(i64::MAX);
            ConstGauge::new(held).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "jwks_key_age_seconds",
            "Seconds since the last good key set fetch per issuer (absent before the first)",
            None,
            MetricType::Gauge,
        )?;
        for report in &reports {
            if let Some(age) = report.key_age_seconds {
                let labels = [("issuer", report.status.issuer.as_str())];
                let age = i64::try_from(age).unwrap_or(i64::MAX);
                ConstGauge::new(age).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
