//! A per-client budget of full token verifications, so a flood of made-up
//! tokens cannot spend the server's CPU on signature checks (or its
//! authorization server's on introspection calls).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Request, Response};
use mcp_auth_core::UserId;
use mcp_auth_ratelimit::{Decision, RateLimiter};

use crate::audit;

/// Where the client's address comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The client-address policy's decision (`ClientAddress`), else the
    /// TCP peer (`ConnectInfo<SocketAddr>`).
    Peer,
    /// The last value of a header a trusted proxy in front sets (for
    /// `X-Forwarded-For`, the last entry is the one that proxy added).
    Header(HeaderName),
}

/// Charges every token the verifier has to really check (a verified-token
/// cache hit is free) to the client's address, through a
/// [`RateLimiter`]'s per-user tier keyed `ip:<address>`; over the budget,
/// 429 with `Retry-After` before any verification.
///
/// A client with a good token pays once per token (then it is cached), so
/// a budget such as 30 a minute costs legitimate clients nothing, while a
/// client sending made-up tokens gets 30 signature checks a minute. IPv6
/// addresses count per /64 (one host usually holds a whole /64). When the
/// address is unknown (no `ConnectInfo`, header missing or not an address)
/// the request is charged to one shared `ip:unknown` key, so the limit
/// still bounds the total. Use a limiter of its own: its keys must not mix
/// with user ids.
#[derive(Clone)]
pub struct VerificationLimit {
    limiter: Arc<dyn RateLimiter>,
    source: Source,
}

impl std::fmt::Debug for VerificationLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationLimit")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl VerificationLimit {
    /// Keyed by the client's address: what a [`ClientAddressLayer`] in
    /// front decided (trusted proxies), else the TCP peer (served by
    /// [`serve`](crate::serve), or with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    ///
    /// [`ClientAddressLayer`]: crate::ClientAddressLayer
    pub fn per_peer(limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            limiter,
            source: Source::Peer,
        }
    }

    /// Keyed by the last value of `header` (e.g. `x-forwarded-for`,
    /// `x-real-ip`), for a server behind a proxy that sets it. Only behind
    /// such a proxy: otherwise clients choose their own key.
    pub fn per_header(limiter: Arc<dyn RateLimiter>, header: HeaderName) -> Self {
        Self {
            limiter,
            source: Source::Header(header),
        }
    }

    /// The limiter key for `request`'s client.
    fn key(&self, request: &Request<Body>) -> String {
        let address = match &self.source {
            // The client-address policy's decision when a
            // `ClientAddressLayer` ran, else the TCP peer.
            Source::Peer => crate::ClientAddress::of(request).0,
            Source::Header(name) => last_address(request.headers(), name),
        };
        crate::ClientAddress(address).rate_key()
    }

    /// Charges one verification to `request`'s client: `Err` with the 429
    /// (or 503 when the limiter cannot decide) to send instead. The key is
    /// read before the future starts: a request body is not `Sync`, so the
    /// request must not be held across the await.
    pub(crate) fn charge(
        &self,
        request: &Request<Body>,
    ) -> impl std::future::Future<Output = Result<(), Response<Body>>> + Send + '_ {
        let key = self.key(request);
        self.charge_key(key)
    }

    async fn charge_key(&self, key: String) -> Result<(), Response<Body>> {
        // "ip:" and an address or "unknown" is always a valid user id; were
        // it ever not, the request is refused (fail closed), never waved
        // through uncharged.
        let Ok(client) = UserId::new(key.as_str()) else {
            tracing::error!(
                target: audit::TARGET,
                event = "verification_limit_unusable_key",
                "the verification limit could not key this client: refusing",
            );
            return Err(crate::ratelimit::limited(
                mcp_auth_ratelimit::DeniedBy::StoreUnavailable,
                1,
                "token verification is temporarily unavailable",
            ));
        };
        match self.limiter.decide(&client, None).await {
            Decision::Allowed => Ok(()),
            denied @ Decision::Denied { by, .. } => {
                let retry_after = denied.retry_after_secs().unwrap_or(1);
                audit::verification_limited(&key, retry_after);
                Err(crate::ratelimit::limited(
                    by,
                    retry_after,
                    "too many token verifications from this client",
                ))
            }
        }
    }
}

/// The last comma-separated entry of the last `name` header, as an address
/// (with or without a port).
fn last_address(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_ratelimit::{Limits, MemoryRateLimiter};

    fn limit(source: Source) -> VerificationLimit {
        VerificationLimit {
            limiter: Arc::new(MemoryRateLimiter::new(Limits::none()).unwrap()),
            source,
        }
    }

    fn request(peer: Option<&str>, forwarded: &[&str]) -> Request<Body> {
        let mut request = Request::new(Body::empty());
        if let Some(peer) = peer {
            request.extensions_mut().insert(axum::extract::ConnectInfo(
                peer.parse::<SocketAddr>().unwrap(),
            ));
        }
        for value in forwarded {
            request
                .headers_mut()
                .append("x-forwarded-for", value.parse().unwrap());
        }
        request
    }

    #[tokio::test]
    async fn a_key_that_is_no_valid_client_id_fails_closed() {
        let limit = limit(Source::Peer);
        let refused = limit
            .charge_key("ip:\n".to_owned())
            .await
            .expect_err("an unusable key must refuse, not admit");
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(limit.charge_key("ip:unknown".to_owned()).await.is_ok());
    }

    #[test]
    fn keys_per_address_v6_per_64_and_a_shared_unknown() {
        let peer = limit(Source::Peer);
        assert_eq!(
            peer.key(&request(Some("203.0.113.7:5000"), &[])),
            "ip:203.0.113.7"
        );
        assert_eq!(
            peer.key(&request(Some("[2001:db8:1:2:aaaa::1]:443"), &[])),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            peer.key(&request(Some("[2001:db8:1:2:bbbb::9]:443"), &[])),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            peer.key(&request(Some("[::ffff:198.51.100.1]:80"), &[])),
            "ip:198.51.100.1"
        );
        assert_eq!(peer.key(&request(None, &["1.2.3.4"])), "ip:unknown");

        let header = limit(Source::Header(HeaderName::from_static("x-forwarded-for")));
        // The proxy appends the address it saw: the last entry counts, not
        // what the client wrote before it.
        assert_eq!(
            header.key(&request(None, &["6.6.6.6, 198.51.100.9"])),
            "ip:198.51.100.9"
        );
        assert_eq!(
            header.key(&request(None, &["6.6.6.6", "198.51.100.10:1234"])),
            "ip:198.51.100.10"
        );
        assert_eq!(header.key(&request(None, &["nonsense"])), "ip:unknown");
        assert_eq!(
            header.key(&request(Some("203.0.113.7:1"), &[])),
            "ip:unknown"
        );
    }
}
