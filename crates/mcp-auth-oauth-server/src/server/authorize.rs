//! `GET /authorize`: the client's request checked, a pending authorization
//! bound to this browser, then the login or the consent page; and the
//! authorization code that ends the flow.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use mcp_auth_core::UserId;
use mcp_auth_session::SessionId;

use super::extract::{ClientAddr, Cookies, ParamError, Params, StrictQuery};
use super::reply::{self, PageError, redirect_to, with_params};
use super::{CODE_TTL, Inner, PENDING_TTL, scope_list};
use crate::AUDIT;
use crate::client;
use crate::login::LoginContext;
use crate::secrets::{AuthorizationCode, CsrfToken, PendingId, random_id};
use crate::store::{ClientInfo, CodeRecord, Grant, PendingSignIn, StoreKey};

/// An error that goes back to the client's redirect URI (RFC 6749
/// section 4.1.2.1), with `state` and `iss`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    pub(super) error: &'static str,
    pub(super) description: &'static str,
}

const fn refuse(error: &'static str, description: &'static str) -> Refusal {
    Refusal { error, description }
}

/// What a signed-in person's request meets: their remembered consent (and
/// its key) and whether the login covers the scopes.
pub(super) struct ConsentState {
    key: StoreKey,
    consented: bool,
    covered: bool,
}

/// What a valid request asks for.
struct Asked {
    challenge: String,
    resource: String,
    scopes: Vec<String>,
}

pub(super) async fn authorize(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    query: Result<StrictQuery, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "authorize").await?;
    let StrictQuery(q) = query?;
    // 1. The client and its redirect URI: until both are known good, every
    //    error is a page, never a redirect (no open redirector).
    let client_id = q
        .get("client_id")
        .ok_or(PageError::bad_request("The request names no client."))?;
    let Some(client) = s.client(client_id).await? else {
        tracing::info!(target: AUDIT, event = "authorize_refused", reason = "unknown client");
        crate::metrics::sign_in_refused("unknown_client");
        return Err(PageError::bad_request(
            "The application is not known to this server.",
        ));
    };
    let redirect_uri = redirect_uri(&client, q.get("redirect_uri"))?;
    let state = q.get("state");
    if state.is_some_and(|st| st.len() > super::MAX_STATE_LEN) {
        // Never stored, never echoed: a page, whoever the client is.
        tracing::info!(target: AUDIT, event = "authorize_refused", reason = "state too long");
        crate::metrics::sign_in_refused("state_too_long");
        return Err(PageError::bad_request(
            "The application's request is too long (state over 1,024 bytes).",
        ));
    }
    // 2. From here on, errors go back to the client, with state and iss;
    //    but only to a client the operator configured. Anyone can register
    //    a client (or publish a metadata document) with any redirect URI:
    //    redirecting its malformed requests, with no person involved, would
    //    make this server an open redirector (RFC 9700 section 4.11.2).
    //    Those get the error as a page.
    let asked = match s.check_request(&q) {
        Ok(asked) => asked,
        Err(refusal) if client.origin == crate::store::ClientOrigin::Configured => {
            return Ok(s.error_redirect(&redirect_uri, state, refusal));
        }
        Err(refusal) => {
            tracing::info!(target: AUDIT, event = "authorize_refused", error = refusal.error, reason = refusal.description);
            crate::metrics::sign_in_refused(refusal.error);
            return Err(PageError::bad_request(refusal.description));
        }
    };
    // Who this browser is signed in as, unless the client asks for a
    // fresh sign-in: `prompt=login`, or `max_age` seconds since it
    // (OpenID Connect Core §3.1.2.1, which OAuth clients use too).
    let fresh_login = q
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|v| v == "login"));
    let max_age: Option<u64> = match q.get("max_age") {
        Some(text) => Some(
            text.parse()
                .map_err(|_| PageError::bad_request("max_age is not a number of seconds."))?,
        ),
        None => None,
    };
    let subject = match s.browser_login(&cookies).await {
        Some(_) if fresh_login => None,
        Some(login) if max_age.is_some_and(|m| s.now().saturating_sub(login.signed_in_at) > m) => {
            None
        }
        Some(login) => Some(login.user),
        None => None,
    };
    // 3. The pending authorization, bound to this browser.
    let (browser, new_browser) = match cookies.browser {
        Some(browser) => (browser, false),
        None => (
            SessionId::generate().map_err(|_| PageError::Unavailable)?,
            true,
        ),
    };
    let pending_id = PendingId::generate()?;
    let csrf = CsrfToken::generate()?;
    let pending = PendingSignIn {
        client,
        redirect_uri,
        state: state.map(str::to_owned),
        code_challenge: asked.challenge,
        resource: asked.resource,
        scopes: asked.scopes,
        browser: *browser.handle().as_bytes(),
        csrf: csrf.expose().to_owned(),
        subject: subject.clone(),
        consented: false,
        expires_at: s.now() + PENDING_TTL,
    };
    crate::metrics::sign_in_started();
    // Signed in, consent remembered and the login covering the scopes: the
    // code at once, with no pending authorization stored and taken back.
    let known = match &subject {
        Some(subject) => Some(s.consent_state(&pending, subject).await?),
        None => None,
    };
    if let (Some(subject), Some(known)) = (&subject, &known)
        && known.consented
        && known.covered
    {
        let mut response = s.issue_code(pending, subject.clone(), known.key).await?;
        if new_browser {
            reply::set_cookie(&mut response, &s.browser_cookie.set_cookie(&browser));
        }
        return Ok(response);
    }
    s.store
        .put_pending(pending_id.key(), pending.clone())
        .await?;
    let mut response = match (subject, known) {
        (Some(subject), Some(known)) => {
            s.continue_with(&pending_id, pending, &subject, known)
                .await?
        }
        _ if s.login.consent_first() => {
            s.consent_page(&pending_id, &pending, None, s.login.provider_name())
                .await
        }
        _ => s.start_login(&pending_id, &pending).await?,
    };
    if new_browser {
        reply::set_cookie(&mut response, &s.browser_cookie.set_cookie(&browser));
    }
    Ok(response)
}

/// The redirect URI the request names, if the client registered it (or
/// the client's only one when it names none).
fn redirect_uri(client: &ClientInfo, requested: Option<&str>) -> Result<String, PageError> {
    match requested {
        Some(requested)
            if client
                .redirect_uris
                .iter()
                .any(|r| client::redirect_matches(r, requested)) =>
        {
            Ok(requested.to_owned())
        }
        Some(_) => {
            tracing::info!(target: AUDIT, event = "authorize_refused", reason = "redirect_uri not registered");
            crate::metrics::sign_in_refused("unregistered_redirect_uri");
            Err(PageError::bad_request(
                "The application asked to return to an address it did not register.",
            ))
        }
        None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        None => Err(PageError::bad_request("The request names no redirect URI.")),
    }
}

impl Inner {
    /// The request's OAuth parameters: code flow, PKCE S256, resource,
    /// scopes.
    fn check_request(&self, q: &Params) -> Result<Asked, Refusal> {
        if q.get("response_type") != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        let challenge = q.get("code_challenge").ok_or(refuse(
            "invalid_request",
            "PKCE is required: code_challenge is missing",
        ))?;
        if q.get("code_challenge_method") != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        if challenge.len() != 43
            || data_encoding::BASE64URL_NOPAD
                .decode(challenge.as_bytes())
                .is_err()
        {
            return Err(refuse(
                "invalid_request",
                "code_challenge is not a base64url SHA-256",
            ));
        }
        let resource = match q.get("resource") {
            Some(r) if self.resources.iter().any(|x| x == r) => r.to_owned(),
            Some(_) => {
                return Err(refuse(
                    "invalid_target",
                    "the resource is not served by this server",
                ));
            }
            None if self.resources.len() == 1 => self.resources[0].clone(),
            None => return Err(refuse("invalid_target", "name the resource (RFC 8707)")),
        };
        let mut scopes = scope_list(q.get("scope"));
        if scopes.is_empty() {
            scopes.clone_from(&self.default_scopes);
        }
        if scopes.iter().any(|x| !self.scopes.contains(x)) {
            return Err(refuse(
                "invalid_scope",
                "a requested scope is not supported",
            ));
        }
        Ok(Asked {
            challenge: challenge.to_owned(),
            resource,
            scopes,
        })
    }

    /// Whether `subject` already consented to `pending` (remembered) and
    /// whether the login covers its scopes.
    pub(super) async fn consent_state(
        &self,
        pending: &PendingSignIn,
        subject: &UserId,
    ) -> Result<ConsentState, PageError> {
        let covered = self
            .login
            .covers(subject, &pending.scopes)
            .await
            .map_err(|_| PageError::Unavailable)?;
        let key = self.consent_key(pending, subject);
        let consented = self.store.consent(key, self.now()).await?;
        Ok(ConsentState {
            key,
            consented,
            covered,
        })
    }

    /// After the login: remembered consent issues the code at once (or,
    /// when the login must go back to the provider for more, goes there),
    /// otherwise the consent page.
    pub(super) async fn continue_signed_in(
        &self,
        pending_id: &PendingId,
        pending: PendingSignIn,
        subject: &UserId,
    ) -> Result<Response<Body>, PageError> {
        let known = self.consent_state(&pending, subject).await?;
        self.continue_with(pending_id, pending, subject, known)
            .await
    }

    /// [`continue_signed_in`](Self::continue_signed_in) once the consent
    /// state is known.
    async fn continue_with(
        &self,
        pending_id: &PendingId,
        mut pending: PendingSignIn,
        subject: &UserId,
        known: ConsentState,
    ) -> Result<Response<Body>, PageError> {
        if known.consented {
            if known.covered {
                let _ = self.store.take_pending(pending_id.key(), self.now()).await;
                return self.issue_code(pending, subject.clone(), known.key).await;
            }
            pending.consented = true;
            self.store
                .put_pending(pending_id.key(), pending.clone())
                .await?;
            return self.start_login(pending_id, &pending).await;
        }
        let then = if known.covered {
            None
        } else {
            self.login.provider_name()
        };
        Ok(self
            .consent_page(pending_id, &pending, Some(subject), then)
            .await)
    }

    /// Hands the browser to the login (a form, or a redirect upstream).
    pub(super) async fn start_login(
        &self,
        pending_id: &PendingId,
        pending: &PendingSignIn,
    ) -> Result<Response<Body>, PageError> {
        let context = LoginContext {
            pending: pending_id.expose().to_owned(),
            csrf: pending.csrf.clone(),
            client_name: pending.client.name.clone(),
            action: self.endpoint("/login"),
            scopes: pending.scopes.clone(),
            subject: pending.subject.clone(),
        };
        let mut response = self
            .login
            .start(context)
            .await
            .map_err(|_| PageError::Unavailable)?;
        // A login form's post may go straight on to the client (consent
        // remembered) or to the provider.
        if response.status().is_success() {
            crate::pages::allow_form_targets(&mut response, &self.form_targets(pending));
        }
        Ok(response)
    }

    /// The authorization code, sent back to the client with `state` and
    /// `iss`; the grant it will open is written when it is redeemed.
    pub(super) async fn issue_code(
        &self,
        pending: PendingSignIn,
        subject: UserId,
        consent: StoreKey,
    ) -> Result<Response<Body>, PageError> {
        let now = self.now();
        let code = AuthorizationCode::generate()?;
        let grant = Grant {
            id: random_id(16)?,
            subject,
            client_id: pending.client.client_id.clone(),
            client_name: pending.client.name.clone(),
            client_origin: pending.client.origin.clone(),
            resource: pending.resource.clone(),
            scopes: pending.scopes.clone(),
            created_at: now,
            last_used: now,
            expires_at: now + self.grant_ttl,
            consent,
        };
        let record = CodeRecord {
            grant,
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            expires_at: now + CODE_TTL,
        };
        self.store.put_code(code.key(), record).await?;
        crate::metrics::sign_in_completed();
        let mut pairs = vec![("code", code.expose()), ("iss", &*self.issuer)];
        if let Some(state) = &pending.state {
            pairs.push(("state", state));
        }
        Ok(redirect_to(&with_params(&pending.redirect_uri, &pairs)))
    }

    /// An error sent back to the client's (checked) redirect URI.
    pub(super) fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        refusal: Refusal,
    ) -> Response<Body> {
        let Refusal { error, description } = refusal;
        tracing::info!(target: AUDIT, event = "authorize_refused", error, reason = description);
        crate::metrics::sign_in_refused(error);
        let mut pairs = vec![
            ("error", error),
            ("error_description", description),
            ("iss", &*self.issuer),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        redirect_to(&with_params(redirect_uri, &pairs))
    }
}
