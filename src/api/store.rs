//! The destinations store: a compacted Kafka topic, key `project/id`, value the definition
//! (secrets sealed) or a tombstone. Every replica reads it to the end before it starts, then
//! follows it, so a change written by one replica reaches all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::crypto::Cipher;
use super::secrets;
use super::ApiConfig;
use crate::config::Config;

/// One stored destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its definition, secrets in clear (never printed: see [`Entry`]'s users).
    pub definition: Value,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Every stored destination, as of some point of the topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// By (project, id).
    pub entries: BTreeMap<(String, String), Entry>,
}

/// A record's value.
#[derive(Serialize, Deserialize)]
struct Record {
    definition: Value,
    updated_at: DateTime<Utc>,
}

/// The store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Kafka refused or timed out.
    #[error("destinations store (topic {topic}): {message}")]
    Kafka {
        /// The store's topic.
        topic: String,
        /// What happened.
        message: String,
    },
    /// A stored definition could not be decrypted with the configured key.
    #[error("destinations store (topic {topic}): destination {project}/{id}: {message}; is api.encryption_key_env the key the definitions were written with?")]
    Decrypt {
        /// The store's topic.
        topic: String,
        /// The destination's project.
        project: String,
        /// The destination's id.
        id: String,
        /// What failed (never the secret).
        message: String,
    },
}

/// The store of one process.
pub struct Store {
    topic: String,
    producer: FutureProducer,
    cipher: Cipher,
    snapshot: watch::Sender<Arc<Snapshot>>,
    /// The next offset to read, per partition.
    positions: watch::Sender<HashMap<i32, i64>>,
}

/// The record key of a destination.
pub fn key(project: &str, id: &str) -> String {
    format!("{project}/{id}")
}

impl Store {
    /// Opens the store: creates the topic when missing, reads it to the end (failing when a
    /// stored secret does not decrypt), then follows it until `stop`.
    pub async fn open(
        config: &Config,
        api: &ApiConfig,
        stop: CancellationToken,
    ) -> Result<Arc<Store>, StoreError> {
        let topic = api.destinations_topic.clone();
        let kafka = |message: String| StoreError::Kafka {
            topic: topic.clone(),
            message,
        };
        let key = api
            .key
            .as_ref()
            .ok_or_else(|| kafka("no encryption key (api.encryption_key_env)".into()))?;
        crate::kafka::ensure_topic(config, &topic, 1, true)
            .await
            .map_err(|e| kafka(format!("cannot create the topic: {e}")))?;
        let producer: FutureProducer = crate::kafka::store_producer_config(config)
            .create()
            .map_err(|e| kafka(format!("cannot create a producer: {e}")))?;

        let consumer =
            reader(config).map_err(|e| kafka(format!("cannot create a consumer: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
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
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .map_err(|e| kafka(format!("cannot read partition {p}'s offsets: {e}")))?;
            ends.insert(p, (low, high));
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .map_err(|e| kafka(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka(format!("cannot assign the topic: {e}")))?;

        let store = Arc::new(Store {
            topic: topic.clone(),
            producer,
            cipher: Cipher::new(key),
            snapshot: watch::Sender::new(Arc::new(Snapshot::default())),
            positions: watch::Sender::new(ends.iter().map(|(p, (low, _))| (*p, *low)).collect()),
        });
        let mut entries = BTreeMap::new();
        // Read to the end as it was when we started.
        let started = std::time::Instant::now();
        loop {
            let done = {
                let positions = store.positions.borrow();
                ends.iter()
                    .all(|(p, (_, high))| positions.get(p).is_some_and(|pos| pos >= high))
            };
            if done {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(kafka(
                    "could not read the topic to its end within 2 minutes".into(),
                ));
            }
            tokio::select! {
                () = stop.cancelled() => return Err(kafka("stopped while loading".into())),
                m = consumer.recv() => match m {
                    Ok(m) => {
                        store.apply(&mut entries, m.key(), m.payload(), true)?;
                        store.advance(m.partition(), m.offset());
                    }
                    Err(e) => tracing::warn!(topic = %topic, error = %e, "destinations store: read error; retrying"),
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => store.sync_positions(&consumer),
            }
        }
        tracing::info!(topic = %topic, destinations = entries.len(), "destinations store loaded");
        store.snapshot.send_replace(Arc::new(Snapshot {
            entries: entries.clone(),
        }));
        let follower = store.clone();
        tokio::spawn(async move { follower.follow(consumer, entries, stop).await });
        Ok(store)
    }

    /// The store's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The current contents.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
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

    /// Applies one record to `entries`. A definition that does not decrypt fails while
    /// `loading` (start-up must not go on with the wrong key) and is skipped afterwards.
    fn apply(
        &self,
        entries: &mut BTreeMap<(String, String), Entry>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        loading: bool,
    ) -> Result<bool, StoreError> {
        let Some((project, id)) = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.split_once('/'))
            .map(|(p, i)| (p.to_owned(), i.to_owned()))
        else {
            tracing::warn!(topic = %self.topic, "destinations store: record without a project/id key; skipped");
            return Ok(false);
        };
        let Some(payload) = payload else {
            return Ok(entries.remove(&(project, id)).is_some());
        };
        let record: Record = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = %self.topic, %project, destination = %id, error = %e,
                    "destinations store: unreadable record; skipped");
                return Ok(false);
            }
        };
        match secrets::open(&self.cipher, &project, &id, &record.definition) {
            Ok(definition) => {
                let entry = Entry {
                    definition,
                    updated_at: record.updated_at,
                };
                let changed = entries.get(&(project.clone(), id.clone())) != Some(&entry);
                entries.insert((project, id), entry);
                Ok(changed)
            }
            Err((path, e)) => {
                let error = StoreError::Decrypt {
                    topic: self.topic.clone(),
                    project,
                    id,
                    message: format!("{path}: {e}"),
                };
                if loading {
                    Err(error)
                } else {
                    tracing::error!(error = %error, "destinations store: record skipped");
                    Ok(false)
                }
            }
        }
    }

    async fn follow(
        &self,
        consumer: StreamConsumer,
        mut entries: BTreeMap<(String, String), Entry>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                m = consumer.recv() => match m {
                    Ok(m) => {
                        if let Ok(true) = self.apply(&mut entries, m.key(), m.payload(), false) {
                            self.snapshot.send_replace(Arc::new(Snapshot { entries: entries.clone() }));
                        }
                        self.advance(m.partition(), m.offset());
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "destinations store: read error; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                () = tokio::time::sleep(Duration::from_millis(500)) => self.sync_positions(&consumer),
            }
        }
    }

    /// Writes `definition` (secrets in clear; sealed here) and waits until this replica has
    /// read it back, so the next read sees it.
    pub async fn put(&self, project: &str, id: &str, definition: &Value) -> Result<(), StoreError> {
        let record = Record {
            definition: secrets::seal(&self.cipher, project, id, definition),
            updated_at: Utc::now(),
        };
        let payload = serde_json::to_vec(&record).expect("a record serializes");
        self.write(project, id, Some(&payload)).await
    }

    /// Writes a tombstone for the destination and waits until it is read back.
    pub async fn delete(&self, project: &str, id: &str) -> Result<(), StoreError> {
        self.write(project, id, None).await
    }

    async fn write(
        &self,
        project: &str,
        id: &str,
        payload: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let key = key(project, id);
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic).key(&key);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        let delivered = self
            .producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| StoreError::Kafka {
                topic: self.topic.clone(),
                message: format!("cannot write: {e}"),
            })?;
        let (partition, offset) = (delivered.partition, delivered.offset);
        let mut positions = self.positions.subscribe();
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            positions.wait_for(|p| p.get(&partition).is_some_and(|next| *next > offset)),
        )
        .await;
        if !matches!(seen, Ok(Ok(_))) {
            tracing::warn!(topic = %self.topic, partition, offset,
                "destinations store: written, but not read back within 10s");
        }
        Ok(())
    }
}

fn reader(config: &Config) -> Result<StreamConsumer, rdkafka::error::KafkaError> {
    let group = format!("{}-destinations-store", config.kafka.group_id);
    crate::kafka::store_reader_config(config, &group).create()
}
