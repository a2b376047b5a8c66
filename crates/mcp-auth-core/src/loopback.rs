//! Which URL hosts count as "this machine", for the rule every crate here
//! applies: `https`, or plain `http` only on loopback.

use std::net::{IpAddr, Ipv6Addr};

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

#[cfg(test)]
mod tests {
    use super::*;

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
