//! The servers and the request of the HTTP stack measurements (the `axum`
//! bench and the `axum_instructions` example): the demo's rmcp tools bare,
//! and behind the whole mcp-auth-axum stack.

use std::sync::Arc;

use mcp_auth_axum::{McpAuth, McpSessionData};
use mcp_auth_demo::{BASE_SCOPE, DemoTools, mcp_service, resource_config};
use mcp_auth_jwks::{KeySet, Validator};
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use mcp_auth_testkit::DevIssuer;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

/// The issuer the measured tokens name.
pub const ISSUER: &str = "https://issuer.bench.invalid";

/// Stateless JSON responses: one POST, one JSON answer per tools/call.
pub fn rmcp_config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
}

/// Wide limits: every request is allowed, the limiter still decides each
/// (global, per-user and per-tool tiers).
pub fn wide_limits() -> Limits {
    let wide = || {
        Limit::per_second(1_000_000)
            .and_then(|l| l.with_burst(10_000_000))
            .expect("limit")
    };
    Limits::none()
        .global(Some(wide()))
        .per_user(Some(wide()))
        .per_tool(Some(wide()))
}

/// The demo's tools with no layers.
pub fn bare_app() -> axum::Router {
    axum::Router::new().route_service("/mcp", mcp_service(DemoTools::new(None), rmcp_config()))
}

/// The full stack for the resource `url` (security headers, bearer auth
/// with the body peek and scope check, rate limit, session binding), and a
/// token for it. With `token_cache` false every request pays the full JWT
/// check, signature included.
pub fn protected_app(url: &str, token_cache: bool) -> (axum::Router, String) {
    let issuer = DevIssuer::new(ISSUER, url);
    let keys = KeySet::from_jwks(issuer.jwks_json().as_bytes()).expect("jwks");
    let sessions: SessionManager<McpSessionData> =
        SessionManager::new(MemorySessionStore::new(), SessionConfig::default()).expect("sessions");
    let config = resource_config(url, ISSUER).expect("config");
    let validator = Validator::with_static_keys(config.policy().require_access_token_type(), keys);
    let stack = if token_cache {
        McpAuth::with_jwks(config, validator)
    } else {
        McpAuth::new(config, Arc::new(validator))
    }
    .expect("stack");
    let app = stack
        .rate_limiter(Arc::new(
            MemoryRateLimiter::new(wide_limits()).expect("limiter"),
        ))
        .sessions(sessions)
        .into_router(mcp_service(DemoTools::new(None), rmcp_config()))
        .expect("router");
    let token = issuer.access_token("bench@example.com", &[BASE_SCOPE]);
    (app, token)
}

/// The measured request's body: `tools/call echo` with JSON-RPC id `id`.
pub fn call_body(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello"}}}}}}"#
    )
}

/// One `tools/call` over HTTP to `url`, with the bearer header when a token
/// is given; panics unless the tool answered.
pub async fn call_over_http(client: &reqwest::Client, url: &str, token: Option<&str>, id: u64) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(call_body(id));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(
        status.is_success() && text.contains("hello"),
        "{status} {text}"
    );
}

/// Serves the router `make` builds for the listener's `/mcp` URL on an
/// ephemeral loopback port of the current runtime; that URL.
pub async fn serve(make: impl FnOnce(&str) -> axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let app = make(&url);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
