//! Kafka client settings — the one place courier builds a librdkafka client configuration,
//! so `[kafka.options]` reach every client the same way (filtered by what the client is) and
//! the settings the commit rules depend on are set last, where no option can change them —
//! and creation of the topics courier owns.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::{Config, KafkaOptions};

pub mod admin;
pub mod producer;

pub use producer::{KafkaProducer, Record};

/// librdkafka properties that only consumers understand (passing them to a producer only
/// produces warnings).
pub fn is_consumer_only(key: &str) -> bool {
    const CONSUMER: &[&str] = &[
        "group.id",
        "group.instance.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.commit.interval.ms",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "group.protocol",
        "group.remote.assignor",
        "isolation.level",
        "check.crcs",
        "allow.auto.create.topics",
        "enable.partition.eof",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.error.backoff.ms",
        "fetch.queue.backoff.ms",
        "coordinator.query.interval.ms",
    ];
    CONSUMER.contains(&key)
}

/// What a client does, which decides the `[kafka.options]` it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A producer or an admin client: every option but the consumer-only ones (they would
    /// only produce warnings).
    Producer,
    /// A member of a consumer group that commits (the source, the retry worker): every option
    /// (validation refuses those courier sets itself).
    GroupMember,
    /// A consumer that is assigned partitions, never subscribes and never commits: every
    /// option but those courier sets itself and `auto.offset.reset` (readers seek where they
    /// start).
    Reader,
}

impl Role {
    fn takes(self, key: &str) -> bool {
        match self {
            Role::Producer => !is_consumer_only(key),
            Role::GroupMember => true,
            Role::Reader => !KafkaOptions::PROTECTED.contains(&key) && key != "auto.offset.reset",
        }
    }
}

/// Every client courier creates starts here: the brokers, courier's `defaults` for the
/// client (which `[kafka.options]` may override), then the options its role takes. What a
/// caller sets afterwards, no option can change.
fn base(config: &Config, role: Role, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("log_level", "4");
    for (k, v) in defaults {
        client.set(*k, *v);
    }
    for (k, v) in &config.kafka.options.0 {
        if role.takes(k) {
            client.set(k, v);
        }
    }
    client
}

/// The brokers and every `[kafka.options]` property a non-consumer client understands
/// (producers, the admin client).
pub fn client_config(config: &Config) -> ClientConfig {
    base(config, Role::Producer, &[])
}

/// A consumer that is assigned partitions, never subscribes and never commits (replays, the
/// destinations store): `group_id` only names the client. `[kafka.options]` apply except
/// those courier sets itself and `auto.offset.reset` (readers seek where they start).
pub fn reader_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = base(
        config,
        Role::Reader,
        &[
            ("group.id", group_id),
            ("enable.partition.eof", "false"),
            // Readers read exact ranges (replays, parked references read back, up to four
            // at once): a small prefetch bounds what they hold beyond the range.
            ("queued.max.messages.kbytes", READER_PREFETCH_KIB),
            ("fetch.queue.backoff.ms", SOURCE_FETCH_QUEUE_BACKOFF_MS),
        ],
    );
    client
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    client
}

/// Prefetch of a range reader, KiB.
const READER_PREFETCH_KIB: &str = "4096";

/// Prefetch of a group member (the source, the retry worker), KiB, instead of librdkafka's
/// 64 MiB, which is memory beyond the in-flight budget that a sidecar's limit must also
/// cover. 8 MiB lasts about 40 ms at 200 MB/s, many fetch round trips: against 16 MiB it
/// held 7–36 MB less at the benchmark's peak for the same throughput. Measurements in
/// docs/benchmarks.md ("Source prefetch" and "A shallower prefetch").
const SOURCE_PREFETCH_KIB: &str = "8192";

/// `fetch.queue.backoff.ms` of a group member and of a range reader (librdkafka's default:
/// 1,000): how long a partition whose prefetch queue is full waits before librdkafka looks
/// again. 2 ms keeps a small queue topped up; the cost is a timer wake-up of librdkafka's
/// broker thread every 2 ms while reading waits for the in-flight budget.
const SOURCE_FETCH_QUEUE_BACKOFF_MS: &str = "2";

/// A member of consumer group `group_id` (not yet subscribed) that commits only what courier
/// commits explicitly: the source and the retry worker.
pub fn group_consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = base(
        config,
        Role::GroupMember,
        &[
            ("group.id", group_id),
            // Incremental rebalances: a member joining or leaving moves only the partitions
            // that change owner, instead of stopping every member's work.
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.partition.eof", "false"),
            // librdkafka's statistics carry each partition's lag for courier_consumer_lag.
            ("statistics.interval.ms", "10000"),
            // What librdkafka reads ahead is outside the in-flight budget: bounded here
            // (overridable through `[kafka.options]`).
            ("queued.max.messages.kbytes", SOURCE_PREFETCH_KIB),
            // When that queue is full (reading waits for the in-flight budget), librdkafka
            // postpones the partition's next fetch by this much — 1 s by default, which with
            // a small prefetch left the pipeline empty after every pause (throughput halved
            // in the benchmark); 2 ms refills it as soon as there is room.
            ("fetch.queue.backoff.ms", SOURCE_FETCH_QUEUE_BACKOFF_MS),
        ],
    );
    // `auto.offset.reset` says only where a partition the group never committed starts, and
    // courier applies it itself (see `source::rebalance`); librdkafka's own reset, which also
    // fires for an out-of-range offset, always re-reads rather than skips.
    // Offsets are committed explicitly, and only up to the contiguous completed point.
    client
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    client
}

/// A producer whose writes are durable and never duplicated by its own retries: acks=all,
/// idempotent. Used for failure events and parked events, whose offsets complete only once
/// the broker has them.
pub fn durable_producer_config(config: &Config) -> ClientConfig {
    durable(config, &[])
}

fn durable(config: &Config, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = base(config, Role::Producer, defaults);
    client
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    client
}

/// librdkafka's queue of parked records not yet acknowledged, at most (KiB). Its default
/// (1 GiB) let a stalled destination's parked copies reach hundreds of MB on top of the
/// in-flight budget; when the queue is full, parking waits (the lane's events stay counted
/// in the budget meanwhile).
const PARK_QUEUE_KBYTES: &str = "32768";

/// The durable producer of the retry topic, its queue capped at [`PARK_QUEUE_KBYTES`] unless
/// `[kafka.options]` say otherwise.
pub fn parking_producer_config(config: &Config) -> ClientConfig {
    durable(config, &[("queue.buffering.max.kbytes", PARK_QUEUE_KBYTES)])
}

/// The destinations store's producer: each definition written at once, acknowledged by
/// every replica, or an error within 10 s (the API answers 503 then).
pub fn store_producer_config(config: &Config) -> ClientConfig {
    let mut client = client_config(config);
    client
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "10000");
    client
}

/// The destinations store's reader: a [`reader_config`] that starts at the beginning of the
/// compacted topic.
pub fn store_reader_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = reader_config(config, group_id);
    client.set("auto.offset.reset", "earliest");
    client
}

/// Creates `topic` with `partitions` partitions (and `cleanup.policy=compact` when
/// `compact`) unless it exists, and returns how many partitions it has. Real clusters often
/// disable automatic topic creation, so courier creates the topics it owns.
pub async fn ensure_topic(
    config: &Config,
    topic: &str,
    partitions: i32,
    compact: bool,
) -> Result<i32, KafkaError> {
    let admin = admin::Admin::create(&client_config(config))?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let existing = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len());
    if let Some(count) = existing {
        return Ok(i32::try_from(count).unwrap_or(i32::MAX));
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // -1: the cluster's default replication factor (brokers that predate it refuse it).
    for replication in [-1, 1] {
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        if compact {
            new = new.set("cleanup.policy", "compact");
        }
        let results = admin.create_topics([&new], &options).await?;
        match results.into_iter().next() {
            Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {
                tracing::info!(topic, partitions, compact, "created topic");
                return Ok(partitions);
            }
            Some(Err((_, code))) if replication == -1 => {
                tracing::debug!(
                    topic,
                    ?code,
                    "topic creation with the default replication factor refused; trying 1"
                );
            }
            Some(Err((_, code))) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Config {
        let text = format!(
            "[kafka]\nbrokers = \"localhost:9092\"\n{options}\n[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"file\"\npath = \"/tmp/courier-parking-test.ndjson\"\n"
        );
        crate::config::parse("parking.toml", &text, &Default::default()).unwrap()
    }

    #[test]
    fn the_parking_queue_is_capped_unless_configured() {
        let default = parking_producer_config(&parse(""));
        assert_eq!(
            default.get("queue.buffering.max.kbytes"),
            Some(PARK_QUEUE_KBYTES)
        );
        assert_eq!(default.get("acks"), Some("all"));
        let own = parking_producer_config(&parse(
            "[kafka.options]\n\"queue.buffering.max.kbytes\" = \"1024\"",
        ));
        assert_eq!(own.get("queue.buffering.max.kbytes"), Some("1024"));
    }

    #[test]
    fn the_group_members_prefetch_is_bounded_unless_configured() {
        let default = group_consumer_config(&parse(""), "g");
        assert_eq!(
            default.get("queued.max.messages.kbytes"),
            Some(SOURCE_PREFETCH_KIB)
        );
        let own = group_consumer_config(
            &parse("[kafka.options]\n\"queued.max.messages.kbytes\" = \"65536\""),
            "g",
        );
        assert_eq!(own.get("queued.max.messages.kbytes"), Some("65536"));
        assert_eq!(
            default.get("fetch.queue.backoff.ms"),
            Some(SOURCE_FETCH_QUEUE_BACKOFF_MS)
        );
    }

    #[test]
    fn each_client_takes_the_options_its_role_understands() {
        let config = parse(
            "[kafka.options]\n\"fetch.min.bytes\" = \"10\"\n\"linger.ms\" = \"50\"\n\"auto.offset.reset\" = \"earliest\"\n\"partition.assignment.strategy\" = \"range\"",
        );
        let producer = client_config(&config);
        assert_eq!(producer.get("fetch.min.bytes"), None, "consumer-only");
        assert_eq!(producer.get("linger.ms"), Some("50"));
        assert_eq!(durable_producer_config(&config).get("linger.ms"), Some("5"));
        let member = group_consumer_config(&config, "g");
        assert_eq!(member.get("fetch.min.bytes"), Some("10"));
        assert_eq!(member.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(member.get("enable.auto.commit"), Some("false"));
        let reader = reader_config(&config, "r");
        assert_eq!(reader.get("auto.offset.reset"), None);
        assert_eq!(reader.get("group.id"), Some("r"));
        assert_eq!(
            store_reader_config(&config, "s").get("auto.offset.reset"),
            Some("earliest")
        );
    }
}
