//! The one rule for which URLs the crates talk to, as a typed refusal.

use mcp_auth_core::is_loopback_host;

/// Why a URL is refused. [`UrlRefusal::reason`] gives fixed words for
/// messages; no variant holds any part of the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefusal {
    /// Not an absolute URL.
    #[error("not an absolute URL")]
    NotAbsolute,
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// A scheme other than `https` (or `http` to loopback).
    #[error("the scheme must be https")]
    NotHttps,
    /// Plain `http` to a host that is not loopback.
    #[error("plain http is only allowed to loopback hosts")]
    PlainHttp,
    /// The URL carries a user name or password.
    #[error("the URL must not carry credentials")]
    Credentials,
    /// The URL has a fragment (configured URLs only).
    #[error("the URL must not have a fragment")]
    Fragment,
}

impl UrlRefusal {
    /// The refusal in fixed words.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "not an absolute URL",
            Self::NoHost => "the URL has no host",
            Self::NotHttps => "the scheme must be https",
            Self::PlainHttp => "plain http is only allowed to loopback hosts",
            Self::Credentials => "the URL must not carry credentials",
            Self::Fragment => "the URL must not have a fragment",
        }
    }
}

/// The rule for a URL from the server's own configuration (a resource, an
/// issuer, a JWKS or introspection endpoint): absolute, `https` (plain
/// `http` only to a loopback host, for development and tests), a host, no
/// credentials, no fragment. The same rule [`crate::OutboundClient`]
/// enforces on every request under [`crate::UrlPolicy::HttpsOrLoopback`],
/// so a URL that passes here is one the client will send to.
pub fn check_configured_url(value: &str) -> Result<url::Url, UrlRefusal> {
    let url = parse(value, true)?;
    if url.fragment().is_some() {
        return Err(UrlRefusal::Fragment);
    }
    Ok(url)
}

/// Parses `value` and applies the scheme, host and credentials rules;
/// `http_to_loopback` allows plain `http` to a loopback host.
pub(crate) fn parse(value: &str, http_to_loopback: bool) -> Result<url::Url, UrlRefusal> {
    let url = url::Url::parse(value).map_err(|_| UrlRefusal::NotAbsolute)?;
    let scheme_ok = matches!(url.scheme(), "https" | "http");
    let host = url.host_str().unwrap_or("");
    if scheme_ok && host.is_empty() {
        return Err(UrlRefusal::NoHost);
    }
    match url.scheme() {
        "https" => {}
        "http" if http_to_loopback && is_loopback_host(host) => {}
        "http" => return Err(UrlRefusal::PlainHttp),
        _ => return Err(UrlRefusal::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_urls() {
        for good in [
            "https://example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]:8080/jwks",
            "http://localhost/jwks",
        ] {
            assert!(check_configured_url(good).is_ok(), "{good}");
        }
        for (bad, refusal) in [
            ("http://example.com/jwks", UrlRefusal::PlainHttp),
            ("file:///etc/passwd", UrlRefusal::NotHttps),
            ("ftp://example.com/", UrlRefusal::NotHttps),
            ("not a url", UrlRefusal::NotAbsolute),
            ("https://user:pw@example.com/", UrlRefusal::Credentials),
            ("https://example.com/#frag", UrlRefusal::Fragment),
        ] {
            assert_eq!(check_configured_url(bad), Err(refusal), "{bad}");
            assert_eq!(refusal.to_string(), refusal.reason());
        }
    }
}
