use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota that cannot be expressed: zero, too fine, or overflowing.
    #[error("invalid limit: {0}")]
    InvalidLimit(&'static str),
    /// A tool name (in `Limits::tool` or `Limits::known_tools`) that is
    /// empty, too long, or has characters outside `[A-Za-z0-9_.-/]`.
    #[error("tool name {name:?} is not 1-{max_len} of [A-Za-z0-9_.-/]")]
    InvalidToolName {
        /// The name as configured.
        name: String,
        /// The configured maximum length.
        max_len: usize,
    },
    /// Some other setting is unusable.
    #[error("invalid rate-limit configuration: {0}")]
    Config(mcp_auth_core::ConfigProblem),
    /// The Redis backend could not be reached (only from `connect`).
    #[error("rate-limit store unavailable: redis: {0}")]
    StoreUnavailable(&'static str),
}
