//! The rows each replica publishes in the status topic, and how they are encoded.
//!
//! Two kinds of rows, so that a fleet with many destinations writes little:
//! - a heartbeat per replica (key `replica/<replica>`), written every `status_interval`: it
//!   alone says whether the replica is alive. A reader counts a replica's rows only while its
//!   heartbeat is younger than `replica_timeout` (by the writer's clock against the reader's:
//!   replicas are expected to keep their clocks in sync, as Kafka's own timestamps assume);
//! - a row per (replica, project, destination) it runs (key
//!   `destination/<replica>/["<project>","<id>"]`), written only when its content changed
//!   since the last write. Its per-minute counts are keyed by absolute minute, so a row that
//!   did not change stays true as time passes.
//!
//! Every record is at most [`MAX_RECORD_BYTES`]: a row that would be larger keeps fewer event
//! ids, then fewer failures ([`DestinationRow::bound`]). A reader skips (with a warning) a
//! record that is larger or does not decode, whoever wrote it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use courier_core::recent_failures::{trim_chars, FailureRecord, MAX_MESSAGE_CHARS};
use serde::{Deserialize, Serialize};

use super::table::Codec;

/// The largest record written or read.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Event ids kept per failure when a row must shrink to fit.
const SHRUNK_IDS_PER_FAILURE: usize = 10;

/// A row's key. Heartbeats sort first; destination rows by project, destination, replica, so
/// that one project's or one destination's rows are a range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusKey {
    /// A replica's heartbeat.
    Replica(String),
    /// A destination's state on a replica.
    Destination {
        /// The destination's project.
        project: String,
        /// The destination's id.
        id: String,
        /// The replica that runs it.
        replica: String,
    },
}

impl StatusKey {
    /// The record key.
    pub fn encode(&self) -> String {
        match self {
            StatusKey::Replica(r) => format!("replica/{r}"),
            StatusKey::Destination {
                project,
                id,
                replica,
            } => {
                let pair = serde_json::to_string(&(project, id)).expect("two strings serialize");
                format!("destination/{replica}/{pair}")
            }
        }
    }

    /// Parses a record key (replica names never contain '/').
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(raw).ok()?;
        if let Some(replica) = text.strip_prefix("replica/") {
            return (!replica.is_empty()).then(|| StatusKey::Replica(replica.to_owned()));
        }
        let rest = text.strip_prefix("destination/")?;
        let (replica, pair) = rest.split_once('/')?;
        let (project, id): (String, String) = serde_json::from_str(pair).ok()?;
        (!replica.is_empty()).then(|| StatusKey::Destination {
            project,
            id,
            replica: replica.to_owned(),
        })
    }

    /// The replica the row belongs to.
    pub fn replica(&self) -> &str {
        match self {
            StatusKey::Replica(r) | StatusKey::Destination { replica: r, .. } => r,
        }
    }
}

/// A replica's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When it was written (the writer's clock).
    pub at: DateTime<Utc>,
    /// When the replica started.
    pub started_at: DateTime<Utc>,
    /// The replica's courier version.
    pub version: String,
}

/// The last error of a destination on one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// The error class.
    pub kind: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The explanation with the destination's answer (scrubbed by the sink), trimmed.
    pub message: String,
    /// When the request failed.
    pub at: Option<DateTime<Utc>>,
}

/// Event counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Routed to the destination.
    pub routed: u64,
    /// Accepted by it.
    pub delivered: u64,
    /// Finally failed.
    pub failed: u64,
    /// Parked in the retry topic (each parking counts).
    pub parked: u64,
    /// Parked without an attempt because the destination's queue was full (also in
    /// `parked`); absent in rows of older replicas.
    #[serde(default)]
    pub overflowed: u64,
}

/// Events of one minute: `[minute since the epoch, delivered, failed, parked]`.
pub type MinuteRow = (i64, u64, u64, u64);

/// A destination's state on one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRow {
    /// The circuit: `closed`, `open` or `paused`.
    pub circuit: String,
    /// Consecutive failed requests.
    pub consecutive_failures: u32,
    /// When a request last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last error.
    pub last_error: Option<ErrorRow>,
    /// When its events last overflowed a full queue (it could not keep up); absent in rows
    /// of older replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_overflow_at: Option<DateTime<Utc>>,
    /// Counters since the replica started running it.
    pub events: Counts,
    /// Minutes of the last hour with events, oldest first.
    pub minutes: Vec<MinuteRow>,
    /// The last delivery failures, oldest first.
    pub failures: Vec<FailureRecord>,
}

impl DestinationRow {
    /// The row's record, shrunk to [`MAX_RECORD_BYTES`]: first every failure keeps at most
    /// [`SHRUNK_IDS_PER_FAILURE`] ids, then the oldest failures go. The row is changed to
    /// what was encoded, so that it compares equal to what a reader decodes.
    pub fn bound(&mut self) -> Vec<u8> {
        if let Some(e) = &mut self.last_error {
            if e.message.chars().count() > MAX_MESSAGE_CHARS {
                e.message = trim_chars(&e.message, MAX_MESSAGE_CHARS);
            }
        }
        loop {
            let bytes = serde_json::to_vec(self).expect("a status row serializes");
            if bytes.len() <= MAX_RECORD_BYTES || self.failures.is_empty() {
                return bytes;
            }
            if self
                .failures
                .iter()
                .any(|f| f.event_ids.len() > SHRUNK_IDS_PER_FAILURE)
            {
                for f in &mut self.failures {
                    f.event_ids.truncate(SHRUNK_IDS_PER_FAILURE);
                }
            } else {
                self.failures.remove(0);
            }
        }
    }
}

/// A row of the status topic.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusRow {
    /// Under a [`StatusKey::Replica`].
    Heartbeat(Heartbeat),
    /// Under a [`StatusKey::Destination`].
    Destination(Box<DestinationRow>),
}

/// The status topic's rows.
pub struct StatusCodec;

impl Codec for StatusCodec {
    type Key = StatusKey;
    type Value = StatusRow;

    fn name(&self) -> &'static str {
        "fleet status"
    }

    fn key(&self, raw: &[u8]) -> Option<StatusKey> {
        StatusKey::decode(raw)
    }

    fn value(&self, key: &StatusKey, raw: &[u8]) -> Result<StatusRow, String> {
        if raw.len() > MAX_RECORD_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_RECORD_BYTES} a status record may have",
                raw.len()
            ));
        }
        match key {
            StatusKey::Replica(_) => serde_json::from_slice(raw).map(StatusRow::Heartbeat),
            StatusKey::Destination { .. } => {
                serde_json::from_slice(raw).map(|r| StatusRow::Destination(Box::new(r)))
            }
        }
        .map_err(|e| e.to_string())
    }

    fn describe(&self, key: &StatusKey) -> String {
        key.encode()
    }
}

/// The replicas whose heartbeat is younger than `timeout` at `now`.
pub fn live_replicas<'a>(
    rows: impl IntoIterator<Item = (&'a StatusKey, &'a std::sync::Arc<StatusRow>)>,
    now: DateTime<Utc>,
    timeout: std::time::Duration,
) -> BTreeSet<String> {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    rows.into_iter()
        .filter_map(|(k, v)| match (k, &**v) {
            (StatusKey::Replica(r), StatusRow::Heartbeat(h)) if now - h.at <= timeout => {
                Some(r.clone())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(ids: usize) -> FailureRecord {
        FailureRecord::new(
            Utc::now(),
            "http_status",
            Some(500),
            &"é".repeat(2000),
            ids as u64,
            (0..ids).map(|i| format!("{i:0>200}")),
        )
    }

    #[test]
    fn keys_round_trip_and_sort_by_destination() {
        let d = StatusKey::Destination {
            project: "proj/with slash".into(),
            id: "hook\"1".into(),
            replica: "pod-0".into(),
        };
        assert_eq!(StatusKey::decode(d.encode().as_bytes()), Some(d.clone()));
        let r = StatusKey::Replica("pod-0".into());
        assert_eq!(StatusKey::decode(r.encode().as_bytes()), Some(r.clone()));
        assert!(r < d, "heartbeats sort first");
        for bad in [
            "replica/",
            "destination/pod-0/[\"p\"]",
            "destination//[\"p\",\"i\"]",
            "x",
        ] {
            assert_eq!(StatusKey::decode(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn an_oversize_row_keeps_fewer_ids_then_fewer_failures() {
        let mut row = DestinationRow {
            circuit: "open".into(),
            consecutive_failures: 3,
            last_success_at: None,
            last_error: Some(ErrorRow {
                kind: "http_status".into(),
                http_status: Some(500),
                message: "x".repeat(10_000),
                at: None,
            }),
            last_overflow_at: Some(Utc::now()),
            events: Counts::default(),
            minutes: vec![(1, 2, 3, 4)],
            failures: (0..20).map(|_| failure(100)).collect(),
        };
        let newest = row.failures[19].clone();
        let bytes = row.bound();
        assert!(bytes.len() <= MAX_RECORD_BYTES, "{}", bytes.len());
        assert!(row.failures.iter().all(|f| f.event_ids.len() == 10));
        assert!(!row.failures.is_empty() && row.failures.len() < 20);
        assert_eq!(
            row.failures.last().unwrap().at,
            newest.at,
            "the newest kept"
        );
        assert_eq!(row.failures.last().unwrap().events, 100);
        let decoded = StatusCodec
            .value(
                &StatusKey::Destination {
                    project: "p".into(),
                    id: "d".into(),
                    replica: "r".into(),
                },
                &bytes,
            )
            .unwrap();
        assert_eq!(decoded, StatusRow::Destination(Box::new(row)));
    }

    /// A row published by a replica that predates overflow (no `overflowed`, no
    /// `last_overflow_at`) still decodes: a rolling upgrade shows every replica.
    #[test]
    fn an_older_replicas_row_decodes_without_overflow() {
        let key = StatusKey::Destination {
            project: "p".into(),
            id: "d".into(),
            replica: "r".into(),
        };
        let old = br#"{"circuit":"closed","consecutive_failures":0,"last_success_at":null,"last_error":null,"events":{"routed":3,"delivered":2,"failed":1,"parked":0},"minutes":[],"failures":[]}"#;
        let StatusRow::Destination(row) = StatusCodec.value(&key, old).unwrap() else {
            panic!("a destination row");
        };
        assert_eq!(row.last_overflow_at, None);
        assert_eq!((row.events.delivered, row.events.overflowed), (2, 0));
    }

    #[test]
    fn the_reader_refuses_oversize_and_undecodable_records() {
        let key = StatusKey::Replica("r".into());
        let big = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(StatusCodec.value(&key, &big).unwrap_err().contains("bytes"));
        assert!(StatusCodec.value(&key, b"{\"at\":1}").is_err());
    }

    #[test]
    fn only_fresh_heartbeats_are_live() {
        let now = Utc::now();
        let beat = |secs| {
            StatusRow::Heartbeat(Heartbeat {
                at: now - chrono::Duration::seconds(secs),
                started_at: now,
                version: "v".into(),
            })
        };
        let rows = [
            (
                StatusKey::Replica("fresh".into()),
                std::sync::Arc::new(beat(2)),
            ),
            (
                StatusKey::Replica("stale".into()),
                std::sync::Arc::new(beat(31)),
            ),
        ];
        let live = live_replicas(
            rows.iter().map(|(k, v)| (k, v)),
            now,
            std::time::Duration::from_secs(30),
        );
        assert_eq!(live.into_iter().collect::<Vec<_>>(), ["fresh"]);
    }
}
