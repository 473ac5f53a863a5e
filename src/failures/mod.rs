//! Delivery-failure events: how courier tells a customer, in their own Event Logs, that
//! events did not arrive (or could not be routed).
//!
//! Produced with `acks=all` by an idempotent producer, and awaited: the offsets of the events
//! a failure event reports on complete only once the broker has it. A transient write error
//! is retried until it goes through, but a message the producer or broker refuses as too
//! large never will: failure events are sized to fit before they are produced ([`size`]),
//! and one that is refused all the same is written again without its id list (its source
//! range still names the events) or, failing that, logged and counted — never retried in a
//! loop that would hold the partition's commit point for good.

mod event;
pub mod size;

pub use event::Transition;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, Unroutable};
use crate::metrics::Metrics;
use crate::sinks::DeliveryError;

/// The work was abandoned because the process is stopping; nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("abandoned: courier is stopping")]
pub struct Abandoned;

/// Why a message was not written.
#[derive(Debug, thiserror::Error)]
enum ProduceError {
    /// The process is stopping.
    #[error(transparent)]
    Abandoned(#[from] Abandoned),
    /// The producer or the broker refused it as too large: permanent.
    #[error("refused as too large ({bytes} bytes): {error}")]
    TooLarge {
        bytes: usize,
        error: rdkafka::error::KafkaError,
    },
}

/// What a failed delivery reports.
#[derive(Debug)]
pub struct DeliveryFailure<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination_id: &'a str,
    /// The destination's type.
    pub destination_type: &'a str,
    /// The last error.
    pub error: &'a DeliveryError,
    /// Attempts made.
    pub attempts: u32,
    /// When the first attempt started.
    pub first_attempt: DateTime<Utc>,
    /// When the last attempt ended.
    pub last_attempt: DateTime<Utc>,
    /// The batch's events.
    pub events: &'a [Event],
}

/// Writes failure events to the failures topic.
pub struct FailureReporter {
    producer: crate::kafka::KafkaProducer,
    topic: String,
    source_topic: String,
    /// The producer's `message.max.bytes`: what one failure event may weigh.
    message_max: usize,
    metrics: Arc<Metrics>,
    abandon: CancellationToken,
    /// Whether the last write to the failures topic went through (part of readiness).
    writable: Arc<AtomicBool>,
}

impl FailureReporter {
    /// A reporter for `config`; `abandon` stops retries when the process gives up draining.
    pub fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        abandon: CancellationToken,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer =
            crate::kafka::KafkaProducer::create(&crate::kafka::durable_producer_config(config))?;
        Ok(Self {
            producer,
            topic: config
                .failures
                .topic
                .clone()
                .unwrap_or_else(|| config.kafka.topic.clone()),
            source_topic: config.kafka.topic.clone(),
            message_max: size::message_max_bytes(&config.kafka.options),
            metrics,
            abandon,
            writable: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Shares the writability flag (readiness reads it).
    pub fn with_writable_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.writable = flag;
        self
    }

    /// Checks that the failures topic exists and has a leader for every partition, and
    /// records the answer in the writability flag. Blocking: call from a blocking thread.
    pub fn probe(&self) -> bool {
        let ok = self
            .producer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map(|m| {
                m.topics().iter().any(|t| {
                    t.name() == self.topic
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            })
            .unwrap_or(false);
        if !ok {
            tracing::warn!(topic = %self.topic, "the failures topic is missing or has no leader; not ready");
        }
        self.writable.store(ok, Ordering::Relaxed);
        ok
    }

    /// The failures topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reports a batch that finally failed: one failure event per source partition in the
    /// batch, split into several where one would not fit in a Kafka message (each event is
    /// listed in exactly one). Failure events inside the batch are left out (a failure event
    /// never causes another). Returns how many events were reported.
    pub async fn delivery_failed(&self, f: DeliveryFailure<'_>) -> Result<usize, Abandoned> {
        let budget = size::budget(self.message_max, f.project.len());
        let reports = event::delivery_reports(&self.source_topic, budget, &f, Utc::now());
        let mut reported = 0;
        for report in reports {
            if report.bare.is_none() {
                tracing::warn!(partition = report.partition, first_offset = report.first, last_offset = report.last,
                    events = report.count, "a failure event cannot list its event ids within message.max.bytes; written without them (its source range names the events)");
            }
            let mut written = self.produce_bytes(f.project, &report.bytes).await;
            if let (Err(ProduceError::TooLarge { bytes, error }), Some(bare)) =
                (&written, &report.bare)
            {
                tracing::warn!(partition = report.partition, first_offset = report.first, last_offset = report.last,
                    bytes, %error, "a failure event was refused as too large; writing it without its event ids (its source range names the events)");
                written = self.produce_bytes(f.project, bare).await;
            }
            match written {
                Ok(()) => self
                    .metrics
                    .failure_events
                    .with_label_values(&[f.error.kind.as_str()])
                    .inc(),
                Err(ProduceError::Abandoned(a)) => return Err(a),
                Err(e @ ProduceError::TooLarge { .. }) => {
                    self.unwritable(&e, f.project, f.destination_id);
                    tracing::error!(project = %f.project, destination = %f.destination_id,
                        topic = %self.source_topic, partition = report.partition,
                        first_offset = report.first, last_offset = report.last, events = report.count,
                        "these events failed for good and could not be reported; their offsets complete all the same");
                }
            }
            reported += report.count;
        }
        Ok(reported)
    }

    /// Announces a destination's change of state (circuit opened, recovered, paused).
    pub async fn destination_state(
        &self,
        project: &str,
        destination_id: &str,
        destination_type: &str,
        transition: Transition,
        error: Option<&DeliveryError>,
    ) -> Result<(), Abandoned> {
        let (payload, state) = event::state_event(
            project,
            destination_id,
            destination_type,
            transition,
            error,
            Utc::now(),
        );
        match self.produce_bytes(project, &payload).await {
            Ok(()) => self
                .metrics
                .failure_events
                .with_label_values(&[state])
                .inc(),
            Err(ProduceError::Abandoned(a)) => return Err(a),
            Err(e @ ProduceError::TooLarge { .. }) => {
                self.unwritable(&e, project, destination_id);
            }
        }
        Ok(())
    }

    /// Writes the state event of a destination that reached its `daily_cap` on `day` (UTC).
    pub async fn daily_cap_reached(
        &self,
        project: &str,
        destination_id: &str,
        destination_type: &str,
        cap: courier_core::daily_cap::DailyCap,
        day: chrono::NaiveDate,
    ) -> Result<(), Abandoned> {
        let payload = event::daily_cap_event(
            project,
            destination_id,
            destination_type,
            cap,
            day,
            Utc::now(),
        );
        match self.produce_bytes(project, &payload).await {
            Ok(()) => self
                .metrics
                .failure_events
                .with_label_values(&[event::DAILY_CAP_STATE])
                .inc(),
            Err(ProduceError::Abandoned(a)) => return Err(a),
            Err(e @ ProduceError::TooLarge { .. }) => {
                self.unwritable(&e, project, destination_id);
            }
        }
        Ok(())
    }

    /// Reports a message that could not be routed. A `projectId` too large to fit is left
    /// out (the source range still names the message).
    pub async fn unroutable(
        &self,
        partition: i32,
        offset: i64,
        reason: Unroutable,
        detail: &str,
        project: Option<&str>,
    ) -> Result<(), Abandoned> {
        let now = Utc::now();
        let render = |project: Option<&str>, detail: &str| {
            event::unroutable_event(
                &self.source_topic,
                partition,
                offset,
                reason,
                detail,
                project,
                now,
            )
        };
        let mut key = project.unwrap_or("");
        let mut payload = render(project, detail);
        if payload.len() > size::budget(self.message_max, key.len()) {
            key = "";
            payload = render(None, detail);
        }
        match self.produce_bytes(key, &payload).await {
            Ok(()) => self
                .metrics
                .failure_events
                .with_label_values(&[reason.as_str()])
                .inc(),
            Err(ProduceError::Abandoned(a)) => return Err(a),
            Err(e @ ProduceError::TooLarge { .. }) => {
                self.unwritable(&e, key, "");
                tracing::error!(topic = %self.source_topic, partition, offset, reason = reason.as_str(),
                    "an unroutable message could not be reported; its offset completes all the same");
            }
        }
        Ok(())
    }

    /// Counts and logs a failure event that cannot be written at all.
    fn unwritable(&self, error: &ProduceError, project: &str, destination: &str) {
        self.metrics.failure_events_unwritable.inc();
        tracing::error!(topic = %self.topic, %error, project, destination,
            "a failure event was refused as too large even in its smallest form; check message.max.bytes in [kafka.options] and the failures topic's max.message.bytes");
    }

    /// Produces until the broker has it (acks=all), the process abandons the work, or the
    /// message is refused as too large (permanent: never retried).
    async fn produce_bytes(&self, key: &str, payload: &[u8]) -> Result<(), ProduceError> {
        let mut delay = Duration::from_millis(100);
        loop {
            let record = crate::kafka::Record {
                topic: &self.topic,
                key: key.as_bytes(),
                payload: Some(payload),
                headers: None,
            };
            let sent = tokio::select! {
                r = self.producer.send(record, Duration::from_secs(30)) => r,
                () = self.abandon.cancelled() => return Err(Abandoned.into()),
            };
            match sent {
                Ok(_) => {
                    self.writable.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error) if size::refused_as_too_large(&error) => {
                    return Err(ProduceError::TooLarge {
                        bytes: payload.len(),
                        error,
                    });
                }
                Err(e) => {
                    self.writable.store(false, Ordering::Relaxed);
                    tracing::warn!(topic = %self.topic, error = %e, retry_in = ?delay,
                        "cannot write a failure event; retrying (the events it reports on stay uncommitted)");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.abandon.cancelled() => return Err(Abandoned.into()),
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    /// Waits for queued failure events to reach the broker.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "failure-event producer did not flush");
        }
    }
}

#[cfg(test)]
mod tests;
