//! `[security]`: which addresses destinations may reach. The sinks' SSRF guard enforces it on
//! every connection; this is its value and how the file's text becomes one.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

/// `[security]`: the SSRF guard's settings (enforced by the sinks' SSRF guard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Internal networks (loopback, private, link-local, …) destinations may reach all the
    /// same; every other special-purpose address is refused.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Refuse `http://` destination URLs.
    pub https_only: bool,
    /// The operator's `[redact]` section (its own section of the file, carried here because,
    /// like the rest of this policy, it binds every destination, including the API's): applied
    /// after each destination's own rules, which cannot remove it. `None` when it changes
    /// nothing.
    pub redact: Option<crate::shape::Rules>,
    /// `[limits] max_destination_events_per_second` and `max_destination_requests_per_second`
    /// (carried here for the same reason as `redact`): no destination's `rate_limit` may
    /// exceed them, and a destination without one gets them.
    pub rate_ceiling: RateCeiling,
}

/// The operator's ceiling on every destination's rates; `None`: no ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateCeiling {
    /// Events per second.
    pub events_per_second: Option<u32>,
    /// Requests per second.
    pub requests_per_second: Option<u32>,
}

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
pub struct RawSecurity {
    allow_networks: Value,
    https_only: bool,
}

impl RawSecurity {
    /// The section, and every error as (key path, message).
    pub fn resolve(self) -> (SecurityConfig, Vec<(String, String)>) {
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
                redact: None,
                rate_ceiling: RateCeiling::default(),
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
            redact: None,
            rate_ceiling: RateCeiling::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_strictly() {
        assert_eq!(
            parse_network("10.1.0.0/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            parse_network(" 127.0.0.1 ").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_network("fd00::/8").unwrap().to_string(), "fd00::/8");
        let e = parse_network("10.1.2.3/16").unwrap_err();
        assert!(
            e.contains("10.1.0.0/16") && e.contains("10.1.2.3/32"),
            "{e}"
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "localhost",
            "",
            "10.0.0.0/",
            "fd00::/129",
        ] {
            assert!(parse_network(bad).is_err(), "{bad}");
        }
    }
}
