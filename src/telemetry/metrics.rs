//! The service's metrics: one place records them, two places read them. `/metrics` renders them in the
//! Prometheus (OpenMetrics) text format with `prometheus-client`; when OTLP is configured the same
//! events also go to OpenTelemetry instruments, exported on the meter provider's interval.
//!
//! Label values are bounded: results, rule names of the loaded sets, RPC names and token error reasons.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::door::Door;
use crate::engine::verdict_name;

/// Latency buckets, in seconds: decisions take microseconds, RPCs on loopback tens of microseconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByLabels {
    by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    live: &'static str,
    shadow: &'static str,
}

/// The OpenTelemetry side, present when OTLP export is configured.
struct Otel {
    latency: OtelHistogram<f64>,
    token_rejections: OtelCounter<u64>,
    shadow_differences: OtelCounter<u64>,
    dropped: OtelCounter<u64>,
    rate_limited: OtelCounter<u64>,
}

/// Every metric the service records.
pub struct Metrics {
    registry: Registry,
    decisions: Arc<DecisionCounts>,
    latency: Family<RpcLabels, Histogram>,
    /// The histograms of `latency` by RPC name, found without hashing or locking the family.
    latency_by_rpc: ArcSwap<Vec<(&'static str, Histogram)>>,
    token_rejections: Family<ReasonLabels, Counter>,
    in_flight: Gauge,
    shadow_differences: Family<ShadowLabels, Counter>,
    decision_log_dropped: Family<SinkLabels, Counter>,
    rate_limited: Family<ByLabels, Counter>,
    otel: Option<Otel>,
    /// The meter of the OTLP pipeline, for the instruments domains register themselves.
    meter: Option<Meter>,
    /// Off: nothing is recorded (`GATEHOUSE_METRICS=false`), for measuring what recording costs.
    enabled: bool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The service's own metrics; domains that report state read at scrape time (the policy store)
    /// add theirs with [`Metrics::register`].
    pub fn new(meter: Option<&Meter>, enabled: bool) -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let decisions = Arc::new(DecisionCounts::default());
        registry.register_collector(Box::new(DecisionCollector {
            counts: Arc::clone(&decisions),
        }));
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        registry.register(
            "request_duration_seconds",
            "Time to answer, per RPC or endpoint",
            latency.clone(),
        );
        let token_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "token_rejections",
            "Tokens refused, by reason",
            token_rejections.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being answered",
            in_flight.clone(),
        );
        let shadow_differences = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_differences",
            "Requests the shadow policy set decided differently from the live one",
            shadow_differences.clone(),
        );
        let decision_log_dropped = Family::<SinkLabels, Counter>::default();
        registry.register(
            "decision_log_dropped",
            "Decision log entries dropped because a sink fell behind",
            decision_log_dropped.clone(),
        );
        let rate_limited = Family::<ByLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Browser calls refused for being over a caller's budget, by user or by address",
            rate_limited.clone(),
        );
        let otel = meter.map(|meter| Otel::new(meter, in_flight.clone(), Arc::clone(&decisions)));
        Metrics {
            registry,
            decisions,
            latency,
            latency_by_rpc: ArcSwap::default(),
            token_rejections,
            in_flight,
            shadow_differences,
            decision_log_dropped,
            rate_limited,
            otel,
            meter: meter.cloned(),
            enabled,
        }
    }

    /// Lets a domain add the metrics it reports itself, read when scraped or exported: `add` gets
    /// the Prometheus registry and, when OTLP is configured, the meter.
    pub fn register(&mut self, add: impl FnOnce(&mut Registry, Option<&Meter>)) {
        add(&mut self.registry, self.meter.as_ref());
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn decision(&self, allowed: bool, rule: &str, source: Door) {
        if self.enabled {
            self.decisions.count(allowed, rule, source);
        }
    }

    pub fn latency(&self, rpc: &'static str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        self.observe_latency(rpc, seconds);
        if let Some(otel) = &self.otel {
            otel.latency.record(seconds, &[KeyValue::new("rpc", rpc)]);
        }
    }

    /// Observes `seconds` in the Prometheus histogram of `rpc`. Names are `'static`, so the address
    /// finds the histogram without hashing the name or locking the family.
    fn observe_latency(&self, rpc: &'static str, seconds: f64) {
        let known = self.latency_by_rpc.load();
        if let Some((_, histogram)) = known.iter().find(|(name, _)| std::ptr::eq(*name, rpc)) {
            histogram.observe(seconds);
            return;
        }
        drop(known);
        let histogram = self.latency.get_or_create(&RpcLabels { rpc }).clone();
        histogram.observe(seconds);
        self.latency_by_rpc.rcu(|known| {
            let mut known = Vec::clone(known);
            if !known.iter().any(|(name, _)| std::ptr::eq(*name, rpc)) {
                known.push((rpc, histogram.clone()));
            }
            known
        });
    }

    pub fn token_rejected(&self, reason: &'static str) {
        if !self.enabled {
            return;
        }
        self.token_rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
        if let Some(otel) = &self.otel {
            otel.token_rejections
                .add(1, &[KeyValue::new("reason", reason)]);
        }
    }

    /// A browser call refused by the budget of its user or its address (`by`).
    pub fn rate_limited(&self, by: &'static str) {
        if !self.enabled {
            return;
        }
        self.rate_limited.get_or_create(&ByLabels { by }).inc();
        if let Some(otel) = &self.otel {
            otel.rate_limited.add(1, &[KeyValue::new("by", by)]);
        }
    }

    pub fn shadow_difference(&self, live: bool, shadow: bool) {
        if !self.enabled {
            return;
        }
        let labels = ShadowLabels {
            live: verdict_name(live),
            shadow: verdict_name(shadow),
        };
        self.shadow_differences.get_or_create(&labels).inc();
        if let Some(otel) = &self.otel {
            otel.shadow_differences.add(
                1,
                &[
                    KeyValue::new("live", labels.live),
                    KeyValue::new("shadow", labels.shadow),
                ],
            );
        }
    }

    pub fn decision_log_dropped(&self, sink: &'static str, entries: u64) {
        if !self.enabled {
            return;
        }
        self.decision_log_dropped
            .get_or_create(&SinkLabels { sink })
            .inc_by(entries);
        if let Some(otel) = &self.otel {
            otel.dropped.add(entries, &[KeyValue::new("sink", sink)]);
        }
    }

    /// Counts a request in flight until the guard is dropped, and records its latency then.
    pub fn start(&self, rpc: &'static str) -> InFlight<'_> {
        self.start_at(rpc, std::time::Instant::now())
    }

    /// [`Metrics::start`] for a request that began at `started`.
    pub fn start_at(&self, rpc: &'static str, started: std::time::Instant) -> InFlight<'_> {
        if self.enabled {
            self.in_flight.inc();
        }
        InFlight {
            metrics: self,
            rpc,
            started,
        }
    }
}

/// A request being answered; see [`Metrics::start`].
pub struct InFlight<'m> {
    metrics: &'m Metrics,
    rpc: &'static str,
    started: std::time::Instant,
}

impl InFlight<'_> {
    pub fn started(&self) -> std::time::Instant {
        self.started
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.metrics.enabled {
            return;
        }
        self.metrics.in_flight.dec();
        self.metrics.latency(self.rpc, self.started.elapsed());
    }
}

impl Otel {
    /// `in_flight` and the decision counts are read at export time rather than recorded twice per
    /// request.
    fn new(meter: &Meter, in_flight: Gauge, decisions: Arc<DecisionCounts>) -> Otel {
        let _decisions = meter
            .u64_observable_counter("gatehouse.decisions")
            .with_description("Decisions by result, deciding rule and source")
            .with_callback(move |observer| {
                decisions.for_each(|result, rule, source, count| {
                    observer.observe(
                        count,
                        &[
                            KeyValue::new("result", result),
                            KeyValue::new("rule", rule.to_owned()),
                            KeyValue::new("source", source),
                        ],
                    );
                });
            })
            .build();
        let _in_flight = meter
            .i64_observable_up_down_counter("gatehouse.in_flight_requests")
            .with_description("Requests being answered")
            .with_callback(move |observer| observer.observe(in_flight.get(), &[]))
            .build();
        Otel {
            latency: meter
                .f64_histogram("gatehouse.request.duration")
                .with_unit("s")
                .with_description("Time to answer, per RPC or endpoint")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            token_rejections: meter
                .u64_counter("gatehouse.token.rejections")
                .with_description("Tokens refused, by reason")
                .build(),
            shadow_differences: meter
                .u64_counter("gatehouse.shadow.differences")
                .with_description("Requests the shadow set decided differently")
                .build(),
            dropped: meter
                .u64_counter("gatehouse.decision_log.dropped")
                .with_description("Decision log entries dropped because a sink fell behind")
                .build(),
            rate_limited: meter
                .u64_counter("gatehouse.rate_limited")
                .with_description("Browser calls refused for being over a caller's budget")
                .build(),
        }
    }
}

/// One counter per (result, source) of a rule.
type RuleCounts = [AtomicU64; 2 * Door::ALL.len()];

/// Decisions counted by result, deciding rule and source. Counting is a lookup in a map that is only
/// ever replaced, never locked: a rule's counters are created the first time it decides, which
/// copies the map; every later decision by that rule is an atomic add.
#[derive(Default)]
struct DecisionCounts {
    rules: ArcSwap<HashMap<Box<str>, Arc<RuleCounts>>>,
    /// Serializes the copies that add a rule, so none is lost.
    adding: Mutex<()>,
}

impl DecisionCounts {
    fn slot(allowed: bool, source: Door) -> usize {
        source.index() * 2 + usize::from(allowed)
    }

    fn add(counts: &RuleCounts, slot: usize) {
        if let Some(count) = counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count(&self, allowed: bool, rule: &str, source: Door) {
        let slot = Self::slot(allowed, source);
        if let Some(counts) = self.rules.load().get(rule) {
            Self::add(counts, slot);
            return;
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rules = HashMap::clone(&self.rules.load());
        let counts = rules
            .entry(Box::from(rule))
            .or_insert_with(|| Arc::new(Default::default()));
        Self::add(counts, slot);
        self.rules.store(Arc::new(rules));
    }

    /// Every non-zero count as (result, rule, source, count), ordered by rule.
    fn for_each(&self, mut visit: impl FnMut(&'static str, &str, &'static str, u64)) {
        let rules = self.rules.load();
        let mut names: Vec<&Box<str>> = rules.keys().collect();
        names.sort();
        for name in names {
            let Some(counts) = rules.get(name) else {
                continue;
            };
            for source in Door::ALL {
                for allowed in [true, false] {
                    let count = counts
                        .get(Self::slot(allowed, source))
                        .map_or(0, |count| count.load(Ordering::Relaxed));
                    if count > 0 {
                        visit(verdict_name(allowed), name, source.as_str(), count);
                    }
                }
            }
        }
    }
}

/// Renders [`DecisionCounts`] as the `gatehouse_decisions` counter family.
struct DecisionCollector {
    counts: Arc<DecisionCounts>,
}

impl fmt::Debug for DecisionCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionCollector").finish_non_exhaustive()
    }
}

impl Collector for DecisionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "decisions",
            "Decisions by result, deciding rule and where the request came from",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut result = Ok(());
        self.counts.for_each(|outcome, rule, source, count| {
            if result.is_ok() {
                let labels = [("result", outcome), ("rule", rule), ("source", source)];
                result = family
                    .encode_family(&labels)
                    .and_then(|metric| ConstCounter::new(count).encode(metric));
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_for_every_result_and_source() {
        let mut slots: Vec<usize> = Door::ALL
            .iter()
            .flat_map(|&s| [true, false].map(|a| DecisionCounts::slot(a, s)))
            .collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..2 * Door::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn no_count_is_lost_while_rules_are_added_concurrently() {
        let counts = Arc::new(DecisionCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || {
                    for n in 0..2_000 {
                        let rule = format!("rule-{}", (n + t) % 50);
                        counts.count(n % 3 == 0, &rule, Door::ALL[n % 4]);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut total = 0;
        let mut rules = std::collections::BTreeSet::new();
        counts.for_each(|_, rule, _, count| {
            total += count;
            rules.insert(rule.to_owned());
        });
        assert_eq!(total, 8_000);
        assert_eq!(rules.len(), 50);
    }
}
