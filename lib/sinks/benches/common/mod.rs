//! What the sink benchmarks share: their batch of generated events.

use bytes::Bytes;
use courier_core::event::{test_event, Event};
use courier_generator::{Generator, GeneratorConfig};

/// A batch of `events` generated 1 KiB Event Logs of partition 0 at consecutive offsets
/// (`courier-generator`, fixed seed).
pub fn batch(events: usize) -> Vec<Event> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 15,
        projects: 1,
        poison_every: None,
        target_bytes: Some(1024),
    });
    (0..events)
        .map(|i| test_event(Bytes::from(generator.next_event()), 0, i as i64))
        .collect()
}
