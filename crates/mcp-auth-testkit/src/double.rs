//! What the provider doubles share.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// HTML text escaping for the doubles' pages.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `base` with `pairs` added to its query.
pub(crate) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// An RFC 6749 error answer.
pub(crate) fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// Whether `verifier` hashes (S256) to `challenge`.
pub(crate) fn pkce_holds(verifier: &str, challenge: &str) -> bool {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(digest.as_ref()) == challenge
}

/// Binds a double's listener on `listen` (a free loopback port when
/// `None`) and names its base URL (`http://host:port`; an unspecified
/// address is reached through loopback).
pub(crate) async fn bind(
    listen: Option<std::net::SocketAddr>,
) -> Result<(tokio::net::TcpListener, String), String> {
    let addr = listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let mut local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok((listener, format!("http://{local}")))
}
