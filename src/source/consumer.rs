//! The group consumers courier reads with: the Event Logs topic in `kafka.group_id`, the
//! retry topic in `<kafka.group_id>-retry`, and where a partition the group never committed
//! starts.

use rdkafka::consumer::StreamConsumer;

use super::SourceContext;
use crate::config::Config;

/// The consumer courier reads the Event Logs topic with.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// Which topic a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The Event Logs topic, in `kafka.group_id`.
    EventLogs,
    /// The retry topic, in `<kafka.group_id>-retry`, always from the earliest offset a new
    /// group finds (parked events must never be skipped).
    Retry,
}

/// Creates a group consumer (not yet subscribed).
pub fn consumer(
    config: &Config,
    input: Input,
    context: SourceContext,
) -> Result<SourceConsumer, rdkafka::error::KafkaError> {
    let group = match input {
        Input::EventLogs => config.kafka.group_id.clone(),
        Input::Retry => format!("{}-retry", config.kafka.group_id),
    };
    // Where a partition the group never committed starts is courier's to apply (see
    // `rebalance`), not librdkafka's.
    let start = match input {
        Input::EventLogs => new_partition_start(config),
        Input::Retry => rdkafka::Offset::Beginning,
    };
    crate::kafka::group_consumer_config(config, &group)
        .create_with_context(context.with_new_partition_start(start))
}

/// Where a partition of the Event Logs topic that the group never committed starts:
/// `[kafka.options] auto.offset.reset`, `latest` unless set.
pub fn new_partition_start(config: &Config) -> rdkafka::Offset {
    match config
        .kafka
        .options
        .0
        .get("auto.offset.reset")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        Some("earliest" | "smallest" | "beginning") => rdkafka::Offset::Beginning,
        _ => rdkafka::Offset::End,
    }
}
