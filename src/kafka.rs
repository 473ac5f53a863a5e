//! Kafka client settings shared by courier's producers and admin client, and creation of the
//! topics courier owns.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::Config;

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

/// The brokers and every `[kafka.options]` property a non-consumer client understands.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("log_level", "4");
    for (k, v) in &config.kafka.options.0 {
        if !is_consumer_only(k) {
            client.set(k, v);
        }
    }
    client
}

/// A consumer that is assigned partitions, never subscribes and never commits (replays, the
/// destinations store): `group_id` only names the client. `[kafka.options]` apply except
/// those courier sets itself and `auto.offset.reset` (readers seek where they start).
pub fn reader_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", group_id)
        .set("enable.partition.eof", "false")
        .set("log_level", "4");
    for (k, v) in &config.kafka.options.0 {
        if !crate::source::PROTECTED_OPTIONS.contains(&k.as_str()) && k != "auto.offset.reset" {
            client.set(k, v);
        }
    }
    client
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    client
}

/// A producer whose writes are durable and never duplicated by its own retries: acks=all,
/// idempotent. Used for failure events and parked events, whose offsets complete only once
/// the broker has them.
pub fn durable_producer_config(config: &Config) -> ClientConfig {
    let mut client = client_config(config);
    client
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
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
    let admin: AdminClient<DefaultClientContext> = client_config(config).create()?;
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
