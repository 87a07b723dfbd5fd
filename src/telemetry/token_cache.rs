//! The verified-token cache's metrics, read from its counters at scrape time.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::token::TokenCache;

/// Registers `gatehouse_token_cache_{hits,misses,evictions,flushes}_total` and the entries and
/// bytes held (`gatehouse_token_cache_entries`, `gatehouse_token_cache_bytes`).
pub fn register_token_cache_metrics(cache: &Arc<TokenCache>, registry: &mut Registry) {
    registry.register_collector(Box::new(TokenCacheCollector {
        cache: Arc::clone(cache),
    }));
}

struct TokenCacheCollector {
    cache: Arc<TokenCache>,
}

impl fmt::Debug for TokenCacheCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for TokenCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let report = self.cache.report();
        let counters = [
            (
                "token_cache_hits",
                "Tokens answered from the verified-token cache",
                report.hits,
            ),
            (
                "token_cache_misses",
                "Tokens verified afresh (not cached, or cached with keys no longer in use)",
                report.misses,
            ),
            (
                "token_cache_evictions",
                "Cached tokens pushed out by the cache's bounds",
                report.evictions,
            ),
            (
                "token_cache_flushes",
                "Times the cache was emptied because the secrets or an issuer's keys changed",
                report.flushes,
            ),
        ];
        for (name, help, value) in counters {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family)?;
        }
        let gauges = [
            (
                "token_cache_entries",
                "Tokens in the verified-token cache",
                report.entries,
            ),
            (
                "token_cache_bytes",
                "Estimated bytes the verified-token cache holds",
                report.bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(family)?;
        }
        Ok(())
    }
}
