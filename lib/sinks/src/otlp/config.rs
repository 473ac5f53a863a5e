//! Configuration keys of an `otlp` destination.
//!
//! The keys follow the OTLP exporter settings a customer already knows from their vendor's
//! setup page (endpoint, headers, protocol, compression), so that a vendor's documented values
//! can be copied in as they are; docs/sinks.md has the presets.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::util::http::check_base_url;
pub use crate::util::tls::TlsConfig;
use crate::util::Compression;
use courier_core::settings::{bounds, key_segment, Secret};

/// The OTLP/HTTP logs path, appended to `endpoint` unless `logs_path` says otherwise (OTLP
/// specification, "OTLP/HTTP Request": the default URL path for logs is `/v1/logs`).
pub const DEFAULT_LOGS_PATH: &str = "/v1/logs";

/// The resource's `service.name` when `service_name` is not configured.
pub const DEFAULT_SERVICE_NAME: &str = "paragon";

/// Default largest request body before compression: 1 MiB, under every listed vendor's limit
/// (New Relic refuses payloads over 1 MB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Most `resource_attributes`.
pub const MAX_RESOURCE_ATTRIBUTES: usize = 32;

/// Type-specific keys of an `otlp` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The receiver's base URL (`https://otlp.nr-data.net`); `logs_path` is appended.
    pub endpoint: String,
    /// The path appended to `endpoint`; default `/v1/logs`.
    #[serde(default = "logs_path")]
    pub logs_path: String,
    /// Request body encoding; default protobuf.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body compression; default gzip.
    #[serde(default = "gzip")]
    pub compression: Compression,
    /// Extra headers (API keys): values are secrets, never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// The resource's `service.name`; default `paragon`.
    #[serde(default = "service_name")]
    pub service_name: String,
    /// More resource attributes (string values), e.g. `deployment.environment`.
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// Largest request body before compression; a batch is split to fit (one larger record
    /// travels alone).
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: usize,
    /// TLS settings (a private CA; the configuration file's definitions only).
    #[serde(default)]
    pub tls: TlsConfig,
}

/// How a request body is encoded (OTLP/HTTP: binary protobuf or its JSON mapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `Content-Type: application/x-protobuf`.
    #[default]
    Protobuf,
    /// `Content-Type: application/json`, the OTLP/JSON mapping.
    Json,
}

impl Encoding {
    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

fn logs_path() -> String {
    DEFAULT_LOGS_PATH.to_owned()
}

fn gzip() -> Compression {
    Compression::Gzip
}

fn service_name() -> String {
    DEFAULT_SERVICE_NAME.to_owned()
}

fn max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}

/// Headers courier sets itself; configuring them would break the wire contract.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "user-agent",
    "host",
    "transfer-encoding",
];

/// Resource attributes courier sets itself.
const RESERVED_RESOURCE_ATTRIBUTES: &[&str] = &["service.name", super::encode::PROJECT_ATTRIBUTE];

impl OtlpConfig {
    /// Checks `endpoint`: its length and [`check_base_url`]. Also used on the raw table when
    /// the rest of it does not deserialize.
    pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
        bounds::chars(endpoint, bounds::MAX_URL_CHARS)?;
        check_base_url(endpoint)?;
        let path = reqwest::Url::parse(endpoint)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        if path.trim_end_matches('/').ends_with(DEFAULT_LOGS_PATH) {
            return Err(format!(
                "give the receiver's base URL without {DEFAULT_LOGS_PATH:?}: courier appends logs_path (default {DEFAULT_LOGS_PATH:?}) itself"
            ));
        }
        Ok(())
    }

    /// Checks what serde cannot: every offending key with its reason. Never shows a secret.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |key: String, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push((key, message));
            }
        };
        check("endpoint".into(), Self::check_endpoint(&self.endpoint));
        check("logs_path".into(), check_path(&self.logs_path));
        check(
            "headers".into(),
            bounds::entries(self.headers.len(), bounds::MAX_HEADERS),
        );
        for (name, value) in &self.headers {
            check(
                format!("headers.{}", key_segment(name)),
                check_header(name, value.expose()),
            );
        }
        check("service_name".into(), check_text(&self.service_name));
        check(
            "resource_attributes".into(),
            bounds::entries(self.resource_attributes.len(), MAX_RESOURCE_ATTRIBUTES),
        );
        for (name, value) in &self.resource_attributes {
            let key = format!("resource_attributes.{}", key_segment(name));
            let result = check_text(name)
                .map_err(|m| format!("the attribute name {m}"))
                .and_then(|()| {
                    if RESERVED_RESOURCE_ATTRIBUTES.contains(&name.as_str()) {
                        Err(format!(
                            "{name:?} is set by courier (service.name: give service_name)"
                        ))
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| check_text(value));
            check(key, result);
        }
        check(
            "max_request_bytes".into(),
            bounds::size(self.max_request_bytes, bounds::MAX_REQUEST_BYTES),
        );
        if let Err((key, message)) = self.tls.validate() {
            check(key, Err(message));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// `logs_path`: an absolute URL path, no query or fragment.
fn check_path(path: &str) -> Result<(), String> {
    bounds::chars(path, bounds::MAX_URL_CHARS)?;
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with \"/\""));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{path:?} must be a URL path without a query, fragment or spaces"
        ));
    }
    Ok(())
}

/// A configured name or value: not empty, no control characters, within bounds.
fn check_text(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    bounds::chars(value, bounds::MAX_NAME_CHARS)
}

/// One configured header: a valid name courier does not set itself, a valid value, both
/// within bounds. The message never quotes the value.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    bounds::chars(name, bounds::MAX_HEADER_NAME_CHARS)?;
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("not a valid HTTP header name".to_owned());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err("is set by courier and cannot be configured".to_owned());
    }
    if value.trim().is_empty() {
        return Err("must not be empty (is the ${VAR} it names set?)".to_owned());
    }
    bounds::bytes(value, bounds::MAX_SECRET_BYTES)?;
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(
            "not a valid HTTP header value (control characters or line breaks?)".to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> OtlpConfig {
        let mut table = serde_json::json!({ "endpoint": "https://otlp.example" });
        for (k, v) in extra.as_object().unwrap() {
            table[k] = v.clone();
        }
        serde_json::from_value(table).unwrap()
    }

    fn errors(extra: serde_json::Value) -> Vec<(String, String)> {
        config(extra).validate().err().unwrap_or_default()
    }

    #[test]
    fn defaults() {
        let c = config(serde_json::json!({}));
        assert_eq!(c.logs_path, "/v1/logs");
        assert_eq!(c.encoding, Encoding::Protobuf);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.service_name, "paragon");
        assert_eq!(c.max_request_bytes, 1024 * 1024);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_bad_key_is_named_and_secrets_are_not_shown() {
        let e = errors(serde_json::json!({
            "endpoint": "https://otlp.example/v1/logs",
            "logs_path": "v1/logs",
            "headers": { "Content-Type": "x", "api-key": "bad\nsecret-value", "x-empty": " " },
            "service_name": "",
            "resource_attributes": { "service.name": "x", "deployment.environment": "" },
            "max_request_bytes": 0,
        }));
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "endpoint",
                "logs_path",
                "headers.Content-Type",
                "headers.api-key",
                "headers.x-empty",
                "service_name",
                "resource_attributes.deployment.environment",
                "resource_attributes.service.name",
                "max_request_bytes",
            ]
            .map(|k| if k.starts_with("resource_attributes.") {
                // Dotted names are quoted as one key segment.
                match k {
                    "resource_attributes.deployment.environment" => {
                        "resource_attributes.\"deployment.environment\""
                    }
                    _ => "resource_attributes.\"service.name\"",
                }
            } else {
                k
            })
        );
        assert!(e.iter().all(|(_, m)| !m.contains("secret-value")), "{e:?}");
        assert!(e[0].1.contains("without \"/v1/logs\""), "{}", e[0].1);
    }
}
