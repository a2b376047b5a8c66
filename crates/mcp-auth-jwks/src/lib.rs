//! Bearer JWT validation for MCP servers acting as OAuth resource servers.
//!
//! Every request to a remote MCP server carries a bearer token. This crate
//! decides whether to trust it: signature against the issuer's published keys
//! (a cached, self-refreshing JWKS), then issuer, audience, lifetime, scopes
//! and any extra claim rules, all secure by default.
//!
//! ```
//! use mcp_auth_jwks::{KeySet, Policy, ValidationError, Validator};
//!
//! // In production: Validator::from_issuer(policy).await? discovers the JWKS.
//! let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
//!     "x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY",
//!     "y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}]}"#;
//! let policy = Policy::new("https://issuer.example", "https://mcp.example/mcp")
//!     .require_scopes(["mcp:tools"]);
//! let validator = Validator::with_static_keys(policy, KeySet::from_jwks(jwks)?);
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let err = rt.block_on(validator.validate("eyJhbGciOiJub25lIn0.e30.")).unwrap_err();
//! assert_eq!(err, ValidationError::AlgNone);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is checked, in order
//!
//! 1. Size (8 KiB default) before any decoding; compact JWS only (JWE and
//!    JSON serialization refused); strict base64url; `alg: none` in any
//!    casing refused; `crit` refused; `typ: at+jwt` when required.
//! 2. The key: by `kid` from the configured set. Each key is bound to one
//!    algorithm at import and the header's `alg` must equal it, so an RS256
//!    key can never verify an HS256 token. `jku`, `x5u`, `x5c` and `jwk`
//!    headers are never used.
//! 3. The signature (jsonwebtoken with the aws-lc-rs backend).
//! 4. The claims, by this crate (not jsonwebtoken's `Validation`): `exp`
//!    required; `nbf`, `iat` checked; leeway 60 s; `iss` exact; `aud` (string
//!    or array) contains the audience; `sub` required; scopes from `scope` or
//!    `scp`; extra [`ClaimRule`]s. Wrong JSON types are errors, never
//!    "absent".
//!
//! # Security considerations
//!
//! * The audience must be this server's own resource URL: a token issued for
//!   another resource is rejected, so tokens cannot be passed through.
//! * HMAC is only possible with an explicitly configured secret, never from a
//!   JWKS and never together with asymmetric keys.
//! * RSA keys under 2048 bits, with e = 1 or even, or with the ROCA
//!   fingerprint are refused at import, as are keys with `use`/`key_ops`
//!   that exclude verification and key sets with duplicate `kid`s or private
//!   key material.
//! * The JWKS fetch has a timeout and a size cap, follows no redirects and
//!   accepts only https (loopback http for development).
//! * Errors name the failing rule ([`ValidationError::rule`]) but never
//!   contain the token or key material.

mod cache;
mod error;
pub mod fetch;
mod jws;
mod keys;
mod pem;
mod policy;
mod validator;

pub use cache::{CacheConfig, CacheState, JwksCache, JwksCacheBuilder};
pub use error::{FetchError, KeySetError, ValidationError};
pub use fetch::{Fetched, ServerMetadata, default_client, discover, fetch};
pub use jws::verify_compact;
pub use keys::{Algorithm, DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_KEYS, KeySet, VerifyingKey};
pub use policy::{
    ClaimRule, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, Policy, VerifiedToken, verify_token,
};
pub use validator::{SharedKeySet, Validator};
