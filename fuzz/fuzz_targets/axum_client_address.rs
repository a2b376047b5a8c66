//! Arbitrary forwarding headers (`X-Forwarded-For`, then after a 0xFF
//! separator `Forwarded`, then after another a platform header) from a
//! trusted and from an untrusted peer: never a panic; an untrusted peer is
//! always its own client; the answer is never a trusted proxy other than
//! the peer itself.
#![no_main]

use std::net::IpAddr;

use mcp_auth_axum::{ClientAddressPolicy, IpRange};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xFF);
    let (xff, forwarded, platform) = (parts.next(), parts.next(), parts.next());
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("x-forwarded-for", xff),
        ("forwarded", forwarded),
        ("x-real-ip", platform),
    ] {
        if let Some(value) = value.and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
            headers.append(name, value);
        }
    }
    let trusted: Vec<IpRange> = ["10.0.0.0/8", "fd00::/8"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let proxy: IpAddr = "10.1.1.1".parse().unwrap();
    let stranger: IpAddr = "198.51.100.9".parse().unwrap();
    for (policy, platform) in [
        (ClientAddressPolicy::behind(trusted.clone()), false),
        (
            ClientAddressPolicy::behind(trusted.clone())
                .platform_header(http::HeaderName::from_static("x-real-ip")),
            true,
        ),
    ] {
        assert_eq!(policy.resolve(Some(stranger), &headers).0, Some(stranger));
        let client = policy.resolve(Some(proxy), &headers).0.unwrap();
        let key = mcp_auth_axum::ClientAddress(Some(client)).rate_key();
        assert!(key.starts_with("ip:"));
        // The chain's answer is the right-most hop that is not a trusted
        // proxy (a platform header names whatever the platform saw).
        if !platform && client != proxy {
            assert!(!trusted.iter().any(|r| r.contains(client)), "{client}");
        }
    }
});
