//! Redirect URIs: exact strings, `https`, or `http` on loopback only.

use crate::OAuthError;

/// A validated redirect URI, sent byte for byte as registered (RFC 9700
/// section 2.1: exact matching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// `https`, or `http` to `127.0.0.1` / `[::1]` (RFC 8252 section 7.3);
    /// no fragment. `localhost` is refused: it can resolve elsewhere.
    pub fn new(uri: impl Into<String>) -> Result<Self, OAuthError> {
        let uri = uri.into();
        let parsed = parse(&uri)?;
        match parsed.scheme() {
            "https" => Ok(Self(uri)),
            "http" if is_loopback_ip(&parsed) => Ok(Self(uri)),
            "http" => Err(problem(format!(
                "{uri:?}: plain http is only allowed to 127.0.0.1 or [::1]"
            ))),
            other => Err(problem(format!(
                "{uri:?}: scheme {other:?} is not allowed (https, or http on loopback)"
            ))),
        }
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse(uri: &str) -> Result<url::Url, OAuthError> {
    let parsed =
        url::Url::parse(uri).map_err(|_| problem(format!("{uri:?} is not an absolute URL")))?;
    if parsed.fragment().is_some() {
        return Err(problem(format!("{uri:?} must not have a fragment")));
    }
    Ok(parsed)
}

/// A problem with the redirect URI.
fn problem(reason: String) -> OAuthError {
    OAuthError::Config(mcp_auth_core::ConfigProblem::new("redirect URI", reason).into())
}

fn is_loopback_ip(url: &url::Url) -> bool {
    url.host_str().is_some_and(mcp_auth_core::is_loopback_ip)
}

/// Options that weaken the defaults, for development only.
pub mod dangerous {
    use super::{RedirectUri, parse, problem};
    use crate::OAuthError;

    /// Accepts any absolute `http` or `https` redirect URI, e.g. a plain
    /// `http` host name on a private network. The authorization code then
    /// travels unencrypted: never use this in production.
    pub fn insecure_redirect_uri(uri: impl Into<String>) -> Result<RedirectUri, OAuthError> {
        let uri = uri.into();
        let parsed = parse(&uri)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(problem(format!("{uri:?}: only http and https are allowed")));
        }
        tracing::warn!(target: "mcp_auth::audit", "using an insecure redirect URI (dangerous opt-out)");
        Ok(RedirectUri(uri))
    }
}
