//! Delivery-failure events: how courier tells a customer, in their own Event Logs, that
//! events did not arrive (or could not be routed).
//!
//! Produced with `acks=all` by an idempotent producer, and awaited: the offsets of the events
//! a failure event reports on complete only once the broker has it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{event_id, Event, Unroutable, FAILURE_EVENT_TYPE};
use crate::lane::Transition;
use crate::metrics::Metrics;
use crate::sinks::DeliveryError;

/// The work was abandoned because the process is stopping; nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("abandoned: courier is stopping")]
pub struct Abandoned;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailureEvent<'a> {
    id: String,
    timestamp: String,
    level: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_type: Option<&'a str>,
    error: ErrorObject<'a>,
    payload: Payload<'a>,
}

/// A destination's change of state, as an Event Log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateEvent<'a> {
    id: String,
    timestamp: String,
    level: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
    status: &'static str,
    project_id: &'a str,
    destination_id: &'a str,
    destination_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject<'a>>,
    payload: StatePayload,
}

#[derive(Serialize)]
struct StatePayload {
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorObject<'a> {
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_attempt_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    count: usize,
    source: SourceRange<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    event_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceRange<'a> {
    topic: &'a str,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn stable_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// Writes failure events to the failures topic.
pub struct FailureReporter {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
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
        let producer: FutureProducer = crate::kafka::durable_producer_config(config).create()?;
        Ok(Self {
            producer,
            topic: config
                .failures
                .topic
                .clone()
                .unwrap_or_else(|| config.kafka.topic.clone()),
            source_topic: config.kafka.topic.clone(),
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
            .client()
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
    /// batch. Failure events inside the batch are left out (a failure event never causes
    /// another). Returns how many events were reported.
    pub async fn delivery_failed(&self, f: DeliveryFailure<'_>) -> Result<usize, Abandoned> {
        let mut reportable: Vec<&Event> = f.events.iter().filter(|e| !e.failure_event).collect();
        reportable.sort_by_key(|e| (e.partition, e.offset));
        let mut reported = 0;
        for group in reportable.chunk_by(|a, b| a.partition == b.partition) {
            let first = group[0].offset;
            let last = group[group.len() - 1].offset;
            let partition = group[0].partition;
            let event_ids: Vec<String> = group
                .iter()
                .map(|e| {
                    event_id(&e.raw).unwrap_or_else(|| {
                        format!("{}-{}-{}", self.source_topic, e.partition, e.offset)
                    })
                })
                .collect();
            let event = FailureEvent {
                id: stable_id(
                    "fail",
                    &[
                        f.project,
                        f.destination_id,
                        &self.source_topic,
                        &partition.to_string(),
                        &first.to_string(),
                        &last.to_string(),
                    ],
                ),
                timestamp: rfc3339(Utc::now()),
                level: "ERROR",
                kind: FAILURE_EVENT_TYPE,
                message: format!(
                    "Unable to deliver {} events to destination {}",
                    group.len(),
                    f.destination_id
                ),
                status: "EVENT_STATUS.FAILED",
                project_id: Some(f.project),
                destination_id: Some(f.destination_id),
                destination_type: Some(f.destination_type),
                error: ErrorObject {
                    kind: f.error.kind.as_str(),
                    http_status: f.error.http_status,
                    message: &f.error.message,
                    attempts: Some(f.attempts),
                    first_attempt_at: Some(rfc3339(f.first_attempt)),
                    last_attempt_at: Some(rfc3339(f.last_attempt)),
                },
                payload: Payload {
                    count: group.len(),
                    source: SourceRange {
                        topic: &self.source_topic,
                        partition,
                        first_offset: first,
                        last_offset: last,
                    },
                    event_ids,
                },
            };
            self.produce(f.project, &event).await?;
            self.metrics
                .failure_events
                .with_label_values(&[f.error.kind.as_str()])
                .inc();
            reported += group.len();
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
        let (level, status, message, state) = match transition {
            Transition::Opened => (
                "ERROR",
                "EVENT_STATUS.FAILED",
                format!("Destination {destination_id} is failing; deliveries are being retried"),
                "failing",
            ),
            Transition::Recovered => (
                "INFO",
                "EVENT_STATUS.SUCCEEDED",
                format!("Destination {destination_id} recovered"),
                "recovered",
            ),
            Transition::Paused => (
                "ERROR",
                "EVENT_STATUS.FAILED",
                format!("Destination {destination_id} was paused after repeated failures"),
                "paused",
            ),
        };
        let now = Utc::now();
        let event = StateEvent {
            id: stable_id(
                "state",
                &[
                    project,
                    destination_id,
                    state,
                    &now.timestamp_millis().to_string(),
                ],
            ),
            timestamp: rfc3339(now),
            level,
            kind: FAILURE_EVENT_TYPE,
            message,
            status,
            project_id: project,
            destination_id,
            destination_type,
            error: error.map(|e| ErrorObject {
                kind: e.kind.as_str(),
                http_status: e.http_status,
                message: &e.message,
                attempts: None,
                first_attempt_at: None,
                last_attempt_at: None,
            }),
            payload: StatePayload { state },
        };
        let payload =
            serde_json::to_vec(&event).expect("state events serialize: plain strings and numbers");
        self.produce_bytes(project, &payload).await?;
        self.metrics
            .failure_events
            .with_label_values(&[state])
            .inc();
        Ok(())
    }

    /// Reports a message that could not be routed.
    pub async fn unroutable(
        &self,
        partition: i32,
        offset: i64,
        reason: Unroutable,
        detail: &str,
        project: Option<&str>,
    ) -> Result<(), Abandoned> {
        let event = FailureEvent {
            id: stable_id(
                "unroutable",
                &[
                    &self.source_topic,
                    &partition.to_string(),
                    &offset.to_string(),
                ],
            ),
            timestamp: rfc3339(Utc::now()),
            level: "ERROR",
            kind: FAILURE_EVENT_TYPE,
            message: format!("Event could not be routed: {detail}"),
            status: "EVENT_STATUS.FAILED",
            project_id: project,
            destination_id: None,
            destination_type: None,
            error: ErrorObject {
                kind: reason.as_str(),
                http_status: None,
                message: detail,
                attempts: None,
                first_attempt_at: None,
                last_attempt_at: None,
            },
            payload: Payload {
                count: 1,
                source: SourceRange {
                    topic: &self.source_topic,
                    partition,
                    first_offset: offset,
                    last_offset: offset,
                },
                event_ids: Vec::new(),
            },
        };
        self.produce(project.unwrap_or(""), &event).await?;
        self.metrics
            .failure_events
            .with_label_values(&[reason.as_str()])
            .inc();
        Ok(())
    }

    async fn produce(&self, key: &str, event: &FailureEvent<'_>) -> Result<(), Abandoned> {
        let payload =
            serde_json::to_vec(event).expect("failure events serialize: plain strings and numbers");
        self.produce_bytes(key, &payload).await
    }

    /// Produces until the broker has it (acks=all) or the process abandons the work.
    async fn produce_bytes(&self, key: &str, payload: &[u8]) -> Result<(), Abandoned> {
        let mut delay = Duration::from_millis(100);
        loop {
            let record = FutureRecord::to(&self.topic).key(key).payload(payload);
            let sent = tokio::select! {
                r = self.producer.send(record, Duration::from_secs(30)) => r,
                () = self.abandon.cancelled() => return Err(Abandoned),
            };
            match sent {
                Ok(_) => {
                    self.writable.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err((e, _)) => {
                    self.writable.store(false, Ordering::Relaxed);
                    tracing::warn!(topic = %self.topic, error = %e, retry_in = ?delay,
                        "cannot write a failure event; retrying (the events it reports on stay uncommitted)");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.abandon.cancelled() => return Err(Abandoned),
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
mod tests {
    use super::*;

    #[test]
    fn stable_ids_depend_on_every_part() {
        let a = stable_id("fail", &["p", "d", "t", "0", "1", "2"]);
        assert_eq!(a, stable_id("fail", &["p", "d", "t", "0", "1", "2"]));
        assert_ne!(a, stable_id("fail", &["p", "d", "t", "0", "1", "3"]));
        assert_ne!(
            stable_id("x", &["ab", "c"]),
            stable_id("x", &["a", "bc"]),
            "parts are delimited"
        );
    }

    #[test]
    fn failure_event_has_the_contract_shape() {
        let error = DeliveryError {
            kind: crate::sinks::ErrorKind::HttpStatus,
            http_status: Some(503),
            message: "down".into(),
        };
        let ev = FailureEvent {
            id: "fail_x".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            level: "ERROR",
            kind: FAILURE_EVENT_TYPE,
            message: "Unable to deliver 2 events to destination hook-1".into(),
            status: "EVENT_STATUS.FAILED",
            project_id: Some("proj_a"),
            destination_id: Some("hook-1"),
            destination_type: Some("webhook"),
            error: ErrorObject {
                kind: error.kind.as_str(),
                http_status: error.http_status,
                message: &error.message,
                attempts: Some(7),
                first_attempt_at: Some("a".into()),
                last_attempt_at: Some("b".into()),
            },
            payload: Payload {
                count: 2,
                source: SourceRange {
                    topic: "event-logs",
                    partition: 2,
                    first_offset: 1200,
                    last_offset: 1201,
                },
                event_ids: vec!["e1".into(), "e2".into()],
            },
        };
        let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "EVENT_DESTINATION");
        assert_eq!(v["projectId"], "proj_a");
        assert_eq!(v["destinationId"], "hook-1");
        assert_eq!(v["destinationType"], "webhook");
        assert_eq!(v["error"]["kind"], "http_status");
        assert_eq!(v["error"]["httpStatus"], 503);
        assert_eq!(v["error"]["attempts"], 7);
        assert_eq!(v["payload"]["source"]["firstOffset"], 1200);
        assert_eq!(v["payload"]["source"]["lastOffset"], 1201);
        assert_eq!(v["payload"]["eventIds"][1], "e2");
    }
}
