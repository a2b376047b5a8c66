//! Where a provider's endpoints are, by preset, explicitly, or by discovery.

use mcp_auth_jwks::FetchError;

use crate::{NetworkError, OAuthError};

/// An upstream OAuth 2.0 / OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Provider {
    /// A short name for logs (`google`, `spotify`, ...).
    pub name: String,
    /// The issuer identifier, when the provider has one (OIDC, RFC 8414).
    /// Checked against RFC 9207 `iss` and the ID token's `iss`.
    pub issuer: Option<String>,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint, if supported.
    pub revocation_endpoint: Option<String>,
    /// The JWKS URI. When set, the provider is treated as OpenID Connect:
    /// a nonce is sent and an ID token is required and validated.
    pub jwks_uri: Option<String>,
    /// RFC 9207 `authorization_response_iss_parameter_supported`: when true,
    /// a callback without `iss` is refused.
    pub iss_parameter_supported: bool,
    /// Scopes requested when the caller names none.
    pub default_scopes: Vec<String>,
}

impl Provider {
    /// A provider with explicit endpoints (plain OAuth 2.0, no issuer).
    pub fn new(
        name: impl Into<String>,
        authorization_endpoint: impl Into<String>,
        token_endpoint: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            issuer: None,
            authorization_endpoint: authorization_endpoint.into(),
            token_endpoint: token_endpoint.into(),
            revocation_endpoint: None,
            jwks_uri: None,
            iss_parameter_supported: false,
            default_scopes: Vec::new(),
        }
    }

    /// Sets the issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets the revocation endpoint.
    pub fn with_revocation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(url.into());
        self
    }

    /// Makes the provider OpenID Connect with this JWKS URI.
    pub fn with_jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Declares RFC 9207 support (callbacks must then carry `iss`).
    pub fn with_iss_parameter(mut self, supported: bool) -> Self {
        self.iss_parameter_supported = supported;
        self
    }

    /// Sets the default scopes.
    pub fn with_default_scopes<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether ID tokens are expected and validated.
    pub fn is_openid(&self) -> bool {
        self.jwks_uri.is_some()
    }

    /// Google (OpenID Connect), with its published endpoints.
    pub fn google() -> Self {
        Self::new(
            "google",
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
        )
        .with_issuer("https://accounts.google.com")
        .with_revocation_endpoint("https://oauth2.googleapis.com/revoke")
        .with_jwks_uri("https://www.googleapis.com/oauth2/v3/certs")
        .with_default_scopes(["openid", "email", "profile"])
    }

    /// Spotify (plain OAuth 2.0: no issuer, no ID token, no revocation).
    pub fn spotify() -> Self {
        Self::new(
            "spotify",
            "https://accounts.spotify.com/authorize",
            "https://accounts.spotify.com/api/token",
        )
        .with_default_scopes(["user-read-email"])
    }

    /// Discovers an issuer's endpoints (OIDC discovery, then RFC 8414). The
    /// document's `issuer` must equal `issuer` exactly.
    pub async fn discover(name: impl Into<String>, issuer: &str) -> Result<Self, OAuthError> {
        let http = mcp_auth_jwks::default_client().map_err(|e| OAuthError::Network(e.into()))?;
        let metadata = mcp_auth_jwks::discover(http.as_ref(), issuer)
            .await
            .map_err(|e| match e {
                FetchError::IssuerMismatch { .. } => OAuthError::DiscoveryIssuerMismatch,
                other => OAuthError::Network(other.into()),
            })?;
        let doc = &metadata.document;
        let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(authorization_endpoint), Some(token_endpoint)) =
            (text("authorization_endpoint"), text("token_endpoint"))
        else {
            return Err(OAuthError::Network(NetworkError::Unexpected(
                "the discovery document lacks authorization_endpoint or token_endpoint",
            )));
        };
        let mut provider = Self::new(name, authorization_endpoint, token_endpoint)
            .with_issuer(metadata.issuer.clone())
            .with_iss_parameter(
                doc.get("authorization_response_iss_parameter_supported")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            );
        provider.revocation_endpoint = text("revocation_endpoint");
        let scopes: Vec<String> = doc
            .get("scopes_supported")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if scopes.iter().any(|s| s == "openid") {
            provider.jwks_uri = Some(metadata.jwks_uri.clone());
            provider.default_scopes = vec!["openid".into()];
        }
        Ok(provider)
    }
}
