//! The benchmark events: 1 KB Event Logs from courier's own generator (the same as
//! `courier demo`), each with one extra leading member, `{"benchTs":<µs since the epoch>,…`,
//! stamped when the event is produced.
//!
//! The stamp is the only thing the receiver and the raw consumer look at: they count events by
//! the marker and read the digits after it, without parsing JSON, so that measuring costs far
//! less than what is measured.

use std::fmt::Write as _;

use courier_generator::{project_id, Generator, GeneratorConfig};

/// The marker every benchmark event starts with.
pub const MARKER: &[u8] = b"{\"benchTs\":";
/// Generator seed of all benchmark data.
const SEED: u64 = 6;
/// Projects of the generated data (and of the configurations) unless `--projects` says
/// otherwise.
pub const PROJECTS: usize = 1000;

/// Writes benchmark event `n` into `buf`: a generator event with `benchTs` first.
pub struct EventSource {
    generator: Generator,
    scratch: Vec<u8>,
    /// Projects taken in turn (event `i` belongs to project `i mod len`); empty: the
    /// generator picks them at random among `PROJECTS`.
    rotation: Vec<String>,
    count: usize,
}

impl EventSource {
    pub fn new() -> Self {
        Self::with_projects(PROJECTS)
    }

    /// Events of projects picked at random among `projects`.
    pub fn with_projects(projects: usize) -> Self {
        Self {
            generator: Generator::new(GeneratorConfig {
                seed: SEED,
                projects,
                poison_every: None,
                target_bytes: Some(1024),
            }),
            scratch: Vec::with_capacity(2048),
            rotation: Vec::new(),
            count: 0,
        }
    }

    /// Events for projects 1..=`projects` in turn, so that each gets exactly its share.
    pub fn rotating(projects: usize) -> Self {
        let mut source = Self::with_projects(projects);
        source.rotation = (1..=projects).map(project_id).collect();
        source
    }

    /// The next event, stamped with `ts_us`.
    pub fn next(&mut self, ts_us: u64, buf: &mut Vec<u8>) {
        if self.rotation.is_empty() {
            self.scratch.clear();
            self.generator.write_event(&mut self.scratch);
        } else {
            let project = &self.rotation[self.count % self.rotation.len()];
            self.scratch = self.generator.event_for_project(project);
        }
        self.count += 1;
        buf.clear();
        buf.extend_from_slice(MARKER);
        let _ = write!(DisplayVec(buf), "{ts_us},");
        buf.extend_from_slice(&self.scratch[1..]);
    }
}

struct DisplayVec<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for DisplayVec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The stamp (µs) in the digits that follow a marker; 0 if there are none.
pub fn stamp(after_marker: &[u8]) -> u64 {
    after_marker
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0u64, |ts, &c| ts * 10 + u64::from(c - b'0'))
}

/// Microseconds from `ts_us` to `now_us`, saturated to fit the latency samples (`u32`, over an
/// hour).
pub fn latency_us(now_us: u64, ts_us: u64) -> u32 {
    now_us.saturating_sub(ts_us).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_start_with_the_stamp_and_stay_json() {
        let mut source = EventSource::new();
        let mut buf = Vec::new();
        source.next(1_700_000_000_123_456, &mut buf);
        assert!(buf.starts_with(MARKER));
        assert_eq!(stamp(&buf[MARKER.len()..]), 1_700_000_000_123_456);
        let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(value["benchTs"], 1_700_000_000_123_456u64);
        assert!(value["projectId"].is_string(), "{value}");
    }

    #[test]
    fn rotating_sources_give_each_project_its_share_in_turn() {
        let mut source = EventSource::rotating(3);
        let mut buf = Vec::new();
        let mut projects = Vec::new();
        for _ in 0..6 {
            source.next(1, &mut buf);
            let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            projects.push(value["projectId"].as_str().unwrap().to_owned());
        }
        let expected: Vec<String> = [1, 2, 3, 1, 2, 3].into_iter().map(project_id).collect();
        assert_eq!(projects, expected);
    }

    #[test]
    fn stamps_and_latencies_are_read_without_overflow() {
        assert_eq!(stamp(b"42,\"x\":1"), 42);
        assert_eq!(stamp(b",\"x\":1"), 0);
        assert_eq!(latency_us(1_500, 1_000), 500);
        assert_eq!(latency_us(1_000, 1_500), 0);
        assert_eq!(latency_us(u64::MAX, 0), u32::MAX);
    }
}
