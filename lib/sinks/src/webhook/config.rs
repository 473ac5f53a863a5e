//! Configuration keys of a `webhook` destination.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::signature::SigningKey;
pub use crate::util::Compression;
use courier_core::settings::{bounds, Secret};

/// Type-specific keys of a `webhook` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed.
    pub url: String,
    /// Standard Webhooks signing secret (`whsec_…`), optional.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra headers; values may hold credentials and are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Body format.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Body compression.
    #[serde(default)]
    pub compression: Compression,
}

/// How a batch is laid out in the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// A JSON array of the events.
    #[default]
    JsonArray,
    /// One event per line.
    Ndjson,
}

/// Headers courier sets itself; configuring them would break the wire contract.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "user-agent",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl WebhookConfig {
    /// Checks `url`: its length, http or https, a host. Also used on the raw table when the
    /// rest of it does not deserialize, so a refused URL is reported with the other errors.
    pub fn check_url(url: &str) -> Result<(), String> {
        bounds::chars(url, bounds::MAX_URL_CHARS)?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "scheme must be http or https, not {:?}",
                parsed.scheme()
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("has no host".to_owned());
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
        check("url".into(), Self::check_url(&self.url));
        if let Some(secret) = &self.secret {
            check(
                "secret".into(),
                bounds::bytes(secret.expose(), bounds::MAX_SECRET_BYTES).and_then(|()| {
                    SigningKey::from_secret(secret.expose())
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            );
        }
        check(
            "headers".into(),
            bounds::entries(self.headers.len(), bounds::MAX_HEADERS),
        );
        for (name, value) in &self.headers {
            check(
                format!("headers.{}", courier_core::settings::key_segment(name)),
                check_header(name, value.expose()),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One configured header: a valid name courier does not set itself, a valid value, both
/// within bounds.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    bounds::chars(name, bounds::MAX_HEADER_NAME_CHARS)?;
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("not a valid HTTP header name".to_owned());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err("is set by courier and cannot be configured".to_owned());
    }
    bounds::bytes(value, bounds::MAX_SECRET_BYTES)?;
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err("not a valid HTTP header value".to_owned());
    }
    Ok(())
}
