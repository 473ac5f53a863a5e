//! Parking: events a destination could not take within its in-line budget wait in the retry
//! topic, one Kafka message per event, so the Event Logs topic's commit point can move on
//! while nothing is lost.
//!
//! The message value is the event, unchanged; headers say where it goes, when it is due, how
//! often it was tried and where it came from.
//!
//! An event too large to be a retry-topic record (the producer's or the broker's
//! `MessageSizeTooLarge`: the event plus headers over `message.max.bytes`) can never wait
//! there, and retrying the write cannot change that: it is not parked but handed back to the
//! caller, which reports it in a failure event (`error.kind = too_large_to_park`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::Event;
use crate::failures::size::refused_as_too_large;
use crate::failures::Abandoned;
use crate::sinks::{DeliveryError, ErrorKind};

pub mod reference;
pub mod retention;

use retention::{Parking, ParkingState};

/// Header names of parked records.
pub mod header {
    /// The destination's project.
    pub const PROJECT: &str = "courier-project";
    /// The destination's id.
    pub const DESTINATION: &str = "courier-destination";
    /// Number of the scheduled attempt this record waits for (1 = first parked attempt).
    pub const ATTEMPT: &str = "courier-attempt";
    /// When that attempt is due (Unix milliseconds).
    pub const NEXT_ATTEMPT_AT: &str = "courier-next-attempt-at";
    /// When the first delivery attempt failed (Unix milliseconds).
    pub const FIRST_FAILURE_AT: &str = "courier-first-failure-at";
    /// The last error, for people reading the topic.
    pub const LAST_ERROR: &str = "courier-last-error";
    /// Where the event was first read.
    pub const SOURCE_TOPIC: &str = "courier-source-topic";
    /// … its partition.
    pub const SOURCE_PARTITION: &str = "courier-source-partition";
    /// … and offset.
    pub const SOURCE_OFFSET: &str = "courier-source-offset";
}

/// A parked record's headers, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The destination's project.
    pub project: String,
    /// The destination's id.
    pub destination: String,
    /// The scheduled attempt this record waits for (1-based).
    pub attempt: u32,
    /// When it is due (Unix ms).
    pub next_attempt_at_ms: i64,
    /// When the first attempt failed (Unix ms).
    pub first_failure_at_ms: i64,
    /// The last error.
    pub last_error: String,
    /// Original topic.
    pub source_topic: String,
    /// Original partition.
    pub source_partition: i32,
    /// Original offset.
    pub source_offset: i64,
}

/// A record in the retry topic that courier cannot read (not written by courier, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a parked record: {0}")]
pub struct NotParked(pub String);

impl Parked {
    /// Reads the headers of a retry-topic message.
    pub fn from_headers<H: Headers>(headers: Option<&H>) -> Result<Self, NotParked> {
        let headers = headers.ok_or_else(|| NotParked("no headers".into()))?;
        let get = |name: &str| -> Result<String, NotParked> {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .ok_or_else(|| NotParked(format!("header {name} missing")))
        };
        let num = |name: &str| -> Result<i64, NotParked> {
            get(name)?
                .parse::<i64>()
                .map_err(|_| NotParked(format!("header {name} is not a number")))
        };
        Ok(Self {
            project: get(header::PROJECT)?,
            destination: get(header::DESTINATION)?,
            attempt: u32::try_from(num(header::ATTEMPT)?)
                .map_err(|_| NotParked("attempt out of range".into()))?,
            next_attempt_at_ms: num(header::NEXT_ATTEMPT_AT)?,
            first_failure_at_ms: num(header::FIRST_FAILURE_AT)?,
            last_error: get(header::LAST_ERROR).unwrap_or_default(),
            source_topic: get(header::SOURCE_TOPIC)?,
            source_partition: i32::try_from(num(header::SOURCE_PARTITION)?)
                .map_err(|_| NotParked("partition out of range".into()))?,
            source_offset: num(header::SOURCE_OFFSET)?,
        })
    }

    fn to_headers(&self) -> OwnedHeaders {
        let attempt = self.attempt.to_string();
        let next = self.next_attempt_at_ms.to_string();
        let first = self.first_failure_at_ms.to_string();
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        let pairs: [(&str, &str); 9] = [
            (header::PROJECT, &self.project),
            (header::DESTINATION, &self.destination),
            (header::ATTEMPT, &attempt),
            (header::NEXT_ATTEMPT_AT, &next),
            (header::FIRST_FAILURE_AT, &first),
            (header::LAST_ERROR, &self.last_error),
            (header::SOURCE_TOPIC, &self.source_topic),
            (header::SOURCE_PARTITION, &partition),
            (header::SOURCE_OFFSET, &offset),
        ];
        pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
    }
}

/// What to park.
#[derive(Debug)]
pub struct ParkRequest<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination: &'a str,
    /// The scheduled attempt the events will wait for (1-based).
    pub attempt: u32,
    /// How long until it is due.
    pub delay: Duration,
    /// When the first attempt failed.
    pub first_failure: DateTime<Utc>,
    /// The last error, in words (no secrets).
    pub last_error: &'a str,
    /// The events; `partition`/`offset` are their original position in `source_topic`.
    pub events: &'a [Event],
    /// The topic the events were first read from.
    pub source_topic: &'a str,
}

/// Writes parked events to the retry topic (idempotent producer, acks=all).
pub struct Parker {
    producer: crate::kafka::KafkaProducer,
    topic: String,
    abandon: CancellationToken,
    parking: Arc<ParkingState>,
}

impl Parker {
    /// A parker for `config`'s retry topic; `abandon` stops retries of failed writes;
    /// `parking` holds the parking mode in force (decided at start, again on reload).
    pub fn new(
        config: &Config,
        abandon: CancellationToken,
        parking: Arc<ParkingState>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            producer: crate::kafka::KafkaProducer::create(&crate::kafka::parking_producer_config(
                config,
            ))?,
            topic: config.failures.retry_topic.clone(),
            abandon,
            parking,
        })
    }

    /// The retry topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The parking mode in force now ([`retention`] decides it; copies until decided).
    pub fn parking(&self) -> Parking {
        self.parking.parking()
    }

    /// Parks the events; returns once the broker has every one of them, except those it
    /// refused as too large (`MessageSizeTooLarge`, from the producer or the broker): such a
    /// record can never wait in the retry topic, so it is not retried but returned in the
    /// outcome for the caller to report (and complete).
    pub async fn park(&self, request: &ParkRequest<'_>) -> Result<ParkOutcome, Abandoned> {
        if self.parking() == Parking::Reference {
            return self.park_references(request).await;
        }
        let due = crate::clock::wall_deadline(Utc::now(), request.delay);
        let key = format!(
            "{}/{}/{}",
            request.project, request.destination, request.attempt
        );
        let mut outcome = ParkOutcome::default();
        let mut waiting: Vec<usize> = (0..request.events.len()).collect();
        let mut delay = Duration::from_millis(100);
        loop {
            let sends = waiting.iter().map(|&i| {
                let e = &request.events[i];
                let headers = Parked {
                    project: request.project.to_owned(),
                    destination: request.destination.to_owned(),
                    attempt: request.attempt,
                    next_attempt_at_ms: due.timestamp_millis(),
                    first_failure_at_ms: request.first_failure.timestamp_millis(),
                    last_error: request.last_error.chars().take(1000).collect(),
                    source_topic: request.source_topic.to_owned(),
                    source_partition: e.partition,
                    source_offset: e.offset,
                }
                .to_headers();
                let record = crate::kafka::Record {
                    topic: &self.topic,
                    key: key.as_bytes(),
                    payload: Some(&e.raw[..]),
                    headers: Some(headers),
                };
                let producer = &self.producer;
                async move { (i, producer.send(record, Duration::from_secs(30)).await) }
            });
            let results = tokio::select! {
                r = futures::future::join_all(sends) => r,
                () = self.abandon.cancelled() => return Err(Abandoned),
            };
            let mut failed = Vec::new();
            for (i, result) in results {
                match result {
                    Ok(_) => {}
                    Err(e) if refused_as_too_large(&e) => {
                        let e_ = &request.events[i];
                        tracing::warn!(topic = %self.topic, error = %e, partition = e_.partition, offset = e_.offset,
                            bytes = e_.raw.len(), "an event is too large to park; it is reported as failed instead");
                        outcome.too_large.push(i);
                        outcome.refusal.get_or_insert_with(|| e.to_string());
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "cannot park an event; retrying (its offset stays uncommitted)");
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                outcome.too_large.sort_unstable();
                outcome.records = (request.events.len() - outcome.too_large.len()) as u64;
                return Ok(outcome);
            }
            waiting = failed;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.abandon.cancelled() => return Err(Abandoned),
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// What parking did with a request's events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParkOutcome {
    /// Indices (into the request's events, ascending) of the events refused as too large to
    /// be a retry-topic record: not parked, and never will be.
    pub too_large: Vec<usize>,
    /// The producer's refusal, in words.
    pub refusal: Option<String>,
    /// Retry-topic records written.
    pub records: u64,
    /// Whether the events were parked by reference ([`reference`]) rather than as copies.
    pub by_reference: bool,
}

impl ParkOutcome {
    /// `events` split into those parked and those too large to park.
    pub fn split(&self, events: &[Event]) -> (Vec<Event>, Vec<Event>) {
        let mut parked = Vec::with_capacity(events.len() - self.too_large.len().min(events.len()));
        let mut too_large = Vec::with_capacity(self.too_large.len());
        for (i, e) in events.iter().enumerate() {
            if self.too_large.binary_search(&i).is_ok() {
                too_large.push(e.clone());
            } else {
                parked.push(e.clone());
            }
        }
        (parked, too_large)
    }

    /// The error a failure event gives for events too large to park: kind
    /// `too_large_to_park`, with the delivery error that made them wait.
    pub fn error(&self, last: &DeliveryError) -> DeliveryError {
        DeliveryError {
            kind: ErrorKind::TooLargeToPark,
            http_status: last.http_status,
            message: format!(
                "the event is too large to wait in the retry topic ({}); it was not retried. Last delivery error: {last}",
                self.refusal.as_deref().unwrap_or("message size too large")
            ),
        }
    }
}

/// The delay before scheduled attempt `attempt` (1-based), ±10% jitter; `None` after the last.
pub fn scheduled_delay(schedule: &[Duration], attempt: u32) -> Option<Duration> {
    let base = *schedule.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    Some(crate::clock::scale(base, 0.9 + fastrand::f64() * 0.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let p = Parked {
            project: "proj_a".into(),
            destination: "hook-1".into(),
            attempt: 3,
            next_attempt_at_ms: 1_700_000_000_123,
            first_failure_at_ms: 1_690_000_000_000,
            last_error: "HTTP 503".into(),
            source_topic: "event-logs".into(),
            source_partition: 2,
            source_offset: 1200,
        };
        let back = Parked::from_headers(Some(&p.to_headers())).unwrap();
        assert_eq!(back, p);
        assert!(Parked::from_headers::<OwnedHeaders>(None).is_err());
        let partial = OwnedHeaders::new().insert(Header {
            key: header::PROJECT,
            value: Some("p"),
        });
        assert_eq!(
            Parked::from_headers(Some(&partial)).unwrap_err(),
            NotParked("header courier-destination missing".into())
        );
    }

    #[test]
    fn schedule_has_jitter_and_an_end() {
        let schedule = [Duration::from_secs(30), Duration::from_secs(120)];
        for _ in 0..100 {
            let d = scheduled_delay(&schedule, 1).unwrap();
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
        assert!(scheduled_delay(&schedule, 2).unwrap() >= Duration::from_secs(108));
        assert_eq!(scheduled_delay(&schedule, 3), None);
        assert_eq!(scheduled_delay(&schedule, 0), None);
        assert_eq!(scheduled_delay(&[], 1), None);
    }
}
