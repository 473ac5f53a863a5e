//! The configuration side of the guard: the `[security]` section (`allow_networks`,
//! `https_only`) and the check of literal IP destination URLs at configuration time, reported
//! with the destination's key path.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::Guard;
use crate::config::{SecurityConfig, SinkConfig};

/// Parses one `allow_networks` entry: CIDR (`10.1.0.0/16`, `fd00::/8`) or a single address.
/// A network with host bits set (`10.1.2.3/16`) is refused as ambiguous.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if !text.contains('/') {
        return text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!(
                "{text:?} is not a network; expected CIDR such as \"10.1.0.0/16\" or an address"
            )
        });
    }
    let net: IpNet = text.parse().map_err(|_| {
        format!("{text:?} is not a network; expected CIDR such as \"10.1.0.0/16\" or \"fd00::/8\"")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; write the network, {}, or the single address, {}/{}",
            net.trunc(),
            net.addr(),
            net.max_prefix_len()
        ));
    }
    Ok(net)
}

/// `[security]` as written. `allow_networks` is a list of strings, or one comma-separated
/// string (as `COURIER__SECURITY__ALLOW_NETWORKS` gives it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSecurity {
    allow_networks: Value,
    https_only: bool,
}

impl RawSecurity {
    /// The section, and every error as (key path, message).
    pub(crate) fn resolve(self) -> (SecurityConfig, Vec<(String, String)>) {
        let mut errors = Vec::new();
        let entries: Vec<Value> = match self.allow_networks {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
            _ => {
                errors.push((
                    "security.allow_networks".to_owned(),
                    "must be a list of networks such as [\"10.1.0.0/16\"]".to_owned(),
                ));
                Vec::new()
            }
        };
        let mut allow_networks = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let path = format!("security.allow_networks[{i}]");
            match entry {
                Value::String(s) => match parse_network(&s) {
                    Ok(net) => allow_networks.push(net),
                    Err(m) => errors.push((path, m)),
                },
                _ => errors.push((path, "must be a string such as \"10.1.0.0/16\"".to_owned())),
            }
        }
        (
            SecurityConfig {
                allow_networks,
                https_only: self.https_only,
            },
            errors,
        )
    }
}

impl SecurityConfig {
    /// A configuration allowing `networks` (CIDR or addresses), for tests and tools.
    pub fn allowing(networks: &[&str]) -> Result<Self, String> {
        Ok(Self {
            allow_networks: networks
                .iter()
                .map(|n| parse_network(n))
                .collect::<Result<_, _>>()?,
            https_only: false,
        })
    }
}

/// The URLs of a destination that `[security]` applies to, with their keys.
pub fn destination_urls(sink: &SinkConfig) -> Vec<(&'static str, &str)> {
    match sink {
        SinkConfig::Webhook(c) => vec![("url", c.url.as_str())],
        SinkConfig::SplunkHec(c) => vec![("endpoint", c.endpoint.as_str())],
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
        SinkConfig::File(_) => Vec::new(),
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
