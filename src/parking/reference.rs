//! Parking by reference: a parked batch is one small retry-topic record that names where its
//! events already are — source topic, partitions and offsets — instead of a copy of each.
//!
//! The events are in the Event Logs topic already; copying them back into Kafka doubled the
//! bytes courier wrote for a failing destination (one record per event, nine headers,
//! acks=all) and the retry worker read them all again. A reference costs one record per
//! parked batch. It is only safe while the source topic keeps the records (see
//! [`super::retention`]); offsets that are gone when the attempt is due are reported in a
//! failure event of kind `parked_events_lost`, never dropped silently.
//!
//! # Encoding (version 1)
//!
//! The record's key is `project/destination/attempt` (as for copies), its header
//! [`REFERENCE_HEADER`] is `1` (the encoding's version), and its value is JSON:
//!
//! ```json
//! {"v":1,"project":"proj_a","destination":"hook","attempt":2,"due_ms":1767225600000,
//!  "first_failure_ms":1767225000000,"last_error":"http_status (HTTP 503): …",
//!  "topic":"event-logs","partitions":[{"partition":3,"offsets":[[1200,1250],[1300,1301]]}]}
//! ```
//!
//! `offsets` are half-open ranges `[first, end)`, ascending and disjoint: a batch of one
//! destination is usually runs of neighbouring offsets, so ranges stay short. JSON keeps the
//! topic readable for people; a record is split so that none exceeds [`MAX_RECORD_BYTES`].
//! A reader refuses any other version rather than guessing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use serde::{Deserialize, Serialize};

use super::{ParkOutcome, ParkRequest, Parker};
use crate::event::Event;
use crate::failures::Abandoned;

/// Header whose presence marks a parked reference (its value is the encoding's version).
pub const REFERENCE_HEADER: &str = "courier-parked-reference";

/// The encoding version this courier writes and reads.
pub const VERSION: u32 = 1;

/// Longest reference record written: well under any broker's `message.max.bytes`; a batch
/// whose offsets need more is parked as several references.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// Longest `last_error` kept in a reference.
const MAX_ERROR_CHARS: usize = 1000;

/// One parked batch of one destination, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParkedReference {
    /// Encoding version ([`VERSION`]).
    pub v: u32,
    /// The destination's project.
    pub project: String,
    /// The destination's id.
    pub destination: String,
    /// The scheduled attempt this reference waits for (1-based).
    pub attempt: u32,
    /// When that attempt is due (Unix ms).
    pub due_ms: i64,
    /// When the first attempt failed (Unix ms).
    pub first_failure_ms: i64,
    /// The last error, scrubbed by the sink and trimmed.
    pub last_error: String,
    /// The topic the events were read from.
    pub topic: String,
    /// The events, by partition.
    pub partitions: Vec<PartitionOffsets>,
}

/// The referenced offsets of one source partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionOffsets {
    /// The source partition.
    pub partition: i32,
    /// Half-open `[first, end)` ranges, ascending and disjoint.
    pub offsets: Vec<(i64, i64)>,
}

impl PartitionOffsets {
    /// How many offsets the ranges name.
    pub fn count(&self) -> u64 {
        self.offsets
            .iter()
            .map(|&(a, b)| u64::try_from(b.saturating_sub(a)).unwrap_or(0))
            .sum()
    }

    /// The first referenced offset and one past the last.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.offsets.first()?.0, self.offsets.last()?.1))
    }

    /// Whether `offset` is referenced.
    pub fn contains(&self, offset: i64) -> bool {
        let i = self.offsets.partition_point(|&(_, end)| end <= offset);
        self.offsets.get(i).is_some_and(|&(a, _)| a <= offset)
    }

    /// Every referenced offset, ascending.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.offsets.iter().flat_map(|&(a, b)| a..b)
    }
}

/// Why a retry-topic record is not a usable reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReference {
    /// A version this courier does not read.
    #[error(
        "parked reference version {0} is not supported (this courier reads version {VERSION})"
    )]
    Version(String),
    /// Not the documented JSON, or its ranges are not ascending and disjoint.
    #[error("not a parked reference: {0}")]
    Malformed(String),
}

impl ParkedReference {
    /// Reads a reference record: `version` is its [`REFERENCE_HEADER`] value.
    pub fn decode(version: &[u8], value: &[u8]) -> Result<Self, BadReference> {
        if version != VERSION.to_string().as_bytes() {
            return Err(BadReference::Version(
                String::from_utf8_lossy(version).chars().take(20).collect(),
            ));
        }
        let reference: Self =
            serde_json::from_slice(value).map_err(|e| BadReference::Malformed(e.to_string()))?;
        if reference.v != VERSION {
            return Err(BadReference::Version(reference.v.to_string()));
        }
        for p in &reference.partitions {
            let ordered = p.offsets.iter().all(|&(a, b)| 0 <= a && a < b)
                && p.offsets.windows(2).all(|w| w[0].1 <= w[1].0);
            if !ordered || p.offsets.is_empty() {
                return Err(BadReference::Malformed(format!(
                    "partition {}: offsets must be non-empty, ascending, disjoint [first, end) ranges",
                    p.partition
                )));
            }
        }
        Ok(reference)
    }

    /// The record's value.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reference serializes to JSON")
    }

    /// How many events it names.
    pub fn count(&self) -> u64 {
        self.partitions.iter().map(PartitionOffsets::count).sum()
    }
}

/// What a parked batch has in common, whatever its events.
#[derive(Debug, Clone)]
pub struct ReferenceHeader<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination: &'a str,
    /// The attempt the batch waits for.
    pub attempt: u32,
    /// When it is due (Unix ms).
    pub due_ms: i64,
    /// When its first attempt failed (Unix ms).
    pub first_failure_ms: i64,
    /// The last error.
    pub last_error: &'a str,
    /// The source topic.
    pub topic: &'a str,
}

/// References naming exactly `events` (by their source partition and offset), each encoded
/// within [`MAX_RECORD_BYTES`]: usually one.
pub fn references(header: &ReferenceHeader<'_>, events: &[Event]) -> Vec<ParkedReference> {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for e in events {
        by_partition.entry(e.partition).or_default().push(e.offset);
    }
    let empty = ParkedReference {
        v: VERSION,
        project: header.project.to_owned(),
        destination: header.destination.to_owned(),
        attempt: header.attempt,
        due_ms: header.due_ms,
        first_failure_ms: header.first_failure_ms,
        last_error: header.last_error.chars().take(MAX_ERROR_CHARS).collect(),
        topic: header.topic.to_owned(),
        partitions: Vec::new(),
    };
    // The fixed part, and about 24 bytes per range ("[1234567890,1234567899],").
    let fixed = empty.encode().len() + 64;
    let max_ranges = (MAX_RECORD_BYTES.saturating_sub(fixed) / 48).max(1);
    let mut out = Vec::new();
    let mut current = empty.clone();
    let mut ranges_in_current = 0;
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        offsets.dedup();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for o in offsets {
            match ranges.last_mut() {
                Some((_, end)) if *end == o => *end = o + 1,
                _ => ranges.push((o, o + 1)),
            }
        }
        for chunk in ranges.chunks(max_ranges) {
            if ranges_in_current + chunk.len() > max_ranges {
                out.push(std::mem::replace(&mut current, empty.clone()));
                ranges_in_current = 0;
            }
            current.partitions.push(PartitionOffsets {
                partition,
                offsets: chunk.to_vec(),
            });
            ranges_in_current += chunk.len();
        }
    }
    if !current.partitions.is_empty() {
        out.push(current);
    }
    out
}

impl Parker {
    /// Parks `request` by reference: one record per parked batch (more only past
    /// [`MAX_RECORD_BYTES`]), retried until the broker has it or the parker is abandoned.
    pub(crate) async fn park_references(
        &self,
        request: &ParkRequest<'_>,
    ) -> Result<ParkOutcome, Abandoned> {
        let due = crate::clock::wall_deadline(Utc::now(), request.delay);
        let header = ReferenceHeader {
            project: request.project,
            destination: request.destination,
            attempt: request.attempt,
            due_ms: due.timestamp_millis(),
            first_failure_ms: request.first_failure.timestamp_millis(),
            last_error: request.last_error,
            topic: request.source_topic,
        };
        let key = format!(
            "{}/{}/{}",
            request.project, request.destination, request.attempt
        );
        let version = VERSION.to_string();
        let mut outcome = ParkOutcome {
            by_reference: true,
            ..ParkOutcome::default()
        };
        for reference in references(&header, request.events) {
            let value = reference.encode();
            let mut delay = Duration::from_millis(100);
            loop {
                let record = crate::kafka::Record {
                    topic: &self.topic,
                    key: key.as_bytes(),
                    payload: Some(&value),
                    headers: Some(OwnedHeaders::new().insert(Header {
                        key: REFERENCE_HEADER,
                        value: Some(version.as_bytes()),
                    })),
                };
                let sent = tokio::select! {
                    r = self.producer.send(record, Duration::from_secs(30)) => r,
                    () = self.abandon.cancelled() => return Err(Abandoned),
                };
                match sent {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, events = reference.count(),
                            "cannot park a batch by reference; retrying (its offsets stay uncommitted)");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.abandon.cancelled() => return Err(Abandoned),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            outcome.records += 1;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_event;

    fn header() -> ReferenceHeader<'static> {
        ReferenceHeader {
            project: "proj_a",
            destination: "hook",
            attempt: 2,
            due_ms: 1_767_225_600_000,
            first_failure_ms: 1_767_225_000_000,
            last_error: "http_status (HTTP 503): unavailable",
            topic: "event-logs",
        }
    }

    #[test]
    fn a_batch_is_one_reference_of_ranges_per_partition() {
        let events: Vec<Event> = [(3, 1201), (3, 1200), (0, 7), (3, 1202), (3, 1300), (0, 9)]
            .into_iter()
            .map(|(p, o)| test_event("{}", p, o))
            .collect();
        let refs = references(&header(), &events);
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(
            r.partitions,
            vec![
                PartitionOffsets {
                    partition: 0,
                    offsets: vec![(7, 8), (9, 10)]
                },
                PartitionOffsets {
                    partition: 3,
                    offsets: vec![(1200, 1203), (1300, 1301)]
                },
            ]
        );
        assert_eq!(r.count(), 6);
        let decoded = ParkedReference::decode(b"1", &r.encode()).unwrap();
        assert_eq!(&decoded, r);
        let p3 = &decoded.partitions[1];
        assert_eq!(p3.span(), Some((1200, 1301)));
        assert!(p3.contains(1200) && p3.contains(1202) && p3.contains(1300));
        assert!(!p3.contains(1203) && !p3.contains(1299) && !p3.contains(1199));
        assert_eq!(p3.iter().collect::<Vec<_>>(), vec![1200, 1201, 1202, 1300]);
    }

    #[test]
    fn many_scattered_offsets_are_split_into_records_within_the_limit() {
        let events: Vec<Event> = (0..40_000)
            .map(|i| test_event("{}", i % 2, i64::from(i) * 2))
            .collect();
        let refs = references(&header(), &events);
        assert!(refs.len() > 1);
        let mut named: Vec<(i32, i64)> = Vec::new();
        for r in &refs {
            assert!(r.encode().len() <= MAX_RECORD_BYTES, "{}", r.encode().len());
            for p in &r.partitions {
                named.extend(p.iter().map(|o| (p.partition, o)));
            }
        }
        named.sort_unstable();
        let mut expected: Vec<(i32, i64)> =
            events.iter().map(|e| (e.partition, e.offset)).collect();
        expected.sort_unstable();
        assert_eq!(named, expected);
    }

    #[test]
    fn other_versions_and_bad_ranges_are_refused() {
        let r = references(&header(), &[test_event("{}", 0, 5)]).remove(0);
        assert!(matches!(
            ParkedReference::decode(b"2", &r.encode()),
            Err(BadReference::Version(_))
        ));
        let text = String::from_utf8(r.encode()).unwrap();
        for bad in [
            text.replace("[[5,6]]", "[[6,5]]"),
            text.replace("[[5,6]]", "[[5,7],[6,8]]"),
            text.replace("[[5,6]]", "[]"),
            text.replace("[[5,6]]", "[[-3,1]]"),
            text.replace("\"v\":1", "\"v\":9"),
            "{\"v\":1}".to_owned(),
            "garbage".to_owned(),
        ] {
            assert!(
                ParkedReference::decode(b"1", bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
