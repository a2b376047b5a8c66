//! Calling the provider's API with the caller's upstream token.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, header};
use mcp_auth_http::{HttpClient, HttpResponse, OutboundClient};
use mcp_auth_oauth_server::{UpstreamError, UpstreamToken};
use secrecy::ExposeSecret;

/// Largest provider API answer read (2 MiB).
const MAX_RESPONSE: usize = 2 * 1024 * 1024;

/// Why a provider API call failed, in words a tool can show: never a
/// token, never the provider's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The person must sign in again (no tokens on file, or the provider
    /// said the refresh token is dead: their grants were revoked).
    #[error("reconnect your {provider} account: sign in again from your application")]
    Reconnect {
        /// The provider.
        provider: String,
    },
    /// The provider refused a freshly refreshed token (HTTP 401 twice).
    #[error("{provider} refused the access token even after a refresh; sign in again")]
    Unauthorized {
        /// The provider.
        provider: String,
    },
    /// Too many requests (HTTP 429): retry after this many seconds.
    #[error("{provider} is rate limiting requests; retry in {retry_after} s")]
    RateLimited {
        /// The provider.
        provider: String,
        /// Seconds to wait (`Retry-After`, else 1).
        retry_after: u64,
    },
    /// The provider or the network failed (5xx, timeout); retrying later
    /// may help.
    #[error("{provider} is unavailable right now; try again shortly")]
    Unavailable {
        /// The provider.
        provider: String,
    },
}

impl ApiError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }
}

/// The provider's API: one shared hardened HTTP client (10 s, no
/// redirects, 2 MiB), a base URL, and the provider's display name.
#[derive(Debug, Clone)]
pub struct ProviderApi {
    http: Arc<dyn HttpClient>,
    base: String,
    provider: String,
}

/// The HTTP client for everything a server sends to its provider (token,
/// revocation, keys, who-am-I, API): the workspace's hardened client
/// (https, or http to loopback; no redirects; 10 s; 2 MiB), one connection
/// pool. Client metadata documents, whose URLs come from outside, keep a
/// client of their own that dials public addresses only.
pub fn provider_http() -> Result<Arc<dyn HttpClient>, mcp_auth_http::HttpError> {
    let http = OutboundClient::builder()
        .timeout(Duration::from_secs(10))
        .max_response(MAX_RESPONSE)
        .build()?;
    Ok(Arc::new(http))
}

impl ProviderApi {
    /// The API at `base` (`https://api.spotify.com`), shown as `provider`,
    /// over a client of its own ([`provider_http`]).
    pub fn new(
        provider: impl Into<String>,
        base: impl Into<String>,
    ) -> Result<Self, mcp_auth_http::HttpError> {
        Ok(Self::with_http(provider, base, provider_http()?))
    }

    /// The same over `http` (the server's one provider client, or a fake).
    pub fn with_http(
        provider: impl Into<String>,
        base: impl Into<String>,
        http: Arc<dyn HttpClient>,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            provider: provider.into(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn unavailable(&self) -> ApiError {
        ApiError::Unavailable {
            provider: self.provider.clone(),
        }
    }

    /// Sends `method path_and_query` (relative to the base) with `body`
    /// (JSON when given) as `upstream`'s user. A 401 refreshes the token
    /// once and retries once; 429 and 5xx become [`ApiError`]s; any other
    /// answer is returned for the caller to read.
    pub async fn send(
        &self,
        upstream: &UpstreamToken,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<HttpResponse, ApiError> {
        let map = |e: UpstreamError| match e {
            UpstreamError::Reconnect { provider } => ApiError::Reconnect { provider },
            _ => self.unavailable(),
        };
        let mut token = upstream.access_token().await.map_err(map)?;
        let url = format!("{}{path_and_query}", self.base);
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        for attempt in 0..2 {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(header::ACCEPT, "application/json");
            if !body.is_empty() {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            let mut request = request.body(body.clone()).map_err(|_| self.unavailable())?;
            let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| self.unavailable())?;
            request.headers_mut().insert(header::AUTHORIZATION, bearer);
            let response = self.http.send(request).await.map_err(|e| {
                tracing::warn!(provider = %self.provider, reason = %e, "provider API call failed");
                self.unavailable()
            })?;
            let status = response.status().as_u16();
            match status {
                401 if attempt == 0 => {
                    token = upstream.refresh_rejected(&token).await.map_err(map)?;
                }
                401 => {
                    return Err(ApiError::Unauthorized {
                        provider: self.provider.clone(),
                    });
                }
                429 => {
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1);
                    return Err(ApiError::RateLimited {
                        provider: self.provider.clone(),
                        retry_after,
                    });
                }
                500..=599 => return Err(self.unavailable()),
                _ => return Ok(response),
            }
        }
        Err(self.unavailable())
    }
}
