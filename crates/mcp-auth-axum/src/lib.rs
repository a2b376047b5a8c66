//! tower/axum layers that make an MCP server a proper OAuth 2.1 resource
//! server, as the MCP authorization specification asks.
//!
//! - [`BearerAuth`]: `Authorization: Bearer` only, verified by a
//!   [`token::TokenVerifier`] (implemented for [`mcp_auth_jwks::Validator`]), the
//!   configured resource required as audience, per-tool scopes read from the
//!   JSON-RPC body (and checked against `Mcp-Name`), RFC 6750 / RFC 9728
//!   challenges. Handlers read the caller from an `Arc<`[`token::AuthContext`]`>`.
//! - [`metadata_router`]: `/.well-known/oauth-protected-resource` (and the
//!   path-suffixed form).
//! - [`RateLimit`]: `mcp-auth-ratelimit` per subject and per tool, 429
//!   with `Retry-After`.
//! - [`SessionBinding`]: `Mcp-Session-Id` bound to the subject through
//!   `mcp-auth-session`.
//! - [`SecurityHeaders`] and [`CorsConfig`]: tower-http.
//! - [`McpAuth`]: all of the above around one MCP service, plus the
//!   `Origin` check and `Cache-Control: no-store` on the MCP route.
//! - [`Step`]: the one shape of each concern above (request in, request or
//!   response out); [`StepLayer`] runs one alone, [`McpAuth`] runs them in
//!   sequence in one service.
//! - [`serve`]: serving with header-read and stall timeouts and a
//!   connection cap (`axum::serve` has none).
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use mcp_auth_axum::{McpAuth, ResourceConfig};
//! use mcp_auth_jwks::{KeySet, Validator};
//! use mcp_auth_ratelimit::{Limits, MemoryRateLimiter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ResourceConfig::builder("https://mcp.example.com/mcp", "https://login.example.com")
//!     .require_scopes(["mcp:tools"])
//!     .tool_scopes("delete_file", ["files:write"])
//!     .build()?;
//! # let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k",
//! #   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
//! // Issuer and audience come from the configuration.
//! let validator = Validator::with_static_keys(config.policy(), KeySet::from_jwks(jwks)?);
//! // Your MCP service (e.g. rmcp's StreamableHttpService); a stand-in here.
//! let mcp = post(|| async { "{}" });
//! let app: Router = McpAuth::with_jwks(config, validator)?
//!     .rate_limiter(Arc::new(MemoryRateLimiter::new(Limits::default())?))
//!     .into_router(mcp)?;
//! # Ok(()) }
//! ```
//!
//! # Security considerations
//!
//! - Tokens are accepted only in the `Authorization` header; a query-string
//!   `access_token` is refused with 400 so it never lands in access logs as
//!   a working credential.
//! - The audience check is made by the layer itself as well as by the
//!   verifier: a token minted for another resource (token passthrough, the
//!   confused deputy) is refused even by a custom verifier that forgets it.
//! - Challenges never advertise `offline_access`, never echo the token, and
//!   describe failures in fixed words; the failing rule goes to the audit
//!   log (`mcp_auth::audit`), which never holds a token or a session id
//!   (only a session's hash prefix).
//! - The body is read at most once, up to a cap (1 MiB by default), and the
//!   same buffer is handed to the MCP service. A `Mcp-Name` header that
//!   disagrees with the body is refused.
//! - A session id presented with another subject's (or client's) token gets
//!   the same 404 as an unknown id, so it tells an attacker nothing.
//! - [`McpAuth::with_jwks`] puts a [`token::CachedVerifier`] in front of the
//!   JWT check: a byte-identical token verified in the last 60 s (and not
//!   yet expired) is not verified again. A key withdrawn from the JWKS
//!   therefore stops working up to 60 s later; use [`McpAuth::new`] with a
//!   configured `CachedVerifier`, or with the bare validator to check every
//!   request.
//! - [`McpAuth::new`] refuses a verifier whose issuer is not one of the
//!   configured authorization servers, or whose audience is not the
//!   resource.
//! - Without [`McpAuth::sessions`], an `Mcp-Session-Id` issued by the MCP
//!   service (rmcp's stateful mode) is refused: it would be bound to nobody.
//! - Failures of a dependency (JWKS unreachable, Redis down) answer 503 with
//!   `Retry-After`: the layers fail closed.

mod audit;
mod bearer;
mod challenge;
mod client_addr;
mod config;
mod context;
mod error;
mod headers;
mod metadata;
pub mod metrics;
mod pipeline;
mod ratelimit;
mod rpc;
mod serve;
mod session;
mod stack;
mod verification_limit;

pub use bearer::BearerAuth;
pub use client_addr::{
    ClientAddress, ClientAddressLayer, ClientAddressPolicy, ClientAddressService, IpRange,
};
pub use config::{
    DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, OFFLINE_ACCESS, ResourceConfig,
    ResourceConfigBuilder,
};
pub use context::auth_context;
pub use error::ConfigError;
pub use headers::{CorsConfig, SecurityHeaders, SecurityHeadersLayer};
/// The token crate this one runs: [`token::TokenVerifier`],
/// [`token::AuthContext`], [`token::CachedVerifier`],
/// [`token::IntrospectionVerifier`]. Re-exported so a server needs no second
/// dependency (and no second version) to read the caller.
pub use mcp_auth_token as token;
pub use metadata::{ProtectedResourceMetadata, metadata_router};
pub use pipeline::{RequestFacts, Step, StepLayer, StepService};
pub use ratelimit::RateLimit;
pub use rpc::{MCP_NAME_HEADER, MalformedRpc, RpcCall, RpcSummary};
pub use serve::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, Drain, Serve, serve, shutdown_signal,
};
pub use session::{MCP_SESSION_ID, McpSessionData, McpSessions, SessionBinding, SessionKept};
pub use stack::McpAuth;
pub use verification_limit::VerificationLimit;

use mcp_auth_token::{AuthContext, CachedVerifier, TokenVerifier, VerifyError};

type BoxFuture<T> = mcp_auth_core::BoxFuture<'static, T>;
