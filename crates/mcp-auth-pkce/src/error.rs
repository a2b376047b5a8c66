use crate::PkceError;

/// Everything that can go wrong in the flow, with a message that never holds
/// a code, a verifier, a token or a client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// PKCE, state or nonce generation failed.
    #[error(transparent)]
    Pkce(#[from] PkceError),
    /// The configuration is unusable; each problem names what to fix.
    #[error("configuration:\n{0}")]
    Config(mcp_auth_core::ConfigProblems),
    /// The callback query is too long, repeats a parameter, or is not
    /// form-encoded.
    #[error("malformed callback: {0}")]
    MalformedCallback(&'static str),
    /// The callback has no `state`.
    #[error("the callback has no state parameter")]
    MissingState,
    /// No pending authorization has this state: never issued, already used
    /// (replayed), or evicted.
    #[error("unknown or already used state")]
    UnknownState,
    /// The pending authorization for this state is older than its lifetime.
    #[error("the authorization request expired; start again")]
    ExpiredState,
    /// The state belongs to another user's (or session's) flow.
    #[error("the state belongs to another sign-in")]
    StateUserMismatch,
    /// Too many sign-ins are pending; try again later.
    #[error("too many pending sign-ins")]
    TooManyPending,
    /// The pending sign-in store could not answer (Redis down, timeout):
    /// try again later.
    #[error("the pending sign-in store is unavailable: {0}")]
    PendingStoreUnavailable(&'static str),
    /// A stored pending sign-in was altered or unreadable; it has been
    /// dropped.
    #[error("the pending sign-in could not be read back; start again")]
    CorruptPending,
    /// The provider answered the authorization request with an error
    /// (RFC 6749 section 4.1.2.1).
    #[error("the provider refused the authorization: {error}")]
    AuthorizationDenied {
        /// The `error` code (`access_denied`, `invalid_scope`, ...).
        error: String,
        /// `error_description`, if any (provider text, trimmed to 200 chars).
        description: Option<String>,
    },
    /// The callback has no `code`.
    #[error("the callback has no authorization code")]
    MissingCode,
    /// `iss` in the callback is not the provider's issuer (RFC 9207).
    #[error("the callback's issuer does not match the provider (RFC 9207)")]
    IssuerMismatch,
    /// The provider advertises RFC 9207 but the callback has no `iss`.
    #[error("the callback has no issuer although the provider advertises RFC 9207")]
    MissingIssuer,
    /// Discovery answered with another `issuer` than the configured one.
    #[error("discovery returned another issuer than the one configured")]
    DiscoveryIssuerMismatch,
    /// The refresh token (or code) was rejected with `invalid_grant`: the
    /// user must sign in again.
    #[error("the grant is no longer valid: the user must sign in again")]
    ReauthenticationRequired,
    /// The token endpoint answered with another OAuth error.
    #[error("the token endpoint refused the request: {0}")]
    TokenEndpoint(String),
    /// The provider could not be reached or answered garbage; retrying may
    /// help.
    #[error("the provider could not be reached or answered unexpectedly: {0}")]
    Network(NetworkError),
    /// The ID token failed validation (rule name from mcp-auth-jwks, or
    /// `nonce`, or `no-jwks` when the provider has no key set).
    #[error("the ID token is invalid (rule: {0})")]
    IdToken(&'static str),
    /// An OIDC provider's token response has no ID token.
    #[error("the provider returned no ID token")]
    MissingIdToken,
    /// The token set has no refresh token.
    #[error("there is no refresh token; the user must sign in again")]
    NoRefreshToken,
    /// The provider has no revocation endpoint.
    #[error("the provider does not support token revocation")]
    RevocationUnsupported,
}

/// Why [`OAuthError::Network`]: the provider could not be reached, or its
/// answer is not one the protocol allows. Never holds a body (it may hold
/// tokens) or a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The request got no response (host and fixed reason only).
    #[error(transparent)]
    Http(#[from] mcp_auth_http::HttpError),
    /// Discovery, or fetching the provider's key set, failed.
    #[error(transparent)]
    Discovery(#[from] mcp_auth_jwks::FetchError),
    /// The answer is not what the protocol says (fixed words).
    #[error("{0}")]
    Unexpected(&'static str),
    /// An HTTP status the endpoint must not answer with.
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    /// The refresh this call was waiting on (another caller's, for the same
    /// user) ended without a result.
    #[error("the shared refresh ended without a result")]
    RefreshAbandoned,
}

impl OAuthError {
    /// Whether the user has to go through the sign-in again (as opposed to a
    /// temporary failure worth retrying).
    pub fn requires_sign_in(&self) -> bool {
        matches!(
            self,
            Self::ReauthenticationRequired | Self::NoRefreshToken | Self::CorruptPending
        )
    }
}
