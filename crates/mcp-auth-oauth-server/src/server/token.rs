//! `POST /token`: the client authenticated per its registration, then the
//! authorization-code grant (single use, PKCE, bound to client, redirect
//! URI and resource) or the refresh grant (rotated on every use, reuse
//! revokes the grant); both end in an RFC 9068 access token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Response, StatusCode, header};
use mcp_auth_pkce::CodeVerifier;
use sha2::{Digest, Sha256};

use super::extract::{BasicAuth, ClientAddr, ParamError, Params, StrictForm};
use super::reply::{OAuthError, json_bytes};
use super::{Inner, scope_list, short};
use crate::AUDIT;
use crate::secrets::{AuthorizationCode, ClientSecret, RefreshToken, random_id};
use crate::store::{ClientInfo, Grant, Redemption, RefreshRecord, Rotation};

pub(super) async fn token(
    State(s): State<Arc<Inner>>,
    addr: ClientAddr,
    basic: BasicAuth,
    form: Result<StrictForm, ParamError>,
) -> Result<Response<Body>, OAuthError> {
    s.throttle(addr, "token").await?;
    let StrictForm(fields) = form?;
    let client = s.authenticate(basic, &fields).await?;
    s.touch_client(&client).await;
    match fields.get("grant_type") {
        Some("authorization_code") => s.code_grant(&client, &fields).await,
        Some("refresh_token") => s.refresh_grant(&client, &fields).await,
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

/// How stale a grant's "last used" may get before a refresh stores it
/// again (seconds): the connected-apps page shows it to the minute.
const TOUCH_EVERY: u64 = 60;

/// An RFC 9068 access token's claims.
#[derive(serde::Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

/// The token endpoint's success body (RFC 6749 section 5.1).
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

/// Whether `verifier` is an RFC 7636 verifier whose S256 challenge is
/// `challenge` (compared in constant time).
fn pkce_holds(verifier: &str, challenge: &str) -> bool {
    CodeVerifier::from_string(verifier.to_owned()).is_ok_and(|verifier| {
        mcp_auth_core::secrets_equal(
            verifier.s256_challenge().as_str().as_bytes(),
            challenge.as_bytes(),
        )
    })
}

impl Inner {
    /// The calling client, authenticated per its registration: Basic or
    /// form credentials for a confidential client, the `client_id` alone
    /// for a public one.
    pub(super) async fn authenticate(
        &self,
        basic: BasicAuth,
        fields: &Params,
    ) -> Result<ClientInfo, OAuthError> {
        const FAILED: OAuthError = OAuthError::InvalidClient("client authentication failed");
        let (client_id, secret) = match (basic.0, fields.get("client_id")) {
            (Some((id, secret)), None) => (id, Some(secret)),
            (Some((id, secret)), Some(form_id)) if form_id == id => (id, Some(secret)),
            (Some(_), Some(_)) => return Err(FAILED),
            (None, Some(id)) => (
                id.to_owned(),
                fields.get("client_secret").map(ClientSecret::presented),
            ),
            (None, None) => return Err(OAuthError::InvalidClient("no client_id")),
        };
        let client = self.client(&client_id).await?.ok_or(FAILED)?;
        match (&client.secret_hash, secret) {
            (None, _) => Ok(client),
            (Some(hash), Some(secret)) => {
                let presented: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
                if mcp_auth_core::secrets_equal(&presented, hash) {
                    Ok(client)
                } else {
                    Err(FAILED)
                }
            }
            (Some(_), None) => Err(FAILED),
        }
    }

    async fn code_grant(
        &self,
        client: &ClientInfo,
        fields: &Params,
    ) -> Result<Response<Body>, OAuthError> {
        let code = fields
            .get("code")
            .map(AuthorizationCode::presented)
            .ok_or(OAuthError::InvalidRequest("code is missing"))?;
        let record = match self.store.redeem_code(code.key(), self.now()).await? {
            Redemption::Fresh(record) => record,
            Redemption::Replayed { grant_id } => {
                // RFC 6749 section 4.1.2: a code used twice revokes what it gave.
                let _ = self.store.revoke_grant(&grant_id).await;
                tracing::warn!(target: AUDIT, event = "code_replayed", grant = short(&grant_id));
                crate::metrics::token_grant("authorization_code", "code_replayed");
                return Err(OAuthError::InvalidGrant(
                    "the code was already used; its grant is revoked",
                ));
            }
            _ => return Err(OAuthError::InvalidGrant("unknown or expired code")),
        };
        if record.grant.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        if fields
            .get("redirect_uri")
            .is_some_and(|r| r != record.redirect_uri)
        {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the authorization request",
            ));
        }
        if fields
            .get("resource")
            .is_some_and(|r| r != record.grant.resource)
        {
            return Err(OAuthError::InvalidTarget(
                "resource differs from the authorization request",
            ));
        }
        let verifier = fields
            .get("code_verifier")
            .ok_or(OAuthError::InvalidRequest("code_verifier is missing"))?;
        if !pkce_holds(verifier, &record.code_challenge) {
            return Err(OAuthError::InvalidGrant("PKCE verification failed"));
        }
        let grant = record.grant;
        self.store.put_grant(grant.clone()).await?;
        // A replay that arrived between the redemption and this write
        // found no grant to revoke; it marked the code, so the grant goes
        // now. (The replay marks, then revokes; this writes, then reads the
        // mark: whichever comes second sees the other's step.)
        if self.store.code_replayed(code.key()).await? {
            let _ = self.store.revoke_grant(&grant.id).await;
            tracing::warn!(target: AUDIT, event = "code_replayed", grant = short(&grant.id));
            crate::metrics::token_grant("authorization_code", "code_replayed");
            return Err(OAuthError::InvalidGrant(
                "the code was already used; its grant is revoked",
            ));
        }
        tracing::info!(target: AUDIT, event = "grant_issued", grant = short(&grant.id), subject = grant.subject.as_str(), client = %grant.client_id);
        self.cap_grants(&grant).await;
        crate::metrics::token_grant("authorization_code", "issued");
        self.issue_tokens(client, &grant, &grant.scopes, None).await
    }

    /// Past [`max_grants_per_user`](crate::AuthServerBuilder::max_grants_per_user)
    /// live grants, the person's oldest go (never the one just issued).
    /// Best effort: a store error leaves them for the next sign-in.
    async fn cap_grants(&self, issued: &Grant) {
        // The common case, well under the cap, costs one cheap count.
        match self.store.grant_count_bound(&issued.subject).await {
            Ok(bound) if bound <= self.max_grants_per_user => return,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok(mut grants) = self.store.grants_of(&issued.subject, self.now()).await else {
            return;
        };
        if grants.len() <= self.max_grants_per_user {
            return;
        }
        grants.retain(|g| g.id != issued.id);
        grants.sort_by_key(|g| g.created_at);
        let excess = grants.len() + 1 - self.max_grants_per_user;
        for old in grants.iter().take(excess) {
            if self.store.revoke_grant(&old.id).await.unwrap_or(false) {
                tracing::info!(target: AUDIT, event = "grant_evicted", grant = short(&old.id), reason = "max grants per user");
            }
        }
    }

    async fn refresh_grant(
        &self,
        client: &ClientInfo,
        fields: &Params,
    ) -> Result<Response<Body>, OAuthError> {
        let presented = fields
            .get("refresh_token")
            .map(RefreshToken::presented)
            .ok_or(OAuthError::InvalidRequest("refresh_token is missing"))?;
        let now = self.now();
        let old = presented.key();
        let (record, grant) = self
            .store
            .refresh_and_grant(old, now)
            .await?
            .ok_or(OAuthError::InvalidGrant("unknown refresh token"))?;
        let grant = grant.ok_or(OAuthError::InvalidGrant("the grant has ended"))?;
        if grant.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        if fields.get("resource").is_some_and(|r| r != grant.resource) {
            return Err(OAuthError::InvalidTarget("resource differs from the grant"));
        }
        // The access token may narrow the scopes, never widen them; the new
        // refresh token keeps the scope presented (RFC 6749 section 6).
        let scopes = match fields.get("scope") {
            Some(asked) => {
                let asked = scope_list(Some(asked));
                if asked.iter().any(|x| !record.scopes.contains(x)) {
                    return Err(OAuthError::InvalidScope(
                        "the grant does not include a requested scope; send the person through /authorize again to add it",
                    ));
                }
                asked
            }
            None => record.scopes.clone(),
        };
        let mut next = RefreshToken::generate()?;
        let new_record = RefreshRecord {
            grant_id: grant.id.clone(),
            scopes: record.scopes.clone(),
        };
        // Sealed only when a retry may open it (a grace window is set).
        let sealed = if self.refresh_grace > 0 {
            crate::successor::seal(&presented, &next)?
        } else {
            Vec::new()
        };
        match self
            .store
            .rotate_refresh(old, next.key(), new_record, now, self.refresh_grace, sealed)
            .await?
        {
            Rotation::Rotated(_) => {}
            Rotation::Retried {
                sealed_successor, ..
            } => {
                // A retry inside the grace window (the client lost our
                // answer): the same successor again, never a second one.
                next = crate::successor::open(&presented, &sealed_successor)
                    .ok_or(OAuthError::InvalidGrant("unknown refresh token"))?;
                tracing::info!(target: AUDIT, event = "refresh_retried", grant = short(&grant.id));
                crate::metrics::token_grant("refresh_token", "retried");
                return self.issue_tokens(client, &grant, &scopes, Some(next)).await;
            }
            Rotation::Reused { grant_id } => {
                tracing::warn!(target: AUDIT, event = "refresh_reused", grant = short(&grant_id), subject = grant.subject.as_str());
                crate::metrics::token_grant("refresh_token", "refresh_reused");
                return Err(OAuthError::InvalidGrant(
                    "the refresh token was already used; its grant is revoked",
                ));
            }
            _ => return Err(OAuthError::InvalidGrant("unknown refresh token")),
        }
        // "Last used" is for the connected-apps page, which shows it to
        // the minute: stored at most once a minute, and the answer does not
        // wait for it (a persistent store commits it apart).
        if grant.last_used.saturating_add(TOUCH_EVERY) <= now {
            let (store, grant_id) = (self.store.clone(), grant.id.clone());
            tokio::spawn(async move {
                let _ = store.touch_grant(&grant_id, now).await;
            });
        }
        tracing::info!(target: AUDIT, event = "refresh_rotated", grant = short(&grant.id));
        crate::metrics::token_grant("refresh_token", "issued");
        self.issue_tokens(client, &grant, &scopes, Some(next)).await
    }

    /// The access token (and a refresh token when the client uses them).
    async fn issue_tokens(
        &self,
        client: &ClientInfo,
        grant: &Grant,
        scopes: &[String],
        refresh: Option<RefreshToken>,
    ) -> Result<Response<Body>, OAuthError> {
        let now = self.now();
        let scope = scopes.join(" ");
        let jti = random_id(16)?;
        let access = self
            .keys_read()
            .current()
            .sign(
                "at+jwt",
                &AccessClaims {
                    iss: &self.issuer,
                    sub: grant.subject.as_str(),
                    aud: &grant.resource,
                    client_id: &grant.client_id,
                    scope: &scope,
                    iat: now,
                    exp: now + self.access_ttl,
                    jti: &jti,
                },
            )
            .map_err(|_| OAuthError::Unavailable)?;
        let refresh = match refresh {
            Some(token) => Some(token),
            None if client.refresh => {
                let token = RefreshToken::generate()?;
                let record = RefreshRecord {
                    grant_id: grant.id.clone(),
                    scopes: scopes.to_vec(),
                };
                self.store.put_refresh(token.key(), record).await?;
                Some(token)
            }
            None => None,
        };
        let body = serde_json::to_vec(&TokenResponse {
            access_token: &access,
            token_type: "Bearer",
            expires_in: self.access_ttl,
            scope: &scope,
            refresh_token: refresh.as_ref().map(RefreshToken::expose),
        })
        .map_err(|_| OAuthError::Unavailable)?;
        let mut response = json_bytes(StatusCode::OK, body, "no-store");
        response
            .headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_holds_for_rfc_7636_appendix_b_only() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(super::pkce_holds(verifier, challenge));
        assert!(!super::pkce_holds(&verifier[1..], challenge));
        assert!(!super::pkce_holds(verifier, &challenge[1..]));
        assert!(!super::pkce_holds("short", challenge));
    }
}
