//! The consent page and its answer (`POST /consent`), and the check every
//! form of the flow passes: the pending authorization belongs to this
//! browser and the form carries its CSRF token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use data_encoding::BASE64;
use mcp_auth_core::UserId;

use super::authorize::Refusal;
use super::extract::{ClientAddr, Cookies, ParamError, StrictForm};
use super::reply::PageError;
use super::{Inner, origin_text};
use crate::AUDIT;
use crate::pages::{self, ConsentPage};
use crate::secrets::PendingId;
use crate::store::{PendingSignIn, StoreKey};

pub(super) async fn consent(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "consent").await?;
    let StrictForm(fields) = form?;
    let (Some(pending_id), Some(csrf)) = (fields.get("pending"), fields.get("csrf")) else {
        return Err(PageError::bad_request(
            "The form is not valid. Start again.",
        ));
    };
    let pending_id = PendingId::presented(pending_id);
    let pending = s.bound_pending(&cookies, &pending_id, Some(csrf)).await?;
    // Approved once: a second answer would send the browser upstream again
    // (a fresh provider sign-in per re-post fills the pending store).
    if pending.consented {
        return Err(PageError::COMPLETED);
    }
    let approved = fields.get("decision") == Some("approve");
    crate::metrics::consent(approved);
    let covered = match &pending.subject {
        Some(subject) if approved => s
            .login
            .covers(subject, &pending.scopes)
            .await
            .map_err(|_| PageError::Unavailable)?,
        Some(_) => true,
        None if s.login.consent_first() => false,
        None => return Err(PageError::Forbidden("Sign in first.")),
    };
    if approved && !covered {
        // Approved; now the login (upstream) names the person or adds
        // the provider's permissions, and the code follows its callback.
        let mut pending = pending;
        pending.consented = true;
        s.store
            .put_pending(pending_id.key(), pending.clone())
            .await?;
        return s.start_login(&pending_id, &pending).await;
    }
    // Single use from here on.
    if s.store
        .take_pending(pending_id.key(), s.now())
        .await?
        .is_none()
    {
        return Err(PageError::COMPLETED);
    }
    match (approved, pending.subject.clone()) {
        (true, Some(subject)) => s.approve(pending, subject).await,
        _ => Ok(s.error_redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            Refusal {
                error: "access_denied",
                description: "the user denied the request",
            },
        )),
    }
}

impl Inner {
    /// The pending authorization `pending_id`, if this browser started it
    /// (and, for a form, the form carries its CSRF token).
    pub(super) async fn bound_pending(
        &self,
        cookies: &Cookies,
        pending_id: &PendingId,
        csrf: Option<&str>,
    ) -> Result<PendingSignIn, PageError> {
        let pending = self
            .store
            .pending(pending_id.key(), self.now())
            .await?
            .ok_or(PageError::EXPIRED)?;
        let same_browser = cookies.browser.as_ref().is_some_and(|browser| {
            mcp_auth_core::secrets_equal(browser.handle().as_bytes(), &pending.browser)
        });
        if !same_browser {
            tracing::warn!(target: AUDIT, event = "flow_refused", reason = "another browser");
            crate::metrics::sign_in_refused("another_browser");
            return Err(PageError::Forbidden(
                "This sign-in was started in another browser.",
            ));
        }
        if let Some(csrf) = csrf
            && !mcp_auth_core::secrets_equal(csrf.as_bytes(), pending.csrf.as_bytes())
        {
            tracing::warn!(target: AUDIT, event = "flow_refused", reason = "csrf");
            crate::metrics::sign_in_refused("csrf");
            return Err(PageError::BAD_FORM);
        }
        Ok(pending)
    }

    /// Remembers the consent (taken pending `pending`) and issues the code.
    pub(super) async fn approve(
        &self,
        pending: PendingSignIn,
        subject: UserId,
    ) -> Result<Response<Body>, PageError> {
        let key = self.consent_key(&pending, &subject);
        if self.consent_ttl > 0 {
            self.store
                .put_consent(key, self.now() + self.consent_ttl)
                .await?;
        }
        tracing::info!(target: AUDIT, event = "consent_given", subject = subject.as_str(), client = %pending.client.client_id);
        self.issue_code(pending, subject, key).await
    }

    /// What a remembered consent is keyed by: the person, the client, its
    /// redirect URI, the resource, the scopes and the browser.
    pub(super) fn consent_key(&self, pending: &PendingSignIn, subject: &UserId) -> StoreKey {
        let mut scopes = pending.scopes.clone();
        scopes.sort();
        let text = format!(
            "{}\0{}\0{}\0{}\0{}\0{}",
            subject.as_str(),
            pending.client.client_id,
            pending.redirect_uri,
            pending.resource,
            scopes.join(" "),
            BASE64.encode(&pending.browser),
        );
        StoreKey::of(&text)
    }

    /// The consent page for `pending`.
    pub(super) async fn consent_page(
        &self,
        pending_id: &PendingId,
        pending: &PendingSignIn,
        subject: Option<&UserId>,
        then_sign_in_with: Option<&str>,
    ) -> Response<Body> {
        // A step-up: what this application already holds for this person
        // is listed apart from what is new. (Best effort: without the
        // store, everything is shown as asked.)
        let mut held: Vec<String> = Vec::new();
        if let Some(subject) = subject
            && let Ok(grants) = self.store.grants_of(subject, self.now()).await
        {
            for grant in grants.iter().filter(|g| {
                g.client_id == pending.client.client_id && g.resource == pending.resource
            }) {
                for scope in &grant.scopes {
                    if pending.scopes.contains(scope) && !held.contains(scope) {
                        held.push(scope.clone());
                    }
                }
            }
        }
        let new: Vec<String> = if held.is_empty() {
            pending.scopes.clone()
        } else {
            pending
                .scopes
                .iter()
                .filter(|s| !held.contains(s))
                .cloned()
                .collect()
        };
        let source = origin_text(&pending.client.origin);
        let redirect_to = pages::destination_text(&pending.redirect_uri);
        let action = self.endpoint("/consent");
        let mut page = pages::render(
            StatusCode::OK,
            &ConsentPage {
                client_name: &pending.client.name,
                client_source: &source,
                redirect_to: &redirect_to,
                resource: &pending.resource,
                scopes: self.describe_scopes(&new),
                granted: self.describe_scopes(&held),
                user: subject.map(UserId::as_str),
                then_sign_in_with,
                action: &action,
                pending: pending_id.expose(),
                csrf: &pending.csrf,
            },
        );
        pages::allow_form_targets(&mut page, &self.form_targets(pending));
        page
    }

    /// Where a form on a sign-in page may lead after its post: the client's
    /// redirect URI, and the provider's sign-in for an upstream login.
    pub(super) fn form_targets(&self, pending: &PendingSignIn) -> Vec<String> {
        pages::csp_source(&pending.redirect_uri)
            .into_iter()
            .chain(self.login.form_targets())
            .collect()
    }
}
