//! A destination's most recent delivery failures, kept in memory so that each replica can
//! publish them with its status (the API's failures listing and the console read them from
//! there). Written only where a batch finally fails and its failure event has been written —
//! one place, on the failure path; the success path never touches it. Bounded in every
//! dimension: [`MAX_RECENT_FAILURES`] entries, [`MAX_IDS_PER_FAILURE`] ids each, and
//! messages of at most [`MAX_MESSAGE_CHARS`] characters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Failures kept per destination (the oldest goes first).
pub const MAX_RECENT_FAILURES: usize = 20;
/// Event ids kept per failure (the event count still says how many failed).
pub const MAX_IDS_PER_FAILURE: usize = 100;
/// Characters of the destination's answer kept.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Bytes of one event id kept (longer ids are cut at a character boundary).
pub const MAX_ID_BYTES: usize = 256;

/// One batch (or part of one) whose delivery finally failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// When the failure was recorded.
    pub at: DateTime<Utc>,
    /// The error class (`http_status`, `timeout`, …), as in the failure event.
    pub kind: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The explanation with the destination's answer (already scrubbed of secrets by the
    /// sink), trimmed.
    pub message: String,
    /// How many events failed.
    pub events: u64,
    /// Their ids, as the failure event lists them (at most [`MAX_IDS_PER_FAILURE`]).
    pub event_ids: Vec<String>,
}

impl FailureRecord {
    /// A record with its message and ids cut to the bounds.
    pub fn new(
        at: DateTime<Utc>,
        kind: &str,
        http_status: Option<u16>,
        message: &str,
        events: u64,
        ids: impl IntoIterator<Item = String>,
    ) -> Self {
        FailureRecord {
            at,
            kind: kind.to_owned(),
            http_status,
            message: trim_chars(message, MAX_MESSAGE_CHARS),
            events,
            event_ids: ids
                .into_iter()
                .take(MAX_IDS_PER_FAILURE)
                .map(|id| trim_bytes(id, MAX_ID_BYTES))
                .collect(),
        }
    }
}

/// `s` cut to `max` characters, marked with an ellipsis when cut.
pub fn trim_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

fn trim_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The ring of one destination.
#[derive(Debug, Default)]
pub struct RecentFailures {
    ring: Mutex<VecDeque<FailureRecord>>,
    /// Bumped on every push: a publisher compares it to skip an unchanged ring.
    version: AtomicU64,
}

impl RecentFailures {
    /// Keeps `record`, dropping the oldest beyond [`MAX_RECENT_FAILURES`].
    pub fn push(&self, record: FailureRecord) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == MAX_RECENT_FAILURES {
            ring.pop_front();
        }
        ring.push_back(record);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// The kept failures, oldest first.
    pub fn snapshot(&self) -> Vec<FailureRecord> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().cloned().collect()
    }

    /// How many pushes so far.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> FailureRecord {
        FailureRecord::new(
            Utc::now(),
            "http_status",
            Some(500),
            &"x".repeat(5000),
            300,
            (0..300).map(|n| format!("{i}-{n}")),
        )
    }

    #[test]
    fn keeps_the_newest_twenty_each_bounded() {
        let ring = RecentFailures::default();
        for i in 0..25 {
            ring.push(record(i));
        }
        let kept = ring.snapshot();
        assert_eq!(kept.len(), MAX_RECENT_FAILURES);
        assert_eq!(kept[0].event_ids[0], "5-0", "the oldest five dropped");
        assert_eq!(kept[19].event_ids[0], "24-0");
        assert_eq!(kept[0].event_ids.len(), MAX_IDS_PER_FAILURE);
        assert_eq!(
            kept[0].events, 300,
            "the count is the batch's, not the ids kept"
        );
        assert_eq!(kept[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(ring.version(), 25);
    }

    #[test]
    fn trims_at_character_boundaries() {
        assert_eq!(trim_chars("héllo", 2), "hé…");
        assert_eq!(trim_chars("hé", 2), "hé");
        assert_eq!(trim_bytes("é".repeat(200), MAX_ID_BYTES).len(), 256);
        assert_eq!(
            trim_bytes(format!("a{}", "é".repeat(200)), MAX_ID_BYTES).len(),
            255
        );
    }
}
