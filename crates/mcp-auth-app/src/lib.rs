//! A multi-user MCP server in front of an upstream provider, assembled
//! from the mcp-auth crates, so an MCP server author writes only tools and
//! the provider's API calls.
//!
//! [`Settings`] reads the environment over a `KEY=VALUE` file and reports
//! every problem at once. [`AppConfig`] is the part every such server
//! shares (public URL, listen address, vault key and directory, Redis).
//! [`App::build`] wires the vault (a file, or Redis), the authorization
//! server with its [`UpstreamLogin`], the stores (memory, or Redis for a
//! fleet), the rate limiter, the MCP sessions and the protected MCP
//! endpoint, with the upstream-token handle in every tool call's request.
//! [`ProviderApi`] calls the provider's API with the caller's upstream
//! token: one refresh and one retry on 401, `Retry-After` on 429, 5xx and
//! network failures retryable, no token or body in an error.
//!
//! ```no_run
//! use mcp_auth_app::{AppConfig, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::load(AppConfig::SETTINGS, None)?;
//! let config = AppConfig::from_settings(&settings, true)?;
//! println!("serving {}", config.resource());
//! # Ok(()) }
//! ```
//!
//! # Security considerations
//!
//! - The provider's tokens live only in the vault (AES-256-GCM under
//!   `MCP_VAULT_KEY`); a wrong key refuses to start and changes nothing.
//! - Only tokens issued by this server's authorization server get an
//!   upstream handle.
//! - [`ProviderApi`] sends through the workspace's hardened HTTP client (no
//!   redirects, timeouts, response cap) and never puts a token or an
//!   upstream body in an error.

mod admin;
mod api;
mod app;
mod config;
mod health;
mod profile;
mod run;
mod settings;
pub mod tool;

pub use api::{ApiError, ProviderApi, provider_http};
pub use app::{App, AppError, ProviderSetup, ToolSetup};
pub use config::{AppConfig, RedisTlsFiles};
pub use mcp_auth_axum::serve;
pub use mcp_auth_core::{ConfigProblem, ConfigProblems};
pub use profile::{Endpoints, Guards, McpTools, ProviderProfile, Scope, StandIn, tool_names};
pub use run::{Serving, StartError, cli, provider_config};
pub use settings::Settings;
pub use tool::ToolError;

pub use mcp_auth_oauth_server::{
    AuthServer, ProviderQuirks, SubjectSource, UpstreamError, UpstreamLogin, UpstreamToken,
    UpstreamTokenSource,
};
