//! [`OutboundClient`]: the hardened reqwest implementation of [`HttpClient`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_auth_core::{BoxFuture, is_public_ip};
use zeroize::Zeroizing;

use crate::{HttpClient, HttpError, HttpRequest, HttpResponse, ResponseLimit};

/// Default bound on one exchange, connection included: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on a response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 1024 * 1024;

/// Which URLs a client sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UrlPolicy {
    /// `https` anywhere; plain `http` only to a loopback host (development
    /// and tests). For URLs from the server's own configuration.
    #[default]
    HttpsOrLoopback,
    /// `https` only, and only to hosts whose every dialled address is
    /// public (no loopback, private, link-local, … address): for URLs that
    /// come from outside, where a request could otherwise be aimed at the
    /// server's own network (SSRF).
    PublicHttps,
}

/// Builds an [`OutboundClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OutboundBuilder {
    timeout: Duration,
    max_response: usize,
    policy: UrlPolicy,
    allow_loopback: bool,
}

impl OutboundBuilder {
    /// Bound on one exchange ([`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a response body ([`DEFAULT_MAX_RESPONSE`]); a request's
    /// [`ResponseLimit`] can only lower it.
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// Which URLs the client sends to ([`UrlPolicy::HttpsOrLoopback`]).
    pub fn policy(mut self, policy: UrlPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Lets [`UrlPolicy::PublicHttps`] reach loopback addresses (and plain
    /// `http` to them): for tests and the demo, whose "outside" URLs are
    /// served on this machine. Never in production: it reopens the server's
    /// own ports to whoever supplies the URL.
    pub fn dangerous_allow_loopback(mut self) -> Self {
        self.allow_loopback = true;
        self
    }

    /// The client.
    pub fn build(self) -> Result<OutboundClient, HttpError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout);
        if self.policy == UrlPolicy::PublicHttps {
            builder = builder.dns_resolver(Arc::new(PublicOnly {
                allow_loopback: self.allow_loopback,
            }));
        }
        let client = builder.build().map_err(|error| {
            tracing::error!(%error, "the outbound HTTP client could not be built");
            HttpError::Build
        })?;
        Ok(OutboundClient {
            client,
            max_response: self.max_response,
            policy: self.policy,
            allow_loopback: self.allow_loopback,
        })
    }
}

/// The hardened [`HttpClient`]: reqwest with rustls, no redirects, no
/// proxy, a timeout, a response cap and a [`UrlPolicy`]. Cheap to clone
/// (one connection pool).
#[derive(Debug, Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    max_response: usize,
    policy: UrlPolicy,
    allow_loopback: bool,
}

impl OutboundClient {
    /// A builder with the defaults.
    pub fn builder() -> OutboundBuilder {
        OutboundBuilder {
            timeout: DEFAULT_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
            policy: UrlPolicy::default(),
            allow_loopback: false,
        }
    }

    /// A client with the defaults ([`UrlPolicy::HttpsOrLoopback`], 10 s,
    /// 1 MiB).
    pub fn new() -> Result<Self, HttpError> {
        Self::builder().build()
    }

    /// The policy this client applies.
    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// The URL, parsed, if the policy allows it; its host.
    fn check(&self, uri: &http::Uri) -> Result<(reqwest::Url, String), HttpError> {
        let value = uri.to_string();
        let http_to_loopback = self.policy == UrlPolicy::HttpsOrLoopback || self.allow_loopback;
        let url = crate::url_rule::parse(&value, http_to_loopback).map_err(|reason| {
            HttpError::Refused {
                host: uri.host().unwrap_or("").to_owned(),
                reason,
            }
        })?;
        let host = url.host_str().unwrap_or("").to_owned();
        if self.policy == UrlPolicy::PublicHttps {
            // IP literals never reach the resolver: judge them here.
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = literal.parse::<IpAddr>()
                && !allowed_address(ip, self.allow_loopback)
            {
                return Err(HttpError::NotPublic { host });
            }
        }
        Ok((url, host))
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let (url, host) = self.check(&parts.uri)?;
        let limit = parts
            .extensions
            .get::<ResponseLimit>()
            .map_or(self.max_response, |l| l.0.min(self.max_response));
        // The body may hold a client secret, a code or a token: it lives in
        // a buffer wiped when the last reference (the one sent) is dropped.
        let body = Bytes::from_owner(Wiped(Zeroizing::new(body)));
        let failed = |error: reqwest::Error| {
            if is_not_public(&error) {
                HttpError::NotPublic { host: host.clone() }
            } else if error.is_timeout() {
                HttpError::Timeout { host: host.clone() }
            } else {
                HttpError::Connect { host: host.clone() }
            }
        };
        let mut response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(failed)?;
        let too_large = || HttpError::TooLarge {
            host: host.clone(),
            max: limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let status = response.status();
        let version = response.version();
        let headers = std::mem::take(response.headers_mut());
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) if error.is_timeout() => {
                    return Err(HttpError::Timeout { host: host.clone() });
                }
                Err(_) => return Err(HttpError::Body { host: host.clone() }),
            }
        }
        let mut out = http::Response::new(bytes);
        *out.status_mut() = status;
        *out.version_mut() = version;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

impl HttpClient for OutboundClient {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpError>> {
        Box::pin(self.exchange(request))
    }
}

/// A request body, zeroed when `Bytes` drops its last reference to it.
struct Wiped(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn allowed_address(ip: IpAddr, allow_loopback: bool) -> bool {
    is_public_ip(ip) || (allow_loopback && ip.is_loopback())
}

/// The resolver behind [`UrlPolicy::PublicHttps`]: only public addresses
/// are handed to the connector, so the address checked is the address
/// dialled (no gap for DNS rebinding).
struct PublicOnly {
    allow_loopback: bool,
}

/// The resolver's refusal, found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to no public address")]
struct NotPublicAddress;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| allowed_address(addr.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() || allowed.len() != resolved.len() {
                // A name with any non-public address is refused whole: an
                // attacker's DNS could otherwise mix one in.
                tracing::warn!(host = %host, "refused: the host resolves to a non-public address");
                return Err(Box::new(NotPublicAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn is_not_public(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if current.is::<NotPublicAddress>() {
            return true;
        }
        source = current.source();
    }
    false
}
