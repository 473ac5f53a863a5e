//! Configuration keys of a `webhook` destination.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::presets::Preset;
use super::signature::SigningKey;
use super::template::{BodyTemplate, Limits};
pub use crate::util::Compression;
use courier_core::routing::FilterConfig;
use courier_core::settings::{bounds, DeliveryConfig, Secret};

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
    /// Body format, when set ([`WebhookConfig::body_format`] applies the default); a
    /// templated body has none.
    #[serde(default)]
    pub format: Option<WebhookFormat>,
    /// Body compression.
    #[serde(default)]
    pub compression: Compression,
    /// A body template (minijinja); replaces the preset's template.
    #[serde(default)]
    pub template: Option<String>,
    /// A ready template and its defaults ([`Preset`]).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// The `Content-Type` of templated bodies (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// A secret the template reads as `template_secret` (the PagerDuty routing key).
    #[serde(default)]
    pub template_secret: Option<Secret>,
}

/// Longest `content_type`.
const MAX_CONTENT_TYPE_CHARS: usize = 256;

/// `delivery` defaults of a webhook destination whose table is `table`: a preset of
/// per-event messages (Slack, Teams, PagerDuty) sends one event per request.
pub fn delivery_defaults(
    table: &serde_json::Map<String, serde_json::Value>,
    defaults: &DeliveryConfig,
) -> DeliveryConfig {
    match preset_of(table).and_then(Preset::batch_max_events) {
        Some(n) => DeliveryConfig {
            batch_max_events: n,
            ..defaults.clone()
        },
        None => defaults.clone(),
    }
}

/// The filter of a webhook destination that gives none: PagerDuty's preset pages for
/// errors only (`min_level = "ERROR"`), others receive everything.
pub fn default_filter(table: &serde_json::Map<String, serde_json::Value>) -> FilterConfig {
    match preset_of(table) {
        Some(Preset::Pagerduty) => FilterConfig {
            min_level: Some(courier_core::event::Level::Error),
            ..FilterConfig::default()
        },
        _ => FilterConfig::default(),
    }
}

fn preset_of(table: &serde_json::Map<String, serde_json::Value>) -> Option<Preset> {
    table
        .get("preset")
        .and_then(serde_json::Value::as_str)
        .and_then(Preset::from_name)
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
    /// The body format of an untemplated destination (`json_array` unless set).
    pub fn body_format(&self) -> WebhookFormat {
        self.format.unwrap_or_default()
    }

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
        self.validate_template(&mut check);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The body template's source: `template`, else the preset's; `None` for raw bodies.
    pub fn template_source(&self) -> Option<&str> {
        self.template
            .as_deref()
            .or_else(|| self.preset.map(Preset::template))
    }

    /// Checks the template keys; a syntax error names its line.
    fn validate_template(&self, check: &mut impl FnMut(String, Result<(), String>)) {
        let templated = self.template_source().is_some();
        if let Some(source) = &self.template {
            check(
                "template".into(),
                BodyTemplate::compile(source, Limits::default())
                    .map(|_| ())
                    .map_err(|e| format!("invalid template: {e}")),
            );
        }
        let only = |key: &str| format!("{key} applies only with template or preset");
        if let Some(content_type) = &self.content_type {
            check(
                "content_type".into(),
                if !templated {
                    Err(only("content_type"))
                } else {
                    bounds::chars(content_type, MAX_CONTENT_TYPE_CHARS).and_then(|()| {
                        reqwest::header::HeaderValue::from_str(content_type)
                            .map(|_| ())
                            .map_err(|_| "not a valid HTTP header value".to_owned())
                    })
                },
            );
        }
        if let Some(secret) = &self.template_secret {
            check(
                "template_secret".into(),
                if templated {
                    bounds::bytes(secret.expose(), bounds::MAX_SECRET_BYTES)
                } else {
                    Err(only("template_secret"))
                },
            );
        }
        if templated && self.format.is_some() {
            check(
                "format".into(),
                Err("a templated body has no format; remove format".into()),
            );
        }
        if self.preset == Some(Preset::Pagerduty)
            && self
                .template_secret
                .as_ref()
                .is_none_or(|s| s.expose().is_empty())
        {
            check(
                "template_secret".into(),
                Err("the pagerduty preset needs the integration's routing key here".into()),
            );
        }
        if self.preset == Some(Preset::Newrelic)
            && !self.headers.keys().any(|k| {
                k.eq_ignore_ascii_case("api-key") || k.eq_ignore_ascii_case("x-license-key")
            })
        {
            check(
                "headers".into(),
                Err("the newrelic preset needs an Api-Key (or X-License-Key) header".into()),
            );
        }
    }

    /// Checks the destination's `delivery` against the template: a per-event preset
    /// (PagerDuty) renders one event, so its batches must hold one. `(key, message)`.
    pub fn check_delivery(&self, delivery: &DeliveryConfig) -> Result<(), (String, String)> {
        match self.preset {
            Some(p)
                if p.per_event() && self.template.is_none() && delivery.batch_max_events != 1 =>
            {
                Err((
                    "delivery.batch_max_events".into(),
                    format!(
                        "the {} preset sends one event per request: must be 1",
                        p.name()
                    ),
                ))
            }
            _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: serde_json::Value) -> WebhookConfig {
        serde_json::from_value(table).unwrap()
    }

    #[test]
    fn a_templated_body_refuses_any_format_even_the_default_one() {
        for format in ["json_array", "ndjson"] {
            let errors = config(serde_json::json!({
                "url": "https://hooks.slack.com/services/T/B/x",
                "preset": "slack",
                "format": format,
            }))
            .validate()
            .unwrap_err();
            assert!(
                errors.iter().any(|(key, _)| key == "format"),
                "{format}: {errors:?}"
            );
        }
        let plain = config(serde_json::json!({ "url": "https://example.com/hook" }));
        assert_eq!(plain.body_format(), WebhookFormat::JsonArray);
        assert!(plain.validate().is_ok());
    }
}
