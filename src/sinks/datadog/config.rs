//! Configuration keys of a `datadog` destination.

use serde::Deserialize;

use crate::config::{bounds, Secret};
pub use crate::sinks::util::http::check_base_url;
use crate::sinks::util::Compression;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{parse, SinkConfig};

    fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
        let text =
            format!("[[destinations]]\nproject = \"p\"\nid = \"dd\"\ntype = \"datadog\"\n{keys}\n");
        let env: BTreeMap<String, String> = [("DD_KEY".to_owned(), "k-123".to_owned())].into();
        parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults() {
        let c = load("api_key = \"${DD_KEY}\"").unwrap();
        let SinkConfig::Datadog(d) = &c.destinations[0].sink else {
            panic!("not datadog")
        };
        assert_eq!(d.api_key.expose(), "k-123");
        assert_eq!(d.site(), "datadoghq.com");
        assert_eq!(d.compression, super::Compression::Gzip);
        assert!(d.tags.is_empty());
        assert_eq!(c.destinations[0].sink.type_name(), "datadog");
        assert!(!format!("{d:?}").contains("k-123"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("api_key = \"k\"\nsite = \"datadoghq.cn\"").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "test.toml: destinations[0].site: unknown Datadog site \"datadoghq.cn\"; expected one of datadoghq.com, us3.datadoghq.com"
            ),
            "{e:?}"
        );
        let e = load("api_key = \"k\"\nsite = \"app.datadoghq.eu\"").unwrap_err();
        assert!(e[0].contains("write \"datadoghq.eu\""), "{e:?}");
        let e =
            load("api_key = \"k\"\nsite = \"datadoghq.eu\"\nendpoint = \"http://x\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].endpoint: set either site or endpoint"),
            "{e:?}"
        );
        let e = load("api_key = \"k\"\nendpoint = \"ftp://x\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].endpoint: scheme must be http or https"),
            "{e:?}"
        );
        let e = load("api_key = \"k\"\ntags = [\"env:prod\", \"a,b\"]").unwrap_err();
        assert!(
            e[0].contains("destinations[0].tags[1]: \"a,b\" contains a comma"),
            "{e:?}"
        );
        let e = load("api_key = \"\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].api_key: must not be empty"),
            "{e:?}"
        );
        let e = load("api_key = \"k\"\napikey = \"k\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].apikey") || e[0].contains("unknown field `apikey`"),
            "{e:?}"
        );
        let e = load("site = \"datadoghq.eu\"").unwrap_err();
        assert!(e[0].contains("missing field `api_key`"), "{e:?}");
        let e = load("api_key = \"k\"\ncompression = \"zstd\"").unwrap_err();
        assert!(e[0].contains("destinations[0].compression"), "{e:?}");
    }

    #[test]
    fn every_documented_site_is_accepted() {
        for site in super::SITES {
            load(&format!("api_key = \"k\"\nsite = \"{site}\"")).unwrap();
        }
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let e = load("api_key = \"sekrit-key\"\nsite = \"nope\"\nbogus = 1").unwrap_err();
        assert!(!e.iter().any(|m| m.contains("sekrit-key")), "{e:?}");
    }
}
