//! Configuration keys of a `datadog` destination.

use serde::Deserialize;

pub use crate::util::http::check_base_url;
use crate::util::Compression;
use courier_core::settings::{bounds, Secret};

/// The Datadog sites courier knows (Datadog's "Send logs" API reference lists one log intake
/// per site: `https://http-intake.logs.<site>`).
pub const SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// The site used when neither `site` nor `endpoint` is given.
pub const DEFAULT_SITE: &str = "datadoghq.com";

/// The `ddsource` of every log when `source` is not configured.
pub const DEFAULT_SOURCE: &str = "courier";

/// Type-specific keys of a `datadog` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    /// The Datadog API key (`DD-API-KEY`).
    pub api_key: Secret,
    /// The Datadog site, e.g. `datadoghq.eu`; default `datadoghq.com`.
    #[serde(default)]
    pub site: Option<String>,
    /// A base URL replacing `https://http-intake.logs.<site>` (a proxy, a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The `service` of every log.
    #[serde(default)]
    pub service: Option<String>,
    /// The `ddsource` of every log; default `courier`.
    #[serde(default)]
    pub source: Option<String>,
    /// The `hostname` of every log.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Tags added to every log (`key:value`), before courier's own.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Body compression; default gzip (Datadog recommends compressed logs).
    #[serde(default = "gzip")]
    pub compression: Compression,
}

fn gzip() -> Compression {
    Compression::Gzip
}

/// Longest tag Datadog keeps.
pub const MAX_TAG_CHARS: usize = 200;

impl DatadogConfig {
    /// Checks an `endpoint` override: its length and [`check_base_url`]. Also used on the raw
    /// table when the rest of it does not deserialize.
    pub fn check_endpoint(url: &str) -> Result<(), String> {
        bounds::chars(url, bounds::MAX_URL_CHARS)?;
        check_base_url(url)
    }

    /// Checks what serde cannot: every offending key with its reason. Never shows a secret.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |key: String, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push((key, message));
            }
        };
        let key = self.api_key.expose();
        check(
            "api_key".into(),
            if key.trim().is_empty() {
                Err("must not be empty".into())
            } else if reqwest::header::HeaderValue::from_str(key).is_err() {
                Err("is not a valid HTTP header value (control characters or line breaks?)".into())
            } else {
                bounds::bytes(key, bounds::MAX_SECRET_BYTES)
            },
        );
        match (&self.site, &self.endpoint) {
            (Some(_), Some(_)) => check(
                "endpoint".into(),
                Err("set either site or endpoint, not both (endpoint replaces the site's intake URL)".into()),
            ),
            (Some(site), None) => check("site".into(), check_site(site)),
            (None, Some(endpoint)) => check("endpoint".into(), Self::check_endpoint(endpoint)),
            (None, None) => {}
        }
        for (name, value) in [
            ("service", &self.service),
            ("source", &self.source),
            ("hostname", &self.hostname),
        ] {
            if let Some(v) = value {
                check(
                    name.into(),
                    if v.trim().is_empty() {
                        Err("must not be empty when given".into())
                    } else {
                        bounds::chars(v, bounds::MAX_NAME_CHARS)
                    },
                );
            }
        }
        check(
            "tags".into(),
            bounds::entries(self.tags.len(), bounds::MAX_TAGS),
        );
        for (i, tag) in self.tags.iter().enumerate() {
            check(format!("tags[{i}]"), check_tag(tag));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The site, defaulted.
    pub fn site(&self) -> &str {
        self.site.as_deref().unwrap_or(DEFAULT_SITE)
    }
}

fn check_site(site: &str) -> Result<(), String> {
    bounds::chars(site, bounds::MAX_NAME_CHARS)?;
    if SITES.contains(&site) {
        return Ok(());
    }
    let hint = match site.strip_prefix("app.") {
        Some(rest) if SITES.contains(&rest) => format!(" (write {rest:?}, without \"app.\")"),
        _ => String::new(),
    };
    Err(format!(
        "unknown Datadog site {site:?}{hint}; expected one of {}",
        SITES.join(", ")
    ))
}

fn check_tag(tag: &str) -> Result<(), String> {
    // First, so that the messages below never quote an overlong value.
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err(format!(
            "is longer than Datadog's {MAX_TAG_CHARS}-character tag limit"
        ));
    }
    if tag.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if tag.contains(',') {
        return Err(format!(
            "{tag:?} contains a comma, which separates tags in ddtags"
        ));
    }
    if !tag.chars().next().is_some_and(char::is_alphabetic) {
        return Err(format!(
            "{tag:?} must start with a letter (Datadog's tag rules)"
        ));
    }
    Ok(())
}
