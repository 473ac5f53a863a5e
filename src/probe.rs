//! Probing one destination: its sink built exactly as the pipeline builds it, one synthetic
//! Event Log encoded as a live delivery would encode it and sent once, without retries, and
//! the answer as courier classifies it. `courier test-destination` (the operator, from a
//! shell) and the API's `POST …/destinations/{id}/test` (the customer, through the
//! platform) both probe through here, so both see what a live delivery would see; they only
//! present the answer differently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};

use crate::config::{DestinationConfig, SecurityConfig};
use crate::event::{AckId, Event};
use crate::sinks::{self, BuildError, DeliveryError, Outcome, Sink};

/// How much longer than the destination's `request_timeout` a probe waits for its answer
/// before calling it a timeout (the sink's own timeout normally answers first).
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// A destination ready to be probed.
pub struct Probe {
    sink: Arc<dyn Sink>,
    /// The destination's redaction, applied to the synthetic event as to any other.
    shape: Option<Arc<courier_core::shape::Shaper>>,
    project: String,
    destination: String,
    request_timeout: Duration,
}

/// What became of the synthetic event.
#[derive(Debug)]
pub enum Answer {
    /// The sink could not encode it (a live delivery would report it as rejected data).
    NotEncoded(DeliveryError),
    /// No answer within the limit (a live delivery would retry).
    TimedOut(Duration),
    /// The destination's answer, as courier classified it.
    Answered(Outcome),
}

/// The synthetic event's fate.
#[derive(Debug)]
pub struct TestEvent {
    /// The synthetic event's `id`.
    pub event_id: String,
    /// Time from encoding the event to the classified answer.
    pub latency: Duration,
    /// What became of it.
    pub answer: Answer,
    /// The request body as sent, secrets masked, for destinations whose body the user
    /// shapes (a webhook template); `None` for the others.
    pub body: Option<String>,
}

impl Probe {
    /// Builds the sink of `destination` as the pipeline would (`source_topic` names the topic
    /// its events come from).
    pub fn new(
        destination: &DestinationConfig,
        source_topic: &str,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            sink: sinks::build(destination, source_topic, security)?,
            shape: destination.shape.clone(),
            project: destination.project.clone(),
            destination: destination.id.clone(),
            request_timeout: destination.delivery.request_timeout,
        })
    }

    /// The sink's own check of its configuration (credentials, bucket), where it has one.
    pub async fn check(&self) -> Result<String, DeliveryError> {
        self.sink.check().await
    }

    /// Sends one synthetic event, once, and classifies the answer.
    pub async fn send_test_event(&self) -> TestEvent {
        let (event, event_id) = synthetic_event(&self.project, &self.destination);
        let started = Instant::now();
        let mut body = None;
        let events =
            match crate::shaping::shaped(self.shape.as_deref(), std::slice::from_ref(&event)) {
                Ok(shaped) => Ok(shaped.unwrap_or_else(|| vec![event])),
                Err(error) => Err(error),
            };
        let answer = match events.and_then(|events| Ok((self.sink.encode(&events)?, events))) {
            Err(error) => Answer::NotEncoded(error),
            Ok((batch, events)) => {
                body = self.sink.preview(&batch);
                let limit = self.request_timeout.saturating_add(ANSWER_GRACE);
                match tokio::time::timeout(limit, self.sink.send(&events, &batch)).await {
                    Ok(outcome) => Answer::Answered(outcome),
                    Err(_) => Answer::TimedOut(limit),
                }
            }
        };
        TestEvent {
            event_id,
            latency: started.elapsed(),
            answer,
            body,
        }
    }
}

/// The synthetic event and its `id`: an ordinary Event Log of the destination's project,
/// marked (`type: EVENT_DESTINATION`, `payload.test: true`) so a receiver can recognise and
/// drop it. Its offset is the time in milliseconds, so sinks that derive names from offsets
/// (S3 keys) give each probe its own.
pub fn synthetic_event(project: &str, destination: &str) -> (Event, String) {
    let now = Utc::now();
    let event_id = format!(
        "courier-test-{}",
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    let raw = serde_json::json!({
        "id": event_id,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "level": "INFO",
        "type": "EVENT_DESTINATION",
        "message": format!("Test event from courier for destination {destination}"),
        "status": "EVENT_STATUS.SUCCEEDED",
        "projectId": project,
        "destinationId": destination,
        "payload": { "test": true },
    });
    let offset = now.timestamp_millis();
    let event = Event {
        raw: Bytes::from(raw.to_string()),
        partition: 0,
        offset,
        failure_event: true,
        ack: AckId {
            partition: 0,
            generation: 0,
            offset,
        },
    };
    (event, event_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_event_is_a_marked_event_log_of_the_destination() {
        let (event, id) = synthetic_event("proj_a", "hook-1");
        let v: serde_json::Value = serde_json::from_slice(&event.raw).unwrap();
        assert_eq!(v["id"], id.as_str());
        assert!(id.starts_with("courier-test-"));
        assert_eq!(v["projectId"], "proj_a");
        assert_eq!(v["destinationId"], "hook-1");
        assert_eq!(v["type"], "EVENT_DESTINATION");
        assert_eq!(v["payload"]["test"], true);
        assert_eq!(event.ack.offset, event.offset);
    }
}
