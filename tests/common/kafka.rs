//! Kafka helpers: create topics, produce, read a topic back, read and commit a group's
//! offsets. They use rdkafka directly (not courier's code) and work around the broker quirks
//! documented in `TESTING.md`: one record per batch where a consumer may start mid-batch
//! (quirk 2), topic ends computed from the producer's offsets (quirk 3), topics created
//! explicitly (quirk 5).

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::broker::tansu_bin;
use super::{rt, unique_number, wait_until};

/// Client properties every harness client uses against tansu.
pub(super) fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

/// Partition count of `topic`, if the broker knows the topic.
pub fn partition_count(brokers: &str, topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = base_config(brokers).create().expect("metadata client");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len())
}

/// Creates `name` with `partitions` partitions (CreateTopics through rdkafka's AdminClient,
/// falling back to `tansu topic create`) and waits until the metadata shows it.
pub fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        base_config(brokers).create().expect("create admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = rt().block_on(admin.create_topics([&topic], &opts));
    let admin_error = match result {
        Ok(results) => results
            .into_iter()
            .find_map(|r| r.err())
            .map(|(t, e)| format!("{t}: {e}")),
        Err(e) => Some(e.to_string()),
    };
    if let Some(err) = admin_error {
        eprintln!("CreateTopics for {name} failed ({err}); trying `tansu topic create`");
        let out = Command::new(tansu_bin())
            .args(["topic", "create", name])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://{brokers}")])
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(
        &format!("topic {name} with {partitions} partitions in the metadata"),
        Duration::from_secs(15),
        Duration::from_millis(100),
        || partition_count(brokers, name) == Some(partitions as usize),
    );
}

/// Produces `messages` (`(partition, value)`; `None` lets the partitioner choose) to `topic`
/// and returns the `(partition, offset)` the broker gave each message, in input order.
///
/// One record per batch (`linger.ms=0`, `batch.num.messages=1`): tansu skips the rest of a
/// multi-record batch when a consumer starts fetching in its middle (TESTING.md quirk 2).
pub fn produce<I>(brokers: &str, topic: &str, messages: I) -> Vec<(i32, i64)>
where
    I: IntoIterator<Item = (Option<i32>, Vec<u8>)>,
{
    let messages: Vec<(Option<i32>, Vec<u8>)> = messages.into_iter().collect();
    let producer: FutureProducer = base_config(brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", "16000000")
        .set("compression.type", "none")
        .create()
        .expect("create producer");
    let results = rt().block_on(async {
        let mut out = Vec::with_capacity(messages.len());
        // Bounded concurrency: fast, and keeps librdkafka's queue small.
        for chunk in messages.chunks(500) {
            let sends = chunk.iter().map(|(partition, value)| {
                let mut record = FutureRecord::<(), [u8]>::to(topic).payload(value.as_slice());
                if let Some(p) = partition {
                    record = record.partition(*p);
                }
                producer.send(record, Duration::from_secs(30))
            });
            out.extend(futures::future::join_all(sends).await);
        }
        out
    });
    let produced: Vec<(i32, i64)> = results
        .into_iter()
        .map(|r| match r {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("producing to {topic} failed: {e}"),
        })
        .collect();
    let distinct: HashSet<&(i32, i64)> = produced.iter().collect();
    assert_eq!(
        distinct.len(),
        produced.len(),
        "the broker gave two messages the same partition/offset"
    );
    produced
}

/// Like [`produce`], but in large multi-record batches, as real producers write: what a
/// broker that skips the rest of a batch fetched from its middle (tansu, quirk 2) trips over.
pub fn produce_batched(
    brokers: &str,
    topic: &str,
    messages: Vec<(i32, Vec<u8>)>,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = base_config(brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "1000")
        .set("batch.size", "1000000")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("compression.type", "none")
        .create()
        .expect("create producer");
    let results = rt().block_on(async {
        let sends = messages.iter().map(|(partition, value)| {
            producer.send(
                FutureRecord::<(), [u8]>::to(topic)
                    .payload(value.as_slice())
                    .partition(*partition),
                Duration::from_secs(30),
            )
        });
        futures::future::join_all(sends).await
    });
    results
        .into_iter()
        .map(|r| match r {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("producing to {topic} failed: {e}"),
        })
        .collect()
}

/// End offset (last offset + 1) per partition, computed from what the producer got back —
/// never from the broker's high watermark, which tansu can report wrong (quirk 3).
pub fn end_offsets(produced: &[(i32, i64)]) -> HashMap<i32, i64> {
    let mut ends = HashMap::new();
    for &(p, o) in produced {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    ends
}

/// Every message of `topic` as `(partition, offset, value)`, read from the beginning of all
/// partitions by a fresh consumer (no group commits) until nothing new arrived for `idle`.
pub fn read_all(brokers: &str, topic: &str, idle: Duration) -> Vec<(i32, i64, Vec<u8>)> {
    read_records(brokers, topic, idle)
        .into_iter()
        .map(|r| (r.partition, r.offset, r.value))
        .collect()
}

/// One record read back, with its headers as `name=value` text.
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// The record key, when it has one.
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<String>,
}

/// Like [`read_all`], with each record's headers.
pub fn read_records(brokers: &str, topic: &str, idle: Duration) -> Vec<Record> {
    read_records_within(brokers, topic, idle, None)
}

/// Like [`read_records`], but stops after `max` in all even if records keep coming (a topic
/// written to all the time, such as the status topic's heartbeats).
pub fn read_records_within(
    brokers: &str,
    topic: &str,
    idle: Duration,
    max: Option<Duration>,
) -> Vec<Record> {
    let started = Instant::now();
    let partitions = partition_count(brokers, topic)
        .unwrap_or_else(|| panic!("read_records: topic {topic} does not exist"));
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", format!("harness-reader-{}", unique_number()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "5")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign partitions");
    let mut out = Vec::new();
    let mut last_new = Instant::now();
    while last_new.elapsed() < idle && max.is_none_or(|max| started.elapsed() < max) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                                format!("{}={value}", h.key)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("read_records({topic}): {e}"),
            None => {}
        }
    }
    out
}

/// Commits `offsets` (`(partition, offset)`) of `topic` for group `group_id`, as if a member
/// had consumed up to there.
pub fn commit_group_offsets(brokers: &str, group_id: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset client");
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .expect("add partition");
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit group offsets");
}

/// The log start (low watermark) and end of one partition, as the broker reports them.
pub fn watermarks(brokers: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = base_config(brokers)
        .set(
            "group.id",
            format!("harness-watermarks-{}", unique_number()),
        )
        .create()
        .expect("create client");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("fetch watermarks")
}

/// The offsets group `group_id` has committed for `topic` (OffsetFetch), per partition that
/// has one.
pub fn committed_offsets(brokers: &str, group_id: &str, topic: &str) -> HashMap<i32, i64> {
    let partitions = partition_count(brokers, topic)
        .unwrap_or_else(|| panic!("committed_offsets: topic {topic} does not exist"));
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset client");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let mut last_err = None;
    for _ in 0..5 {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
            Ok(result) => {
                return result
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect();
            }
            Err(e) => {
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    panic!("OffsetFetch for group {group_id} failed: {last_err:?}");
}

/// Produces `values` as [`produce`] does, spread over partitions `0..partitions` in turn (the
/// i-th value to partition `i % partitions`).
pub fn produce_spread<I>(brokers: &str, topic: &str, partitions: i32, values: I) -> Vec<(i32, i64)>
where
    I: IntoIterator<Item = Vec<u8>>,
{
    assert!(partitions > 0, "spread over no partitions");
    produce(
        brokers,
        topic,
        values
            .into_iter()
            .zip((0..partitions).cycle())
            .map(|(value, partition)| (Some(partition), value)),
    )
}
