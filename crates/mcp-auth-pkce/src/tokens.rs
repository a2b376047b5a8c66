//! The tokens a sign-in or refresh yields.

use mcp_auth_core::Clock;
use secrecy::SecretString;
use serde_json::{Map, Value};

/// Tokens from the provider. `Debug` shows only which tokens are present.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token for the provider's API.
    pub access_token: SecretString,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// Granted scopes (from the response, else the requested ones).
    pub scopes: Vec<String>,
    /// The validated ID token's claims (OpenID Connect providers).
    pub id_token_claims: Option<Map<String, Value>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &mcp_auth_core::REDACTED)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| mcp_auth_core::REDACTED),
            )
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field(
                "id_token",
                &self.id_token_claims.as_ref().map(|_| "validated"),
            )
            .finish()
    }
}

impl TokenSet {
    /// Tokens kept from an earlier sign-in (e.g. read back from the vault),
    /// to refresh or revoke them.
    pub fn new(
        access_token: SecretString,
        refresh_token: Option<SecretString>,
        expires_at: Option<u64>,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            access_token,
            refresh_token,
            expires_at,
            scopes,
            id_token_claims: None,
        }
    }

    /// Whether the access token expires within `margin_secs` (or has no
    /// known expiry: then `false`).
    pub fn expires_within(&self, clock: &dyn Clock, margin_secs: u64) -> bool {
        self.expires_at
            .is_some_and(|exp| clock.unix_seconds().saturating_add(margin_secs) >= exp)
    }

    /// The ID token's `sub`, for OpenID Connect providers.
    pub fn subject(&self) -> Option<&str> {
        self.id_token_claims.as_ref()?.get("sub")?.as_str()
    }
}
