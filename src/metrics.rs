//! Prometheus metrics and per-destination counters.
//!
//! Labels stay low-cardinality (destination type, reason); per-destination numbers are kept
//! in [`DestinationStats`] for summaries and status, not exported as labels.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::event::Unroutable;

/// Every metric courier exports.
pub struct Metrics {
    registry: Registry,
    /// Messages read from the Event Logs topic, unroutable ones included.
    pub consumed: IntCounter,
    /// Bytes of message values read.
    pub consumed_bytes: IntCounter,
    /// Unroutable messages by reason.
    pub unroutable: IntCounterVec,
    /// Event deliveries routed to destinations (one per event and destination).
    pub routed: IntCounterVec,
    /// Events accepted by destinations.
    pub delivered: IntCounterVec,
    /// Events whose delivery finally failed (reported in a failure event).
    pub failed: IntCounterVec,
    /// Events parked in the retry topic.
    pub parked: IntCounterVec,
    /// Requests by destination type and outcome.
    pub requests: IntCounterVec,
    /// Delivery-failure events written, by kind.
    pub failure_events: IntCounterVec,
    /// Offset commits that failed.
    pub commit_failures: IntCounter,
    /// Events held in lanes (queued, batching or in flight).
    pub in_flight_events: IntGauge,
    /// Partitions paused because a destination's queue is full.
    pub paused_partitions: IntGauge,
    destinations: Mutex<BTreeMap<(String, String), Arc<DestinationStats>>>,
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// Events routed to it.
    pub routed: AtomicU64,
    /// Events it accepted.
    pub delivered: AtomicU64,
    /// Events that finally failed.
    pub failed: AtomicU64,
    /// Requests sent (attempts).
    pub requests: AtomicU64,
    /// Events parked in the retry topic.
    pub parked: AtomicU64,
}

impl DestinationStats {
    /// (routed, delivered, failed, requests) now.
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.routed.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric names and help are valid literals");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric names, help and labels are valid literals");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let unroutable = counter_vec(
            &registry,
            "courier_events_unroutable_total",
            "Messages that could not be routed, by reason.",
            &["reason"],
        );
        for reason in Unroutable::ALL {
            unroutable.with_label_values(&[reason.as_str()]);
        }
        let in_flight_events = IntGauge::new(
            "courier_in_flight_events",
            "Events held in destination lanes (queued, batching or being delivered).",
        )
        .expect("valid literal");
        registry
            .register(Box::new(in_flight_events.clone()))
            .expect("registered once");
        let build_info = IntGauge::with_opts(
            Opts::new("courier_build_info", "Build information; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid literal");
        build_info.set(1);
        registry
            .register(Box::new(build_info))
            .expect("registered once");
        registry
            .register(Box::new(truncated_events().clone()))
            .expect("registered once");
        Self {
            consumed: counter(
                &registry,
                "courier_events_consumed_total",
                "Messages read from the Event Logs topic, unroutable ones included.",
            ),
            consumed_bytes: counter(
                &registry,
                "courier_consumed_bytes_total",
                "Bytes of message values read from the Event Logs topic.",
            ),
            unroutable,
            routed: counter_vec(
                &registry,
                "courier_events_routed_total",
                "Events routed to a destination (an event routed to two destinations counts twice).",
                &["destination_type"],
            ),
            delivered: counter_vec(
                &registry,
                "courier_events_delivered_total",
                "Events accepted by their destination.",
                &["destination_type"],
            ),
            failed: counter_vec(
                &registry,
                "courier_events_failed_total",
                "Events whose delivery finally failed and was reported in a failure event.",
                &["destination_type"],
            ),
            parked: counter_vec(
                &registry,
                "courier_events_parked_total",
                "Events parked in the retry topic (in-line budget spent, or circuit open).",
                &["destination_type"],
            ),
            requests: counter_vec(
                &registry,
                "courier_requests_total",
                "Delivery attempts by destination type and outcome (delivered, retry, rejected).",
                &["destination_type", "outcome"],
            ),
            failure_events: counter_vec(
                &registry,
                "courier_failure_events_total",
                "Delivery-failure events written to the failures topic, by error kind.",
                &["kind"],
            ),
            commit_failures: counter(
                &registry,
                "courier_commit_failures_total",
                "Offset commits the broker refused or that timed out.",
            ),
            in_flight_events,
            paused_partitions: {
                let g = IntGauge::new(
                    "courier_paused_partitions",
                    "Event Logs partitions paused because a destination's queue is full.",
                )
                .expect("valid literal");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            destinations: Mutex::new(BTreeMap::new()),
            registry,
        }
    }

    /// The counters of one destination, created on first use.
    pub fn destination(&self, project: &str, id: &str) -> Arc<DestinationStats> {
        let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((project.to_owned(), id.to_owned()))
            .or_default()
            .clone()
    }

    /// Every destination's counters, ordered by (project, id).
    pub fn destinations(&self) -> Vec<((String, String), Arc<DestinationStats>)> {
        let map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
    }
}

/// Events a sink shrank to fit a destination's size limit (Datadog's 1 MB per log), by
/// destination type. Process-wide, so that sinks can count without a handle on [`Metrics`];
/// every registry exports it.
pub fn truncated_events() -> &'static IntCounterVec {
    static TRUNCATED: std::sync::OnceLock<IntCounterVec> = std::sync::OnceLock::new();
    TRUNCATED.get_or_init(|| {
        IntCounterVec::new(
            Opts::new(
                "courier_events_truncated_total",
                "Events delivered shrunk to fit the destination's size limit (payload replaced by a marker).",
            ),
            &["destination_type"],
        )
        .expect("valid literal")
    })
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_metrics() {
        let m = Metrics::new();
        m.consumed.inc_by(3);
        m.delivered.with_label_values(&["webhook"]).inc_by(2);
        m.failed.with_label_values(&["webhook"]).inc();
        let text = m.render();
        assert!(text.contains("courier_events_consumed_total 3"), "{text}");
        assert!(text.contains("courier_events_unroutable_total{reason=\"too_large\"} 0"));
        assert!(text.contains("courier_events_delivered_total{destination_type=\"webhook\"} 2"));
        assert!(text.contains("courier_events_failed_total{destination_type=\"webhook\"} 1"));
        assert!(text.contains("courier_build_info{version="));
    }
}
