//! `POST /revoke` (RFC 7009): a refresh token revokes its grant.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use serde_json::json;

use super::extract::{BasicAuth, ClientAddr, ParamError, StrictForm};
use super::reply::{OAuthError, json};
use super::{Inner, short};
use crate::AUDIT;
use crate::secrets::RefreshToken;

pub(super) async fn revoke(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    basic: BasicAuth,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, OAuthError> {
    s.throttle(addr, "revoke").await?;
    let StrictForm(fields) = form?;
    let client = s.authenticate(basic, &fields).await?;
    let token = fields
        .get("token")
        .map(RefreshToken::presented)
        .ok_or(OAuthError::InvalidRequest("token is missing"))?;
    // Refresh tokens revoke their grant. Access tokens are JWTs that live
    // until `exp` (1 h by default): RFC 7009 lets us answer 200 anyway.
    if let Ok(Some(record)) = s.store.refresh(token.key()).await
        && let Ok(Some(grant)) = s.store.grant(&record.grant_id, s.now()).await
        && grant.client_id == client.client_id
        && s.store.revoke_grant(&grant.id).await.unwrap_or(false)
    {
        tracing::info!(target: AUDIT, event = "grant_revoked", grant = short(&grant.id), by = "client");
        s.after_revoke(&grant.subject).await;
    }
    Ok(json(StatusCode::OK, &json!({}), "no-store"))
}
