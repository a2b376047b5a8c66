//! `POST /register`: RFC 7591 dynamic client registration (opt-in).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Inner;
use super::extract::{ClientAddr, MAX_FORM};
use super::reply::{OAuthError, json};
use crate::AUDIT;
use crate::client::{self, ClientMetadata};
use crate::secrets::{ClientSecret, random_id};
use crate::store::{ClientInfo, ClientOrigin};

pub(super) async fn register(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    body: Body,
) -> Result<Response<Body>, OAuthError> {
    s.throttle(addr, "register").await?;
    const TOO_LARGE: OAuthError =
        OAuthError::InvalidClientMetadata("the registration is too large");
    let body: Bytes = axum::body::to_bytes(body, MAX_FORM + 1)
        .await
        .map_err(|_| TOO_LARGE)?;
    if body.len() > MAX_FORM {
        return Err(TOO_LARGE);
    }
    let metadata = serde_json::from_slice::<ClientMetadata>(&body)
        .map_err(|_| OAuthError::InvalidClientMetadata("not JSON client metadata"))?;
    let method = metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return Err(OAuthError::InvalidClientMetadata(
            "token_endpoint_auth_method is not supported",
        ));
    }
    if metadata
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return Err(OAuthError::InvalidClientMetadata(
            "only the code response type is supported",
        ));
    }
    let grant_types = metadata
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
    if grant_types
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(OAuthError::InvalidClientMetadata(
            "only authorization_code and refresh_token are supported",
        ));
    }
    let (redirect_uris, refused) =
        client::filter_redirects(&metadata.redirect_uris, &s.private_use);
    if redirect_uris.is_empty() {
        return Err(OAuthError::InvalidRedirectUri("no acceptable redirect URI"));
    }
    let client_id = format!("mcp-{}", random_id(16)?);
    let secret = ClientSecret::generate()?;
    let confidential = method != "none";
    let now = s.now();
    let info = ClientInfo {
        client_id: client_id.clone(),
        name: client::display_name(metadata.client_name.as_deref(), "Unnamed application"),
        redirect_uris: redirect_uris.clone(),
        secret_hash: confidential.then(|| Sha256::digest(secret.expose().as_bytes()).into()),
        refresh: grant_types.iter().any(|g| g == "refresh_token"),
        origin: ClientOrigin::Registered,
        last_used: now,
    };
    s.store.put_client(info.clone()).await?;
    tracing::info!(target: AUDIT, event = "client_registered", client = %client_id, refused_redirects = refused.len());
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "client_name": info.name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": ["code"],
    });
    if confidential {
        answer["client_secret"] = json!(secret.expose());
        answer["client_secret_expires_at"] = json!(0);
    }
    Ok(json(StatusCode::CREATED, &answer, "no-store"))
}
