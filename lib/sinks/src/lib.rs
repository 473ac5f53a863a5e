//! courier-sinks: the sink adapters. Each knows one destination's wire format and nothing
//! about Kafka (this crate does not depend on rdkafka).
//!
//! A sink encodes a batch into a request once, sends it (again on retries), and classifies
//! the answer by the service's documented contract. It never decides about offsets: the
//! daemon's lane does that from the [`Outcome`].
//!
//! One folder per sink (its settings, encoding, service and classification); what several
//! sinks share is in [`util`] (HTTP helpers, scrubbing, compression, request framing, the
//! 413-halving send loop, the `tls` table), and no sink imports a sibling. [`build`] wraps each
//! in a [`masked::MaskedSink`], which masks its secrets in everything it reports. [`ssrf`] guards every address a
//! sink connects to. [`config`] names every sink; it depends on courier-core only, and the
//! daemon's configuration loader sits above it.

pub mod config;
pub mod datadog;
pub mod email;
pub mod file;
pub mod masked;
pub mod otlp;
pub mod s3;
pub mod splunk;
pub mod ssrf;
pub mod util;
pub mod webhook;

pub use util::{gzip, http, scrub};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{DestinationConfig, SinkConfig};
use courier_core::event::Event;
use courier_core::settings::SecurityConfig;

/// A batch encoded for one destination, reused unchanged by every retry.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// The request body exactly as sent.
    pub body: Bytes,
    /// A stable identifier of the batch (same on every retry and on a replay of the same
    /// events), for receivers that deduplicate.
    pub id: String,
    /// Events in the batch.
    pub events: usize,
    /// Body size before compression.
    pub uncompressed_bytes: usize,
    /// Where the events' own bytes sit, unchanged, in `body`, when they all do (an
    /// uncompressed body that concatenates them); `None` otherwise.
    pub verbatim: Option<Verbatim>,
}

/// How the events of a batch lie in a body that holds each of them byte for byte, in order:
/// the first at `start`, each next one `gap` bytes after the end of the one before.
///
/// The lane uses it to let go of the events' own buffers once the body is built
/// ([`EncodedBatch::share_body`]): the body is then the only copy of the batch, instead of
/// a second one held beside it for as long as a destination takes to answer (heaptrack of the
/// throughput benchmark: request bodies were 32 of 152 MB of heap at the peak, next to the
/// 40 MB of payloads they copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verbatim {
    /// Offset of the first event's first byte.
    pub start: usize,
    /// Bytes between one event and the next (a `,` or a newline).
    pub gap: usize,
}

impl EncodedBatch {
    /// Points each of `events` at its own bytes inside the body, so that the buffers they were
    /// read into can be freed while the body is held. Returns whether it did: only for a body
    /// of these very events laid out as [`Self::verbatim`] says (checked against the lengths;
    /// the contents are the encoder's promise, which its tests check).
    pub fn share_body(&self, events: &mut [Event]) -> bool {
        let Some(Verbatim { start, gap }) = self.verbatim else {
            return false;
        };
        if events.len() != self.events {
            return false;
        }
        let spans: usize = events.iter().map(|e| e.raw.len()).sum::<usize>()
            + gap * events.len().saturating_sub(1);
        if start + spans > self.body.len() {
            return false;
        }
        let mut at = start;
        for e in events.iter_mut() {
            let end = at + e.raw.len();
            e.raw = self.body.slice(at..end);
            at = end + gap;
        }
        true
    }
}

/// What went wrong with a delivery attempt. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// The class, used as the failure event's `error.kind`.
    pub kind: ErrorKind,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// A human-readable explanation, with the destination's answer trimmed.
    pub message: String,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.http_status {
            Some(s) => write!(f, "{} (HTTP {s}): {}", self.kind.as_str(), self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

/// Classes of delivery errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The destination answered with a non-success HTTP status.
    HttpStatus,
    /// No answer within the request timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// A local I/O error (file sink).
    Io,
    /// The batch could not be encoded.
    Encode,
    /// The destination's circuit is open; the batch was parked without an attempt.
    CircuitOpen,
    /// The destination was paused after failing for too long.
    Paused,
    /// Parked events name a destination that no longer exists or is disabled.
    DestinationRemoved,
    /// The event could not be parked: as a retry-topic record it is over the producer's or
    /// the broker's size limit.
    TooLargeToPark,
    /// Events parked by reference whose records the source topic no longer holds (retention
    /// or deletion passed them before their scheduled attempt).
    ParkedEventsLost,
    /// courier itself failed while delivering the batch (a bug, contained to the batch).
    Internal,
    /// An SMTP server answered with a negative reply (4xx or 5xx), or lettre could not go on
    /// with the conversation (the email sink).
    SmtpReply,
    /// The destination's `rate_limit` would have held the batch longer than its in-line
    /// budget; it was parked without an attempt (retried later, as a failing destination's).
    RateLimited,
    /// More events than the destination takes now, parked again for later without an attempt
    /// spent: its queue was full (it answers too slowly, or has not yet been found to fail),
    /// and they were parked so that the other destinations sharing their partition kept
    /// reading (the lane's overflow); or a parked batch held more than one attempt sends.
    Overflow,
}

impl ErrorKind {
    /// The `error.kind` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Io => "io",
            ErrorKind::Encode => "encode",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Paused => "destination_paused",
            ErrorKind::DestinationRemoved => "destination_removed",
            ErrorKind::TooLargeToPark => "too_large_to_park",
            ErrorKind::ParkedEventsLost => "parked_events_lost",
            ErrorKind::Internal => "internal",
            ErrorKind::SmtpReply => "smtp_reply",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overflow => "overflow",
        }
    }
}

/// What a rejection applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectScope {
    /// These events were refused; others may be accepted.
    Data,
    /// The destination itself is unusable as configured (gone, bad credentials): later
    /// batches would fail the same way.
    Destination,
}

/// The classified result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Parts of the batch ended differently (a sink that split an oversize batch, or a
    /// service that accepted the events before a bad one). Each entry is a range of indices
    /// into the batch's events and that part's outcome, which is never `Partial` itself.
    /// The lane acknowledges delivered parts, reports rejected ones, and retries the rest.
    Partial(Vec<(std::ops::Range<usize>, Outcome)>),
    /// Accepted.
    Delivered,
    /// Worth trying again, after `retry_after` if the destination said so.
    Retry {
        /// Why it failed.
        error: DeliveryError,
        /// The destination's own `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Refused for good.
    Rejected {
        /// Why.
        error: DeliveryError,
        /// What the refusal covers.
        scope: RejectScope,
    },
}

/// One destination's adapter.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Encodes a batch into the request body.
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError>;

    /// Encodes a batch, setting aside the events that cannot be encoded for their own data
    /// (a body template that fails on one event): the batch of the others, and each refused
    /// event's index with why, which the lane reports as rejected data, one failure event
    /// each. Default: [`Sink::encode`], refusing none.
    fn encode_checked(
        &self,
        events: &[Event],
    ) -> Result<(EncodedBatch, Vec<(usize, DeliveryError)>), DeliveryError> {
        Ok((self.encode(events)?, Vec::new()))
    }

    /// The encoded body as text for people to read (`courier test-destination`, the API's
    /// test endpoint), secrets masked, for sinks whose body the user shapes (a webhook
    /// template). Default: none.
    fn preview(&self, _batch: &EncodedBatch) -> Option<String> {
        None
    }

    /// Whether batches must hold events of one Kafka partition only (object stores whose
    /// keys are derived from a partition's offset range). Default: no.
    fn batch_by_partition(&self) -> bool {
        false
    }

    /// The secret values this sink sends (credentials, tokens, header values), which the
    /// [`masked::MaskedSink`] that [`build`] wraps it in masks in every message it reports.
    /// Default: none.
    fn secrets(&self) -> scrub::Scrubber {
        scrub::Scrubber::default()
    }

    /// Checks the destination without delivering events (credentials, reachability), for
    /// `courier test-destination`. Returns what the destination said; sinks without such a
    /// check say so.
    async fn check(&self) -> Result<String, DeliveryError> {
        Ok("no separate check for this destination type; the test event shows the answer".into())
    }

    /// Sends an encoded batch of `events` once (which may take several requests, for a sink
    /// that must split it) and classifies the answer.
    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome;
}

/// Why a sink could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be created.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Builds the sink of a destination that receives events read from `topic`; `security` is
/// the SSRF guard's configuration ([`ssrf`]).
pub fn build(
    destination: &DestinationConfig,
    topic: &str,
    security: &SecurityConfig,
) -> Result<Arc<dyn Sink>, BuildError> {
    let delivery = &destination.delivery;
    use masked::MaskedSink as Masked;
    Ok(Arc::new(match &destination.sink {
        SinkConfig::Webhook(c) => Masked::new(
            webhook::WebhookSink::new(c, delivery, security)?
                .named(&destination.project, &destination.id),
        ),
        SinkConfig::File(c) => Masked::new(file::FileSink::new(c)),
        SinkConfig::S3(c) => Masked::new(s3::S3Sink::new(destination, c, topic, security)?),
        SinkConfig::Datadog(c) => Masked::new(datadog::DatadogSink::new(c, delivery, security)?),
        SinkConfig::SplunkHec(c) => Masked::new(splunk::SplunkSink::new(c, delivery, security)?),
        SinkConfig::Otlp(c) => Masked::new(otlp::OtlpSink::new(c, delivery, security)?),
        SinkConfig::Email(c) => Masked::new(email::EmailSink::new(
            &destination.project,
            &destination.id,
            c,
            delivery,
            security,
        )?),
    }))
}

/// A stable batch id from the events' positions: the same events give the same id on every
/// retry and on a replay of the same range.
pub fn batch_id(destination: &str, events: &[Event]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(destination.as_bytes());
    for e in events {
        h.update(e.partition.to_le_bytes());
        h.update(e.offset.to_le_bytes());
    }
    let digest = h.finalize();
    let mut id = String::with_capacity(4 + 32);
    id.push_str("msg_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Trims a destination's answer for error messages and failure events.
pub fn trim_answer(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], body.len())
}

/// Writes the events as NDJSON: one compact JSON object per line. Events that contain line
/// breaks (pretty-printed JSON) are compacted, which changes only insignificant whitespace.
/// Returns whether every event was written byte for byte (none needed compacting).
pub fn write_ndjson(events: &[Event], out: &mut Vec<u8>) -> bool {
    let mut verbatim = true;
    for e in events {
        if memchr::memchr2(b'\n', b'\r', &e.raw).is_some() {
            compact_json(&e.raw, out);
            verbatim = false;
        } else {
            out.extend_from_slice(&e.raw);
        }
        out.push(b'\n');
    }
    verbatim
}

/// Copies JSON text without whitespace outside strings.
fn compact_json(json: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(raw: &str, offset: i64) -> Event {
        courier_core::event::test_event(Bytes::copy_from_slice(raw.as_bytes()), 0, offset)
    }

    #[test]
    fn every_sink_default_is_within_its_bounds() {
        use courier_core::settings::bounds::*;
        use courier_core::settings::DeliveryConfig;
        let s3 = s3::delivery_defaults(&DeliveryConfig::default());
        size(s3.batch_max_events, BATCH_MAX_EVENTS).unwrap();
        size(s3.batch_max_bytes, BATCH_MAX_BYTES).unwrap();
        duration(s3.batch_timeout, BATCH_TIMEOUT).unwrap();
        duration(splunk::DEFAULT_ACK_TIMEOUT, ACK_TIMEOUT).unwrap();
    }

    #[test]
    fn ndjson_compacts_only_multiline_events() {
        let mut out = Vec::new();
        let verbatim = write_ndjson(
            &[
                ev(r#"{"a": "x y"}"#, 0),
                ev(
                    "{\n  \"b\": \"line\\nbreak \\\" q\",\r\n  \"c\": [1, 2]\n}",
                    1,
                ),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\": \"x y\"}\n{\"b\":\"line\\nbreak \\\" q\",\"c\":[1,2]}\n"
        );
        assert!(
            !verbatim,
            "a compacted event is not in the body byte for byte"
        );
        assert!(write_ndjson(&[ev(r#"{"a": "x y"}"#, 0)], &mut Vec::new()));
    }

    #[test]
    fn batch_ids_are_stable_and_distinct() {
        let a = [ev("{}", 1), ev("{}", 2)];
        let b = [ev("{}", 1), ev("{}", 3)];
        assert_eq!(batch_id("d", &a), batch_id("d", &a));
        assert_ne!(batch_id("d", &a), batch_id("d", &b));
        assert_ne!(batch_id("d", &a), batch_id("e", &a));
        assert!(batch_id("d", &a).starts_with("msg_"));
    }

    #[test]
    fn trims_long_answers_on_char_boundaries() {
        assert_eq!(trim_answer(b"  short ", 10), "short");
        let long = "é".repeat(20);
        let t = trim_answer(long.as_bytes(), 5);
        assert!(t.starts_with("éé"), "{t}");
        assert!(t.ends_with("(40 bytes)"), "{t}");
    }
}
