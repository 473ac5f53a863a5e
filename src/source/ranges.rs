//! Reading exact ranges of a topic with a throwaway reader: assigned, never in the live group,
//! never committing — and watching that the broker returns each range from its first record
//! (a broker that answers a fetch from inside a record batch with the next batch would
//! otherwise silently read less than asked).
//!
//! The one "read these offsets of this partition" piece: `courier replay` reads a range or
//! the ranges its failure events name with it, and the retry worker reads the events a
//! parked reference names ([`crate::parking::reference`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::continuity::{Continuity, Verdict};
use crate::config::Config;

/// The offsets `[start, end)` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    /// The partition.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// One past the last offset read.
    pub end: i64,
}

impl PartitionRange {
    /// Offsets in the range.
    pub fn len(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// A reader of exact ranges: its own throwaway group id, so it never joins a live group,
/// and it never commits.
pub fn reader(
    config: &Config,
    purpose: &str,
) -> Result<StreamConsumer, rdkafka::error::KafkaError> {
    let group = format!(
        "courier-{purpose}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    );
    crate::kafka::reader_config(config, &group).create()
}

/// How a long read reports its progress.
#[derive(Default)]
pub struct ReadProgress<'a> {
    /// Called for every record read.
    pub tick: Option<&'a (dyn Fn() + Sync)>,
    /// Log a line this often (when no progress bar shows the reading).
    pub log_every: Option<Duration>,
}

/// Reads `ranges` of `topic`, calling `each(partition, offset, payload)` for every message in
/// them, in order per partition.
pub async fn read_ranges<F, Fut>(
    consumer: &StreamConsumer,
    topic: &str,
    ranges: &[PartitionRange],
    progress: &ReadProgress<'_>,
    stop: &CancellationToken,
    mut each: F,
) -> Result<u64, String>
where
    F: FnMut(i32, i64, Option<&[u8]>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut open: HashMap<i32, i64> = ranges
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| (r.partition, r.end))
        .collect();
    if open.is_empty() {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    for r in ranges.iter().filter(|r| !r.is_empty()) {
        tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.start))
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    // A reused reader paused these partitions when it finished an earlier range; the pause
    // outlives a new assignment.
    consumer.resume(&tpl).map_err(|e| e.to_string())?;
    // Each range's first record must be the one asked for: a broker that answers a fetch
    // from inside a record batch with the next batch (tansu) would skip the start of the
    // range, and a range inside one batch entirely.
    let mut continuity = Continuity::default();
    let mut last_read: HashMap<i32, i64> = HashMap::new();
    for r in ranges.iter().filter(|r| !r.is_empty()) {
        continuity.expect(r.partition, READER_GENERATION, r.start, 0);
    }
    let mut read = 0;
    let total: u64 = ranges.iter().map(PartitionRange::len).sum();
    let mut last_line = Instant::now();
    while !open.is_empty() {
        if progress
            .log_every
            .is_some_and(|every| last_line.elapsed() >= every)
        {
            tracing::info!(topic, read, of = total, "reading progress");
            last_line = Instant::now();
        }
        let message = tokio::select! {
            () = stop.cancelled() => return Err("interrupted; what was sent so far stays sent".into()),
            m = consumer.recv() => m,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                for (partition, to) in continuity.silent(std::time::Instant::now()) {
                    seek(consumer, topic, partition, to, &mut continuity);
                }
                // Offsets past the last message (transaction markers, compaction) never
                // arrive: a partition whose position reached its end is done (unless it is
                // still being rewound to the record it must return first).
                if let Ok(positions) = consumer.position() {
                    for e in positions.elements_for_topic(topic) {
                        if continuity.watches(e.partition()) {
                            continue;
                        }
                        if let Offset::Offset(pos) = e.offset() {
                            if open.get(&e.partition()).is_some_and(|end| pos >= *end) {
                                open.remove(&e.partition());
                            }
                        }
                    }
                }
                continue;
            }
        };
        let (partition, offset, payload) = match message {
            Ok(m) => (
                m.partition(),
                m.offset(),
                m.payload().map(Bytes::copy_from_slice),
            ),
            Err(e) => {
                tracing::warn!(topic, error = %e, "read error; retrying");
                continue;
            }
        };
        let Some(&end) = open.get(&partition) else {
            continue;
        };
        // Read before: a rewind brings such records back, also after its watch ended.
        if last_read
            .get(&partition)
            .is_some_and(|&last| offset <= last)
        {
            continue;
        }
        match continuity.check(partition, READER_GENERATION, offset) {
            Verdict::Take => {}
            Verdict::Seen => continue,
            Verdict::Rewind { to } => {
                seek(consumer, topic, partition, to, &mut continuity);
                continue;
            }
            Verdict::Gap { from, to } => {
                tracing::warn!(topic, partition, first_offset = from, last_offset = to - 1,
                    "offsets of the range were not returned by the broker even after rewinding (compaction, transaction markers or deleted records); going on without them");
            }
        }
        if offset >= end {
            finish(consumer, topic, partition, &mut open);
            continue;
        }
        last_read.insert(partition, offset);
        read += 1;
        if let Some(tick) = progress.tick {
            tick();
        }
        each(partition, offset, payload.as_deref()).await;
        if offset + 1 >= end {
            finish(consumer, topic, partition, &mut open);
        }
    }
    Ok(read)
}

/// The assignment generation of a reader: it is assigned once per read.
const READER_GENERATION: u64 = 1;

/// Rewinds a partition the broker skipped records of; a failed seek ends the watch (what
/// comes is then read as it comes).
fn seek(
    consumer: &StreamConsumer,
    topic: &str,
    partition: i32,
    to: i64,
    continuity: &mut Continuity,
) {
    if let Err(e) = consumer.seek(topic, partition, Offset::Offset(to), Duration::ZERO) {
        tracing::warn!(topic, partition, offset = to, error = %e, "cannot rewind a partition to read records the broker skipped");
        continuity.forget(partition);
    }
}

fn finish(consumer: &StreamConsumer, topic: &str, partition: i32, open: &mut HashMap<i32, i64>) {
    open.remove(&partition);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let _ = consumer.pause(&tpl);
}
