//! Settling: what becomes of events once their destination has answered for them. Delivered
//! events complete; rejected data is reported in a failure event; what is to be tried later
//! is parked in the retry topic for the next scheduled attempt, or reported once the
//! schedule is spent. Only when one of these is done (the failure event or the parked
//! record written with acks=all) do the events' offsets complete — a write that was
//! abandoned leaves them uncommitted, to be read again.
//!
//! The lane (first attempts) and the retry worker (scheduled attempts of parked events)
//! settle through this one implementation, so the two paths cannot drift apart in what they
//! count, record or acknowledge. They differ only in where they stand in the schedule
//! ([`Settler::attempt`]) and in what their logs say.

use std::time::Duration;

use chrono::{DateTime, Utc};

use courier_core::recent_failures::{FailureRecord, MAX_IDS_PER_FAILURE};

use crate::event::Event;
use crate::failures::size::reported_id;
use crate::failures::{DeliveryFailure, FailureReporter};
use crate::metrics::{DestinationStats, Metrics};
use crate::parking::{scheduled_delay, ParkRequest, Parker};
use crate::sinks::{DeliveryError, ErrorKind, Outcome, RejectScope};
use crate::source::Acker;

/// Settles the events of one destination's delivery attempt.
pub struct Settler<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination: &'a str,
    /// Its type (the metrics' `destination_type`; `unknown` for a removed destination).
    pub destination_type: &'a str,
    /// Its counters, when it still runs.
    pub stats: Option<&'a DestinationStats>,
    /// Its retry schedule (`delivery.retry_schedule`).
    pub schedule: &'a [Duration],
    /// The scheduled attempt being settled: 0 for the lane's first (in-line) attempts, n for
    /// the retry worker's n-th attempt of parked events. Parking waits for attempt + 1.
    pub attempt: u32,
    /// When the first attempt of these events was made (their failure events say so).
    pub first_attempt: DateTime<Utc>,
    /// The topic the events were read from (recorded with parked events).
    pub source_topic: &'a str,
    /// Where completions go.
    pub acker: &'a Acker,
    /// Where final failures are recorded.
    pub failures: &'a FailureReporter,
    /// Where events wait for their next scheduled attempt.
    pub parker: &'a Parker,
    /// Metrics.
    pub metrics: &'a Metrics,
}

impl Settler<'_> {
    /// Settles `events` as the destination answered for them, after `attempts` attempts (the
    /// number reported if they fail). Anything to be tried again is parked: a caller that
    /// retries in line handles `Retry` itself before it gets here.
    pub async fn settle(&self, events: &[Event], outcome: Outcome, attempts: u32) {
        match outcome {
            Outcome::Delivered => self.delivered(events),
            Outcome::Rejected {
                error,
                scope: RejectScope::Data,
            } => self.fail(events, &error, attempts).await,
            Outcome::Retry { error, .. }
            | Outcome::Rejected {
                error,
                scope: RejectScope::Destination,
            } => self.park(events, &error).await,
            Outcome::Partial(_) => self.park(events, &nested_parts()).await,
        }
    }

    /// Counts delivered events and completes them.
    pub fn delivered(&self, events: &[Event]) {
        let n = events.len() as u64;
        self.metrics
            .delivered
            .with_label_values(&[self.destination_type])
            .inc_by(n);
        self.metrics
            .delivered_bytes
            .with_label_values(&[self.destination_type])
            .inc_by(events.iter().map(|e| e.raw.len() as u64).sum());
        if let Some(stats) = self.stats {
            stats.add_delivered(n);
        }
        if self.attempt > 0 {
            tracing::info!(events = events.len(), "parked events delivered");
        }
        self.acker.complete(events.iter().map(|e| e.ack));
    }

    /// Parks events for the next scheduled attempt; after the last one (or with an empty
    /// schedule) they are reported instead. Events too large to park are reported too.
    pub async fn park(&self, events: &[Event], error: &DeliveryError) {
        self.park_for_next(events, error, false).await;
    }

    /// Parks `events` again for the scheduled attempt they were due for (`attempt`, not
    /// spent), due after `delay`: the retry worker postpones parked copies this way while their
    /// destination's requests hang, instead of holding them (and its own attempt slots) until
    /// it answers.
    pub async fn postpone(&self, events: &[Event], error: &DeliveryError, delay: Duration) {
        self.park_as(events, error, self.attempt, delay, false)
            .await;
    }

    /// Parks `events` by reference whatever the parking mode in force: for events collected
    /// without their payloads ([`crate::source::divert`]; the mode was *reference* when they
    /// were). A schedule without a next step is never given such events.
    pub async fn park_by_reference(&self, events: &[Event], error: &DeliveryError) {
        self.park_for_next(events, error, true).await;
    }

    /// Parks `events` for the next scheduled attempt, or reports them after the last one.
    async fn park_for_next(&self, events: &[Event], error: &DeliveryError, by_reference: bool) {
        let next = self.attempt + 1;
        let Some(delay) = scheduled_delay(self.schedule, next) else {
            return self.fail(events, error, self.attempt).await;
        };
        self.park_as(events, error, next, delay, by_reference).await;
    }

    /// Parks `events` for scheduled attempt `next`, due after `delay`.
    async fn park_as(
        &self,
        events: &[Event],
        error: &DeliveryError,
        next: u32,
        delay: Duration,
        by_reference: bool,
    ) {
        let message = error.to_string();
        let request = ParkRequest {
            project: self.project,
            destination: self.destination,
            attempt: next,
            delay,
            first_failure: self.first_attempt,
            last_error: &message,
            events,
            source_topic: self.source_topic,
        };
        let parked = if by_reference {
            self.parker.park_references(&request).await
        } else {
            self.parker.park(&request).await
        };
        match parked {
            Ok(outcome) => {
                // Events too large to park are reported instead: exactly the events parked
                // complete here and, once their failure event is written, those.
                let (parked, too_large) = outcome.split(events);
                if self.attempt == 0 {
                    tracing::info!(events = parked.len(), due_in = ?delay, error = %error, "parked in the retry topic");
                } else if next == self.attempt {
                    tracing::info!(events = parked.len(), attempt = next, due_in = ?delay, error = %error, "postponed");
                } else {
                    tracing::info!(events = parked.len(), next_attempt = next, due_in = ?delay, error = %error, "parked again");
                }
                self.metrics
                    .parked
                    .with_label_values(&[self.destination_type])
                    .inc_by(parked.len() as u64);
                if !parked.is_empty() {
                    self.metrics
                        .parked_batches
                        .with_label_values(&[self.destination_type])
                        .inc();
                }
                let encoding = if outcome.by_reference {
                    "reference"
                } else {
                    "copy"
                };
                self.metrics
                    .parked_records
                    .with_label_values(&[encoding])
                    .inc_by(outcome.records);
                if let Some(stats) = self.stats {
                    stats.add_parked(parked.len() as u64);
                }
                self.acker.complete(parked.iter().map(|e| e.ack));
                if !too_large.is_empty() {
                    self.fail(&too_large, &outcome.error(error), self.attempt)
                        .await;
                }
            }
            Err(abandoned) if self.attempt == 0 => {
                tracing::warn!(%abandoned, "events not parked; they stay uncommitted and will be read again");
            }
            Err(abandoned) => {
                tracing::warn!(%abandoned, "not parked again; the records are read again later");
            }
        }
    }

    /// Reports events in a failure event (their delivery failed for good after `attempts`
    /// attempts), then completes them.
    pub async fn fail(&self, events: &[Event], error: &DeliveryError, attempts: u32) {
        if self.attempt == 0 {
            tracing::warn!(attempts, error = %error, events = events.len(), "delivery failed for good; writing a failure event");
        }
        let report = DeliveryFailure {
            project: self.project,
            destination_id: self.destination,
            destination_type: self.destination_type,
            error,
            attempts,
            first_attempt: self.first_attempt,
            last_attempt: Utc::now(),
            events,
        };
        match self.failures.delivery_failed(report).await {
            Ok(_) => {
                let n = events.len() as u64;
                if self.attempt > 0 {
                    tracing::warn!(events = n, error = %error, "parked events failed for good; failure event written");
                }
                self.metrics
                    .failed
                    .with_label_values(&[self.destination_type])
                    .inc_by(n);
                if let Some(stats) = self.stats {
                    stats.add_failed(n);
                    stats
                        .recent_failures
                        .push(self.failure_record(events, error));
                }
                self.acker.complete(events.iter().map(|e| e.ack));
            }
            Err(abandoned) if self.attempt == 0 => {
                tracing::warn!(%abandoned, "failure not recorded; its events stay uncommitted and will be read again");
            }
            Err(abandoned) => {
                tracing::warn!(%abandoned, "failure event not written; the records are read again later");
            }
        }
    }
}

impl Settler<'_> {
    /// What the published status lists for a batch that finally failed: its first ids as
    /// its failure event lists them (failure events inside the batch are not reported).
    fn failure_record(&self, events: &[Event], error: &DeliveryError) -> FailureRecord {
        let ids = events
            .iter()
            .filter(|e| !e.failure_event)
            .take(MAX_IDS_PER_FAILURE)
            .map(|e| reported_id(&e.raw, self.source_topic, e.partition, e.offset));
        FailureRecord::new(
            Utc::now(),
            error.kind.as_str(),
            error.http_status,
            &error.message,
            events.len() as u64,
            ids,
        )
    }
}

/// The error of a part that was itself reported in parts (sinks never nest them).
pub fn nested_parts() -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Encode,
        http_status: None,
        message: "the sink nested partial outcomes".into(),
    }
}
