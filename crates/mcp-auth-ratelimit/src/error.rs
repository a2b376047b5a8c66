use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A quota that cannot be expressed: zero, too fine, or overflowing.
    #[error("invalid limit: {0}")]
    InvalidLimit(String),
    /// Some other setting is unusable.
    #[error("invalid rate-limit configuration: {0}")]
    Config(String),
    /// The Redis backend could not be reached (only from `connect`).
    #[error("rate-limit store unavailable: {0}")]
    StoreUnavailable(String),
}
