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
//! Guarded: `webhook` URLs, `splunk_hec` and `otlp` endpoints, Datadog `endpoint` overrides and S3
//! `endpoint` overrides, none of whose requests follow redirects, and the `email` sink's SMTP
//! `host` (not a URL: the sink resolves it with [`Guard::filter`] and connects to exactly the
//! vetted addresses; a literal address is checked by `EmailConfig::check_security`). Datadog `site` intakes and
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
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::{DeliveryError, ErrorKind, Outcome, RejectScope};
use courier_core::settings::SecurityConfig;

mod ranges;
mod settings;
#[cfg(test)]
mod tests;

pub use ranges::{classify, embedded_ipv4, Blocked};
pub use settings::{check_config_url, destination_urls};

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
