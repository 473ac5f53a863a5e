//! The settings vocabulary every layer speaks: each configuration section's values
//! ([`DeliveryConfig`], [`SecurityConfig`], [`KafkaConfig`] …), their [`bounds`], the
//! [`Secret`] wrapper, and the error collector that names a file and key path.
//!
//! It names no sink: each sink's own settings live with the sink, and the loader that reads a
//! whole file (and so knows every sink) sits in the daemon, above the sinks. Keeping the
//! vocabulary here is what lets a sink read its settings without importing the loader — the
//! cycle the single crate had.

pub mod bounds;
mod delivery;
mod secret;
mod sections;
mod security;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use delivery::{default_retry_schedule, validate_delivery, DeliveryConfig, DeliveryOverrides};
pub use secret::Secret;
pub use sections::{
    check_bounds, FailuresConfig, KafkaConfig, KafkaOptions, LimitsConfig, LogConfig, LogFormat,
    MetricsConfig, ParkingMode, ServerConfig,
};
pub use security::{parse_network, RateCeiling, RawSecurity, SecurityConfig};

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

/// Collects errors while a configuration is read, so that one mistake does not hide the next.
#[derive(Debug)]
pub struct Errors {
    file: String,
    list: Vec<ConfigError>,
}

impl Errors {
    /// An empty collector for errors in `file`.
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            list: Vec::new(),
        }
    }

    /// Records `message` at key path `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.clone(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records an error found by another collector.
    pub fn push_error(&mut self, error: ConfigError) {
        self.list.push(error);
    }

    /// The file errors are recorded for.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// How many errors were recorded.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// What was recorded, in order.
    pub fn into_list(self) -> Vec<ConfigError> {
        self.list
    }
}

/// `key` as one segment of a key path: as it is when it is a plain name, else quoted as a JSON
/// string (`headers."X.Api-Key"`), so that a key holding `.`, `[` or `"` reads as one segment
/// (and the API's JSON pointer made from the path names it, not a key that does not exist).
pub fn key_segment(key: &str) -> std::borrow::Cow<'_, str> {
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

/// `key` appended to key path `path` as one segment.
pub fn join(path: &str, key: &str) -> String {
    let key = key_segment(key);
    if path.is_empty() {
        key.into_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// serde's path to an error as a key path, keys written by [`key_segment`]; `.` for the
/// value itself.
pub fn path_text(path: &serde_path_to_error::Path) -> String {
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
pub fn typed<T: DeserializeOwned>(value: Value, prefix: &str, errors: &mut Errors) -> Option<T> {
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
pub fn typed_table<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
    errors: &mut Errors,
) -> Option<T> {
    if value.is_array() {
        errors.push(prefix, "invalid type: sequence, expected a table");
        return None;
    }
    typed(value, prefix, errors)
}

/// Records a deserialization error at `inner` (serde's path, `.` for the value itself) under
/// `prefix`.
pub fn push_typed_error(errors: &mut Errors, prefix: &str, inner: &str, message: String) {
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
