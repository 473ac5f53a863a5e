//! The benchmark's side of the broker: creating and deleting topics (tansu keeps everything in
//! memory, so every run deletes what it made), producing the data — a backlog in large batches
//! before courier starts, or a steady rate while it runs — and reading a consumer group's
//! committed offsets from the outside, which is how a run knows that courier is done.
//!
//! Deliberately not courier's own Kafka code: the benchmark must not share the bugs or the
//! settings of what it measures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::data::EventSource;
use crate::sys::now_us;

pub fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

fn partition_count(brokers: &str, topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = client_config(brokers).create().ok()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len())
}

pub fn create_topic(brokers: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    // Retention as a production topic states it (7 days, no size bound, delete): courier reads
    // it to decide that parking by reference is safe (tansu reports only what a topic was
    // created with).
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1))
        .set("retention.ms", "604800000")
        .set("retention.bytes", "-1")
        .set("cleanup.policy", "delete");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = match rt.block_on(admin.create_topics([&topic], &opts)) {
        Ok(results) => results.into_iter().find_map(|r| r.err()).map(|e| e.1),
        Err(e) => e.rdkafka_error_code(),
    };
    if let Some(code) = failed {
        if code != RDKafkaErrorCode::TopicAlreadyExists {
            bail!("creating topic {name}: {code}");
        }
    }
    let start = Instant::now();
    while partition_count(brokers, name) != Some(partitions as usize) {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("topic {name} did not appear in the metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Deletes topics (tansu keeps everything in memory: a full run would otherwise hold
/// several GB). Failures are only reported.
pub fn delete_topics(brokers: &str, names: &[&str]) {
    let result = (|| -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for r in rt.block_on(admin.delete_topics(names, &opts))? {
            if let Err((topic, code)) = r {
                eprintln!("  could not delete topic {topic}: {code}");
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("  could not delete topics {names:?}: {e}");
    }
}

/// Records where the broker put each message: end offset per partition.
#[derive(Default)]
struct DeliveryCtx {
    ends: Mutex<HashMap<i32, i64>>,
    delivered: AtomicU64,
    errors: AtomicU64,
}

impl ClientContext for DeliveryCtx {}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self
                    .ends
                    .lock()
                    .expect("no thread panics while holding the end offsets");
                let end = ends.entry(m.partition()).or_insert(0);
                *end = (*end).max(m.offset() + 1);
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("  produce error: {e}");
                }
            }
        }
    }
}

fn producer(brokers: &str, linger_ms: u32) -> anyhow::Result<ThreadedProducer<DeliveryCtx>> {
    Ok(client_config(brokers)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "300000")
        .create_with_context(DeliveryCtx::default())?)
}

fn send(
    producer: &ThreadedProducer<DeliveryCtx>,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(value).partition(partition);
    loop {
        match producer.send::<(), [u8]>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => bail!("produce: {e}"),
        }
    }
}

/// Produces `n` events to a new topic in large batches; returns the end offset per partition.
pub fn produce_backlog(
    brokers: &str,
    topic: &str,
    partitions: i32,
    n: u64,
    projects: usize,
) -> anyhow::Result<HashMap<i32, i64>> {
    produce_backlog_from(
        brokers,
        topic,
        partitions,
        n,
        EventSource::with_projects(projects),
    )
}

/// [`produce_backlog`] with the events of `source`.
pub fn produce_backlog_from(
    brokers: &str,
    topic: &str,
    partitions: i32,
    n: u64,
    mut source: EventSource,
) -> anyhow::Result<HashMap<i32, i64>> {
    create_topic(brokers, topic, partitions)?;
    let producer = producer(brokers, 50)?;
    let mut buf = Vec::with_capacity(2048);
    let start = Instant::now();
    let mut bytes = 0u64;
    for i in 0..n {
        source.next(now_us(), &mut buf);
        bytes += buf.len() as u64;
        send(&producer, topic, (i % partitions as u64) as i32, &buf)?;
    }
    producer.flush(Duration::from_secs(300))?;
    let ctx = producer.context();
    let errors = ctx.errors.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if errors > 0 || delivered != n {
        bail!("producing {topic}: {delivered} of {n} delivered, {errors} errors");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  produced {n} events ({:.0} bytes each) to {topic} in {secs:.1}s ({:.0} events/s)",
        bytes as f64 / n as f64,
        n as f64 / secs
    );
    let ends = ctx
        .ends
        .lock()
        .expect("no thread panics while holding the end offsets")
        .clone();
    Ok(ends)
}

/// Produces `n` events from `source` to an existing topic at a steady `rate` (events/s;
/// `linger.ms=5`), event `i` to partition `i mod partitions`, each stamped with the wall clock
/// when it is sent. Returns the end offset per partition and when the last event was sent.
pub fn produce_steady(
    brokers: &str,
    topic: &str,
    partitions: i32,
    rate: u64,
    n: u64,
    source: &mut EventSource,
) -> anyhow::Result<(HashMap<i32, i64>, Instant)> {
    let producer = producer(brokers, 5)?;
    let mut buf = Vec::with_capacity(2048);
    let start = Instant::now();
    let mut last_sent = start;
    for i in 0..n {
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        source.next(now_us(), &mut buf);
        last_sent = Instant::now();
        send(&producer, topic, (i % partitions as u64) as i32, &buf)?;
    }
    let took = start.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60))?;
    println!(
        "  produced {n} events in {took:.1}s ({:.0} events/s)",
        n as f64 / took
    );
    let ctx = producer.context();
    let errors = ctx.errors.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if errors > 0 || delivered != n {
        bail!("producing {topic}: {delivered} of {n} delivered, {errors} errors");
    }
    let ends = ctx
        .ends
        .lock()
        .expect("no thread panics while holding the end offsets")
        .clone();
    Ok((ends, last_sent))
}

/// Reads a consumer group's committed offsets (OffsetFetch) without joining it.
pub struct OffsetWatch {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl OffsetWatch {
    pub fn new(brokers: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = client_config(brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        Ok(Self { consumer, tpl })
    }

    pub fn reached(&self, ends: &HashMap<i32, i64>) -> bool {
        let Ok(committed) = self
            .consumer
            .committed_offsets(self.tpl.clone(), Duration::from_secs(5))
        else {
            return false;
        };
        ends.iter().all(|(&p, &end)| {
            committed
                .elements()
                .iter()
                .find(|e| e.partition() == p)
                .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= end))
        })
    }
}
