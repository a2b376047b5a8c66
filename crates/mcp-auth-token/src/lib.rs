//! What a bearer access token means to an MCP resource server, apart from
//! any HTTP framework.
//!
//! - [`TokenVerifier`]: one method, token in, [`AuthContext`] (who the
//!   caller is, which scopes and audiences the token carries) or
//!   [`VerifyError`] out. Implemented for [`mcp_auth_jwks::Validator`] (JWT
//!   access tokens against a JWKS) and by [`IntrospectionVerifier`] (opaque
//!   tokens, RFC 7662); implement it for anything else.
//! - [`ByIssuer`]: one verifier per authorization server, chosen by the
//!   token's `iss`.
//! - [`CachedVerifier`]: a bounded cache of verified tokens in front of
//!   any verifier, so a client sending the same token on every request pays
//!   for one check per [`DEFAULT_TOKEN_CACHE_TTL`].
//!
//! `mcp-auth-axum` runs a verifier on every request; the authorization
//! server issues the tokens these check. Nothing here reads HTTP requests.
//!
//! ```
//! use mcp_auth_jwks::{KeySet, Policy, Validator};
//! use mcp_auth_token::{CachedVerifier, TokenVerifier, VerifyError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k",
//! #   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
//! let policy = Policy::new("https://login.example.com", "https://mcp.example.com/mcp");
//! let verifier = CachedVerifier::new(Validator::with_static_keys(policy, KeySet::from_jwks(jwks)?));
//! # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let verdict = runtime.block_on(verifier.verify("not.a.jwt"));
//! assert!(matches!(verdict, Err(VerifyError::Invalid { .. })));
//! # Ok(()) }
//! ```
//!
//! # Security considerations
//!
//! - [`VerifyError`] and [`AuthContext`] never hold the token; a
//!   [`CachedVerifier`] keys its entries by the token's SHA-256, and caches
//!   successes only.
//! - A cached token stays accepted for up to its cache TTL after its key
//!   is withdrawn or (for introspection) it is revoked: see
//!   [`CachedVerifier`] for the trade and how to turn it off.
//! - The introspection client's secret is sent only in the `Authorization`
//!   header (marked sensitive), never logged, and wiped when dropped.

mod by_issuer;
mod cache;
mod context;
mod error;
mod introspection;
mod verifier;

pub use by_issuer::ByIssuer;
pub use cache::{CachedVerifier, DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_TTL};
pub use context::AuthContext;
pub use error::ConfigError;
pub use introspection::{
    DEFAULT_INTROSPECTION_TIMEOUT, IntrospectionBuilder, IntrospectionVerifier,
    MAX_INTROSPECTION_RESPONSE,
};
pub use verifier::{TokenVerifier, VerifyError, VerifyFuture};

/// The `tracing` target of the audit events (shared with `mcp-auth-axum`).
pub(crate) const AUDIT_TARGET: &str = "mcp_auth::audit";
