//! This replica's own share of the fleet status, read live from its running destinations'
//! health and counters. The publisher writes it to the status topic; the API answers with it
//! directly for this replica (and with the topic's rows for the others), so that a replica's
//! answer includes its own latest deliveries, pauses and errors without waiting for the next
//! publication.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use courier_core::recent_failures::FailureRecord;

use super::minutes::Minutes;
use super::status::{Counts, DestinationRow, ErrorRow, MinuteRow};
use crate::lane::DestinationHealth;
use crate::metrics::{DestinationStats, Metrics};
use crate::topology::HealthRegistry;

/// A destination's state on this replica, its failures stood for by their ring's version
/// (cheap to build and compare every interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    circuit: &'static str,
    consecutive_failures: u32,
    last_success_at: Option<DateTime<Utc>>,
    last_error: Option<ErrorRow>,
    last_overflow_at: Option<DateTime<Utc>>,
    events: Counts,
    minutes: Vec<MinuteRow>,
    failures_version: u64,
}

impl Fingerprint {
    /// The row it describes, with `failures`.
    pub fn row(&self, failures: Vec<FailureRecord>) -> DestinationRow {
        DestinationRow {
            circuit: self.circuit.to_owned(),
            consecutive_failures: self.consecutive_failures,
            last_success_at: self.last_success_at,
            last_error: self.last_error.clone(),
            last_overflow_at: self.last_overflow_at,
            events: self.events,
            minutes: self.minutes.clone(),
            failures,
        }
    }
}

/// One running destination's state now.
pub struct LocalState {
    /// The destination's project.
    pub project: String,
    /// The destination's id.
    pub id: String,
    /// Its state.
    pub fingerprint: Fingerprint,
    /// Its counters (and failures ring).
    pub stats: Arc<DestinationStats>,
}

/// This replica's running destinations.
pub struct Local {
    replica: String,
    registry: HealthRegistry,
    metrics: Arc<Metrics>,
    /// The per-minute counts, advanced by each publication.
    minutes: Mutex<HashMap<(String, String), Minutes>>,
}

impl Local {
    /// The destinations of `registry`, their counters in `metrics`, on replica `replica`.
    pub fn new(replica: String, registry: HealthRegistry, metrics: Arc<Metrics>) -> Self {
        Local {
            replica,
            registry,
            metrics,
            minutes: Mutex::new(HashMap::new()),
        }
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Every running destination and its state at `now`, recording the counters' reading in
    /// the minute buckets and forgetting the buckets of destinations no longer running (a
    /// publication).
    pub fn publish(&self, now: DateTime<Utc>) -> Vec<LocalState> {
        self.states(now, self.registry.all(), true)
    }

    /// The running destinations of `project` (only `id` when given) and their state at `now`,
    /// without recording anything (a reader).
    pub fn read(&self, now: DateTime<Utc>, project: &str, id: Option<&str>) -> Vec<LocalState> {
        let running = match id {
            Some(id) => self
                .registry
                .get(project, id)
                .map(|h| ((project.to_owned(), id.to_owned()), h))
                .into_iter()
                .collect(),
            None => self
                .registry
                .all()
                .into_iter()
                .filter(|((p, _), _)| p == project)
                .collect(),
        };
        self.states(now, running, false)
    }

    fn states(
        &self,
        now: DateTime<Utc>,
        running: Vec<((String, String), Arc<DestinationHealth>)>,
        publish: bool,
    ) -> Vec<LocalState> {
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        if publish {
            minutes.retain(|key, _| running.iter().any(|(k, _)| k == key));
        }
        running
            .into_iter()
            .filter_map(|((project, id), health)| {
                // Counters are dropped with a destination a reload removed.
                let stats = self.metrics.existing_destination(&project, &id)?;
                let (routed, delivered, failed, _) = stats.read();
                let parked = stats.parked.load(std::sync::atomic::Ordering::Relaxed);
                let counters = [delivered, failed, parked];
                let minutes = if publish {
                    let m = minutes.entry((project.clone(), id.clone())).or_default();
                    m.observe(now, counters);
                    m.rows()
                } else {
                    minutes.get(&(project.clone(), id.clone())).map_or_else(
                        || Minutes::default().peek(now, counters),
                        |m| m.peek(now, counters),
                    )
                };
                let (last_success, last_failure) = health.last_times();
                let fingerprint = Fingerprint {
                    circuit: health.state().as_str(),
                    consecutive_failures: health.consecutive_failures(),
                    last_success_at: last_success.map(DateTime::<Utc>::from),
                    last_error: health.last_error().map(|e| ErrorRow {
                        kind: e.kind.as_str().to_owned(),
                        http_status: e.http_status,
                        message: e.message,
                        at: last_failure.map(DateTime::<Utc>::from),
                    }),
                    last_overflow_at: stats
                        .last_overflow_ms()
                        .and_then(DateTime::<Utc>::from_timestamp_millis),
                    events: Counts {
                        routed,
                        delivered,
                        failed,
                        parked,
                        overflowed: stats.overflowed(),
                    },
                    minutes,
                    failures_version: stats.recent_failures.version(),
                };
                Some(LocalState {
                    project,
                    id,
                    fingerprint,
                    stats,
                })
            })
            .collect()
    }
}
