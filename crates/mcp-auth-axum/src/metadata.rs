//! RFC 9728 protected resource metadata.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::ResourceConfig;

/// The RFC 9728 metadata document for a resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (the audience tokens must carry).
    pub resource: String,
    /// Issuers whose tokens the resource accepts.
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be sent: only `header` (never the query string or the
    /// body).
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// The document for `config`.
    pub fn from_config(config: &ResourceConfig) -> Self {
        Self {
            resource: config.resource.clone(),
            authorization_servers: config.authorization_servers.clone(),
            scopes_supported: config.scopes_supported.clone(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: config.resource_name.clone(),
        }
    }
}

/// A router serving the metadata on every path of
/// [`ResourceConfig::metadata_paths`], without authentication.
pub fn metadata_router(config: &ResourceConfig) -> Router {
    let body = serde_json::to_vec(&ProtectedResourceMetadata::from_config(config))
        .unwrap_or_else(|_| b"{}".to_vec());
    let body = bytes::Bytes::from(body);
    let mut router = Router::new();
    for path in config.metadata_paths() {
        let body = body.clone();
        router = router.route(
            &path,
            get(move || {
                let body = body.clone();
                async move { metadata_response(body) }
            }),
        );
    }
    router
}

fn metadata_response(body: bytes::Bytes) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
