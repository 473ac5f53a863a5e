//! Configuration: TOML file, `COURIER__…` environment overrides, `${VAR}` interpolation, and
//! validation that reports every error with its file and key path.
//!
//! Loading goes through an untyped tree first so that one mistake does not hide the next:
//! each section and each destination is deserialized on its own and every failure is kept.
//! Every numeric, duration, string and list setting has bounds ([`bounds`]), checked here for
//! the file, its overrides and reloads, and by [`parse_destination`] for the API.

pub mod api;
pub mod bounds;
mod delivery;
mod destination;
mod interpolate;
mod secret;
mod sections;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use api::{ApiConfig, ApiToken, EncryptionKey};
pub use delivery::{default_retry_schedule, DeliveryConfig};
pub use destination::parse_destination;
pub use interpolate::{interpolate, InterpolateError};
pub use secret::Secret;
pub use sections::{
    FailuresConfig, KafkaConfig, KafkaOptions, LimitsConfig, LogConfig, LogFormat, MetricsConfig,
    SecurityConfig, ServerConfig,
};

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
    pub api: Option<ApiConfig>,
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
    let key = key_segment(key);
    if path.is_empty() {
        key.into_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `key` as one segment of a key path: as it is when it is a plain name, else quoted as a JSON
/// string (`headers."X.Api-Key"`), so that a key holding `.`, `[` or `"` reads as one segment
/// (and the API's JSON pointer made from the path names it, not a key that does not exist).
pub(crate) fn key_segment(key: &str) -> std::borrow::Cow<'_, str> {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        std::borrow::Cow::Borrowed(key)
    } else {
        std::borrow::Cow::Owned(serde_json::to_string(key).expect("a string serializes to JSON"))
    }
}

/// serde's path to an error as a key path, keys written by [`key_segment`]; `.` for the
/// value itself.
fn path_text(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut text = String::new();
    for segment in path.iter() {
        let name = match segment {
            Segment::Seq { index } => {
                text.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } => key_segment(key),
            Segment::Enum { variant } => key_segment(variant),
            Segment::Unknown => "?".into(),
        };
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(&name);
    }
    if text.is_empty() {
        ".".to_owned()
    } else {
        text
    }
}

/// Deserializes `value` as `T`, recording the failure (with its key path under `prefix`).
fn typed<T: DeserializeOwned>(value: Value, prefix: &str, errors: &mut Errors) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = path_text(e.path());
            push_typed_error(errors, prefix, &inner, e.into_inner().to_string());
            None
        }
    }
}

/// [`typed`] for a value that must be a table. serde reads a struct from an array as well,
/// field by field in declaration order: `delivery = [1, 1, "1s", 4, …]` would set settings by
/// position, past the checks that look at which keys a table sets (a destination's overrides
/// are checked where they are set), so an array is refused.
fn typed_table<T: DeserializeOwned>(value: Value, prefix: &str, errors: &mut Errors) -> Option<T> {
    if value.is_array() {
        errors.push(prefix, "invalid type: sequence, expected a table");
        return None;
    }
    typed(value, prefix, errors)
}

/// Records a deserialization error at `inner` (serde's path, `.` for the value itself) under
/// `prefix`.
fn push_typed_error(errors: &mut Errors, prefix: &str, inner: &str, message: String) {
    let path = if inner == "." {
        prefix.to_owned()
    } else if prefix.is_empty() {
        inner.to_owned()
    } else if inner.starts_with('[') {
        format!("{prefix}{inner}")
    } else {
        format!("{prefix}.{inner}")
    };
    errors.push(path, message);
}

fn section<T: DeserializeOwned + Default>(
    root: &mut Map<String, Value>,
    key: &str,
    errors: &mut Errors,
) -> T {
    match root.remove(key) {
        None => T::default(),
        Some(v) => typed_table(v, key, errors).unwrap_or_default(),
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
            let key = key_segment(key).into_owned();
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
    delivery::validate_delivery(&delivery, "delivery", errors);
    let raw_security: crate::sinks::ssrf::RawSecurity = section(&mut root, "security", errors);
    let (security, security_errors) = raw_security.resolve();
    for (path, message) in security_errors {
        errors.push(path, message);
    }
    sections::check_bounds(shutdown_timeout, &kafka, &failures, &limits, errors);
    for key in kafka.options.0.keys() {
        if KafkaOptions::PROTECTED.contains(&key.as_str()) {
            errors.push(
                format!("kafka.options.{key:?}"),
                "is set by courier (use kafka.brokers / kafka.group_id; offsets are committed by courier only when delivered)",
            );
        }
    }
    if let Some(reset) = kafka.options.0.get("auto.offset.reset") {
        const RESETS: &[&str] = &[
            "latest",
            "largest",
            "end",
            "earliest",
            "smallest",
            "beginning",
        ];
        if !RESETS.contains(&reset.to_ascii_lowercase().as_str()) {
            errors.push(
                "kafka.options.\"auto.offset.reset\"",
                format!("{reset:?} is not one of {} (it says where a partition the group never committed starts)", RESETS.join(", ")),
            );
        }
    }
    if failures.retry_topic == kafka.topic {
        errors.push(
            "failures.retry_topic",
            "must differ from kafka.topic (parked events would be delivered again at once)",
        );
    }
    let destinations = match root.remove("destinations") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| destination::destination(v, i, &delivery, &security, errors))
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
        .and_then(|v| typed_table::<ApiConfig>(v, "api", errors));
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

#[cfg(test)]
mod tests;
