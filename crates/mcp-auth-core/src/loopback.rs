//! Which URL hosts count as "this machine", for the rule every crate here
//! applies (`https`, or plain `http` only on loopback), and which addresses
//! are on the public internet, for the rule a server applies before it
//! fetches a URL someone else gave it (SSRF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `host`, as a URL gives it (`127.0.0.1`, `[::1]`, a name), is a
/// loopback IP literal (127.0.0.0/8 or ::1). Names are not: `localhost`
/// can be made to resolve elsewhere.
pub fn is_loopback_ip(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // Brackets hold an IPv6 address only.
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    }
}

/// [`is_loopback_ip`], or the name `localhost` (any case): the looser rule
/// for URLs this server itself fetches or serves during development.
pub fn is_loopback_host(host: &str) -> bool {
    is_loopback_ip(host) || host.eq_ignore_ascii_case("localhost")
}

/// Whether `ip` is a globally routable unicast address: not loopback,
/// private (RFC 1918, IPv6 unique local), link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking,
/// reserved, or an IPv6 form that embeds such an IPv4 address
/// (IPv4-mapped, NAT64) or tunnels to one (6to4, Teredo). A server that
/// fetches a URL from outside connects only to such addresses.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network"
        || a == 10                              // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a == 127                             // loopback
        || (a == 169 && b == 254)               // link-local
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 88 && c == 99)     // 6to4 relay anycast
        || (a == 192 && b == 168)               // private
        || (a == 198 && (18..20).contains(&b))  // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96): the embedded IPv4 address decides.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // Only global unicast (2000::/3) can be public.
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] < 0x0200)   // IETF protocol assignments, Teredo
        && !(s[0] == 0x2001 && s[1] == 0x0db8)  // documentation
        && s[0] != 0x2002 // 6to4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_and_the_rest() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public_ip(public.parse().unwrap()), "{public}");
        }
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2002:c0a8:101::1",
            "100::1",
        ] {
            assert!(!is_public_ip(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn loopback_literals_and_names() {
        for host in ["127.0.0.1", "127.8.9.10", "[::1]", "::1"] {
            assert!(is_loopback_ip(host), "{host}");
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["localhost", "LocalHost"] {
            assert!(!is_loopback_ip(host), "{host}");
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "128.0.0.1",
            "[::2]",
            "10.0.0.1",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "",
            "[127.0.0.1]",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
