//! The configuration side of the guard: the check of literal IP destination URLs at
//! configuration time, reported with the destination's key path. (`[security]` itself is
//! read in `courier_core::settings`.)

use courier_core::settings::SecurityConfig;

use super::Guard;
use crate::config::SinkConfig;

/// The URLs of a destination that `[security]` applies to, with their keys.
pub fn destination_urls(sink: &SinkConfig) -> Vec<(&'static str, &str)> {
    match sink {
        SinkConfig::Webhook(c) => vec![("url", c.url.as_str())],
        SinkConfig::SplunkHec(c) => vec![("endpoint", c.endpoint.as_str())],
        SinkConfig::Otlp(c) => vec![("endpoint", c.endpoint.as_str())],
        SinkConfig::Datadog(c) => c
            .endpoint
            .iter()
            .map(|e| ("endpoint", e.as_str()))
            .collect(),
        SinkConfig::S3(c) => c
            .endpoint
            .iter()
            .map(|e| ("endpoint", e.as_str()))
            .collect(),
        // Not a URL: its host is checked by `EmailConfig::check_security` and, before each
        // connection, by the sink.
        SinkConfig::File(_) | SinkConfig::Email(_) => Vec::new(),
    }
}

/// The configuration-time check of a destination URL: `https_only`, and a literal IP host
/// outside the allow list. (Unparsable URLs are the sink's own validation's business.)
pub fn check_config_url(url: &str, security: &SecurityConfig) -> Result<(), String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    if security.https_only && parsed.scheme() != "https" {
        return Err(format!(
            "{}:// is refused by security.https_only; use an https:// URL",
            parsed.scheme()
        ));
    }
    Guard::new(security)
        .check_url(&parsed)
        .map_err(|r| r.to_string())
}
