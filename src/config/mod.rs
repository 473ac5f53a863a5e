//! Configuration loading: TOML file, `COURIER__…` environment overrides, `${VAR}`
//! interpolation, and validation that reports every error with its file and key path.
//!
//! The loader knows every sink, so it lives in the daemon, above the sinks crate. The values
//! it produces are the shared vocabulary of `courier_core::settings` (re-exported here) and
//! each sink's own settings (`courier_sinks::config`, also re-exported).
//!
//! Loading goes through an untyped tree first so that one mistake does not hide the next:
//! each section and each destination is deserialized on its own and every failure is kept.
//! Every numeric, duration, string and list setting has bounds ([`bounds`]), checked here for
//! the file, its overrides and reloads, and by [`parse_destination`] for the API.

pub mod api;
mod destination;
mod interpolate;
mod pointer;
mod rate_limit;
mod shaping;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use api::{ApiConfig, ApiToken, EncryptionKey};
pub use courier_core::settings::{
    bounds, default_retry_schedule, key_segment, ConfigError, ConfigErrors, DeliveryConfig,
    FailuresConfig, KafkaConfig, KafkaOptions, LimitsConfig, LogConfig, LogFormat, MetricsConfig,
    ParkingMode, Secret, SecurityConfig, ServerConfig,
};
pub use courier_sinks::config::{DestinationConfig, RawTable, SinkConfig};
pub use destination::parse_destination;
pub use interpolate::{interpolate, InterpolateError};

use courier_core::settings::{check_bounds, join, typed, typed_table, validate_delivery, Errors};

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
    /// The destinations, in file order; each one shared with the running set that runs it.
    pub destinations: Vec<Arc<DestinationConfig>>,
    /// `[api]`: the destinations API and its store; `None` when the section is absent.
    pub api: Option<ApiConfig>,
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
    let mut errors = Errors::new(file);
    let tree = match layered_tree(text, env) {
        Ok(tree) => tree,
        Err(message) => {
            errors.push("", message);
            return Err(ConfigErrors(errors.into_list()));
        }
    };
    let mut tree = interpolate_tree(tree, "", env, &mut errors);
    let mut config = build(file, &mut tree, &mut errors);
    if let Some(api) = &mut config.api {
        for (path, message) in api.resolve_key(env) {
            errors.push(path, message);
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors.into_list()))
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
    "redact",
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
    validate_delivery(&delivery, "delivery", errors);
    let raw_security: courier_core::settings::RawSecurity = section(&mut root, "security", errors);
    let (mut security, security_errors) = raw_security.resolve();
    security.redact = shaping::operator(root.remove("redact"), errors);
    security.rate_ceiling = rate_limit::ceiling(&limits, errors);
    for (path, message) in security_errors {
        errors.push(path, message);
    }
    check_bounds(shutdown_timeout, &kafka, &failures, &limits, errors);
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
            .map(Arc::new)
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
