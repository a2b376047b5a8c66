//! `{issuer}/login`: the login's answer comes back here, as a posted form
//! (the development login) or as the provider's callback (an upstream
//! login). Who signed in gets a login session; the flow goes on to consent
//! or, when consent came first, straight to the code.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use mcp_auth_core::BoxFuture;
use mcp_auth_session::NewSession;

use super::Inner;
use super::extract::{ClientAddr, Cookies, ParamError, Params, StrictForm, StrictQuery};
use super::reply::{self, PageError};
use crate::AUDIT;
use crate::login::LoginError;
use crate::secrets::PendingId;

/// `GET /login`: a provider's callback.
pub(super) async fn login_get(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    query: Result<StrictQuery, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "login").await?;
    let StrictQuery(fields) = query?;
    s.finish_login(&cookies, fields, false).await
}

/// `POST /login`: a login form.
pub(super) async fn login_post(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "login").await?;
    let StrictForm(fields) = form?;
    s.finish_login(&cookies, fields, true).await
}

impl Inner {
    /// The person declined (or the provider answered with an error) after
    /// approving our consent: the client is told, `access_denied` with
    /// `state` and `iss`, so it stops waiting (RFC 6749 §4.1.2.1). Without
    /// our consent first, an error page as for any unknown flow.
    async fn declined_at_provider(&self, pending: &str) -> Result<Response<Body>, PageError> {
        let id = PendingId::presented(pending);
        let Some(pending) = self.store.take_pending(id.key(), self.now()).await? else {
            return Err(PageError::COMPLETED);
        };
        tracing::info!(target: AUDIT, event = "flow_refused", reason = "declined at the provider", client = %pending.client.client_id);
        crate::metrics::sign_in_refused("provider_declined");
        if !pending.consented {
            return Err(PageError::BadRequest(
                "The sign-in was refused at the provider.".into(),
            ));
        }
        Ok(self.error_redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            super::authorize::Refusal {
                error: "access_denied",
                description: "the sign-in was declined at the provider",
            },
        ))
    }

    async fn finish_login(
        &self,
        cookies: &Cookies,
        fields: Params,
        posted: bool,
    ) -> Result<Response<Body>, PageError> {
        // The browser (and a form's CSRF token) is checked before the login
        // acts on the answer: before a provider's code is redeemed or a
        // password checked (RFC 9700 §4.7.1). A posted form names its
        // pending request and carries the page's CSRF token; a callback's
        // pending request is known only to the login (inside its state),
        // which asks `check` before it talks to the provider.
        if posted {
            let (Some(pending), Some(csrf)) = (fields.get("pending"), fields.get("csrf")) else {
                return Err(PageError::BAD_FORM);
            };
            self.bound_pending(cookies, &PendingId::presented(pending), Some(csrf))
                .await?;
        }
        let refused: std::sync::Mutex<Option<PageError>> = std::sync::Mutex::new(None);
        // The pending request the answer belongs to, once it passed the check.
        let bound: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let check = |pending: &str| -> BoxFuture<'_, bool> {
            let id = PendingId::presented(pending);
            let pending = pending.to_owned();
            let (refused, bound) = (&refused, &bound);
            Box::pin(async move {
                match self.bound_pending(cookies, &id, None).await {
                    Ok(_) => {
                        *bound
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pending);
                        true
                    }
                    Err(e) => {
                        *refused
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        false
                    }
                }
            })
        };
        let finished = self.login.finish_checked(fields.into_map(), &check).await;
        if let Some(e) = refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        let bound = bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let signed_in = match finished {
            Ok(signed_in) => signed_in,
            Err(LoginError::Refused) if bound.is_some() => {
                return self
                    .declined_at_provider(bound.as_deref().unwrap_or_default())
                    .await;
            }
            Err(LoginError::Unavailable) => return Err(PageError::Unavailable),
            Err(e) => return Err(PageError::BadRequest(e.to_string().into())),
        };
        let csrf = signed_in.csrf.as_deref();
        if posted && csrf.is_none() {
            return Err(PageError::BAD_FORM);
        }
        let pending_id = PendingId::presented(&signed_in.pending);
        let mut pending = self.bound_pending(cookies, &pending_id, csrf).await?;
        let subject = signed_in.subject;
        if self.login.consent_first() {
            // Upstream scope truth: the code carries only our scopes whose
            // provider scopes the person actually granted (Google lets a
            // person untick some); a tool that needs a dropped one then
            // gets our 403 step-up, not a provider's 403.
            let mut granted = Vec::with_capacity(pending.scopes.len());
            for scope in &pending.scopes {
                if self
                    .login
                    .covers(&subject, std::slice::from_ref(scope))
                    .await
                    .map_err(|_| PageError::Unavailable)?
                {
                    granted.push(scope.clone());
                }
            }
            if granted.len() != pending.scopes.len() {
                tracing::info!(target: AUDIT, event = "scopes_narrowed", asked = pending.scopes.join(" "), granted = granted.join(" "));
                pending.scopes = granted;
            }
        }
        let created = self
            .sessions
            .create(NewSession::new(subject.clone(), super::BROWSER_LOGIN))
            .await
            .map_err(|_| PageError::Unavailable)?;
        tracing::info!(target: AUDIT, event = "signed_in", subject = subject.as_str());
        pending.subject = Some(subject.clone());
        self.store
            .put_pending(pending_id.key(), pending.clone())
            .await?;
        let mut response = if pending.consented {
            // Approved before the login went upstream: the code now.
            if self
                .store
                .take_pending(pending_id.key(), self.now())
                .await?
                .is_none()
            {
                return Err(PageError::COMPLETED);
            }
            self.approve(pending, subject).await?
        } else {
            self.continue_signed_in(&pending_id, pending, &subject)
                .await?
        };
        reply::set_cookie(&mut response, &self.login_cookie.set_cookie(&created.id));
        Ok(response)
    }
}
