//! Prometheus metrics and per-destination counters.
//!
//! Labels stay low-cardinality (destination type, reason, state); per-destination numbers are
//! kept in [`DestinationStats`] for summaries and status, and exported with `project` and
//! `destination` labels only when `metrics.per_destination = true`. Every metric is
//! documented in `docs/metrics.md`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::event::Unroutable;

mod destination;

pub use destination::DestinationStats;
use destination::ExportedStats;

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
    /// Bytes of events accepted by destinations.
    pub delivered_bytes: IntCounterVec,
    /// Events whose delivery finally failed (reported in a failure event).
    pub failed: IntCounterVec,
    /// Events parked in the retry topic.
    pub parked: IntCounterVec,
    /// Retry-topic records written to park events, by encoding (`reference`, `copy`).
    pub parked_records: IntCounterVec,
    /// Batches parked (each written as one reference, or as one copy per event).
    pub parked_batches: IntCounterVec,
    /// Batches parked without an attempt because their failing destination's request slots
    /// were all taken while the in-flight budget was under pressure.
    pub spilled_batches: IntCounterVec,
    /// Events parked by reference around their lane while their destination's circuit was
    /// open (never queued in the lane).
    pub diverted_events: IntCounterVec,
    /// Events parked by reference around their lane because its queue was full while their
    /// partition carried other destinations' events (a slow destination's overflow).
    pub overflow_events: IntCounterVec,
    /// Events a destination's `sample` left out (completed without being sent).
    pub sampled_out_events: IntCounterVec,
    /// Events a destination's `daily_cap` skipped (completed without being sent).
    pub capped_events: IntCounterVec,
    /// Batches parked because their destination's `rate_limit` would have made them wait
    /// longer than their in-line budget.
    pub rate_limited_batches: IntCounterVec,
    /// Requests by destination type and outcome.
    pub requests: IntCounterVec,
    /// In-line retries by destination type.
    pub retries: IntCounterVec,
    /// Request latency by destination type.
    pub request_duration: HistogramVec,
    /// Events per batch by destination type.
    pub batch_events: HistogramVec,
    /// Delivery-failure and state events written, by kind.
    pub failure_events: IntCounterVec,
    /// Failure events refused as too large even without their id list (their events
    /// complete unreported; an ERROR log names them).
    pub failure_events_unwritable: IntCounter,
    /// Offset commits that failed.
    pub commit_failures: IntCounter,
    /// Panics contained to one lane or one batch (each is a bug; its events were reported).
    pub lane_panics: IntCounter,
    /// Rewinds after a partition did not return the offset courier asked for, by topic.
    pub partition_rewinds: IntCounterVec,
    /// Offsets never read, by topic and reason: `gap` (not returned even after rewinding:
    /// compaction, transaction markers, deleted records) or `retention` (the committed offset
    /// was below the log start: deleted before courier read them).
    pub skipped_offsets: IntCounterVec,
    /// Configuration reloads by result.
    pub config_reloads: IntCounterVec,
    /// Events held in lanes (queued, batching or in flight).
    pub in_flight_events: IntGauge,
    /// Bytes of events held in lanes.
    pub in_flight_bytes: IntGauge,
    /// Partitions paused because a destination's queue is full.
    pub paused_partitions: IntGauge,
    /// Pauses of a partition for backpressure, by topic: each one makes librdkafka drop what
    /// it prefetched for the partition and fetch it again on resume.
    pub partition_pauses: IntCounterVec,
    /// Last committed offset per topic and partition.
    pub committed_offset: IntGaugeVec,
    /// Events between the committed offset and the high watermark, per topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// Destinations by circuit state.
    pub destination_states: IntGaugeVec,
    /// 1 when `/readyz` answers 200.
    pub ready: IntGauge,
    /// How parked batches wait: 1 for the mode in use (`reference` or `copy`), 0 for the other.
    pub parking_mode: IntGaugeVec,
    per_destination: Option<PerDestination>,
    destinations: Mutex<BTreeMap<(String, String), Arc<DestinationStats>>>,
}

/// Opt-in per-destination series (`metrics.per_destination = true`).
struct PerDestination {
    delivered: IntCounterVec,
    failed: IntCounterVec,
    parked: IntCounterVec,
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once, with a valid literal name");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).expect("valid literal"),
    )
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid literal"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid literal"))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid literal"),
    )
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    register(
        registry,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            &["destination_type"],
        )
        .expect("valid literal"),
    )
}

/// The global in-flight budget (`[limits] max_in_flight_events` / `max_in_flight_bytes`).
///
/// These methods are the only code that changes `courier_in_flight_events` and
/// `courier_in_flight_bytes`: the source holds an event when it hands it to a lane (or to the
/// stall queue in front of one), and whoever ends that event's life gives it back — the lane
/// once the batch is settled, the stall queue when it drops events of a revoked assignment or
/// a closed lane. A count that is never given back would stop reading for every tenant.
impl Metrics {
    /// Holds one event of `bytes` bytes.
    pub fn hold_event(&self, bytes: usize) {
        self.in_flight_events.inc();
        self.in_flight_bytes.add(as_i64(bytes));
    }

    /// Gives back `events` events of `bytes` bytes in all.
    pub fn release_events(&self, events: usize, bytes: usize) {
        self.in_flight_events.sub(as_i64(events));
        self.in_flight_bytes.sub(as_i64(bytes));
    }

    /// Holds `bytes` bytes that are not events (a request body, a second copy of events).
    pub fn hold_bytes(&self, bytes: usize) {
        self.in_flight_bytes.add(as_i64(bytes));
    }

    /// Gives back bytes held with [`Metrics::hold_bytes`].
    pub fn release_bytes(&self, bytes: usize) {
        self.in_flight_bytes.sub(as_i64(bytes));
    }

    /// Holds `bytes` until the returned guard is dropped, whatever way its holder ends (a
    /// request body, a parked batch being attempted).
    pub fn held_bytes(&self, bytes: usize) -> HeldBytes<'_> {
        self.hold_bytes(bytes);
        HeldBytes {
            metrics: self,
            bytes,
        }
    }
}

/// Bytes counted in the in-flight budget while this exists ([`Metrics::held_bytes`]).
#[must_use = "the bytes are given back when this is dropped"]
pub struct HeldBytes<'a> {
    metrics: &'a Metrics,
    bytes: usize,
}

impl Drop for HeldBytes<'_> {
    fn drop(&mut self) {
        self.metrics.release_bytes(self.bytes);
    }
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A fresh registry with every metric at zero and no per-destination series.
    pub fn new() -> Self {
        Self::with_options(false)
    }

    /// A fresh registry; `per_destination` adds series labelled by project and destination.
    pub fn with_options(per_destination: bool) -> Self {
        let r = Registry::new();
        let unroutable = counter_vec(
            &r,
            "courier_events_unroutable_total",
            "Messages that could not be routed, by reason.",
            &["reason"],
        );
        for reason in Unroutable::ALL {
            unroutable.with_label_values(&[reason.as_str()]);
        }
        let build_info = IntGauge::with_opts(
            Opts::new("courier_build_info", "Build information; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid literal");
        build_info.set(1);
        register(&r, build_info);
        register(&r, truncated_events().clone());
        let config_reloads = counter_vec(
            &r,
            "courier_config_reloads_total",
            "Configuration reloads by result (success, failure).",
            &["result"],
        );
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        let destination_states = gauge_vec(
            &r,
            "courier_destinations",
            "Destinations by circuit state (closed, open, paused).",
            &["state"],
        );
        for state in ["closed", "open", "paused"] {
            destination_states.with_label_values(&[state]);
        }
        let parking_mode = gauge_vec(
            &r,
            "courier_parking_mode",
            "How parked batches wait in the retry topic: 1 for the mode in use (reference: a reference to the events in the Event Logs topic; copy: the events themselves), 0 for the other.",
            &["mode"],
        );
        for mode in ["reference", "copy"] {
            parking_mode.with_label_values(&[mode]);
        }
        let per_destination = per_destination.then(|| PerDestination {
            delivered: counter_vec(
                &r,
                "courier_destination_events_delivered_total",
                "Events accepted, per destination (opt-in: metrics.per_destination).",
                &["project", "destination"],
            ),
            failed: counter_vec(
                &r,
                "courier_destination_events_failed_total",
                "Events finally failed, per destination (opt-in: metrics.per_destination).",
                &["project", "destination"],
            ),
            parked: counter_vec(
                &r,
                "courier_destination_events_parked_total",
                "Events parked, per destination (opt-in: metrics.per_destination).",
                &["project", "destination"],
            ),
        });
        Self {
            consumed: counter(
                &r,
                "courier_events_consumed_total",
                "Messages read from the Event Logs topic, unroutable ones included.",
            ),
            consumed_bytes: counter(
                &r,
                "courier_consumed_bytes_total",
                "Bytes of message values read from the Event Logs topic.",
            ),
            unroutable,
            routed: counter_vec(
                &r,
                "courier_events_routed_total",
                "Events routed to a destination (an event routed to two destinations counts twice).",
                &["destination_type"],
            ),
            delivered: counter_vec(
                &r,
                "courier_events_delivered_total",
                "Events accepted by their destination.",
                &["destination_type"],
            ),
            delivered_bytes: counter_vec(
                &r,
                "courier_delivered_bytes_total",
                "Bytes of events accepted by their destination (before encoding).",
                &["destination_type"],
            ),
            failed: counter_vec(
                &r,
                "courier_events_failed_total",
                "Events whose delivery finally failed and was reported in a failure event.",
                &["destination_type"],
            ),
            parked: counter_vec(
                &r,
                "courier_events_parked_total",
                "Events parked in the retry topic (in-line budget spent, or circuit open).",
                &["destination_type"],
            ),
            parked_records: counter_vec(
                &r,
                "courier_parked_records_total",
                "Retry-topic records written to park events: one per parked batch by reference, one per event as copies.",
                &["encoding"],
            ),
            parked_batches: counter_vec(
                &r,
                "courier_parked_batches_total",
                "Batches parked in the retry topic (first parking or parked again).",
                &["destination_type"],
            ),
            spilled_batches: counter_vec(
                &r,
                "courier_spilled_batches_total",
                "Batches parked without an attempt: their failing destination's request slots were all taken while more than half of the in-flight budget was held.",
                &["destination_type"],
            ),
            diverted_events: counter_vec(
                &r,
                "courier_diverted_events_total",
                "Events parked by reference without passing through their lane, because their destination's circuit was open and no probe was due.",
                &["destination_type"],
            ),
            overflow_events: counter_vec(
                &r,
                "courier_overflow_events_total",
                "Events parked by reference without passing through their lane, because its queue was full and their partition carried other destinations' events: a destination that cannot keep up does not pause its partitions for the others.",
                &["destination_type"],
            ),
            sampled_out_events: counter_vec(
                &r,
                "courier_sampled_out_events_total",
                "Events a destination's sample setting left out, by destination type: completed without being sent, as the destination asked.",
                &["destination_type"],
            ),
            capped_events: counter_vec(
                &r,
                "courier_capped_events_total",
                "Events skipped because their destination reached its daily_cap for the UTC day, by destination type: completed without being sent, as the destination asked.",
                &["destination_type"],
            ),
            rate_limited_batches: counter_vec(
                &r,
                "courier_rate_limited_batches_total",
                "Batches parked because their destination's rate_limit would have made them wait longer than their in-line budget (retry_max_elapsed), by destination type.",
                &["destination_type"],
            ),
            requests: counter_vec(
                &r,
                "courier_requests_total",
                "Delivery attempts by destination type and outcome (delivered, retry, rejected, partial).",
                &["destination_type", "outcome"],
            ),
            retries: counter_vec(
                &r,
                "courier_retries_total",
                "In-line retries of a batch (or part of one) after a retryable outcome.",
                &["destination_type"],
            ),
            request_duration: histogram_vec(
                &r,
                "courier_request_duration_seconds",
                "Time of one delivery attempt (request and answer), by destination type.",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            batch_events: histogram_vec(
                &r,
                "courier_batch_events",
                "Events per batch sent, by destination type.",
                vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 25_000.0, 100_000.0],
            ),
            failure_events: counter_vec(
                &r,
                "courier_failure_events_total",
                "Delivery-failure, unroutable and destination-state events written to the failures topic, by kind.",
                &["kind"],
            ),
            failure_events_unwritable: counter(
                &r,
                "courier_failure_events_unwritable_total",
                "Failure events the producer or broker refused as too large even in their smallest form (see the ERROR log).",
            ),
            commit_failures: counter(
                &r,
                "courier_commit_failures_total",
                "Offset commits the broker refused or that timed out (retried at the next commit).",
            ),
            lane_panics: counter(
                &r,
                "courier_lane_panics_total",
                "Panics inside courier contained to one destination's lane or batch (a bug: the batch's events were reported in failure events, the lane restarted).",
            ),
            partition_rewinds: counter_vec(
                &r,
                "courier_partition_rewinds_total",
                "Rewinds of a partition that did not return the offset courier asked for next (a broker that skipped records).",
                &["topic"],
            ),
            skipped_offsets: counter_vec(
                &r,
                "courier_skipped_offsets_total",
                "Offsets never read: not returned by the broker even after rewinding (gap), or deleted by retention before courier read them (retention).",
                &["topic", "reason"],
            ),
            config_reloads,
            in_flight_events: gauge(
                &r,
                "courier_in_flight_events",
                "Events held in destination lanes (queued, batching or being delivered).",
            ),
            in_flight_bytes: gauge(
                &r,
                "courier_in_flight_bytes",
                "Bytes of events held in destination lanes.",
            ),
            paused_partitions: gauge(
                &r,
                "courier_paused_partitions",
                "Event Logs partitions paused because a destination's queue is full.",
            ),
            partition_pauses: counter_vec(
                &r,
                "courier_partition_pauses_total",
                "Pauses of an Event Logs partition because a destination's queue stayed full (each drops the partition's prefetched records, fetched again on resume).",
                &["topic"],
            ),
            committed_offset: gauge_vec(
                &r,
                "courier_committed_offset",
                "Last offset committed, per topic and partition.",
                &["topic", "partition"],
            ),
            consumer_lag: gauge_vec(
                &r,
                "courier_consumer_lag",
                "Events between the committed offset and the partition's end, per topic and partition.",
                &["topic", "partition"],
            ),
            destination_states,
            ready: gauge(&r, "courier_ready", "1 when /readyz answers 200, else 0."),
            parking_mode,
            per_destination,
            destinations: Mutex::new(BTreeMap::new()),
            registry: r,
        }
    }

    /// The counters of one destination, created on first use.
    pub fn destination(&self, project: &str, id: &str) -> Arc<DestinationStats> {
        let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((project.to_owned(), id.to_owned()))
            .or_insert_with(|| {
                Arc::new(DestinationStats {
                    exported: self.per_destination.as_ref().map(|p| ExportedStats {
                        delivered: p.delivered.with_label_values(&[project, id]),
                        failed: p.failed.with_label_values(&[project, id]),
                        parked: p.parked.with_label_values(&[project, id]),
                    }),
                    ..DestinationStats::default()
                })
            })
            .clone()
    }

    /// The counters of one destination, if it has any (never creates them).
    pub fn existing_destination(&self, project: &str, id: &str) -> Option<Arc<DestinationStats>> {
        let map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(project.to_owned(), id.to_owned())).cloned()
    }

    /// Drops a removed destination's counters and its per-destination series: a fleet whose
    /// tenants come and go would otherwise export (and keep in memory) every destination it
    /// ever had. A lane still draining keeps counting into its own copy, unexported.
    pub fn forget_destination(&self, project: &str, id: &str) {
        let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(project.to_owned(), id.to_owned()));
        if let Some(p) = &self.per_destination {
            for vec in [&p.delivered, &p.failed, &p.parked] {
                // Absent when the destination never counted anything: nothing to remove.
                let _ = vec.remove_label_values(&[project, id]);
            }
        }
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
        assert!(text.contains("courier_config_reloads_total{result=\"failure\"} 0"));
        assert!(text.contains("courier_destinations{state=\"open\"} 0"));
        assert!(
            !text.contains("project="),
            "no per-destination labels by default"
        );
    }

    #[test]
    fn a_forgotten_destination_is_no_longer_exported() {
        let m = Metrics::with_options(true);
        m.destination("p", "gone").add_delivered(3);
        m.destination("p", "kept").add_delivered(1);
        assert!(m.render().contains("destination=\"gone\""));
        m.forget_destination("p", "gone");
        let text = m.render();
        assert!(!text.contains("destination=\"gone\""), "{text}");
        assert!(text.contains("destination=\"kept\""));
        assert_eq!(m.destinations().len(), 1);
    }

    #[test]
    fn per_destination_series_are_opt_in() {
        let m = Metrics::with_options(true);
        let d = m.destination("proj_a", "hook-1");
        d.add_delivered(5);
        d.add_parked(2);
        let text = m.render();
        assert!(text.contains(
            "courier_destination_events_delivered_total{destination=\"hook-1\",project=\"proj_a\"} 5"
        ), "{text}");
        assert!(text.contains(
            "courier_destination_events_parked_total{destination=\"hook-1\",project=\"proj_a\"} 2"
        ));
        assert_eq!(d.read().1, 5);
    }

    #[test]
    fn overflow_keeps_its_count_and_newest_time() {
        let m = Metrics::new();
        let d = m.destination("proj_a", "hook-1");
        assert_eq!(d.last_overflow_ms(), None);
        d.add_overflowed(3, 2_000);
        d.add_overflowed(2, 1_000);
        assert_eq!(d.overflowed(), 5);
        assert_eq!(
            d.last_overflow_ms(),
            Some(2_000),
            "an older time never wins"
        );
    }
}
