//! A table in a compacted Kafka topic: one row per key, the newest record wins, a tombstone
//! deletes. Every replica reads the topic to its end before it answers, then follows it, so a
//! row written by one replica reaches all of them within a second — shared state without a
//! database, and the only piece that reads or writes such a topic: the destinations store,
//! the fleet's published status and the replay jobs are three [`Codec`]s over it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How long the first read to the end may take.
const LOAD_LIMIT: Duration = Duration::from_secs(120);
/// How long a write waits to be read back.
const READ_BACK_LIMIT: Duration = Duration::from_secs(10);

/// How a table's records become rows.
pub trait Codec: Send + Sync + 'static {
    /// The row key, parsed from the record key.
    type Key: Ord + Clone + Send + Sync + std::fmt::Debug + 'static;
    /// The row, decoded from the record value.
    type Value: Clone + PartialEq + Send + Sync + 'static;

    /// What the table holds, for log lines and errors ("destinations store").
    fn name(&self) -> &'static str;
    /// The key of a record; `None` skips the record (logged).
    fn key(&self, raw: &[u8]) -> Option<Self::Key>;
    /// The row of a record; an error skips it (logged), or fails the first read when
    /// [`Codec::strict_load`].
    fn value(&self, key: &Self::Key, raw: &[u8]) -> Result<Self::Value, String>;
    /// Whether a record that does not decode while the table is first read fails the
    /// opening (the destinations store: a wrong key must not start with half the
    /// destinations). Default: skipped like any later one.
    fn strict_load(&self) -> bool {
        false
    }
    /// A key as errors name it.
    fn describe(&self, key: &Self::Key) -> String {
        format!("record {key:?}")
    }
}

/// The rows of a table, as of some point of its topic. Each row is shared, so that the
/// snapshot published after a change copies pointers, not every row.
pub type Rows<C> = BTreeMap<<C as Codec>::Key, Arc<<C as Codec>::Value>>;

/// The most records applied before the followers see a new snapshot: what arrived together
/// is published together (a replica's status rows come in bursts), so the cost of a snapshot
/// is paid once per burst rather than once per record.
const MAX_RECORDS_PER_SNAPSHOT: usize = 10_000;

/// A table could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Kafka refused or timed out.
    #[error("{name} (topic {topic}): {message}")]
    Kafka {
        /// What the table holds.
        name: &'static str,
        /// The table's topic.
        topic: String,
        /// What happened.
        message: String,
    },
    /// A record did not decode while a [`Codec::strict_load`] table was first read.
    #[error("{name} (topic {topic}): {key}: {message}")]
    Decode {
        /// What the table holds.
        name: &'static str,
        /// The table's topic.
        topic: String,
        /// The record, as the codec names it.
        key: String,
        /// Why it did not decode (never a secret).
        message: String,
    },
}

/// One table of one process.
pub struct Table<C: Codec> {
    codec: C,
    topic: String,
    producer: crate::kafka::KafkaProducer,
    rows: watch::Sender<Arc<Rows<C>>>,
    /// The next offset to read, per partition.
    positions: watch::Sender<HashMap<i32, i64>>,
}

impl<C: Codec> Table<C> {
    /// Opens the table: creates the topic (compacted, one partition) when missing, reads it
    /// to the end, then follows it until `stop`. `group` names the reader for the broker's
    /// logs; it never joins a group or commits.
    pub async fn open(
        config: &Config,
        codec: C,
        topic: &str,
        group: &str,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, TableError> {
        let name = codec.name();
        let kafka = |message: String| TableError::Kafka {
            name,
            topic: topic.to_owned(),
            message,
        };
        crate::kafka::ensure_topic(config, topic, 1, true)
            .await
            .map_err(|e| kafka(format!("cannot create the topic: {e}")))?;
        let producer =
            crate::kafka::KafkaProducer::create(&crate::kafka::store_producer_config(config))
                .map_err(|e| kafka(format!("cannot create a producer: {e}")))?;
        let consumer: StreamConsumer = crate::kafka::store_reader_config(config, group)
            .create()
            .map_err(|e| kafka(format!("cannot create a consumer: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| kafka(format!("cannot read the topic's metadata: {e}")))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(kafka("the topic has no partitions".into()));
        }
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|e| kafka(format!("cannot read partition {p}'s offsets: {e}")))?;
            ends.insert(p, (low, high));
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka(format!("cannot assign the topic: {e}")))?;

        let table = Arc::new(Table {
            codec,
            topic: topic.to_owned(),
            producer,
            rows: watch::Sender::new(Arc::new(BTreeMap::new())),
            positions: watch::Sender::new(ends.iter().map(|(p, (low, _))| (*p, *low)).collect()),
        });
        let mut rows = BTreeMap::new();
        // Read to the end as it was when we started.
        let started = Instant::now();
        loop {
            let done = {
                let positions = table.positions.borrow();
                ends.iter()
                    .all(|(p, (_, high))| positions.get(p).is_some_and(|pos| pos >= high))
            };
            if done {
                break;
            }
            if started.elapsed() > LOAD_LIMIT {
                return Err(kafka(
                    "could not read the topic to its end within 2 minutes".into(),
                ));
            }
            tokio::select! {
                () = stop.cancelled() => return Err(kafka("stopped while loading".into())),
                m = consumer.recv() => match m {
                    Ok(m) => {
                        table.apply(&mut rows, m.key(), m.payload(), true)?;
                        table.advance(m.partition(), m.offset());
                    }
                    Err(e) => tracing::warn!(topic = %topic, error = %e, "{name}: read error; retrying"),
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => table.sync_positions(&consumer),
            }
        }
        tracing::info!(topic = %topic, rows = rows.len(), "{name} loaded");
        table.rows.send_replace(Arc::new(rows.clone()));
        let follower = table.clone();
        tokio::spawn(async move { follower.follow(consumer, rows, stop).await });
        Ok(table)
    }

    /// The table's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The current rows.
    pub fn rows(&self) -> Arc<Rows<C>> {
        self.rows.borrow().clone()
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Rows<C>>> {
        self.rows.subscribe()
    }

    fn advance(&self, partition: i32, offset: i64) {
        self.positions.send_modify(|p| {
            let next = p.entry(partition).or_insert(0);
            *next = (*next).max(offset + 1);
        });
    }

    /// Offsets past the last record (compaction, transaction markers) never arrive as
    /// messages: take the consumer's own position.
    fn sync_positions(&self, consumer: &StreamConsumer) {
        if let Ok(positions) = consumer.position() {
            for e in positions.elements_for_topic(&self.topic) {
                if let Offset::Offset(pos) = e.offset() {
                    self.advance(e.partition(), pos - 1);
                }
            }
        }
    }

    /// Applies one record to `rows`; whether they changed.
    fn apply(
        &self,
        rows: &mut Rows<C>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        loading: bool,
    ) -> Result<bool, TableError> {
        let name = self.codec.name();
        let Some(key) = key.and_then(|k| self.codec.key(k)) else {
            tracing::warn!(topic = %self.topic, "{name}: record without a readable key; skipped");
            return Ok(false);
        };
        let Some(payload) = payload else {
            return Ok(rows.remove(&key).is_some());
        };
        match self.codec.value(&key, payload) {
            Ok(value) => {
                if rows.get(&key).is_some_and(|old| **old == value) {
                    return Ok(false);
                }
                rows.insert(key, Arc::new(value));
                Ok(true)
            }
            Err(message) if loading && self.codec.strict_load() => Err(TableError::Decode {
                name,
                topic: self.topic.clone(),
                key: self.codec.describe(&key),
                message,
            }),
            Err(message) => {
                tracing::warn!(topic = %self.topic, key = ?key, error = %message,
                    "{name}: unreadable record; skipped");
                Ok(false)
            }
        }
    }

    async fn follow(&self, consumer: StreamConsumer, mut rows: Rows<C>, stop: CancellationToken) {
        let name = self.codec.name();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                m = consumer.recv() => match m {
                    Ok(m) => {
                        let mut changed = matches!(self.apply(&mut rows, m.key(), m.payload(), false), Ok(true));
                        let mut read = vec![(m.partition(), m.offset())];
                        drop(m);
                        // Take what has already arrived with it, then publish once.
                        while read.len() < MAX_RECORDS_PER_SNAPSHOT {
                            let Some(Ok(m)) = consumer.recv().now_or_never() else {
                                break;
                            };
                            changed |= matches!(self.apply(&mut rows, m.key(), m.payload(), false), Ok(true));
                            read.push((m.partition(), m.offset()));
                        }
                        if changed {
                            self.rows.send_replace(Arc::new(rows.clone()));
                        }
                        // After the snapshot: a writer waiting to read its record back then
                        // finds it in the rows.
                        for (partition, offset) in read {
                            self.advance(partition, offset);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "{name}: read error; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                () = tokio::time::sleep(Duration::from_millis(500)) => self.sync_positions(&consumer),
            }
        }
    }

    /// Writes a row (`None`: a tombstone) and waits until this replica has read it back, so
    /// the next read here sees it.
    pub async fn put(&self, key: &str, value: Option<&[u8]>) -> Result<(), TableError> {
        let (partition, offset) = self.send(key, value).await?;
        let mut positions = self.positions.subscribe();
        let seen = tokio::time::timeout(
            READ_BACK_LIMIT,
            positions.wait_for(|p| p.get(&partition).is_some_and(|next| *next > offset)),
        )
        .await;
        if !matches!(seen, Ok(Ok(_))) {
            tracing::warn!(topic = %self.topic, partition, offset,
                "{}: written, but not read back within 10s", self.codec.name());
        }
        Ok(())
    }

    /// Writes a row without waiting to read it back (periodic publications); its partition
    /// and offset.
    pub async fn send(&self, key: &str, value: Option<&[u8]>) -> Result<(i32, i64), TableError> {
        let record = crate::kafka::Record {
            topic: &self.topic,
            key: key.as_bytes(),
            payload: value,
            headers: None,
        };
        let (partition, offset) = self
            .producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|e| TableError::Kafka {
                name: self.codec.name(),
                topic: self.topic.clone(),
                message: format!("cannot write: {e}"),
            })?;
        Ok((partition, offset))
    }
}
