//! Configuration keys of a `webhook` destination.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::signature::SigningKey;
use crate::config::Secret;

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

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Sent as is.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
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
    /// Checks what serde cannot: returns the offending key and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ("url".to_owned(), format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err((
                "url".to_owned(),
                format!("scheme must be http or https, not {:?}", url.scheme()),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(("url".to_owned(), "has no host".to_owned()));
        }
        if let Some(secret) = &self.secret {
            SigningKey::from_secret(secret.expose())
                .map_err(|e| ("secret".to_owned(), e.to_string()))?;
        }
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((key, "not a valid HTTP header name".to_owned()));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err((key, "is set by courier and cannot be configured".to_owned()));
            }
            if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                return Err((key, "not a valid HTTP header value".to_owned()));
            }
        }
        Ok(())
    }
}
