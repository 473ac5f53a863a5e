//! Parked references in the retry worker: each waits in memory for exactly its due time, then
//! its events are read back from the source topic and attempted.
//!
//! A reference is small, so the worker reads ahead past references that are not due and
//! keeps them in a schedule ordered by due time: a 30-second retry never waits behind an
//! 8-hour one read before it (copies could: they are too large to hold, so their partition
//! pauses until the first is due). The schedule is bounded ([`MAX_SCHEDULED`]); when it is
//! full the partition pauses as for a copy, and reading continues once references are done.
//! The retry-topic commit stays below every reference not yet settled (the acknowledgement
//! tracker), so a restart schedules the unsettled ones again.
//!
//! Reading back uses the source's range reader ([`crate::source::ranges`]) with readers of
//! their own (never in a live group): the span from the first to the last referenced offset of
//! each partition is read and exactly the referenced offsets are kept. Offsets below the
//! partition's log start (or past its end), or that the broker no longer returns (compaction),
//! are lost: they are
//! reported in a failure event of kind `parked_events_lost` naming their offsets — never
//! dropped silently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{AckId, Event};
use crate::parking::reference::ParkedReference;
use crate::sinks::{DeliveryError, ErrorKind};
use crate::source::ranges::{read_ranges, reader, PartitionRange, ReadProgress};

/// References held in memory at most; past this the retry partition pauses until some are
/// done. A reference is at most a few hundred bytes (its ranges), usually one per batch.
pub const MAX_SCHEDULED: usize = 100_000;

/// Readers of the source topic open at once.
const MAX_READERS: usize = 4;

/// How long the log start of a partition is asked for before the read goes ahead without it.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long reading one reference's events back may take before the reader is dropped and the
/// read is tried again with a new one (a span is at most a few hundred thousand records, read
/// in seconds; a reader that stops receiving must not hold the reference for ever).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A reference waiting for its due time, with the acknowledgement its events complete.
#[derive(Debug)]
pub struct Scheduled {
    pub reference: ParkedReference,
    pub ack: AckId,
}

/// References by (due ms, arrival number).
#[derive(Debug, Default)]
pub(super) struct Schedule {
    waiting: BTreeMap<(i64, u64), Scheduled>,
    arrivals: u64,
    /// How many waiting references each (retry partition, assignment generation) has: a
    /// revocation is noticed by looking at these few pairs, not at every reference (with
    /// 30,000 references waiting, a scan on every commit tick took a tenth of the thread the
    /// source shares with the worker).
    held: HashMap<(i32, u64), usize>,
}

impl Schedule {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn push(&mut self, scheduled: Scheduled) {
        self.arrivals += 1;
        *self
            .held
            .entry((scheduled.ack.partition, scheduled.ack.generation))
            .or_default() += 1;
        self.waiting
            .insert((scheduled.reference.due_ms, self.arrivals), scheduled);
    }

    /// When the first reference is due.
    pub fn next_due(&self) -> Option<i64> {
        self.waiting.keys().next().map(|&(due, _)| due)
    }

    /// The references due at `now_ms`, in due order.
    pub fn take_due(&mut self, now_ms: i64) -> Vec<Scheduled> {
        let later = self.waiting.split_off(&(now_ms.saturating_add(1), 0));
        let due: Vec<Scheduled> = std::mem::replace(&mut self.waiting, later)
            .into_values()
            .collect();
        for s in &due {
            self.release(s.ack);
        }
        due
    }

    fn release(&mut self, ack: AckId) {
        let key = (ack.partition, ack.generation);
        if let Some(n) = self.held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&key);
            }
        }
    }

    /// Forgets references whose acknowledgement no longer counts (their retry partition was
    /// revoked: the new owner reads them again): those whose (partition, generation) is not
    /// `current`. Looks at the references themselves only when one of those pairs changed.
    pub fn forget_revoked(&mut self, mut current: impl FnMut(i32) -> Option<u64>) {
        let mut stale: HashSet<(i32, u64)> = HashSet::new();
        for &(partition, generation) in self.held.keys() {
            if current(partition) != Some(generation) {
                stale.insert((partition, generation));
            }
        }
        if stale.is_empty() {
            return;
        }
        self.waiting
            .retain(|_, s| !stale.contains(&(s.ack.partition, s.ack.generation)));
        self.held.retain(|key, _| !stale.contains(key));
    }
}

/// Readers of the source topic, reused between references.
pub(super) struct SourceReaders {
    config: Arc<Config>,
    idle: Mutex<Vec<Arc<StreamConsumer>>>,
    open: Semaphore,
}

/// A reference's events as read back: those found, and placeholders (no payload) for the
/// offsets the source topic no longer holds.
#[derive(Debug, Default)]
pub(super) struct ReadBack {
    pub found: Vec<Event>,
    pub lost: Vec<Event>,
}

impl SourceReaders {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
            open: Semaphore::new(MAX_READERS),
        }
    }

    /// Reads the events `reference` names from its topic; each carries `ack`. `Err` when no
    /// reader could be made or the read was stopped: the reference is then tried again later.
    pub async fn read(
        &self,
        reference: &ParkedReference,
        ack: AckId,
        stop: &CancellationToken,
    ) -> Result<ReadBack, String> {
        let _open = self
            .open
            .acquire()
            .await
            .expect("the readers' semaphore is never closed");
        let consumer = match self.idle.lock().await.pop() {
            Some(c) => c,
            None => Arc::new(reader(&self.config, "retry").map_err(|e| e.to_string())?),
        };
        let result = tokio::time::timeout(READ_TIMEOUT, read_with(&consumer, reference, ack, stop))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "reading the parked events back did not finish within {READ_TIMEOUT:?}"
                ))
            });
        if result.is_ok() {
            self.idle.lock().await.push(consumer);
        }
        result
    }
}

async fn read_with(
    consumer: &Arc<StreamConsumer>,
    reference: &ParkedReference,
    ack: AckId,
    stop: &CancellationToken,
) -> Result<ReadBack, String> {
    let topic = reference.topic.as_str();
    let mut ranges = Vec::new();
    let mut back = ReadBack::default();
    let mut wanted: HashMap<i32, &crate::parking::reference::PartitionOffsets> = HashMap::new();
    for p in &reference.partitions {
        let Some((first, end)) = p.span() else {
            continue;
        };
        // Below the log start nothing can be read: those offsets are lost, and the read
        // starts where the partition does (a reader sent below it would be reset elsewhere).
        // At or past its end nothing can come either (a damaged reference): the read stops
        // there, so that it ends.
        let (start, end) = match watermarks(consumer, topic, p.partition).await {
            Some((low, high)) => (first.max(low), end.min(high)),
            None => (first, end),
        };
        ranges.push(PartitionRange {
            partition: p.partition,
            start,
            end,
        });
        wanted.insert(p.partition, p);
    }
    let mut found: HashMap<(i32, i64), Bytes> = HashMap::new();
    read_ranges(
        consumer,
        topic,
        &ranges,
        &ReadProgress::default(),
        stop,
        |partition, offset, payload| {
            if wanted.get(&partition).is_some_and(|p| p.contains(offset)) {
                found.insert(
                    (partition, offset),
                    Bytes::copy_from_slice(payload.unwrap_or_default()),
                );
            }
            std::future::ready(())
        },
    )
    .await?;
    for p in &reference.partitions {
        for offset in p.iter() {
            let event = |raw: Bytes| Event {
                raw,
                partition: p.partition,
                offset,
                failure_event: false,
                ack,
            };
            match found.remove(&(p.partition, offset)) {
                Some(raw) => back.found.push(event(raw)),
                None => back.lost.push(event(Bytes::new())),
            }
        }
    }
    Ok(back)
}

/// The partition's first offset and one past its last, when the broker says (asked off the
/// runtime's threads: the client call blocks).
async fn watermarks(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let consumer = consumer.clone();
    let topic = topic.to_owned();
    let asked = tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)
    })
    .await;
    match asked {
        Ok(Ok(marks)) => Some(marks),
        Ok(Err(e)) => {
            tracing::warn!(partition, error = %e, "cannot read a source partition's watermarks; reading the parked range as it is");
            None
        }
        Err(_) => None,
    }
}

/// The error of events whose records are gone, naming them.
pub(super) fn lost_error(reference: &ParkedReference, lost: &[Event]) -> DeliveryError {
    let mut spans: Vec<String> = Vec::new();
    let mut run: Option<(i32, i64, i64)> = None;
    for e in lost {
        match run {
            Some((p, a, b)) if p == e.partition && b + 1 == e.offset => {
                run = Some((p, a, e.offset));
            }
            _ => {
                if let Some((p, a, b)) = run {
                    spans.push(span_text(p, a, b));
                }
                run = Some((e.partition, e.offset, e.offset));
            }
        }
    }
    if let Some((p, a, b)) = run {
        spans.push(span_text(p, a, b));
    }
    let shown: Vec<&str> = spans.iter().take(20).map(String::as_str).collect();
    let more = spans.len().saturating_sub(shown.len());
    DeliveryError {
        kind: ErrorKind::ParkedEventsLost,
        http_status: None,
        message: format!(
            "{} parked events are no longer in topic {} (retention or deletion passed them before attempt {}): {}{}. Last delivery error: {}",
            lost.len(),
            reference.topic,
            reference.attempt,
            shown.join(", "),
            if more > 0 { format!(" and {more} more ranges") } else { String::new() },
            reference.last_error
        ),
    }
}

fn span_text(partition: i32, first: i64, last: i64) -> String {
    if first == last {
        format!("partition {partition} offset {first}")
    } else {
        format!("partition {partition} offsets {first}-{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_event;
    use crate::parking::reference::{references, ReferenceHeader};

    fn reference(due_ms: i64, offsets: &[i64]) -> ParkedReference {
        let events: Vec<Event> = offsets.iter().map(|&o| test_event("{}", 1, o)).collect();
        references(
            &ReferenceHeader {
                project: "p",
                destination: "d",
                attempt: 1,
                due_ms,
                first_failure_ms: 0,
                last_error: "timeout",
                topic: "event-logs",
            },
            &events,
        )
        .remove(0)
    }

    fn ack(offset: i64) -> AckId {
        AckId {
            partition: 0,
            generation: 1,
            offset,
        }
    }

    #[test]
    fn references_come_out_in_due_order_whatever_their_arrival() {
        let mut s = Schedule::default();
        s.push(Scheduled {
            reference: reference(8 * 3_600_000, &[1]),
            ack: ack(0),
        });
        s.push(Scheduled {
            reference: reference(30_000, &[2]),
            ack: ack(1),
        });
        s.push(Scheduled {
            reference: reference(30_000, &[3]),
            ack: ack(2),
        });
        assert_eq!(s.next_due(), Some(30_000));
        assert!(s.take_due(29_999).is_empty());
        let due: Vec<i64> = s.take_due(30_000).iter().map(|d| d.ack.offset).collect();
        assert_eq!(due, vec![1, 2], "due ones, in arrival order among equals");
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(8 * 3_600_000));
        // Partition 0's generation is still 1: nothing is forgotten.
        s.forget_revoked(|p| (p == 0).then_some(1));
        assert_eq!(s.len(), 1);
        // It was revoked (and maybe assigned again, with a new generation).
        s.forget_revoked(|p| (p == 0).then_some(2));
        assert_eq!(s.len(), 0);
        assert!(s.held.is_empty());
    }

    #[test]
    fn lost_events_are_named_by_their_offsets() {
        let r = reference(0, &[5, 6, 7, 9]);
        let lost: Vec<Event> = [5, 6, 7, 9].iter().map(|&o| test_event("", 1, o)).collect();
        let e = lost_error(&r, &lost);
        assert_eq!(e.kind.as_str(), "parked_events_lost");
        assert!(
            e.message
                .contains("partition 1 offsets 5-7, partition 1 offset 9"),
            "{}",
            e.message
        );
        assert!(e
            .message
            .starts_with("4 parked events are no longer in topic event-logs"));
    }
}
