//! Who the caller is, as a verifier established it.

use mcp_auth_core::UserId;
use serde_json::{Map, Value};

/// The authenticated caller of one request: what a [`crate::TokenVerifier`]
/// established about the token, never the token itself.
///
/// `mcp-auth-axum` inserts it into each authenticated request's extensions
/// as an `Arc<AuthContext>`. Handlers read it with
/// `Extension<Arc<AuthContext>>` (axum) or, in an rmcp tool, from
/// `http::request::Parts` in the request context:
/// `parts.extensions.get::<Arc<AuthContext>>()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthContext {
    /// The token's subject (`sub`) as a validated [`UserId`]: the key for
    /// rate limits, sessions and the vault.
    pub user: UserId,
    /// The OAuth client the token was issued to (`client_id` or `azp`).
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Audiences the token was issued for.
    pub audiences: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Every claim of the token (for JWTs), or of the introspection answer.
    pub claims: Map<String, Value>,
}

impl AuthContext {
    /// A context for `user`; the other fields start empty.
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            client_id: None,
            scopes: Vec::new(),
            audiences: Vec::new(),
            expires_at: 0,
            claims: Map::new(),
        }
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the granted scopes.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the audiences.
    pub fn with_audiences<S: Into<String>>(
        mut self,
        audiences: impl IntoIterator<Item = S>,
    ) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `exp`.
    pub fn with_expires_at(mut self, expires_at: u64) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// Sets the claims.
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = claims;
        self
    }

    /// The subject, as a string.
    pub fn subject(&self) -> &str {
        self.user.as_str()
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes of `needed` that the token does not grant.
    pub fn missing_scopes<'a>(&self, needed: &'a [String]) -> Vec<&'a str> {
        needed
            .iter()
            .filter(|s| !self.has_scope(s))
            .map(String::as_str)
            .collect()
    }
}
