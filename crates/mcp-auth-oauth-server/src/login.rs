//! The login step: who is signing in. The server asks a [`Login`] to sign
//! the browser in when it has no session; [`DangerousDevLogin`] takes any
//! user name (demo and tests only); the upstream proxy puts Google or
//! Spotify sign-in here.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use mcp_auth_core::{BoxFuture, UserId};

use crate::pages::{self, DevLoginPage};

/// What a login needs to know about the authorization in progress.
/// `Debug` leaves the pending id and the CSRF token out.
#[derive(Clone)]
#[non_exhaustive]
pub struct LoginContext {
    /// The pending authorization's id: the login must carry it back
    /// (a form field, or inside its upstream `state`).
    pub pending: String,
    /// The CSRF token a form must post back.
    pub csrf: String,
    /// The client asking (for display).
    pub client_name: String,
    /// Where the login posts or returns to (`{issuer}/login`).
    pub action: String,
    /// Our scopes the client asked for (an upstream login maps them to
    /// the provider's).
    pub scopes: Vec<String>,
    /// Who this browser is signed in as, when it comes back for more
    /// (incremental authorization).
    pub subject: Option<UserId>,
}

/// Who signed in, and for which pending authorization.
/// `Debug` leaves the pending id and the CSRF token out.
#[derive(Clone)]
#[non_exhaustive]
pub struct SignedIn {
    /// The pending authorization id the login carried back.
    pub pending: String,
    /// The CSRF token the login carried back (forms), if any.
    pub csrf: Option<String>,
    /// The user.
    pub subject: UserId,
}

impl std::fmt::Debug for LoginContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginContext")
            .field("client_name", &self.client_name)
            .field("action", &self.action)
            .field("scopes", &self.scopes)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl SignedIn {
    /// `subject` signed in for `pending`.
    pub fn new(pending: String, csrf: Option<String>, subject: UserId) -> Self {
        Self {
            pending,
            csrf,
            subject,
        }
    }
}

/// Why a login failed: shown to the person as an error page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The answer is not a login (missing or malformed fields).
    #[error("the login answer is not valid: {0}")]
    Invalid(&'static str),
    /// The person refused, or the provider did.
    #[error("the sign-in was refused")]
    Refused,
    /// The provider could not be reached; try again.
    #[error("the identity provider is unavailable")]
    Unavailable,
}

/// What [`Login::finish_checked`] asks before it acts on an answer: given
/// the pending authorization id the answer carries, whether it belongs to
/// the browser that brought it back (and its form's CSRF token).
pub type BindingCheck<'a> = dyn Fn(&str) -> BoxFuture<'a, bool> + Send + Sync + 'a;

/// Signs a browser in.
pub trait Login: Send + Sync + std::fmt::Debug {
    /// The response that starts signing in: a page or a redirect to an
    /// identity provider.
    fn start(&self, context: LoginContext) -> BoxFuture<'_, Result<Response<Body>, LoginError>>;

    /// The answer that came back to `{issuer}/login` (posted form fields,
    /// or the callback's query): who signed in.
    fn finish(
        &self,
        fields: HashMap<String, String>,
    ) -> BoxFuture<'_, Result<SignedIn, LoginError>>;

    /// [`finish`](Login::finish), but calling `check` with the pending id
    /// *before* acting on the answer (redeeming a provider's code, writing
    /// what it returned): an answer brought back by another browser than
    /// the one that started is refused before anything happens (RFC 9700
    /// §4.7.1). The server calls this one. The default calls `finish` and
    /// checks after, which is right only for a login whose `finish` has no
    /// effect; a login that talks to a provider overrides it.
    fn finish_checked<'a>(
        &'a self,
        fields: HashMap<String, String>,
        check: &'a BindingCheck<'a>,
    ) -> BoxFuture<'a, Result<SignedIn, LoginError>> {
        Box::pin(async move {
            let signed_in = self.finish(fields).await?;
            if check(&signed_in.pending).await {
                Ok(signed_in)
            } else {
                Err(LoginError::Invalid("started in another browser"))
            }
        })
    }

    /// Whether this login is for development only (refused on a
    /// non-loopback issuer unless forced).
    fn is_development(&self) -> bool {
        false
    }

    /// Whether the consent page comes before the login. A login that
    /// sends the browser to another site (an upstream provider that may
    /// answer at once for a signed-in person) must not be reached for a
    /// client the person has not approved: the confused-deputy rule of the
    /// MCP security best practices for proxies with a static client id.
    fn consent_first(&self) -> bool {
        false
    }

    /// CSP sources (`https://accounts.example.com`) of the sites a form of
    /// the sign-in pages may lead to through this login (an upstream
    /// login: the provider's authorization endpoint); added to the pages'
    /// `form-action`.
    fn form_targets(&self) -> Vec<String> {
        Vec::new()
    }

    /// The provider's name, shown on the consent page ("you sign in with
    /// Spotify next"), for a login that leaves for one.
    fn provider_name(&self) -> Option<&str> {
        None
    }

    /// Whether `subject`, already signed in, has what `scopes` need
    /// without signing in again (an upstream login: tokens on file that
    /// cover the scopes).
    fn covers<'a>(
        &'a self,
        subject: &'a UserId,
        scopes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, LoginError>> {
        let _ = (subject, scopes);
        Box::pin(std::future::ready(Ok(true)))
    }

    /// Called when `subject`'s last grant is revoked (by the person, the
    /// operator or a client): an upstream login revokes the provider's
    /// refresh token and deletes what it kept.
    fn forget<'a>(&'a self, subject: &'a UserId) -> BoxFuture<'a, ()> {
        let _ = subject;
        Box::pin(std::future::ready(()))
    }

    /// Called by an emergency revoke-all: forget every subject.
    fn forget_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A login form that accepts any user name, with no password: for the
/// demo and tests on loopback only. The server refuses it on an issuer
/// that is not loopback unless
/// `AuthServerBuilder::dangerous_allow_dev_login_on_public_issuer` is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct DangerousDevLogin;

impl Login for DangerousDevLogin {
    fn start(&self, context: LoginContext) -> BoxFuture<'_, Result<Response<Body>, LoginError>> {
        let page = pages::render(
            StatusCode::OK,
            &DevLoginPage {
                client_name: &context.client_name,
                action: &context.action,
                pending: &context.pending,
                csrf: &context.csrf,
            },
        );
        Box::pin(std::future::ready(Ok(page)))
    }

    fn finish(
        &self,
        mut fields: HashMap<String, String>,
    ) -> BoxFuture<'_, Result<SignedIn, LoginError>> {
        let result = (|| {
            let pending = fields
                .remove("pending")
                .ok_or(LoginError::Invalid("no pending authorization"))?;
            let user = fields.remove("user").unwrap_or_default();
            let subject = UserId::new(user.trim()).map_err(|_| LoginError::Invalid("user name"))?;
            Ok(SignedIn::new(pending, fields.remove("csrf"), subject))
        })();
        Box::pin(std::future::ready(result))
    }

    fn is_development(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_pending_id_and_csrf_token_out() {
        let context = LoginContext {
            pending: "pending-secret".into(),
            csrf: "csrf-secret".into(),
            client_name: "App".into(),
            action: "https://as.example/login".into(),
            scopes: Vec::new(),
            subject: None,
        };
        let signed_in = SignedIn::new(
            "pending-secret".into(),
            Some("csrf-secret".into()),
            UserId::new("alice").unwrap(),
        );
        for text in [format!("{context:?}"), format!("{signed_in:?}")] {
            assert!(
                !text.contains("pending-secret") && !text.contains("csrf-secret"),
                "{text}"
            );
        }
    }
}
