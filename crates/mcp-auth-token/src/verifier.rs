//! The one trait: a token in, an [`AuthContext`] out.

use std::sync::Arc;

use mcp_auth_core::UserId;
use mcp_auth_jwks::{ValidationError, Validator};

use crate::AuthContext;

/// The boxed future [`TokenVerifier::verify`] returns.
pub type VerifyFuture<'a> = mcp_auth_core::BoxFuture<'a, Result<Arc<AuthContext>, VerifyError>>;

/// Checks a bearer token and says who it belongs to.
///
/// Implemented for [`mcp_auth_jwks::Validator`] (JWT access tokens against a
/// JWKS) and by [`crate::IntrospectionVerifier`] (RFC 7662); implement it for
/// other token kinds. `mcp-auth-axum` checks the audience itself as well, so
/// a verifier that forgets to cannot open the server to tokens minted for
/// another resource.
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    /// Verifies `token` (the credential after `Bearer `). The context is
    /// shared so that a cache can hand out the one it holds without a copy.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// The context for `token` when it is at hand without real work (a
    /// cache hit), else `None` (the default). `mcp-auth-axum`'s
    /// verification limit charges only tokens this returns `None` for.
    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        let _ = token;
        None
    }

    /// The issuer every accepted token must come from, when this verifier
    /// requires one (default `None`). A server checks it against the
    /// authorization servers it advertises.
    fn issuer(&self) -> Option<&str> {
        None
    }

    /// The audience every accepted token must carry, when this verifier
    /// requires one (default `None`). A server checks it against its own
    /// resource URL.
    fn audience(&self) -> Option<&str> {
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
    fn issuer(&self) -> Option<&str> {
        Some(self.policy().issuer())
    }

    fn audience(&self) -> Option<&str> {
        Some(self.policy().audience())
    }

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
            Ok(Arc::new(context))
        })
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        (**self).cached(token)
    }

    fn issuer(&self) -> Option<&str> {
        (**self).issuer()
    }

    fn audience(&self) -> Option<&str> {
        (**self).audience()
    }
}
