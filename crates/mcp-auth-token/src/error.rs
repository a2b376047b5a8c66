//! Why a verifier could not be built.

use mcp_auth_http::{HttpError, UrlRefusal};

/// A verifier configuration refused when it is built, never per token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL setting breaks the configured-URL rule
    /// ([`mcp_auth_http::check_configured_url`]).
    #[error("{setting}: {refusal}")]
    Url {
        /// The setting (`introspection_endpoint`, ...).
        setting: &'static str,
        /// Which rule it breaks.
        refusal: UrlRefusal,
    },
    /// Client credentials that cannot be used.
    #[error("{setting}: {reason}")]
    Credentials {
        /// The setting.
        setting: &'static str,
        /// What is wrong with them (fixed words; never the secret).
        reason: &'static str,
    },
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
}
