/// A configuration the layers refuse to run with.
///
/// Raised when the server is built, never per request: each variant names
/// the setting and why it is unsafe or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL setting is not an absolute URL, or uses a scheme or form that
    /// is not allowed there.
    #[error("{setting}: {reason}")]
    Url {
        /// The setting (`resource`, `authorization_servers`, ...).
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scope is not an RFC 6749 scope-token.
    #[error("{setting}: {scope:?} is not a valid scope token")]
    Scope {
        /// The setting it came from.
        setting: &'static str,
        /// The offending value.
        scope: String,
    },
    /// A numeric setting is out of range.
    #[error("{setting}: {reason}")]
    Limit {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CORS allow-list contains `*` or an invalid origin.
    #[error("cors: {origin:?}: {reason}")]
    Cors {
        /// The origin as configured.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token verifier's issuer is not one of the configured
    /// authorization servers: the metadata would send clients to one server
    /// while tokens from another are accepted.
    #[error(
        "the verifier's issuer {verifier:?} is not among the configured authorization servers {configured:?}"
    )]
    IssuerMismatch {
        /// The issuer the verifier requires.
        verifier: String,
        /// The configured authorization servers.
        configured: Vec<String>,
    },
    /// The token verifier checks a different audience than the configured
    /// resource (the token passthrough / confused deputy guard).
    #[error(
        "the verifier's audience {verifier:?} differs from the configured resource {resource:?}"
    )]
    AudienceMismatch {
        /// What the verifier requires.
        verifier: String,
        /// The configured resource.
        resource: String,
    },
}
