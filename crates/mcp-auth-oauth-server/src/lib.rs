//! The OAuth 2.1 authorization server MCP clients sign in through.
//!
//! An MCP client that meets a resource server's 401 follows its RFC 9728
//! metadata to an authorization server: this one. Mount
//! [`AuthServer::router`] next to the MCP route (one process, issuer = the
//! MCP server's origin) and clients can discover it, register (client ID
//! metadata documents, or RFC 7591 when turned on), send the user through
//! login and consent, and get short-lived RFC 9068 JWT access tokens for
//! the resource plus rotating refresh tokens.
//!
//! - `GET /authorize`: `response_type=code`, PKCE S256 required, RFC 8707
//!   `resource` checked against the configured resources, scopes against
//!   the supported ones. Until the client and its redirect URI are valid,
//!   errors are pages, never redirects; after, they go back with `state`
//!   and `iss` (RFC 9207) by 303.
//! - Login through a [`Login`] ([`DangerousDevLogin`] for development),
//!   then a consent page per client, remembered per (user, client,
//!   redirect URI, resource, scopes, browser).
//! - `POST /token`: single-use 60 s codes bound to client, redirect URI,
//!   PKCE, resource, scopes and user (a replay revokes the grant); refresh
//!   tokens rotated on every use (reuse revokes the grant).
//! - `POST /revoke` (RFC 7009), `POST /register` (RFC 7591, opt-in),
//!   `/jwks.json`, and RFC 8414 / OpenID metadata.
//! - As a proxy ([`UpstreamLogin`], [`AuthServerBuilder::upstream`]):
//!   consent first, then the provider's sign-in (Google, Spotify, any
//!   OpenID provider) through mcp-auth-pkce; the provider's tokens kept in
//!   mcp-auth-vault under (subject, provider); tools get a fresh provider
//!   token from [`UpstreamToken::access_token`] (one refresh at a time per
//!   user, across a fleet too); a dead provider refresh token revokes our
//!   grants; revoking a user's last grant revokes the provider's token.
//!
//! ```no_run
//! use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = AuthServer::builder("http://127.0.0.1:8787", "http://127.0.0.1:8787/mcp")
//!     .scopes(["mcp:tools"])
//!     .login(DangerousDevLogin)
//!     .dynamic_registration(true)
//!     .build()?;
//! let app: axum::Router = server.router(); // merge with the MCP server's router
//! # let _ = app; Ok(()) }
//! ```
//!
//! # Security considerations
//!
//! - Codes, refresh tokens and pending ids are stored as SHA-256 only;
//!   client secrets as SHA-256, compared in constant time.
//! - Client metadata documents are fetched through the workspace's HTTP
//!   seam with the public-address guard (no loopback, private or
//!   link-local address, no redirects, 5 KiB, 5 s).
//! - The pages send `Content-Security-Policy` with `frame-ancestors
//!   'none'`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`; forms
//!   carry a CSRF token bound to a `__Host-` cookie; client-supplied text is
//!   escaped.
//! - Access tokens are JWTs that cannot be recalled before `exp` (1 h by
//!   default): revoking a grant stops its refresh tokens at once.
//! - Provider tokens never leave the vault except to the provider: never
//!   in our tokens, responses, `Debug` output or logs. The MCP client's
//!   `resource` and redirect URI are never sent upstream.

mod client;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
mod keys;
mod login;
mod metrics;
mod pages;
#[cfg(feature = "redis")]
mod redis_store;
mod secrets;
mod server;
mod store;
mod successor;
mod upstream;

pub use client::{
    KNOWN_EDITOR_SCHEMES, MAX_CLIENT_NAME, MAX_METADATA_DOCUMENT, MAX_REDIRECT_URI_LEN,
    MAX_REDIRECT_URIS, MetadataError, PrivateUsePolicy, acceptable_private_use,
    acceptable_redirect, redirect_matches,
};
#[cfg(feature = "embedded")]
pub use embedded::{DEFAULT_MAX_CLIENTS, EmbeddedAuthStore, EmbeddedStoreError};
pub use error::{ServerError, StoreError};
pub use keys::{KeyRing, SigningKey};
pub use login::{BindingCheck, DangerousDevLogin, Login, LoginContext, LoginError, SignedIn};
pub use pages::{PAGE_CSP, apply_page_headers};
#[cfg(feature = "redis")]
pub use redis_store::RedisAuthStore;
pub use server::builder::{RATE_LIMITED_ENDPOINTS, default_rate_limits};
pub use server::{
    AuthServer, AuthServerBuilder, CODE_TTL, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CONSENT_TTL,
    DEFAULT_GRANT_TTL, DEFAULT_KEY_RELOAD, DEFAULT_LOGIN_SESSION_TTL, DEFAULT_MAX_GRANTS_PER_USER,
    DEFAULT_REFRESH_GRACE, DEFAULT_REGISTRATION_TTL, MAX_STATE_LEN, PENDING_TTL,
};
pub use store::{
    AuthStore, ClientInfo, ClientOrigin, CodeRecord, Grant, MemoryAuthStore, PendingSignIn,
    Redemption, RefreshAndGrant, RefreshRecord, Rotation, StoreKey,
};
pub use upstream::{
    DEFAULT_REFRESH_MARGIN, ProviderQuirks, SubjectSource, UpstreamError, UpstreamLayer,
    UpstreamLogin, UpstreamLoginBuilder, UpstreamService, UpstreamToken, UpstreamTokenSource,
};

/// The parsers of outside input, for the fuzz targets only (not API).
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a query or form body (repeated parameters refused).
    pub fn params(raw: &[u8]) -> Option<std::collections::HashMap<String, String>> {
        crate::server::params(raw)
    }

    /// Parses client metadata (a registration or a metadata document) the
    /// way the server does: the redirect URIs kept, and the name shown.
    pub fn client_metadata(raw: &[u8]) -> Option<(Vec<String>, String)> {
        let metadata: crate::client::ClientMetadata = serde_json::from_slice(raw).ok()?;
        let (kept, _) = crate::client::filter_redirects(
            &metadata.redirect_uris,
            &crate::client::PrivateUse::default(),
        );
        let name = crate::client::display_name(metadata.client_name.as_deref(), "x");
        Some((kept, name))
    }
}

/// The `tracing` target of the audit events.
pub(crate) const AUDIT: &str = "mcp_auth::audit";
