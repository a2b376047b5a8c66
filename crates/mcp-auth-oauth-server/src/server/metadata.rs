//! RFC 8414 / OpenID metadata and the JWKS document.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use serde_json::json;

use super::Inner;
use super::reply::json;

/// `GET /.well-known/oauth-authorization-server` (and its OpenID twin):
/// exactly what the server implements.
pub(super) async fn metadata(State(s): State<Arc<Inner>>) -> Response<Body> {
    let mut doc = json!({
        "issuer": &*s.issuer,
        "authorization_endpoint": s.endpoint("/authorize"),
        "token_endpoint": s.endpoint("/token"),
        "jwks_uri": s.endpoint("/jwks.json"),
        "revocation_endpoint": s.endpoint("/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": s.scopes,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": s.documents.is_some(),
    });
    if s.registration {
        doc["registration_endpoint"] = json!(s.endpoint("/register"));
    }
    json(StatusCode::OK, &doc, "public, max-age=300")
}

/// `GET /jwks.json`: the public keys (next, current, previous).
pub(super) async fn jwks(State(s): State<Arc<Inner>>) -> Response<Body> {
    json(StatusCode::OK, &s.keys_read().jwks(), "public, max-age=300")
}
