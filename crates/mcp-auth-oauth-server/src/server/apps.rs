//! The connected-apps page: the applications holding a grant on the
//! signed-in person's behalf, each with a Revoke button.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use data_encoding::BASE64URL_NOPAD;
use mcp_auth_core::UserId;
use sha2::{Digest, Sha256};

use super::extract::{ClientAddr, Cookies, ParamError, StrictForm};
use super::reply::{PageError, redirect_to};
use super::{Inner, origin_text, short};
use crate::AUDIT;
use crate::pages::{self, AppItem, AppsPage};
use crate::store::Grant;

/// The signed-in person of this browser, and the CSRF token of the
/// connected-apps page (derived from the browser cookie, which a page of
/// another site cannot read).
async fn apps_viewer(s: &Inner, cookies: &Cookies) -> Option<(UserId, String)> {
    let session = cookies.login.as_ref()?;
    let user = s.browser_login(cookies).await?.user;
    let browser = cookies.browser.as_ref()?;
    let csrf = BASE64URL_NOPAD.encode(&Sha256::digest(
        format!("apps\0{}\0{}", browser.expose(), session.expose()).as_bytes(),
    ));
    Some((user, csrf))
}

/// `GET /apps`.
pub(super) async fn apps(
    State(s): State<Arc<Inner>>,
    cookies: Cookies,
) -> Result<Response<Body>, PageError> {
    let (user, csrf) = apps_viewer(&s, &cookies).await.ok_or(PageError::Unauthorized(
        "You are not signed in on this server in this browser. Sign in from an application first.",
    ))?;
    let grants = s.store.grants_of(&user, s.now()).await?;
    // One entry per application: a client that signed in again (a step-up,
    // a second device of a client with a metadata document) holds several
    // grants, and the person revokes the application, not a grant.
    let mut apps: Vec<(String, Vec<&Grant>)> = Vec::new();
    for grant in &grants {
        match apps
            .iter_mut()
            .find(|(client, _)| *client == grant.client_id)
        {
            Some((_, list)) => list.push(grant),
            None => apps.push((grant.client_id.clone(), vec![grant])),
        }
    }
    let apps = apps
        .into_iter()
        .map(|(client, list)| {
            let newest = list
                .iter()
                .max_by_key(|g| g.created_at)
                .copied()
                .unwrap_or(list[0]);
            let mut scopes: Vec<String> = Vec::new();
            for grant in &list {
                for scope in &grant.scopes {
                    if !scopes.contains(scope) {
                        scopes.push(scope.clone());
                    }
                }
            }
            AppItem {
                id: client,
                name: newest.client_name.clone(),
                origin: origin_text(&newest.client_origin),
                scopes: s.describe_scopes(&scopes),
                last_used: pages::utc(list.iter().map(|g| g.last_used).max().unwrap_or(0)),
            }
        })
        .collect();
    let action = s.endpoint("/apps/revoke");
    let logout_action = s.endpoint("/logout");
    Ok(pages::render(
        StatusCode::OK,
        &AppsPage {
            user: user.as_str(),
            provider: s.login.provider_name(),
            apps,
            access_minutes: s.access_ttl.div_ceil(60),
            action: &action,
            logout_action: &logout_action,
            csrf: &csrf,
        },
    ))
}

/// `POST /logout`: ends this browser's login session (the grants stay:
/// revoking them is the Revoke buttons' job). Posted from the
/// connected-apps page, with its CSRF token.
pub(super) async fn logout(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "consent").await?;
    let StrictForm(fields) = form?;
    let (user, csrf) = apps_viewer(&s, &cookies)
        .await
        .ok_or(PageError::Unauthorized(
            "You are not signed in in this browser.",
        ))?;
    let valid = fields
        .get("csrf")
        .is_some_and(|given| mcp_auth_core::secrets_equal(given.as_bytes(), csrf.as_bytes()));
    if !valid {
        tracing::warn!(target: AUDIT, event = "flow_refused", reason = "csrf");
        return Err(PageError::Forbidden(
            "The form is not valid. Reload the page.",
        ));
    }
    if let Some(session) = &cookies.login {
        s.sessions
            .revoke(session)
            .await
            .map_err(|_| PageError::Unavailable)?;
    }
    tracing::info!(target: AUDIT, event = "signed_out", subject = user.as_str());
    let mut page = pages::render(StatusCode::OK, &pages::SignedOutPage);
    if let Ok(value) = axum::http::HeaderValue::from_str(&s.login_cookie.clear_cookie()) {
        page.headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    Ok(page)
}

/// `POST /apps/revoke`: revokes every grant the person gave one application
/// (the form names its `client`).
pub(super) async fn apps_revoke(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    cookies: Cookies,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, PageError> {
    s.throttle(addr, "consent").await?;
    let StrictForm(fields) = form?;
    let (user, csrf) = apps_viewer(&s, &cookies)
        .await
        .ok_or(PageError::Unauthorized("Sign in first."))?;
    let valid = fields
        .get("csrf")
        .is_some_and(|given| mcp_auth_core::secrets_equal(given.as_bytes(), csrf.as_bytes()));
    if !valid {
        tracing::warn!(target: AUDIT, event = "flow_refused", reason = "csrf");
        return Err(PageError::Forbidden(
            "The form is not valid. Reload the page.",
        ));
    }
    let client = fields
        .get("client")
        .ok_or(PageError::bad_request("No application named."))?;
    let mine: Vec<Grant> = s
        .store
        .grants_of(&user, s.now())
        .await?
        .into_iter()
        .filter(|g| g.client_id == *client)
        .collect();
    if mine.is_empty() {
        return Err(PageError::NotFound("No such application."));
    }
    for grant in &mine {
        s.store.revoke_grant(&grant.id).await?;
        tracing::info!(target: AUDIT, event = "grant_revoked", grant = short(&grant.id), by = "user");
    }
    s.after_revoke(&user).await;
    Ok(redirect_to(&s.endpoint("/apps")))
}
