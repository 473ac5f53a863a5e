//! Configuration: TOML file, `COURIER__…` environment overrides, `${VAR}` interpolation, and
//! validation that reports every error with its file and key path.
//!
//! Loading goes through an untyped tree first so that one mistake does not hide the next:
//! each section and each destination is deserialized on its own and every failure is kept.

mod interpolate;
mod secret;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use interpolate::{interpolate, InterpolateError};
pub use secret::Secret;

use crate::routing::FilterConfig;
use crate::sinks::datadog::DatadogConfig;
use crate::sinks::file::FileConfig;
use crate::sinks::s3::S3Config;
use crate::sinks::splunk::SplunkConfig;
use crate::sinks::webhook::WebhookConfig;

/// The whole configuration of a courier process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration was read from (for error messages and reloads).
    pub source: PathBuf,
    /// How long a shutdown may spend draining lanes before it abandons what is left.
    pub shutdown_timeout: Duration,
    /// The Event Logs topic and the consumer group.
    pub kafka: KafkaConfig,
    /// Where delivery-failure events go.
    pub failures: FailuresConfig,
    /// Input limits.
    pub limits: LimitsConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Log output.
    pub log: LogConfig,
    /// Metric options.
    pub metrics: MetricsConfig,
    /// Delivery defaults every destination starts from.
    pub delivery: DeliveryConfig,
    /// Which addresses destinations may reach.
    pub security: SecurityConfig,
    /// The destinations, in file order.
    pub destinations: Vec<DestinationConfig>,
    /// `[api]`: the destinations API and its store; `None` when the section is absent.
    pub api: Option<crate::api::ApiConfig>,
}

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
}

impl Default for FailuresConfig {
    fn default() -> Self {
        Self {
            topic: None,
            retry_topic: "courier-retry".into(),
            retry_topic_partitions: 8,
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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_in_flight_events: 100_000,
            max_in_flight_bytes: 128 * 1024 * 1024,
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

/// `[security]`: the SSRF guard's settings (see [`crate::sinks::ssrf`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Internal networks (loopback, private, link-local, …) destinations may reach all the
    /// same; every other special-purpose address is refused.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Refuse `http://` destination URLs.
    pub https_only: bool,
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

/// Delivery settings of one destination (the `[delivery]` defaults merged with the
/// destination's `[destinations.delivery]` overrides).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// A batch is sent when it holds this many events.
    pub batch_max_events: usize,
    /// … or this many bytes of events.
    pub batch_max_bytes: usize,
    /// … or when its oldest event has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Concurrent requests per destination.
    pub max_in_flight: usize,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// In-line retry budget of one batch, from its first attempt.
    #[serde(with = "humantime_serde")]
    pub retry_max_elapsed: Duration,
    /// First backoff before a retry (exponential, full jitter).
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Largest backoff between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Events waiting in the destination's queue before the consumer waits for it.
    pub queue_max_events: usize,
    /// Delays of the parked attempts after the in-line budget is spent (jittered ±10%);
    /// after the last one fails, a delivery-failure event is written.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Consecutive failed requests that open the destination's circuit.
    pub circuit_failure_threshold: u32,
    /// While the circuit is open, one probe request is sent per this interval.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// After failing continuously this long, the destination is paused: its events get
    /// failure events (replayable) instead of being parked.
    #[serde(with = "humantime_serde")]
    pub pause_after: Duration,
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let list = Vec::<humantime_serde::Serde<Duration>>::deserialize(d)?;
    Ok(list
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

fn some_durations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Duration>>, D::Error> {
    durations(d).map(Some)
}

/// The default parked-retry schedule.
pub fn default_retry_schedule() -> Vec<Duration> {
    [30, 120, 600, 1800, 3600, 7200, 14_400, 28_800]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch_max_events: 1000,
            batch_max_bytes: 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            max_in_flight: 4,
            request_timeout: Duration::from_secs(30),
            retry_max_elapsed: Duration::from_secs(120),
            retry_initial_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(30),
            queue_max_events: 10_000,
            retry_schedule: default_retry_schedule(),
            circuit_failure_threshold: 5,
            probe_interval: Duration::from_secs(30),
            pause_after: Duration::from_secs(72 * 3600),
        }
    }
}

/// One `[[destinations]]` table.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// The projectId whose events this destination receives.
    pub project: String,
    /// Unique within the project.
    pub id: String,
    /// Disabled destinations receive nothing.
    pub enabled: bool,
    /// The sink and its settings.
    pub sink: SinkConfig,
    /// Which events of the project it receives.
    pub filter: FilterConfig,
    /// Batching and retry settings.
    pub delivery: DeliveryConfig,
    /// The destination's table as read (after interpolation): a reload rebuilds the
    /// destination when this or its delivery settings change.
    pub table: RawTable,
}

/// A destination's table as read. It holds secrets, so it never prints.
#[derive(Clone, PartialEq)]
pub struct RawTable(pub Value);

impl fmt::Debug for RawTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTable(…)")
    }
}

impl DestinationConfig {
    /// Whether `other` configures this destination differently.
    pub fn differs_from(&self, other: &DestinationConfig) -> bool {
        self.table != other.table || self.delivery != other.delivery
    }
}

/// The type-specific part of a destination.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// `type = "webhook"`.
    Webhook(WebhookConfig),
    /// `type = "file"`.
    File(FileConfig),
    /// `type = "s3"`.
    S3(S3Config),
    /// `type = "datadog"`.
    Datadog(DatadogConfig),
    /// `type = "splunk_hec"`.
    SplunkHec(SplunkConfig),
}

impl SinkConfig {
    /// The `type` key's value, also the `destination_type` metric label.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::File(_) => "file",
            SinkConfig::S3(_) => "s3",
            SinkConfig::Datadog(_) => "datadog",
            SinkConfig::SplunkHec(_) => "splunk_hec",
        }
    }
}

/// One configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment`).
    pub file: String,
    /// Key path such as `destinations[3].filter.min_level`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// Every error found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors while a configuration is read.
struct Errors {
    file: String,
    list: Vec<ConfigError>,
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.clone(),
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Reads the configuration at `path`, with overrides from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_with_env(path, &env)
}

/// Reads the configuration at `path` with `env` as the environment (tests pass their own).
pub fn load_with_env(path: &Path, env: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse(&file, &text, env)
}

/// Parses configuration text. `file` names the source in errors.
pub fn parse(
    file: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Errors {
        file: file.to_owned(),
        list: Vec::new(),
    };
    let tree = match layered_tree(text, env) {
        Ok(tree) => tree,
        Err(message) => {
            errors.push("", message);
            return Err(ConfigErrors(errors.list));
        }
    };
    let mut tree = interpolate_tree(tree, "", env, &mut errors);
    let mut config = build(file, &mut tree, &mut errors);
    if let Some(api) = &mut config.api {
        for (path, message) in api.resolve_key(env) {
            errors.push(path, message);
        }
    }
    if errors.list.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors.list))
    }
}

/// The file's TOML with `COURIER__SECTION__KEY=value` variables laid over it.
fn layered_tree(text: &str, env: &BTreeMap<String, String>) -> Result<Value, String> {
    let overrides: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("COURIER__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("COURIER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| e.to_string())?;
    built.try_deserialize::<Value>().map_err(|e| e.to_string())
}

/// Applies `${VAR}` to every string in the tree, recording an error per failing key.
fn interpolate_tree(
    value: Value,
    path: &str,
    env: &BTreeMap<String, String>,
    errors: &mut Errors,
) -> Value {
    match value {
        Value::String(s) => match interpolate(&s, |name| env.get(name).cloned()) {
            Ok(v) => Value::String(v),
            Err(e) => {
                errors.push(path, e.to_string());
                Value::String(String::new())
            }
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| interpolate_tree(v, &format!("{path}[{i}]"), env, errors))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let child = join(path, &k);
                    let v = interpolate_tree(v, &child, env, errors);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Deserializes `value` as `T`, recording the failure (with its key path under `prefix`).
fn typed<T: DeserializeOwned>(value: Value, prefix: &str, errors: &mut Errors) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." {
                prefix.to_owned()
            } else if prefix.is_empty() {
                inner
            } else if inner.starts_with('[') {
                format!("{prefix}{inner}")
            } else {
                format!("{prefix}.{inner}")
            };
            errors.push(path, e.into_inner().to_string());
            None
        }
    }
}

fn section<T: DeserializeOwned + Default>(
    root: &mut Map<String, Value>,
    key: &str,
    errors: &mut Errors,
) -> T {
    match root.remove(key) {
        None => T::default(),
        Some(v) => typed(v, key, errors).unwrap_or_default(),
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "shutdown_timeout",
    "kafka",
    "failures",
    "limits",
    "server",
    "log",
    "metrics",
    "delivery",
    "security",
    "destinations",
    "api",
];

fn build(file: &str, tree: &mut Value, errors: &mut Errors) -> Config {
    let empty = Map::new();
    let mut root = match tree.take() {
        Value::Object(map) => map,
        _ => {
            errors.push("", "the configuration must be a table");
            empty
        }
    };
    for key in root.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let key = key.clone();
            errors.push(
                key,
                format!("unknown key; expected one of {}", TOP_LEVEL_KEYS.join(", ")),
            );
        }
    }
    let shutdown_timeout = root
        .remove("shutdown_timeout")
        .and_then(|v| typed::<HumanDuration>(v, "shutdown_timeout", errors))
        .map_or(Duration::from_secs(30), |d| d.0);
    let kafka: KafkaConfig = section(&mut root, "kafka", errors);
    let failures: FailuresConfig = section(&mut root, "failures", errors);
    let limits: LimitsConfig = section(&mut root, "limits", errors);
    let server: ServerConfig = section(&mut root, "server", errors);
    let log: LogConfig = section(&mut root, "log", errors);
    let metrics: MetricsConfig = section(&mut root, "metrics", errors);
    let delivery: DeliveryConfig = section(&mut root, "delivery", errors);
    validate_delivery(&delivery, "delivery", errors);
    let raw_security: crate::sinks::ssrf::RawSecurity = section(&mut root, "security", errors);
    let (security, security_errors) = raw_security.resolve();
    for (path, message) in security_errors {
        errors.push(path, message);
    }
    for (key, value) in [
        ("kafka.brokers", &kafka.brokers),
        ("kafka.topic", &kafka.topic),
        ("kafka.group_id", &kafka.group_id),
    ] {
        if value.trim().is_empty() {
            errors.push(key, "must not be empty");
        }
    }
    for key in kafka.options.0.keys() {
        if crate::source::PROTECTED_OPTIONS.contains(&key.as_str()) {
            errors.push(
                format!("kafka.options.{key:?}"),
                "is set by courier (use kafka.brokers / kafka.group_id; offsets are committed by courier only when delivered)",
            );
        }
    }
    if failures.retry_topic.trim().is_empty() {
        errors.push("failures.retry_topic", "must not be empty");
    }
    if failures.retry_topic == kafka.topic {
        errors.push(
            "failures.retry_topic",
            "must differ from kafka.topic (parked events would be delivered again at once)",
        );
    }
    if failures.retry_topic_partitions < 1 {
        errors.push("failures.retry_topic_partitions", "must be at least 1");
    }
    if limits.max_in_flight_events == 0 || limits.max_in_flight_bytes == 0 {
        errors.push(
            "limits",
            "max_in_flight_events and max_in_flight_bytes must be at least 1",
        );
    }
    if limits.max_event_bytes == 0 {
        errors.push("limits.max_event_bytes", "must be at least 1");
    }
    let destinations = match root.remove("destinations") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| destination(v, i, &delivery, &security, errors))
            .collect(),
        Some(_) => {
            errors.push(
                "destinations",
                "must be an array of tables ([[destinations]])",
            );
            Vec::new()
        }
    };
    let api = root
        .remove("api")
        .and_then(|v| typed::<crate::api::ApiConfig>(v, "api", errors));
    if let Some(api) = &api {
        for (path, message) in api.validate() {
            errors.push(path, message);
        }
    }
    let mut seen = HashSet::new();
    for (i, d) in destinations.iter().enumerate() {
        if !seen.insert((d.project.as_str(), d.id.as_str())) {
            errors.push(
                format!("destinations[{i}].id"),
                format!(
                    "duplicate destination {:?} in project {:?}; ids must be unique within a project",
                    d.id, d.project
                ),
            );
        }
    }
    Config {
        source: PathBuf::from(file),
        shutdown_timeout,
        kafka,
        failures,
        limits,
        server,
        log,
        metrics,
        delivery,
        security,
        destinations,
        api,
    }
}

#[derive(Deserialize)]
struct HumanDuration(#[serde(with = "humantime_serde")] Duration);

/// The parts of a destination table every type shares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    project: String,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// Per-destination overrides of `[delivery]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DeliveryOverrides {
    batch_max_events: Option<usize>,
    batch_max_bytes: Option<usize>,
    #[serde(with = "humantime_serde")]
    batch_timeout: Option<Duration>,
    max_in_flight: Option<usize>,
    #[serde(with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_max_elapsed: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_initial_backoff: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_max_backoff: Option<Duration>,
    queue_max_events: Option<usize>,
    #[serde(deserialize_with = "some_durations")]
    retry_schedule: Option<Vec<Duration>>,
    circuit_failure_threshold: Option<u32>,
    #[serde(with = "humantime_serde")]
    probe_interval: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pause_after: Option<Duration>,
}

impl DeliveryOverrides {
    fn apply(self, base: &DeliveryConfig) -> DeliveryConfig {
        DeliveryConfig {
            batch_max_events: self.batch_max_events.unwrap_or(base.batch_max_events),
            batch_max_bytes: self.batch_max_bytes.unwrap_or(base.batch_max_bytes),
            batch_timeout: self.batch_timeout.unwrap_or(base.batch_timeout),
            max_in_flight: self.max_in_flight.unwrap_or(base.max_in_flight),
            request_timeout: self.request_timeout.unwrap_or(base.request_timeout),
            retry_max_elapsed: self.retry_max_elapsed.unwrap_or(base.retry_max_elapsed),
            retry_initial_backoff: self
                .retry_initial_backoff
                .unwrap_or(base.retry_initial_backoff),
            retry_max_backoff: self.retry_max_backoff.unwrap_or(base.retry_max_backoff),
            queue_max_events: self.queue_max_events.unwrap_or(base.queue_max_events),
            retry_schedule: self
                .retry_schedule
                .unwrap_or_else(|| base.retry_schedule.clone()),
            circuit_failure_threshold: self
                .circuit_failure_threshold
                .unwrap_or(base.circuit_failure_threshold),
            probe_interval: self.probe_interval.unwrap_or(base.probe_interval),
            pause_after: self.pause_after.unwrap_or(base.pause_after),
        }
    }
}

fn validate_delivery(d: &DeliveryConfig, prefix: &str, errors: &mut Errors) {
    for (key, value) in [
        ("batch_max_events", d.batch_max_events),
        ("batch_max_bytes", d.batch_max_bytes),
        ("max_in_flight", d.max_in_flight),
        ("queue_max_events", d.queue_max_events),
    ] {
        if value == 0 {
            errors.push(format!("{prefix}.{key}"), "must be at least 1");
        }
    }
    if d.request_timeout.is_zero() {
        errors.push(
            format!("{prefix}.request_timeout"),
            "must be longer than 0s",
        );
    }
    if d.retry_initial_backoff.is_zero() {
        errors.push(
            format!("{prefix}.retry_initial_backoff"),
            "must be longer than 0s",
        );
    }
    if d.circuit_failure_threshold == 0 {
        errors.push(
            format!("{prefix}.circuit_failure_threshold"),
            "must be at least 1",
        );
    }
    if d.probe_interval.is_zero() {
        errors.push(format!("{prefix}.probe_interval"), "must be longer than 0s");
    }
    if d.retry_max_backoff < d.retry_initial_backoff {
        errors.push(
            format!("{prefix}.retry_max_backoff"),
            "must not be shorter than retry_initial_backoff",
        );
    }
}

const COMMON_KEYS: &[&str] = &["project", "id", "type", "enabled", "filter", "delivery"];

/// Parses one destination table given as JSON (the destinations API's definitions) with the
/// configuration's `[delivery]` defaults and `[security]`. Errors are `(JSON pointer, message)`
/// pairs: `("/filter/min_level", "unknown level …")`; the pointer is `""` for the whole value.
/// Unlike the file, `${VAR}` in `value` is not interpolated.
pub fn parse_destination(
    value: Value,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
) -> Result<DestinationConfig, Vec<(String, String)>> {
    let mut errors = Errors {
        file: String::new(),
        list: Vec::new(),
    };
    let parsed = destination_at(value, "", defaults, security, &mut errors);
    match parsed {
        Some(d) if errors.list.is_empty() => Ok(d),
        _ => Err(errors
            .list
            .into_iter()
            .map(|e| (json_pointer(&e.path, &e.message), e.message))
            .collect()),
    }
}

/// A key path of [`destination_at`] under the empty prefix (`.filter.min_level`,
/// `tags[2]`) as a JSON pointer (`/filter/min_level`, `/tags/2`). An unknown field's error
/// points at the field itself.
fn json_pointer(path: &str, message: &str) -> String {
    let mut pointer = String::new();
    let mut push = |segment: &str| {
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    };
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                push(&rest[..i]);
            }
            rest = &rest[i..];
            while let Some(tail) = rest.strip_prefix('[') {
                let end = tail.find(']').unwrap_or(tail.len());
                push(&tail[..end]);
                rest = tail.get(end + 1..).unwrap_or("");
            }
        } else {
            push(rest);
        }
    }
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    {
        if !path.ends_with(field) {
            push(field);
        }
    }
    pointer
}

fn destination(
    value: Value,
    index: usize,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
    errors: &mut Errors,
) -> Option<DestinationConfig> {
    destination_at(
        value,
        &format!("destinations[{index}]"),
        defaults,
        security,
        errors,
    )
}

fn destination_at(
    value: Value,
    prefix: &str,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
    errors: &mut Errors,
) -> Option<DestinationConfig> {
    let prefix = prefix.to_owned();
    let original = value.clone();
    let Value::Object(mut table) = value else {
        errors.push(prefix, "must be a table");
        return None;
    };
    let mut common = Map::new();
    for key in COMMON_KEYS {
        if let Some(v) = table.remove(*key) {
            common.insert((*key).to_owned(), v);
        }
    }
    let filter_value = common.remove("filter");
    let delivery_value = common.remove("delivery");
    let before = errors.list.len();
    let common: Option<Common> = typed(Value::Object(common), &prefix, errors);
    let filter = match filter_value {
        None => Some(FilterConfig::default()),
        Some(v) => {
            let path = format!("{prefix}.filter");
            typed::<FilterConfig>(v, &path, errors).and_then(|f| match f.validate() {
                Ok(()) => Some(f),
                Err((key, message)) => {
                    errors.push(format!("{path}.{key}"), message);
                    None
                }
            })
        }
    };
    // s3 destinations write objects, not requests: the batch limits they do not set in
    // [destinations.delivery] are the s3 defaults, not [delivery]'s request-sized ones.
    let s3_defaults;
    let defaults = if common.as_ref().is_some_and(|c| c.kind == "s3") {
        s3_defaults = crate::sinks::s3::delivery_defaults(defaults);
        &s3_defaults
    } else {
        defaults
    };
    let delivery = match delivery_value {
        None => Some(defaults.clone()),
        Some(v) => {
            let path = format!("{prefix}.delivery");
            typed::<DeliveryOverrides>(v, &path, errors).map(|o| {
                let d = o.apply(defaults);
                validate_delivery(&d, &path, errors);
                d
            })
        }
    };
    let common = common?;
    for (key, value) in [("project", &common.project), ("id", &common.id)] {
        if value.trim().is_empty() {
            errors.push(format!("{prefix}.{key}"), "must not be empty");
        }
    }
    let rest = Value::Object(table);
    let sink = match common.kind.as_str() {
        "webhook" => typed::<WebhookConfig>(rest, &prefix, errors).and_then(|c| {
            c.validate()
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .ok()
                .map(|()| SinkConfig::Webhook(c))
        }),
        "file" => typed::<FileConfig>(rest, &prefix, errors).map(SinkConfig::File),
        "s3" => typed::<S3Config>(rest, &prefix, errors).and_then(|c| {
            c.validate()
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .ok()
                .map(|()| SinkConfig::S3(c))
        }),
        "datadog" => typed::<DatadogConfig>(rest, &prefix, errors).and_then(|c| {
            c.validate()
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .ok()
                .map(|()| SinkConfig::Datadog(c))
        }),
        "splunk_hec" => typed::<SplunkConfig>(rest, &prefix, errors).and_then(|c| {
            c.validate()
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .ok()
                .map(|()| SinkConfig::SplunkHec(c))
        }),
        other => {
            errors.push(
                format!("{prefix}.type"),
                format!("unknown destination type {other:?}; expected webhook, datadog, splunk_hec, s3 or file"),
            );
            None
        }
    };
    for (key, url) in sink.iter().flat_map(crate::sinks::ssrf::destination_urls) {
        if let Err(message) = crate::sinks::ssrf::check_config_url(url, security) {
            errors.push(format!("{prefix}.{key}"), message);
        }
    }
    if errors.list.len() > before {
        return None;
    }
    Some(DestinationConfig {
        project: common.project,
        id: common.id,
        enabled: common.enabled,
        sink: sink?,
        filter: filter?,
        delivery: delivery?,
        table: RawTable(original),
    })
}

#[cfg(test)]
mod tests;
