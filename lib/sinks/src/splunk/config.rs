//! Configuration keys of a `splunk_hec` destination.

use std::time::Duration;

use serde::Deserialize;

use crate::util::http::check_base_url;
use crate::util::Compression;
use courier_core::settings::{bounds, Secret};

/// Default `sourcetype`: Splunk extracts the fields of JSON events at search time.
pub const DEFAULT_SOURCETYPE: &str = "_json";

/// Default largest request body (uncompressed).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Default time an indexer acknowledgement may take before the events are sent again.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(300);

/// Type-specific keys of a `splunk_hec` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkConfig {
    /// Base URL of the HTTP Event Collector, e.g. `https://splunk:8088`.
    pub endpoint: String,
    /// The HEC token (`Authorization: Splunk <token>`).
    pub token: Secret,
    /// The index; default: the token's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// The `source` of every event; default: the token's.
    #[serde(default)]
    pub source: Option<String>,
    /// The `sourcetype` of every event; default `_json`.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// The `host` of every event; default: the one Splunk assigns.
    #[serde(default)]
    pub host: Option<String>,
    /// Indexer acknowledgement: a batch completes only once Splunk confirms it was indexed.
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for an acknowledgement before sending the events again.
    #[serde(default = "ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Body compression; default none.
    #[serde(default)]
    pub compression: Compression,
    /// Largest request body before compression; a batch is split to fit (one larger event
    /// travels alone).
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: usize,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// `tls.*` of a `splunk_hec` destination (shared with `otlp`), and the reading of its CA file.
pub use crate::util::tls::{read_ca_file, TlsConfig};

fn ack_timeout() -> Duration {
    DEFAULT_ACK_TIMEOUT
}

fn max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}

impl SplunkConfig {
    /// Checks `endpoint`: its length, [`check_base_url`], and that it is the collector's base
    /// URL. Also used on the raw table when the rest of it does not deserialize.
    pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
        bounds::chars(endpoint, bounds::MAX_URL_CHARS)?;
        check_base_url(endpoint)?;
        let path = reqwest::Url::parse(endpoint)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        if path.contains("/services/collector") {
            return Err(format!(
                "give the collector's base URL (e.g. https://splunk:8088), without {path:?}: courier adds /services/collector/event itself"
            ));
        }
        Ok(())
    }

    /// Checks what serde cannot: every offending key with its reason. Touches nothing on the
    /// host: `tls.ca_file` is read by [`SplunkConfig::read_host_files`], for the
    /// configuration file's destinations only. Never shows the token.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |key: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push((key.to_owned(), message));
            }
        };
        check("endpoint", Self::check_endpoint(&self.endpoint));
        let token = self.token.expose();
        check(
            "token",
            if token.trim().is_empty() {
                Err("must not be empty".into())
            } else if reqwest::header::HeaderValue::from_str(&format!("Splunk {token}")).is_err() {
                Err("is not a valid HTTP header value (control characters or line breaks?)".into())
            } else {
                bounds::bytes(token, bounds::MAX_SECRET_BYTES)
            },
        );
        if let Some(index) = &self.index {
            check("index", check_index(index));
        }
        for (name, value) in [
            ("source", &self.source),
            ("sourcetype", &self.sourcetype),
            ("host", &self.host),
        ] {
            if let Some(v) = value {
                check(
                    name,
                    if v.trim().is_empty() {
                        Err("must not be empty when given".into())
                    } else {
                        bounds::chars(v, bounds::MAX_NAME_CHARS)
                    },
                );
            }
        }
        check(
            "ack_timeout",
            bounds::duration(self.ack_timeout, bounds::ACK_TIMEOUT),
        );
        check(
            "max_request_bytes",
            bounds::size(self.max_request_bytes, bounds::MAX_REQUEST_BYTES),
        );
        if let Some(path) = &self.tls.ca_file {
            check(
                "tls.ca_file",
                bounds::bytes(&path.to_string_lossy(), bounds::MAX_PATH_BYTES),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Reads the files the definition names on the courier host (`tls.ca_file`), to report a
    /// missing or unusable one at load time. For the configuration file's destinations only:
    /// the destinations API refuses the key before anything looks at it.
    pub fn read_host_files(&self) -> Result<(), (String, String)> {
        match &self.tls.ca_file {
            Some(path) => read_ca_file(path)
                .map(|_| ())
                .map_err(|m| ("tls.ca_file".to_owned(), m)),
            None => Ok(()),
        }
    }
}

fn check_index(index: &str) -> Result<(), String> {
    bounds::chars(index, bounds::MAX_NAME_CHARS)?;
    let valid = index
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && index
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{index:?} is not a Splunk index name (lower-case letters, digits, _ and -, starting with a letter or digit)"
        ))
    }
}
