//! How the bearer layer turns a token into an [`AuthContext`].

use std::sync::Arc;

use mcp_auth_core::UserId;
use mcp_auth_jwks::{ValidationError, Validator};

use crate::AuthContext;

/// A boxed future returned by [`TokenVerifier::verify_shared`].
pub type SharedVerifyFuture<'a> =
    mcp_auth_core::BoxFuture<'a, Result<Arc<AuthContext>, VerifyError>>;

/// A boxed future returned by [`TokenVerifier::verify`].
pub type VerifyFuture<'a> = mcp_auth_core::BoxFuture<'a, Result<AuthContext, VerifyError>>;

/// Checks a bearer token and says who it belongs to.
///
/// Implemented for [`mcp_auth_jwks::Validator`] (JWT access tokens against a
/// JWKS); implement it for other token kinds, e.g. RFC 7662 introspection of
/// opaque tokens. The layer checks the audience itself as well, so a
/// verifier that forgets to cannot open the server to tokens minted for
/// another resource.
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    /// Verifies `token` (the credential after `Bearer `).
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// The same, returning a shared context: what the layer calls. The
    /// default wraps [`TokenVerifier::verify`]; a cache overrides it to hand
    /// out the cached context without copying it.
    fn verify_shared<'a>(&'a self, token: &'a str) -> SharedVerifyFuture<'a> {
        Box::pin(async move { self.verify(token).await.map(Arc::new) })
    }

    /// The context for `token` when it is at hand without real work (a
    /// cache hit), else `None` (the default). A
    /// [`crate::VerificationLimit`] charges only tokens this returns `None`
    /// for.
    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        let _ = token;
        None
    }
}

/// Why a token was not accepted.
///
/// `rule` is a short, stable name for logs and metrics; nothing here holds
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not valid (bad signature, wrong issuer or audience,
    /// malformed, ...). Answered with 401 `invalid_token`.
    #[error("invalid token (rule: {rule})")]
    Invalid {
        /// The rule that rejected it.
        rule: &'static str,
    },
    /// The token has expired. Answered with 401 `invalid_token`.
    #[error("token expired")]
    Expired,
    /// The token is valid but lacks scopes the verifier itself requires.
    /// Answered with 403 `insufficient_scope`.
    #[error("insufficient scope")]
    InsufficientScope {
        /// The missing scopes.
        missing: Vec<String>,
    },
    /// The verifier could not decide (keys or introspection endpoint
    /// unreachable). Answered with 503; the client may retry.
    #[error("token verification is temporarily unavailable")]
    Unavailable,
}

impl VerifyError {
    /// A short, stable name of the failing rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Invalid { rule } => rule,
            Self::Expired => "expired",
            Self::InsufficientScope { .. } => "scope",
            Self::Unavailable => "unavailable",
        }
    }
}

impl From<ValidationError> for VerifyError {
    fn from(error: ValidationError) -> Self {
        match error {
            ValidationError::Expired => Self::Expired,
            ValidationError::KeysUnavailable(_) => Self::Unavailable,
            ValidationError::InsufficientScope { missing } => Self::InsufficientScope { missing },
            other => Self::Invalid { rule: other.rule() },
        }
    }
}

impl TokenVerifier for Validator {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            let verified = self.validate(token).await?;
            let user = UserId::new(verified.subject())
                .map_err(|_| VerifyError::Invalid { rule: "subject" })?;
            let mut context = AuthContext::new(user)
                .with_scopes(verified.scopes().iter().cloned())
                .with_audiences(verified.audiences().iter().cloned())
                .with_expires_at(verified.expires_at())
                .with_claims(verified.claims().clone());
            context.client_id = verified.client_id().map(str::to_owned);
            Ok(context)
        })
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn verify_shared<'a>(&'a self, token: &'a str) -> SharedVerifyFuture<'a> {
        (**self).verify_shared(token)
    }

    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        (**self).cached(token)
    }
}
