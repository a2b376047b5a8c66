//! Errors raised while setting the server up, and store failures.

/// A configuration or set-up the server refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting is invalid (the problem names it): the server's own, or
    /// the upstream login's (`upstream login`).
    #[error(transparent)]
    Config(#[from] mcp_auth_core::ConfigProblem),
    /// A signing key could not be made or used.
    #[error("signing key: {0}")]
    Key(&'static str),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The outbound HTTP client (client metadata documents) could not be built.
    #[error(transparent)]
    Http(#[from] mcp_auth_http::HttpError),
    /// A store failed during an operator action (nothing is half done that
    /// a retry would not finish).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store could not answer. Requests fail closed (503 / `server_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or failed.
    #[error("the authorization store is unavailable: {0}")]
    Unavailable(&'static str),
    /// The store is full (memory bound reached).
    #[error("the authorization store is full")]
    Full,
}
