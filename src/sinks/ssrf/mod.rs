//! The SSRF guard: customer-configured destination URLs must not reach courier's own networks.
//!
//! Courier refuses to connect to loopback, private, link-local (cloud instance metadata
//! included), CGNAT, multicast, documentation, benchmarking and other special-purpose addresses
//! ([`classify`]) unless `[security] allow_networks` lists them. IPv4-mapped (`::ffff:0:0/96`),
//! NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by the IPv4 address they
//! carry.
//!
//! Where the checks happen:
//! - **Host names** are resolved by [`GuardedResolver`], installed in the sink's HTTP client.
//!   It drops the refused addresses and hands the client only the vetted ones, so the client
//!   connects to exactly what was checked: there is no second lookup an attacker's DNS could
//!   answer differently (DNS rebinding). A name with no allowed address fails with a
//!   [`Refusal`], which [`super::util::http::transport_error`] turns into
//!   `Outcome::Rejected { scope: RejectScope::Destination }` (see [`refusal_in`]).
//! - **Literal IP hosts** never reach a resolver, so they are checked at configuration time
//!   ([`check_config_url`], reported with the destination's key path) and again by the sink
//!   before each request ([`Guard::check_url`]).
//!
//! Guarded: `webhook` URLs, `splunk_hec` endpoints, Datadog `endpoint` overrides and S3
//! `endpoint` overrides, none of whose requests follow redirects. Datadog `site` intakes and
//! AWS's own S3 endpoints are host names courier derives itself (left unguarded, so private
//! links such as AWS PrivateLink, which resolve them to private addresses, keep working). The
//! `s3` sink's requests to an `endpoint` go through the guard by way of its own connector
//! (`sinks::s3::connector`); its credential requests (instance metadata at 169.254.169.254,
//! container credentials, STS) are the operator's and stay unguarded.
//!
//! With an HTTP(S) proxy in the environment (`HTTPS_PROXY`, `HTTP_PROXY`), the proxy resolves
//! the destinations' names: the resolver then vets the proxy's address, and egress rules
//! belong on the proxy. Literal IP destinations are still checked by courier.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::{DeliveryError, ErrorKind, Outcome, RejectScope};
use crate::config::{SecurityConfig, SinkConfig};

/// Why an address is refused: the special-purpose range it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// What the range is, with its article: "a private address".
    pub what: &'static str,
    /// The range, as CIDR.
    pub range: &'static str,
    /// For an IPv6 address judged by the IPv4 address it embeds: how it embeds it.
    pub via: Option<&'static str>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Some(via) => write!(f, "{} ({}, {via})", self.what, self.range),
            None => write!(f, "{} ({})", self.what, self.range),
        }
    }
}

/// Refused IPv4 ranges, most specific first (the first match names the range).
const V4_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/32", "the unspecified address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("169.254.169.254/32", "the cloud instance metadata address"),
    ("0.0.0.0/8", "a \"this network\" address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    // Azure's platform endpoint (WireServer, DNS, health probes): public-looking, but only
    // reachable from inside Azure, where it serves the VM's own secrets.
    (
        "168.63.129.16/32",
        "the Azure platform (WireServer) address",
    ),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
];

/// Refused IPv6 ranges, most specific first. Embedding ranges (IPv4-mapped, NAT64, 6to4) are
/// handled before this table; anything outside global unicast 2000::/3 is refused after it.
const V6_RANGES: &[(&str, &str)] = &[
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an IETF protocol assignment address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
];

type Table = Vec<(IpNet, &'static str, &'static str)>;

fn table(ranges: &'static [(&'static str, &'static str)]) -> Table {
    ranges
        .iter()
        .map(|&(range, what)| {
            let net = range.parse().expect("the refused ranges are valid CIDR");
            (net, range, what)
        })
        .collect()
}

static V4_TABLE: LazyLock<Table> = LazyLock::new(|| table(V4_RANGES));
static V6_TABLE: LazyLock<Table> = LazyLock::new(|| table(V6_RANGES));

fn lookup(table: &Table, ip: IpAddr) -> Option<Blocked> {
    table
        .iter()
        .find(|(net, _, _)| net.contains(&ip))
        .map(|&(_, range, what)| Blocked {
            what,
            range,
            via: None,
        })
}

/// The IPv4 address an IPv6 address stands for, and how: IPv4-mapped (`::ffff:a.b.c.d`),
/// NAT64 well-known prefix (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::/48`).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let s = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return Some((low, "IPv4-mapped"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some((low, "NAT64"));
    }
    if s[0] == 0x2002 {
        return Some((Ipv4Addr::new(o[2], o[3], o[4], o[5]), "6to4"));
    }
    None
}

/// Why `ip` is refused, or `None` for a public address. Allow lists are not consulted.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(_) => lookup(&V4_TABLE, ip),
        IpAddr::V6(v6) => {
            if let Some((v4, via)) = embedded_ipv4(v6) {
                return lookup(&V4_TABLE, IpAddr::V4(v4)).map(|b| Blocked {
                    via: Some(via),
                    ..b
                });
            }
            if let Some(b) = lookup(&V6_TABLE, ip) {
                return Some(b);
            }
            // Everything outside global unicast is special-purpose or unassigned.
            (v6.segments()[0] & 0xe000 != 0x2000).then_some(Blocked {
                what: "a reserved address",
                range: "outside 2000::/3",
                via: None,
            })
        }
    }
}

/// One address a destination may not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAddress {
    /// The address.
    pub ip: IpAddr,
    /// Its range.
    pub blocked: Blocked,
}

/// A destination's host was refused: a literal address, or a name all of whose addresses are
/// refused. The error the resolver returns, found again in reqwest's error chain by
/// [`refusal_in`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    /// The host name, when the addresses came from resolving it.
    pub host: Option<String>,
    /// The refused addresses (at least one).
    pub addresses: Vec<RefusedAddress>,
}

/// How many refused addresses an error message lists.
const LISTED: usize = 4;

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused: ")?;
        if let Some(host) = &self.host {
            write!(f, "{host} resolves to ")?;
        }
        for (i, a) in self.addresses.iter().take(LISTED).enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            if self.host.is_some() {
                write!(f, "{}, {}", a.ip, a.blocked)?;
            } else {
                write!(f, "{} is {}", a.ip, a.blocked)?;
            }
        }
        if self.addresses.len() > LISTED {
            write!(f, " and {} more", self.addresses.len() - LISTED)?;
        }
        let it = if self.addresses.len() > 1 {
            "them"
        } else {
            "it"
        };
        write!(f, "; allow {it} with security.allow_networks")
    }
}

impl Refusal {
    /// The delivery error of a request the guard stopped.
    pub fn delivery_error(&self) -> DeliveryError {
        DeliveryError {
            kind: ErrorKind::Connection,
            http_status: None,
            message: self.to_string(),
        }
    }

    /// The outcome of a request the guard stopped: the destination is unusable as
    /// configured, so later batches would fail the same way.
    pub fn outcome(&self) -> Outcome {
        Outcome::Rejected {
            error: self.delivery_error(),
            scope: RejectScope::Destination,
        }
    }
}

/// The [`Refusal`] somewhere in an error's source chain (reqwest wraps a resolver's error in
/// its own and hyper's connect errors).
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r);
        }
        next = e.source();
    }
    None
}

/// Applies `[security] allow_networks` to addresses.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<[IpNet]>,
}

impl Guard {
    /// A guard with the configuration's allow list.
    pub fn new(security: &SecurityConfig) -> Self {
        Self {
            allow: security.allow_networks.clone().into(),
        }
    }

    /// Whether the allow list covers `ip` (or the IPv4 address it embeds).
    fn allowed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(|(v4, _)| IpAddr::V4(v4)),
            IpAddr::V4(_) => None,
        };
        self.allow
            .iter()
            .any(|n| n.contains(&ip) || embedded.is_some_and(|e| n.contains(&e)))
    }

    /// `Ok` when the destination may connect to `ip`; otherwise the range that refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        match classify(ip) {
            Some(blocked) if !self.allowed(ip) => Err(blocked),
            _ => Ok(()),
        }
    }

    /// Checks the host of `url` when it is a literal IP address (names are checked by the
    /// resolver when they are resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        // The URL parser turns every IPv4 spelling (`2130706433`, `0x7f.1`) into the dotted
        // form, and brackets IPv6: what parses here is what the connector would dial unresolved.
        let host = url.host_str().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let Ok(ip) = host.parse::<IpAddr>() else {
            return Ok(());
        };
        self.check(ip).map_err(|blocked| Refusal {
            host: None,
            addresses: vec![RefusedAddress { ip, blocked }],
        })
    }

    /// Keeps the allowed addresses of those `host` resolved to; a [`Refusal`] when none is.
    pub fn filter(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for addr in addresses {
            match self.check(addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(blocked) => refused.push(RefusedAddress {
                    ip: addr.ip(),
                    blocked,
                }),
            }
        }
        if allowed.is_empty() && !refused.is_empty() {
            return Err(Refusal {
                host: Some(host.to_owned()),
                addresses: refused,
            });
        }
        if !refused.is_empty() {
            tracing::debug!(host, refused = ?refused.iter().map(|r| r.ip).collect::<Vec<_>>(),
                "some of the destination's addresses are refused; connecting to the others");
        }
        Ok(allowed)
    }

    /// A client builder that resolves names through this guard.
    pub fn install(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.dns_resolver(Arc::new(GuardedResolver {
            guard: self.clone(),
        }))
    }
}

/// A `reqwest` resolver that resolves with the system resolver and returns only the addresses
/// the guard allows.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Guard,
}

impl GuardedResolver {
    /// A resolver applying `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = guard.filter(&host, found)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every refused range, at its edges where it matters, with the range named.
    #[test]
    fn refused_addresses_name_their_range() {
        let table: &[(&str, &str, &str)] = &[
            ("0.0.0.0", "0.0.0.0/32", "unspecified"),
            ("0.1.2.3", "0.0.0.0/8", "this network"),
            ("10.0.0.5", "10.0.0.0/8", "private"),
            ("10.255.255.255", "10.0.0.0/8", "private"),
            ("100.64.0.1", "100.64.0.0/10", "carrier-grade NAT"),
            ("100.127.255.254", "100.64.0.0/10", "carrier-grade NAT"),
            ("100.100.100.200", "100.64.0.0/10", "carrier-grade NAT"),
            ("127.0.0.1", "127.0.0.0/8", "loopback"),
            ("127.255.0.9", "127.0.0.0/8", "loopback"),
            ("169.254.169.254", "169.254.169.254/32", "metadata"),
            ("169.254.0.1", "169.254.0.0/16", "link-local"),
            ("172.16.0.1", "172.16.0.0/12", "private"),
            ("172.31.255.255", "172.16.0.0/12", "private"),
            ("192.0.0.170", "192.0.0.0/24", "IETF"),
            ("192.0.2.1", "192.0.2.0/24", "documentation"),
            ("192.88.99.1", "192.88.99.0/24", "6to4 relay"),
            ("192.168.1.1", "192.168.0.0/16", "private"),
            ("198.18.0.1", "198.18.0.0/15", "benchmarking"),
            ("198.19.255.255", "198.18.0.0/15", "benchmarking"),
            ("198.51.100.7", "198.51.100.0/24", "documentation"),
            ("203.0.113.9", "203.0.113.0/24", "documentation"),
            ("168.63.129.16", "168.63.129.16/32", "Azure"),
            ("224.0.0.1", "224.0.0.0/4", "multicast"),
            ("239.255.255.250", "224.0.0.0/4", "multicast"),
            ("240.0.0.1", "240.0.0.0/4", "reserved"),
            ("255.255.255.255", "255.255.255.255/32", "broadcast"),
            ("::", "::/128", "unspecified"),
            ("::1", "::1/128", "loopback"),
            ("fc00::1", "fc00::/7", "unique local"),
            ("fd00:ec2::254", "fc00::/7", "unique local"),
            ("fe80::1", "fe80::/10", "link-local"),
            ("febf::1", "fe80::/10", "link-local"),
            ("fec0::1", "fec0::/10", "site-local"),
            ("ff02::1", "ff00::/8", "multicast"),
            ("2001:db8::1", "2001:db8::/32", "documentation"),
            ("3fff::1", "3fff::/20", "documentation"),
            ("2001::1", "2001::/32", "Teredo"),
            ("2001:2::1", "2001:2::/48", "benchmarking"),
            ("2001:10::1", "2001::/23", "IETF"),
            ("64:ff9b:1::a00:1", "64:ff9b:1::/48", "local-use NAT64"),
            ("100::1", "100::/64", "discard"),
            ("::a00:1", "outside 2000::/3", "reserved"),
            ("5f00::1", "outside 2000::/3", "reserved"),
            ("::ffff:0:a00:1", "outside 2000::/3", "reserved"),
        ];
        for &(addr, range, word) in table {
            let b = classify(ip(addr)).unwrap_or_else(|| panic!("{addr} is not refused"));
            assert_eq!(b.range, range, "{addr}");
            assert!(b.what.contains(word), "{addr}: {}", b.what);
            assert_eq!(b.via, None, "{addr}");
        }
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_by_their_ipv4() {
        for (addr, range, via) in [
            ("::ffff:127.0.0.1", "127.0.0.0/8", "IPv4-mapped"),
            (
                "::ffff:169.254.169.254",
                "169.254.169.254/32",
                "IPv4-mapped",
            ),
            ("::ffff:10.1.2.3", "10.0.0.0/8", "IPv4-mapped"),
            ("64:ff9b::10.0.0.5", "10.0.0.0/8", "NAT64"),
            ("64:ff9b::127.0.0.1", "127.0.0.0/8", "NAT64"),
            ("2002:c0a8:0101::1", "192.168.0.0/16", "6to4"),
            ("2002:a9fe:a9fe::", "169.254.169.254/32", "6to4"),
        ] {
            let b = classify(ip(addr)).unwrap_or_else(|| panic!("{addr} is not refused"));
            assert_eq!((b.range, b.via), (range, Some(via)), "{addr}");
        }
        // Public IPv4 behind the same embeddings is allowed.
        for addr in ["::ffff:8.8.8.8", "64:ff9b::1.1.1.1", "2002:0808:0808::1"] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81c::200e",
            "2001:4860:4860::8888",
            "2001:200::1",
        ] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
            assert!(Guard::default().check(ip(addr)).is_ok(), "{addr}");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let guard = Guard::new(
            &SecurityConfig::allowing(&["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"]).unwrap(),
        );
        for addr in [
            "127.0.0.1",
            "10.1.200.3",
            "::ffff:127.0.0.1",
            "64:ff9b::10.1.0.1",
            "fd00:ec2::254",
        ] {
            assert!(guard.check(ip(addr)).is_ok(), "{addr}");
        }
        for addr in [
            "10.2.0.1",
            "169.254.169.254",
            "::1",
            "192.168.0.1",
            "fc00::1",
        ] {
            assert!(guard.check(ip(addr)).is_err(), "{addr}");
        }
        // Without it, everything special is refused.
        assert!(Guard::default().check(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn refusals_say_what_and_how_to_allow_it() {
        let url = reqwest::Url::parse("http://10.0.0.5:8080/hook").unwrap();
        let e = Guard::default().check_url(&url).unwrap_err();
        assert_eq!(
            e.to_string(),
            "refused: 10.0.0.5 is a private address (10.0.0.0/8); allow it with security.allow_networks"
        );
        // Every WHATWG IPv4 spelling is a literal address, and so is bracketed IPv6.
        for literal in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "https://[0:0:0:0:0:ffff:a9fe:a9fe]/latest",
        ] {
            let url = reqwest::Url::parse(literal).unwrap();
            assert!(Guard::default().check_url(&url).is_err(), "{literal}");
        }
        let url = reqwest::Url::parse("https://hooks.example.com/x").unwrap();
        assert!(Guard::default().check_url(&url).is_ok());

        let e = Guard::default()
            .filter(
                "localhost",
                [
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ],
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "refused: localhost resolves to 127.0.0.1, a loopback address (127.0.0.0/8) and ::1, a loopback address (::1/128); allow them with security.allow_networks"
        );
        match e.outcome() {
            Outcome::Rejected { error, scope } => {
                assert_eq!(scope, RejectScope::Destination);
                assert_eq!(error.kind, ErrorKind::Connection);
                assert!(error.message.starts_with("refused: localhost"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_vetted_addresses_are_returned() {
        let guard = Guard::default();
        let mixed = [
            SocketAddr::from(([10, 0, 0, 1], 0)),
            SocketAddr::from(([93, 184, 215, 14], 0)),
        ];
        assert_eq!(
            guard.filter("mixed.example", mixed).unwrap(),
            vec![SocketAddr::from(([93, 184, 215, 14], 0))]
        );
        // A name with no addresses is the system resolver's error, not a refusal.
        assert_eq!(guard.filter("empty.example", []).unwrap(), vec![]);
    }

    #[tokio::test]
    async fn the_resolver_refuses_localhost_unless_allowed() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = GuardedResolver::new(Guard::default())
            .resolve(name)
            .await
            .err()
            .expect("localhost is refused");
        let refusal = refusal_in(&*error).expect("a Refusal");
        assert_eq!(refusal.host.as_deref(), Some("localhost"));
        let allowed = Guard::new(&SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = GuardedResolver::new(allowed)
            .resolve(name)
            .await
            .expect("allowed")
            .collect();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addrs:?}"
        );
    }

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

    fn load(text: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, Vec<String>> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        crate::config::parse("test.toml", text, &env)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    const DESTINATIONS: &str = r#"
[[destinations]]
project = "p"
id = "file"
type = "file"
path = "/tmp/x.ndjson"

[[destinations]]
project = "p"
id = "hook"
type = "webhook"
url = "http://10.0.0.5:8080/hook"

[[destinations]]
project = "p"
id = "splunk"
type = "splunk_hec"
endpoint = "http://[fd00::7]:8088"
token = "t"

[[destinations]]
project = "p"
id = "dd"
type = "datadog"
api_key = "k"
endpoint = "http://169.254.169.254"

[[destinations]]
project = "p"
id = "s3"
type = "s3"
bucket = "logs"
region = "us-east-1"
endpoint = "http://127.0.0.1:9000"

[[destinations]]
project = "p"
id = "named"
type = "webhook"
url = "http://hooks.example.com/x"
"#;

    #[test]
    fn the_section_parses_with_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.security, SecurityConfig::default());
        let c = load(
            "[security]\nallow_networks = [\"127.0.0.0/8\", \"10.1.0.0/16\", \"fd00::1\"]\nhttps_only = true\n",
            &[],
        )
        .unwrap();
        let nets: Vec<String> = c
            .security
            .allow_networks
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["127.0.0.0/8", "10.1.0.0/16", "fd00::1/128"]);
        assert!(c.security.https_only);
        // From the environment: one comma-separated string.
        let c = load(
            "",
            &[
                (
                    "COURIER__SECURITY__ALLOW_NETWORKS",
                    "127.0.0.0/8, 10.0.0.0/8",
                ),
                ("COURIER__SECURITY__HTTPS_ONLY", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.security.allow_networks.len(), 2);
        assert!(c.security.https_only);
    }

    #[test]
    fn invalid_networks_name_their_index() {
        let e = load(
            "[security]\nallow_networks = [\"127.0.0.0/8\", \"10.0.0.0/33\", 7, \"10.1.2.3/16\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with(
                "test.toml: security.allow_networks[1]: \"10.0.0.0/33\" is not a network"
            ),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("test.toml: security.allow_networks[2]: must be a string"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with(
                "test.toml: security.allow_networks[3]: \"10.1.2.3/16\" has host bits set"
            ),
            "{e:?}"
        );
        let e = load("[security]\nallow_networks = 7\n", &[]).unwrap_err();
        assert!(
            e[0].contains("security.allow_networks: must be a list"),
            "{e:?}"
        );
        let e = load("[security]\nallow = []\n", &[]).unwrap_err();
        assert!(
            e[0].contains("security") && e[0].contains("unknown field `allow`"),
            "{e:?}"
        );
    }

    #[test]
    fn literal_internal_addresses_are_refused_at_validation_with_their_key() {
        let e = load(DESTINATIONS, &[]).unwrap_err();
        assert_eq!(
            e,
            [
                "test.toml: destinations[1].url: refused: 10.0.0.5 is a private address (10.0.0.0/8); allow it with security.allow_networks",
                "test.toml: destinations[2].endpoint: refused: fd00::7 is a unique local (private) address (fc00::/7); allow it with security.allow_networks",
                "test.toml: destinations[3].endpoint: refused: 169.254.169.254 is the cloud instance metadata address (169.254.169.254/32); allow it with security.allow_networks",
                "test.toml: destinations[4].endpoint: refused: 127.0.0.1 is a loopback address (127.0.0.0/8); allow it with security.allow_networks",
            ]
        );
        let allowed = format!(
            "[security]\nallow_networks = [\"10.0.0.0/8\", \"fd00::/8\", \"169.254.169.254\", \"127.0.0.1\"]\n{DESTINATIONS}"
        );
        let c = load(&allowed, &[]).unwrap();
        assert_eq!(c.destinations.len(), 6);
    }

    #[test]
    fn https_only_refuses_every_http_destination_url() {
        let text = format!(
            "[security]\nhttps_only = true\nallow_networks = [\"0.0.0.0/0\", \"::/0\"]\n{DESTINATIONS}"
        );
        let e = load(&text, &[]).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.split(": ").nth(1).unwrap()).collect();
        assert_eq!(
            paths,
            [
                "destinations[1].url",
                "destinations[2].endpoint",
                "destinations[3].endpoint",
                "destinations[4].endpoint",
                "destinations[5].url",
            ]
        );
        assert!(
            e[0].ends_with("http:// is refused by security.https_only; use an https:// URL"),
            "{e:?}"
        );
        let https = text.replace("http://", "https://");
        assert!(load(&https, &[]).is_ok());
    }

    #[test]
    fn config_urls_follow_https_only_and_the_allow_list() {
        let open = SecurityConfig::default();
        let strict = SecurityConfig {
            https_only: true,
            ..SecurityConfig::default()
        };
        assert!(check_config_url("http://hooks.example.com", &open).is_ok());
        let e = check_config_url("http://hooks.example.com", &strict).unwrap_err();
        assert!(e.contains("security.https_only"), "{e}");
        assert!(check_config_url("https://hooks.example.com", &strict).is_ok());
        let e = check_config_url("https://169.254.169.254/latest", &open).unwrap_err();
        assert!(e.contains("cloud instance metadata"), "{e}");
        let allowed = SecurityConfig::allowing(&["10.0.0.0/8"]).unwrap();
        assert!(check_config_url("http://10.0.0.5:8080", &allowed).is_ok());
        // Names are judged when they are resolved, not at configuration time.
        assert!(check_config_url("http://localhost:8080", &open).is_ok());
    }
}
