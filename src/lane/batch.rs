//! Batching by count, bytes and age.

use tokio::time::Instant;

use crate::event::Event;

/// Collects events into batches of at most `max_events` events and `max_bytes` bytes (a
/// single larger event travels alone).
#[derive(Debug)]
pub struct Batcher {
    events: Vec<Event>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    opened: Option<Instant>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: Vec::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            opened: None,
        }
    }

    /// Adds an event. Returns a full batch to send when one is ready: either the batch
    /// before this event (which would not fit), or the batch this event completed.
    pub fn push(&mut self, event: Event, now: Instant) -> Option<Vec<Event>> {
        let size = event.raw.len();
        let mut ready = None;
        if !self.events.is_empty() && self.bytes + size > self.max_bytes {
            ready = Some(self.take());
        }
        if self.events.is_empty() {
            self.opened = Some(now);
        }
        self.bytes += size;
        self.events.push(event);
        if ready.is_none() && (self.events.len() >= self.max_events || self.bytes >= self.max_bytes)
        {
            ready = Some(self.take());
        }
        ready
    }

    /// When the current batch was opened (its age limit counts from here).
    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Takes the current batch.
    pub fn take(&mut self) -> Vec<Event> {
        self.bytes = 0;
        self.opened = None;
        // The next batch is probably about as large as this one: reserving `max_events`
        // instead held 72 KB per idle destination.
        let expected = self.events.len();
        std::mem::replace(&mut self.events, Vec::with_capacity(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ev(size: usize, offset: i64) -> Event {
        crate::event::test_event(Bytes::from(vec![b'x'; size]), 0, offset)
    }

    #[test]
    fn flushes_at_max_events() {
        let now = Instant::now();
        let mut b = Batcher::new(3, 1000);
        assert!(b.push(ev(1, 0), now).is_none());
        assert!(b.push(ev(1, 1), now).is_none());
        let batch = b.push(ev(1, 2), now).unwrap();
        assert_eq!(
            batch.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(b.is_empty());
        assert!(b.opened().is_none());
    }

    #[test]
    fn never_exceeds_max_bytes_except_for_a_lone_large_event() {
        let now = Instant::now();
        let mut b = Batcher::new(100, 10);
        assert!(b.push(ev(4, 0), now).is_none());
        assert!(b.push(ev(4, 1), now).is_none());
        // 4 + 4 + 4 > 10: the first two go, the third starts a new batch
        let batch = b.push(ev(4, 2), now).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(b.len(), 1);
        // a 50-byte event does not fit with the waiting one, and is then sent alone
        let batch = b.push(ev(50, 3), now).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(b.len(), 1);
        let lone = b.take();
        assert_eq!(lone[0].raw.len(), 50);
        // exactly max_bytes completes a batch
        assert!(b.push(ev(6, 4), now).is_none());
        assert_eq!(b.push(ev(4, 5), now).unwrap().len(), 2);
    }

    #[test]
    fn records_when_a_batch_opened() {
        let t0 = Instant::now();
        let mut b = Batcher::new(10, 100);
        b.push(ev(1, 0), t0);
        b.push(ev(1, 1), t0 + std::time::Duration::from_secs(1));
        assert_eq!(b.opened(), Some(t0));
    }
}
