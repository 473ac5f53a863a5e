//! The process-wide sections (`[kafka]`, `[failures]`, `[limits]`, `[server]`, `[security]`,
//! `[metrics]`, `[log]`) and the bounds of their settings. Destinations and `[delivery]` have
//! their own modules; these settings come from the operator's file only.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{bounds, Errors};

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The Event Logs topic.
    pub topic: String,
    /// The consumer group shared by every replica.
    pub group_id: String,
    /// How often completed offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// On a rebalance, how long revoked partitions' events may take to finish before the
    /// contiguous point is committed and the rest is left to the new owner.
    #[serde(with = "humantime_serde")]
    pub revoke_timeout: Duration,
    /// Any librdkafka property, passed through unchanged.
    pub options: KafkaOptions,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "event-logs".into(),
            group_id: "courier".into(),
            commit_interval: Duration::from_secs(1),
            revoke_timeout: Duration::from_secs(10),
            options: KafkaOptions::default(),
        }
    }
}

/// librdkafka properties from `[kafka.options]`. Values that look like credentials are masked
/// when printed.
#[derive(Clone, Default)]
pub struct KafkaOptions(pub BTreeMap<String, String>);

impl KafkaOptions {
    /// librdkafka properties courier sets itself: changing them would break the commit rules
    /// (validation refuses them here; the daemon builds the Kafka clients).
    pub const PROTECTED: &'static [&'static str] = &[
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
    ];

    /// Whether a property name holds a credential.
    pub fn is_sensitive(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        ["password", "secret", "token", "key.pem", "private"]
            .iter()
            .any(|s| key.contains(s))
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.0 {
            if Self::is_sensitive(k) {
                map.entry(k, &"****");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl<'de> Deserialize<'de> for KafkaOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Value>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let text = match v {
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "option {k:?} must be a string, number or boolean"
                    )))
                }
            };
            out.insert(k, text);
        }
        Ok(KafkaOptions(out))
    }
}

/// `[failures]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailuresConfig {
    /// Topic for delivery-failure events; `None` means `kafka.topic`.
    pub topic: Option<String>,
    /// Topic for parked batches (created when missing).
    pub retry_topic: String,
    /// Partitions of the retry topic when courier creates it.
    pub retry_topic_partitions: i32,
    /// How a parked batch waits in the retry topic: a reference to its events in the Event
    /// Logs topic, or a copy of them.
    pub parking: ParkingMode,
}

impl Default for FailuresConfig {
    fn default() -> Self {
        Self {
            topic: None,
            retry_topic: "courier-retry".into(),
            retry_topic_partitions: 8,
            parking: ParkingMode::Auto,
        }
    }
}

/// `failures.parking`: whether parked batches refer to their events in the Event Logs topic
/// or carry copies of them. A reference is small but only as durable as the topic's
/// retention, so by default courier checks that retention before it relies on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkingMode {
    /// References when the Event Logs topic's retention covers the retry schedule with a
    /// margin and the topic is not compacted (read from the broker at start); copies
    /// otherwise, and whenever that cannot be read.
    #[default]
    Auto,
    /// References, whatever the retention (courier warns when it looks too short).
    Reference,
    /// Copies, without asking the broker.
    Copy,
}

impl ParkingMode {
    /// The value as the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParkingMode::Auto => "auto",
            ParkingMode::Reference => "reference",
            ParkingMode::Copy => "copy",
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Messages larger than this are unroutable (`too_large`).
    pub max_event_bytes: usize,
    /// Events held in all lanes together before reading pauses (a global memory budget).
    pub max_in_flight_events: usize,
    /// Bytes of events held in all lanes together before reading pauses.
    pub max_in_flight_bytes: usize,
    /// The highest `rate_limit.events_per_second` any destination gets (its own when lower);
    /// destinations without a `rate_limit` get this one. `None`: no ceiling.
    pub max_destination_events_per_second: Option<u32>,
    /// The same for `rate_limit.requests_per_second`.
    pub max_destination_requests_per_second: Option<u32>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_in_flight_events: 100_000,
            max_in_flight_bytes: 128 * 1024 * 1024,
            max_destination_events_per_second: None,
            max_destination_requests_per_second: None,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Also export series labelled by project and destination (for small deployments:
    /// one series per destination).
    pub per_destination: bool,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (JSON unless stderr is a terminal), `json` or `text`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `courier=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when not writing to a terminal, text otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// The bounds of the process-wide settings (`[delivery]` has its own function, shared with
/// the destinations).
pub fn check_bounds(
    shutdown_timeout: Duration,
    kafka: &KafkaConfig,
    failures: &FailuresConfig,
    limits: &LimitsConfig,
    errors: &mut Errors,
) {
    let mut check = |key: &str, result: Result<(), String>| {
        if let Err(message) = result {
            errors.push(key, message);
        }
    };
    check(
        "shutdown_timeout",
        bounds::duration(shutdown_timeout, bounds::SHUTDOWN_TIMEOUT),
    );
    check(
        "kafka.brokers",
        if kafka.brokers.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(())
        },
    );
    check("kafka.topic", bounds::topic(&kafka.topic));
    check(
        "kafka.group_id",
        if kafka.group_id.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            bounds::chars(&kafka.group_id, bounds::MAX_GROUP_ID_CHARS)
        },
    );
    check(
        "kafka.commit_interval",
        bounds::duration(kafka.commit_interval, bounds::COMMIT_INTERVAL),
    );
    check(
        "kafka.revoke_timeout",
        bounds::duration(kafka.revoke_timeout, bounds::REVOKE_TIMEOUT),
    );
    if let Some(topic) = &failures.topic {
        check("failures.topic", bounds::topic(topic));
    }
    check("failures.retry_topic", bounds::topic(&failures.retry_topic));
    check(
        "failures.retry_topic_partitions",
        bounds::count(
            u64::try_from(failures.retry_topic_partitions).unwrap_or(0),
            bounds::RETRY_TOPIC_PARTITIONS,
        ),
    );
    check(
        "limits.max_event_bytes",
        bounds::size(limits.max_event_bytes, bounds::MAX_EVENT_BYTES),
    );
    check(
        "limits.max_in_flight_events",
        bounds::size(limits.max_in_flight_events, bounds::MAX_IN_FLIGHT_EVENTS),
    );
    check(
        "limits.max_in_flight_bytes",
        bounds::size(limits.max_in_flight_bytes, bounds::MAX_IN_FLIGHT_BYTES),
    );
}
