//! The destinations store: a compacted Kafka topic, key `project/id`, value the definition
//! (secrets sealed) or a tombstone. Every replica reads it to the end before it starts, then
//! follows it, so a change written by one replica reaches all of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::crypto::Cipher;
use super::secrets;
use super::ApiConfig;
use crate::config::Config;
use crate::fleet::table::{Codec, Table, TableError};

/// One stored destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its definition, secrets in clear (never printed: see [`Entry`]'s users).
    pub definition: Value,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Every stored destination by (project, id), as of some point of the topic.
pub type Snapshot = BTreeMap<(String, String), Arc<Entry>>;

/// A record's value.
#[derive(Serialize, Deserialize)]
struct Record {
    definition: Value,
    updated_at: DateTime<Utc>,
}

/// The store could not be opened or written.
pub type StoreError = TableError;

/// How the store's records become entries: key `project/id`, the value's secrets opened with
/// the cipher. A definition that does not decrypt fails the start (the wrong key must not
/// start with half the destinations) and is skipped afterwards.
struct StoreCodec {
    cipher: Cipher,
}

impl Codec for StoreCodec {
    type Key = (String, String);
    type Value = Entry;

    fn name(&self) -> &'static str {
        "destinations store"
    }

    fn key(&self, raw: &[u8]) -> Option<Self::Key> {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|k| k.split_once('/'))
            .map(|(p, i)| (p.to_owned(), i.to_owned()))
    }

    fn value(&self, (project, id): &Self::Key, raw: &[u8]) -> Result<Entry, String> {
        let record: Record = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let definition = secrets::open(&self.cipher, project, id, &record.definition).map_err(
            |(path, e)| {
                format!("{path}: {e}; is api.encryption_key_env the key the definitions were written with?")
            },
        )?;
        Ok(Entry {
            definition,
            updated_at: record.updated_at,
        })
    }

    fn strict_load(&self) -> bool {
        true
    }

    fn describe(&self, (project, id): &Self::Key) -> String {
        format!("destination {project}/{id}")
    }
}

/// The store of one process.
pub struct Store {
    table: Arc<Table<StoreCodec>>,
    cipher: Cipher,
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
        let key = api.key.as_ref().ok_or_else(|| TableError::Kafka {
            name: "destinations store",
            topic: topic.clone(),
            message: "no encryption key (api.encryption_key_env)".into(),
        })?;
        let codec = StoreCodec {
            cipher: Cipher::new(key),
        };
        let group = format!("{}-destinations-store", config.kafka.group_id);
        let table = Table::open(config, codec, &topic, &group, stop).await?;
        Ok(Arc::new(Store {
            table,
            cipher: Cipher::new(key),
        }))
    }

    /// The store's topic.
    pub fn topic(&self) -> &str {
        self.table.topic()
    }

    /// The current contents.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.table.rows()
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.table.subscribe()
    }

    /// Writes `definition` (secrets in clear; sealed here) and waits until this replica has
    /// read it back, so the next read sees it.
    pub async fn put(&self, project: &str, id: &str, definition: &Value) -> Result<(), StoreError> {
        let record = Record {
            definition: secrets::seal(&self.cipher, project, id, definition),
            updated_at: Utc::now(),
        };
        let payload = serde_json::to_vec(&record).expect("a record serializes");
        self.table.put(&key(project, id), Some(&payload)).await
    }

    /// Writes a tombstone for the destination and waits until it is read back.
    pub async fn delete(&self, project: &str, id: &str) -> Result<(), StoreError> {
        self.table.put(&key(project, id), None).await
    }
}
