//! Test events, built one way for every test.
//!
//! - Generated Event Logs ([`generator`], [`events_in_turn`], [`ordinary_events`]): realistic
//!   events from `courier::generator`, reproducible from a seed, spread over the projects a test
//!   names. The generator also makes delivery-failure events (`type: EVENT_DESTINATION`), as
//!   real traffic has them; courier never reports on those again, so tests that count what a
//!   destination receives leave them out ([`ordinary_events`]).
//! - Events as a sink receives them ([`sink_event`], [`generated_sink_events`],
//!   [`small_batch`]), for tests that drive a sink through the `Sink` trait.
//! - A hand-written minimal Event Log ([`event_log`]) for tests that need a known id.
//! - Reading events back: the `id` of an event, multisets of events and how two of them differ
//!   (for assertion messages).

use std::collections::HashMap;

use courier::event::Event;
use courier::generator::{Generator, GeneratorConfig};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Generated Event Logs
// ---------------------------------------------------------------------------------------------

/// A generator of realistic Event Logs of `projects` projects (`proj_0001`, …), reproducible
/// from `seed`: natural sizes, no poison messages.
pub fn generator(seed: u64, projects: usize) -> Generator {
    Generator::new(GeneratorConfig {
        seed,
        projects,
        poison_every: None,
        target_bytes: None,
    })
}

/// Whether an Event Log is a delivery-failure event (`type: EVENT_DESTINATION`).
pub fn is_failure_event(event: &[u8]) -> bool {
    serde_json::from_slice::<Value>(event)
        .ok()
        .is_some_and(|v| v["type"] == "EVENT_DESTINATION")
}

/// `n` generated events as `(project, bytes)`, whose projects take turns through `projects`:
/// the i-th event kept belongs to `projects[i % projects.len()]`. An event `keep` refuses is
/// dropped, and the same project's turn is generated again.
pub fn events_in_turn<P: AsRef<str>>(
    gen: &mut Generator,
    n: usize,
    projects: &[P],
    mut keep: impl FnMut(&[u8]) -> bool,
) -> Vec<(String, Vec<u8>)> {
    assert!(!projects.is_empty(), "events_in_turn needs a project");
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let project = projects[out.len() % projects.len()].as_ref();
        let bytes = gen.event_for_project(project);
        if keep(&bytes) {
            out.push((project.to_owned(), bytes));
        }
    }
    out
}

/// [`events_in_turn`] without the delivery-failure events ([`is_failure_event`]).
pub fn ordinary_events<P: AsRef<str>>(
    gen: &mut Generator,
    n: usize,
    projects: &[P],
) -> Vec<(String, Vec<u8>)> {
    events_in_turn(gen, n, projects, |e| !is_failure_event(e))
}

// ---------------------------------------------------------------------------------------------
// Events as a sink receives them
// ---------------------------------------------------------------------------------------------

/// `raw` as read at `offset` of `partition` (assignment generation 1): the [`Event`] a sink's
/// `encode` and `send` take (the same builder as the unit tests').
pub use courier::event::test_event as sink_event;

/// `n` generated events of two projects at offsets 0, 1, … of partition 0, as the generator
/// makes them from `seed` (delivery-failure events included).
pub fn generated_sink_events(n: usize, seed: u64) -> Vec<Event> {
    let mut gen = generator(seed, 2);
    (0..n)
        .map(|i| sink_event(gen.next_event(), 0, i as i64))
        .collect()
}

/// Three small ordinary events of project `p` at offsets 0–2 of partition 0.
pub fn small_batch() -> Vec<Event> {
    (0..3)
        .map(|i| {
            sink_event(
                format!(
                    "{{\"id\":\"e{i}\",\"projectId\":\"p\",\"type\":\"APP_EVENT\",\"level\":\"INFO\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"message\":\"m\"}}"
                ),
                0,
                i,
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Hand-written Event Logs
// ---------------------------------------------------------------------------------------------

/// A minimal Event Log of `project` with id `id`: an `INFO` `APP_EVENT` "hello" of
/// 2026-01-01. A test changes or adds fields before it serializes the event.
pub fn event_log(project: &str, id: &str) -> Value {
    json!({
        "id": id,
        "timestamp": "2026-01-01T00:00:00Z",
        "level": "INFO", "type": "APP_EVENT", "message": "hello",
        "projectId": project,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading events back
// ---------------------------------------------------------------------------------------------

/// The `id` field of an Event Log.
pub fn event_id(event: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(event).expect("event is JSON");
    v.get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_else(|| {
            panic!(
                "event without a string id: {}",
                String::from_utf8_lossy(event)
            )
        })
        .to_string()
}

/// Counts of each distinct byte string.
pub fn multiset(items: impl IntoIterator<Item = Vec<u8>>) -> HashMap<Vec<u8>, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Describes how two multisets of events differ (for assertion messages).
pub fn describe_difference(
    expected: &HashMap<Vec<u8>, usize>,
    got: &HashMap<Vec<u8>, usize>,
) -> String {
    let show = |b: &Vec<u8>| {
        let s = String::from_utf8_lossy(b);
        if s.len() > 160 {
            format!("{}…", &s[..s.floor_char_boundary_compat(160)])
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, n)| got.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    let unexpected: Vec<_> = got
        .iter()
        .filter(|(k, n)| expected.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    out.push_str(&format!(
        "{} distinct events missing or short, {} unexpected or duplicated",
        missing.len(),
        unexpected.len()
    ));
    for (k, n) in missing.iter().take(3) {
        out.push_str(&format!(
            "\n  missing (expected {n}x, got {}x): {}",
            got.get(*k).copied().unwrap_or(0),
            show(k)
        ));
    }
    for (k, n) in unexpected.iter().take(3) {
        out.push_str(&format!(
            "\n  unexpected (got {n}x, expected {}x): {}",
            expected.get(*k).copied().unwrap_or(0),
            show(k)
        ));
    }
    out
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
