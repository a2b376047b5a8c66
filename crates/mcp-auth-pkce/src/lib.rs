//! OAuth 2.0 authorization code + PKCE client for MCP servers that sign many
//! users in to upstream providers.
//!
//! **Work in progress.** This release has the primitives the flow is built
//! on: the PKCE verifier and its S256 challenge (RFC 7636), and the
//! unguessable `state` / OIDC `nonce` values. The provider configuration,
//! the pending-authorization store, the callback, token exchange, refresh and
//! revocation come next (see the open issue).
//!
//! ```
//! use mcp_auth_pkce::{CodeVerifier, StateToken};
//!
//! let verifier = CodeVerifier::generate()?;          // 256 bits, 43 chars
//! let challenge = verifier.s256_challenge();         // goes in the authorization URL
//! let state = StateToken::generate()?;               // 256 bits, compared in constant time
//! assert_eq!(challenge.as_str().len(), 43);
//! assert!(state.matches(state.as_str()));
//! # Ok::<(), mcp_auth_pkce::PkceError>(())
//! ```
//!
//! # Security considerations
//!
//! - Only the `S256` method exists: there is no way to send a `plain`
//!   challenge (RFC 7636 section 4.2, and OAuth 2.1).
//! - A [`CodeVerifier`] cannot be cloned, prints `[redacted]` under `Debug`,
//!   and is zeroed when dropped. It is consumed by the one token exchange it
//!   is for.
//! - `state` and `nonce` carry 256 bits from the operating system's CSPRNG
//!   (RFC 6749 section 10.10 asks for at least 128) and compare in constant
//!   time.

mod pkce;

pub use pkce::{CodeChallenge, CodeVerifier, Nonce, PkceError, StateToken};
