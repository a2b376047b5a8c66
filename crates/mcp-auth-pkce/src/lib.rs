//! OAuth 2.0 authorization code + PKCE client for MCP servers that sign many
//! users in to upstream providers (Google, Spotify, any OAuth 2.0 / OpenID
//! Connect issuer) and keep their tokens fresh.
//!
//! ```no_run
//! use mcp_auth_core::UserId;
//! use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri};
//! use secrecy::SecretString;
//!
//! # async fn demo(query_from_callback: &str) -> Result<(), mcp_auth_pkce::OAuthError> {
//! let client = OAuthClient::builder(
//!     Provider::spotify(),
//!     "my-client-id",
//!     RedirectUri::new("https://mcp.example.com/oauth/callback")?,
//! )
//! .client_secret(SecretString::from("from the environment"))
//! .build()?;
//! let user = UserId::new("alice@example.com").expect("user");
//! let request = client.start(&user, &["user-read-email"], &[]).await?;
//! // redirect the browser to request.url; later, on /oauth/callback?...:
//! let tokens = client.callback(&user, query_from_callback).await?;
//! // keep `tokens` in mcp-auth-vault; before use:
//! let fresh = client.refresh(&user, &tokens).await?;
//! # Ok(()) }
//! ```
//!
//! The pieces: [`Provider`] (presets, explicit endpoints, or discovery with
//! an issuer check), [`OAuthClient`] (start, callback, refresh, revoke),
//! [`PendingStore`] (pending sign-ins: bounded, expiring, single use),
//! [`CallbackParams`] (strict callback parsing), [`CodeVerifier`],
//! [`StateToken`] and [`Nonce`] (PKCE and anti-CSRF values),
//! [`ClientConfig`] (environment and file configuration), and [`TokenSet`].
//!
//! # Security considerations
//!
//! - Only `S256` PKCE exists; there is no `plain`.
//! - `state` and `nonce` carry 256 bits from the OS CSPRNG. States are stored
//!   only as SHA-256, live 10 minutes, and are removed on first use, before
//!   any other check: a replayed, expired, unknown or another user's state
//!   never reaches the token endpoint.
//! - RFC 9207: `iss` in the callback must equal the provider's issuer
//!   exactly, and must be present when the provider advertises support.
//! - ID tokens are validated with `mcp-auth-jwks` (signature against the
//!   provider's JWKS, `iss`, `aud` = client id, `exp`, `nonce`): one crypto
//!   backend for the whole workspace.
//! - Redirect URIs are exact strings: `https`, or `http` only to
//!   `127.0.0.1` / `[::1]`; anything else needs [`redirect::dangerous`].
//! - Requests to the provider never follow redirects, time out, and read at
//!   most 1 MiB. Errors never quote a provider's response body, a code, a
//!   verifier, a token or a secret; `Debug` of every secret-holding type is
//!   redacted.

mod callback;
mod client;
mod config;
mod error;
mod pending;
mod pkce;
mod provider;
pub mod redirect;
#[cfg(feature = "redis")]
mod redis_pending;
mod tokens;

pub use callback::{CallbackParams, MAX_CALLBACK_QUERY};
pub use client::{
    AuthorizationRequest, DEFAULT_PENDING_LIFETIME, OAuthClient, OAuthClientBuilder, TokenKind,
};
pub use config::ClientConfig;
pub use error::{NetworkError, OAuthError};
pub use pending::{
    DEFAULT_PENDING_CAPACITY, MemoryPendingStore, PendingAuthorization, PendingKey, PendingStore,
    StateKey, StoreFuture,
};
pub use pkce::{CodeChallenge, CodeVerifier, Nonce, PkceError, StateToken};
pub use provider::Provider;
pub use redirect::RedirectUri;
#[cfg(feature = "redis")]
pub use redis_pending::RedisPendingStore;
pub use tokens::TokenSet;
