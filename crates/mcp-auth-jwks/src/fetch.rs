//! Fetching discovery documents and key sets through the workspace's one
//! outbound HTTP seam ([`mcp_auth_http::HttpClient`]), so tests and custom
//! transports can stand in.

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_http::{HttpClient, HttpError, OutboundClient, ResponseLimit};
use serde_json::Value;

use crate::error::FetchError;

/// Default request timeout.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default response size cap.
pub const DEFAULT_MAX_RESPONSE: usize = 256 * 1024;

/// A fetched document.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The response body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the response had one (`no-cache` and
    /// `no-store` count as zero).
    pub max_age: Option<Duration>,
}

/// The client used when none is given: [`OutboundClient`] with a 5 s
/// timeout and a 256 KiB cap.
pub fn default_client() -> Result<Arc<dyn HttpClient>, FetchError> {
    let client = OutboundClient::builder()
        .timeout(DEFAULT_FETCH_TIMEOUT)
        .max_response(DEFAULT_MAX_RESPONSE)
        .build()
        .map_err(FetchError::Client)?;
    Ok(Arc::new(client))
}

/// GETs the JSON document at `url` (https, or http on loopback) through
/// `http`, reading at most `max` bytes; anything but 200 is an error.
///
/// The URL rule is not checked again here: the URLs this crate fetches were
/// checked when configured ([`mcp_auth_http::check_configured_url`]), and the client enforces it on
/// every request ([`mcp_auth_http::UrlPolicy`]).
pub async fn fetch(http: &dyn HttpClient, url: &str, max: usize) -> Result<Fetched, FetchError> {
    let mut request = http::Request::get(url)
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|_| FetchError::InsecureUrl {
            url: url.to_owned(),
            reason: mcp_auth_http::UrlRefusal::NotAbsolute,
        })?;
    request.extensions_mut().insert(ResponseLimit(max));
    let response = http.send(request).await.map_err(|error| match error {
        HttpError::Timeout { .. } => FetchError::Timeout {
            url: url.to_owned(),
        },
        HttpError::TooLarge { max, .. } => FetchError::TooLarge {
            url: url.to_owned(),
            max,
        },
        HttpError::Refused { reason, .. } => FetchError::InsecureUrl {
            url: url.to_owned(),
            reason,
        },
        error => FetchError::Transport {
            url: url.to_owned(),
            error,
        },
    })?;
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let max_age = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(mcp_auth_http::cache_max_age);
    Ok(Fetched {
        body: response.into_body(),
        max_age,
    })
}

/// The configured-URL rule ([`mcp_auth_http::check_configured_url`]).
pub(crate) fn check_url(url: &str) -> Result<url::Url, FetchError> {
    mcp_auth_http::check_configured_url(url).map_err(|reason| FetchError::InsecureUrl {
        url: url.to_owned(),
        reason,
    })
}

/// The discovery URLs for `issuer`, in the order tried: OpenID Connect
/// Discovery (`{issuer}/.well-known/openid-configuration`), then RFC 8414
/// (`/.well-known/oauth-authorization-server` inserted before the path).
pub fn discovery_urls(issuer: &str) -> Result<[String; 2], FetchError> {
    let parsed = check_url(issuer)?;
    let oidc = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let path = parsed.path().trim_end_matches('/');
    let mut origin = parsed.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    let rfc8414 = format!(
        "{}/.well-known/oauth-authorization-server{path}",
        origin.as_str().trim_end_matches('/')
    );
    Ok([oidc, rfc8414])
}

/// Authorization-server metadata we use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// `issuer`, equal to the configured one.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// The full document.
    pub document: serde_json::Map<String, Value>,
}

/// Discovers `issuer`'s metadata. The document's `issuer` must equal the
/// configured one exactly (no trailing-slash or case normalisation), and
/// `jwks_uri` must be https (or loopback http).
pub async fn discover(http: &dyn HttpClient, issuer: &str) -> Result<ServerMetadata, FetchError> {
    let mut last_error = None;
    for url in discovery_urls(issuer)? {
        let fetched = match fetch(http, &url, DEFAULT_MAX_RESPONSE).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(%url, error = %e, "discovery attempt failed");
                last_error = Some(e);
                continue;
            }
        };
        let invalid = |reason: &'static str| FetchError::InvalidDocument {
            url: url.clone(),
            reason,
        };
        let document: serde_json::Map<String, Value> =
            serde_json::from_slice(&fetched.body).map_err(|_| invalid("not a JSON object"))?;
        let found = document
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no issuer"))?;
        if found != issuer {
            return Err(FetchError::IssuerMismatch {
                url,
                expected: issuer.to_owned(),
                found: found.to_owned(),
            });
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no jwks_uri"))?
            .to_owned();
        check_url(&jwks_uri)?;
        return Ok(ServerMetadata {
            issuer: issuer.to_owned(),
            jwks_uri,
            document,
        });
    }
    Err(last_error.unwrap_or(FetchError::InvalidDocument {
        url: issuer.to_owned(),
        reason: "no discovery document",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_oidc_and_rfc8414() {
        let [oidc, rfc] = discovery_urls("https://login.example.com/tenant/v2").expect("urls");
        assert_eq!(
            oidc,
            "https://login.example.com/tenant/v2/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc,
            "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2"
        );
        let [oidc, rfc] = discovery_urls("https://accounts.google.com").expect("urls");
        assert_eq!(
            oidc,
            "https://accounts.google.com/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc,
            "https://accounts.google.com/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("https://example.com/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_url("http://[::1]:8080/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://example.com/jwks").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("not a url").is_err());
    }
}
