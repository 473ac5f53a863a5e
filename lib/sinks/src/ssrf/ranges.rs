//! The special-purpose address ranges courier refuses, and how an address is judged: IPv6
//! addresses that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) by that IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

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
