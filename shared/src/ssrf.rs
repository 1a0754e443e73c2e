//! The one rule for which targets a webhook may point at. Registration checks
//! the URL's host with it; the dispatcher checks every address it connects to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("the address {0} is in a loopback, private, link-local or otherwise reserved range")]
    Address(IpAddr),
    #[error("\"localhost\" and names under \".localhost\" are not allowed")]
    Localhost,
    #[error("a host name must not have an empty label (\"..\")")]
    EmptyLabel,
    #[error(
        "port {0} is not allowed: use 80, 443, or 1024-65535 except well-known service ports (databases, caches, remote desktop)"
    )]
    Port(u16),
}

/// Ports above 1023 that are well-known services rather than web servers:
/// a delivery there (with its `Authorization` header) would only probe or
/// speak to them. MS SQL, Oracle, NFS, Docker, etcd, MySQL, RDP, PostgreSQL,
/// VNC, CouchDB, Redis, Kubernetes, Cassandra, Elasticsearch, memcached,
/// MongoDB.
pub const SERVICE_PORTS: [u16; 20] = [
    1433, 1521, 2049, 2375, 2376, 2379, 2380, 3306, 3389, 5432, 5900, 5984, 6379, 6443, 9042, 9200,
    9300, 11211, 27017, 27018,
];

/// The port rule: 80, 443, and 1024-65535 except [`SERVICE_PORTS`]. Well-known
/// ports below 1024 (SSH, SMTP, ...) and database ports are refused, so the
/// platform cannot be made to send requests, and report their answers, to
/// services that are not web servers.
pub fn check_port(port: u16) -> Result<(), Blocked> {
    let web = port == 80 || port == 443 || (port >= 1024 && !SERVICE_PORTS.contains(&port));
    if web {
        Ok(())
    } else {
        Err(Blocked::Port(port))
    }
}

/// Whether a host name (not an IP literal) is refused by name alone.
/// A name that spells an address once its trailing dots are gone is judged
/// as that address, and a name with an empty label is refused: resolvers
/// differ on what they make of `0.7.1.0..`, so the rule does not guess.
pub fn check_name(host: &str) -> Result<(), Blocked> {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed.is_empty() || trimmed.split('.').any(str::is_empty) {
        return Err(Blocked::EmptyLabel);
    }
    let name = trimmed.to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(Blocked::Localhost);
    }
    match name
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => check_ip(ip),
        Err(_) => Ok(()),
    }
}

/// Whether an address may be connected to.
pub fn check_ip(ip: IpAddr) -> Result<(), Blocked> {
    if is_forbidden(ip) {
        Err(Blocked::Address(ip))
    } else {
        Ok(())
    }
}

pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u32) -> (u32, u32) {
    (u32::from_be_bytes([a, b, c, d]), prefix)
}

/// IANA special-purpose IPv4 ranges that are not globally reachable, plus
/// multicast and the reserved 240/4 (which holds the broadcast address).
const FORBIDDEN_V4: [(u32, u32); 16] = [
    v4(0, 0, 0, 0, 8),       // "this network", unspecified
    v4(10, 0, 0, 0, 8),      // RFC 1918
    v4(100, 64, 0, 0, 10),   // CGNAT
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, cloud metadata
    v4(172, 16, 0, 0, 12),   // RFC 1918
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // TEST-NET-1
    v4(192, 31, 196, 0, 24), // AS112
    v4(192, 52, 193, 0, 24), // AMT
    v4(192, 88, 99, 0, 24),  // 6to4 relay anycast
    v4(192, 168, 0, 0, 16),  // RFC 1918
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // TEST-NET-2
    v4(203, 0, 113, 0, 24),  // TEST-NET-3
    v4(224, 0, 0, 0, 3),     // multicast 224/4 and reserved 240/4, broadcast
];

fn in_v4(addr: u32, (net, prefix): (u32, u32)) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    addr & mask == net & mask
}

pub fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let addr = u32::from(ip);
    FORBIDDEN_V4.iter().any(|&range| in_v4(addr, range))
}

fn in_v6(addr: u128, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    addr & mask == net & mask
}

/// IPv6: the ranges that hold no public unicast address, and every form that
/// embeds an IPv4 address, judged by that IPv4 address.
pub fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let addr = u128::from(ip);
    // IPv4-mapped ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d and NAT64
    // 64:ff9b::a.b.c.d carry an IPv4 address.
    if in_v6(addr, 0xffff_0000_0000, 96)
        || in_v6(addr, 0xffff_0000_0000_0000, 96)
        || in_v6(addr, 0x0064_ff9b << 96, 96)
    {
        return is_forbidden_v4(Ipv4Addr::from(addr as u32));
    }
    // 6to4 2002:a.b.c.d::/48 embeds an IPv4 address in bits 16..48.
    if in_v6(addr, 0x2002 << 112, 16) {
        return is_forbidden_v4(Ipv4Addr::from((addr >> 80) as u32));
    }
    const RANGES: [(u128, u32); 10] = [
        (0, 8),                       // ::/8 reserved: ::, ::1, IPv4-compatible ::a.b.c.d
        (0x0064_ff9b_0001 << 80, 48), // local-use NAT64
        (0x0100 << 112, 64),          // discard-only
        (0x2001 << 112, 23),          // IETF protocol assignments, Teredo
        (0x2001_0db8 << 96, 32),      // documentation
        (0x3fff << 112, 20),          // documentation
        (0xfc00 << 112, 7),           // unique local
        (0xfe80 << 112, 10),          // link-local
        (0xfec0 << 112, 10),          // site-local (deprecated)
        (0xff00 << 112, 8),           // multicast
    ];
    RANGES.iter().any(|&(net, prefix)| in_v6(addr, net, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn v4_ranges_on_both_sides_of_each_bound() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "52.95.110.1",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn v6_ranges_and_embedded_v4() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "3fff::1",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff::1",
            "ff00::",
        ] {
            let expected_forbidden = ip == "ff00::";
            assert_eq!(forbidden(ip), expected_forbidden, "{ip}");
        }
    }

    #[test]
    fn localhost_names() {
        assert_eq!(check_name("localhost"), Err(Blocked::Localhost));
        assert_eq!(check_name("LOCALHOST."), Err(Blocked::Localhost));
        assert_eq!(check_name("api.localhost"), Err(Blocked::Localhost));
        assert!(check_name("localhost.example.com").is_ok());
        assert!(check_name("mylocalhost").is_ok());
        assert!(check_name("example.com.").is_ok());
        assert_eq!(check_name("example..com"), Err(Blocked::EmptyLabel));
        assert_eq!(check_name("0.7.1.0.."), Err(Blocked::EmptyLabel));
        assert_eq!(check_name("."), Err(Blocked::EmptyLabel));
        assert_eq!(
            check_name("10.0.0.1"),
            Err(Blocked::Address("10.0.0.1".parse().unwrap()))
        );
    }
}
