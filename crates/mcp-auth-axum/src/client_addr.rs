//! The client's address, decided once per request by one policy and used
//! by every per-address decision (the authorization server's limits,
//! [`VerificationLimit`](crate::VerificationLimit)) and the audit log.
//!
//! The TCP peer by default. Behind proxies that are trusted (CIDR ranges),
//! the right-most address in `Forwarded` (RFC 7239) or `X-Forwarded-For`
//! that is not a trusted proxy (everything to its left was written by the
//! client and may be forged); or one platform header (`CF-Connecting-IP`,
//! `Fly-Client-IP`, `X-Real-IP`), read only when the peer is trusted. A
//! header from a peer that is not trusted is never read.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, Request};

/// Most addresses read from a forwarding header: a long header costs a
/// bounded amount of work.
const MAX_HOPS: usize = 32;

/// A range of addresses, `10.0.0.0/8` or `fd00::/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an address or a CIDR range");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let net = canonical(address.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { net, prefix })
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How the client's address is found: the TCP peer by default; behind
/// proxies that are trusted (CIDR ranges), the right-most address in
/// `Forwarded` (RFC 7239) or `X-Forwarded-For` that is not a trusted
/// proxy (everything to its left was written by the client); or one
/// platform header (`CF-Connecting-IP`, `Fly-Client-IP`, `X-Real-IP`),
/// read only when the peer is trusted.
#[derive(Debug, Clone, Default)]
pub struct ClientAddressPolicy {
    trusted: Vec<IpRange>,
    platform: Option<HeaderName>,
}

impl ClientAddressPolicy {
    /// The TCP peer, headers ignored (no proxy in front).
    pub fn peer() -> Self {
        Self::default()
    }

    /// Behind proxies in `trusted`: the right-most address of `Forwarded`
    /// or `X-Forwarded-For` that is not one of them.
    pub fn behind(trusted: impl IntoIterator<Item = IpRange>) -> Self {
        Self {
            trusted: trusted.into_iter().collect(),
            platform: None,
        }
    }

    /// Reads `header` (one address, e.g. `cf-connecting-ip`,
    /// `fly-client-ip`, `x-real-ip`) instead of the forwarding chain, when
    /// the peer is trusted.
    #[must_use]
    pub fn platform_header(mut self, header: HeaderName) -> Self {
        self.platform = Some(header);
        self
    }

    /// A comma-separated list of ranges (`MCP_TRUSTED_PROXIES`).
    pub fn parse_ranges(list: &str) -> Result<Vec<IpRange>, String> {
        list.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientAddress {
        let Some(peer) = peer.map(canonical) else {
            return ClientAddress(None);
        };
        if !self.trusts(peer) {
            return ClientAddress(Some(peer));
        }
        if let Some(name) = &self.platform {
            return ClientAddress(Some(
                match headers.get(name).map(|v| v.to_str().map(str::trim)) {
                    Some(Ok(value)) => match value.parse::<IpAddr>() {
                        Ok(ip) => canonical(ip),
                        Err(_) => malformed(name.as_str(), peer),
                    },
                    Some(Err(_)) => malformed(name.as_str(), peer),
                    None => peer,
                },
            ));
        }
        let (header, hops) = if headers.contains_key("forwarded") {
            ("forwarded", forwarded_for(headers))
        } else {
            ("x-forwarded-for", x_forwarded_for(headers))
        };
        let Some(hops) = hops else {
            return ClientAddress(Some(malformed(header, peer)));
        };
        for hop in hops.iter().rev() {
            if !self.trusts(*hop) {
                return ClientAddress(Some(*hop));
            }
        }
        // Every hop is a trusted proxy (or there is none): the peer.
        ClientAddress(Some(peer))
    }
}

fn malformed(header: &str, peer: IpAddr) -> IpAddr {
    tracing::warn!(target: crate::audit::TARGET, event = "client_address_header_ignored", header, peer = %peer);
    peer
}

/// The addresses in `X-Forwarded-For` (every line, left to right); `None`
/// when one is not an address or there are too many.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for part in value.to_str().ok()?.split(',') {
            if hops.len() == MAX_HOPS {
                return None;
            }
            hops.push(canonical(parse_hop(part.trim())?));
        }
    }
    Some(hops)
}

/// The `for=` addresses of `Forwarded` (RFC 7239), left to right; `None`
/// when one is not an address (`unknown`, an obfuscated name) or there are
/// too many.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        for element in value.to_str().ok()?.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then_some(value.trim())
            });
            let Some(node) = node else { continue };
            if hops.len() == MAX_HOPS {
                return None;
            }
            hops.push(canonical(parse_hop(node.trim_matches('"'))?));
        }
    }
    Some(hops)
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = hop.strip_prefix('[')?;
    let (address, _) = inner.split_once(']')?;
    address.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The client's address as the policy decided it (`None`: unknown), in
/// every request's extensions once [`ClientAddressLayer`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// What `request` carries: the layer's decision, else its TCP peer.
    pub fn of<B>(request: &Request<B>) -> Self {
        Self::from_extensions(request.extensions())
    }

    /// As [`of`](Self::of), from a request's extensions.
    pub fn from_extensions(extensions: &axum::http::Extensions) -> Self {
        extensions.get::<Self>().copied().unwrap_or_else(|| {
            Self(
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| canonical(c.0.ip())),
            )
        })
    }

    /// The key a per-address limit charges: `ip:<IPv4>`, `ip:<IPv6 /64>`
    /// (one host usually holds a whole /64), or `ip:unknown`.
    pub fn rate_key(&self) -> String {
        match self.0.map(canonical) {
            Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            None => "ip:unknown".to_owned(),
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// Decides every request's [`ClientAddress`] with one policy, before
/// anything else reads it.
#[derive(Debug, Clone)]
pub struct ClientAddressLayer(Arc<ClientAddressPolicy>);

impl ClientAddressLayer {
    /// The layer for `policy`.
    pub fn new(policy: ClientAddressPolicy) -> Self {
        Self(Arc::new(policy))
    }
}

impl<S> tower::Layer<S> for ClientAddressLayer {
    type Service = ClientAddressService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddressService {
            inner,
            policy: self.0.clone(),
        }
    }
}

/// The service of [`ClientAddressLayer`].
#[derive(Debug, Clone)]
pub struct ClientAddressService<S> {
    inner: S,
    policy: Arc<ClientAddressPolicy>,
}

impl<S, B> tower::Service<Request<B>> for ClientAddressService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = self.policy.resolve(peer, request.headers());
        request.extensions_mut().insert(client);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_rightmost_untrusted_hop_behind_trusted_proxies_only() {
        let policy = ClientAddressPolicy::behind(
            ClientAddressPolicy::parse_ranges("10.0.0.0/8, ::1").unwrap(),
        );
        let forged = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        // Through the trusted proxy: the right-most untrusted address.
        assert_eq!(policy.resolve(ip("10.0.0.1"), &forged).0, ip("203.0.113.7"));
        // From an untrusted peer the header is not read.
        assert_eq!(
            policy.resolve(ip("198.51.100.1"), &forged).0,
            ip("198.51.100.1")
        );
        // Forwarded wins over X-Forwarded-For, with ports and brackets.
        let rfc = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
            ),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        assert_eq!(policy.resolve(ip("::1"), &rfc).0, ip("2001:db8::7"));
        // A malformed header is ignored: the peer.
        for bad in [
            headers(&[("x-forwarded-for", "not-an-ip")]),
            headers(&[("forwarded", "for=unknown")]),
            headers(&[("forwarded", "for=_hidden")]),
        ] {
            assert_eq!(policy.resolve(ip("10.0.0.1"), &bad).0, ip("10.0.0.1"));
        }
        let long = headers(&[("x-forwarded-for", &vec!["1.2.3.4"; 40].join(","))]);
        assert_eq!(policy.resolve(ip("10.0.0.1"), &long).0, ip("10.0.0.1"));
        // Only trusted hops: the peer.
        let inner = headers(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(policy.resolve(ip("10.0.0.1"), &inner).0, ip("10.0.0.1"));
        // No proxy configured: the peer, whatever the headers.
        assert_eq!(
            ClientAddressPolicy::peer()
                .resolve(ip("10.0.0.1"), &forged)
                .0,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_platform_header_from_a_trusted_peer_and_ipv6_per_64() {
        let policy = ClientAddressPolicy::behind(["10.0.0.0/8".parse().unwrap()])
            .platform_header(HeaderName::from_static("cf-connecting-ip"));
        let h = headers(&[
            ("cf-connecting-ip", "2001:db8:1:2:3::9"),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        let client = policy.resolve(ip("10.0.0.2"), &h);
        assert_eq!(client.0, ip("2001:db8:1:2:3::9"));
        assert_eq!(client.rate_key(), "ip:2001:db8:1:2::/64");
        assert_eq!(
            ClientAddress(ip("2001:db8:1:2:ffff::1")).rate_key(),
            client.rate_key(),
            "one /64, one budget"
        );
        assert_eq!(ClientAddress(ip("::ffff:1.2.3.4")).rate_key(), "ip:1.2.3.4");
        assert_eq!(ClientAddress(None).rate_key(), "ip:unknown");
        assert_eq!(policy.resolve(ip("8.8.8.8"), &h).0, ip("8.8.8.8"));
        let bad = headers(&[("cf-connecting-ip", "x")]);
        assert_eq!(policy.resolve(ip("10.0.0.2"), &bad).0, ip("10.0.0.2"));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nope".parse::<IpRange>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<IpRange>()
                .unwrap()
                .contains("9.9.9.9".parse().unwrap())
        );
    }
}
