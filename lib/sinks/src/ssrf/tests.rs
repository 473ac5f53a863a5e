//! Tests of the SSRF guard: the refused ranges, the resolver, and the `[security]` section.

use std::net::Ipv6Addr;

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
    let guard =
        Guard::new(&SecurityConfig::allowing(&["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"]).unwrap());
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
