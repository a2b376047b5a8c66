//! Shared fixture: a dev issuer, the full stack around an echo service.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use mcp_auth_axum::token::AuthContext;
use mcp_auth_axum::{McpAuth, McpSessionData, ResourceConfig};
use mcp_auth_core::ManualClock;
use mcp_auth_jwks::{KeySet, Policy, Validator};
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use mcp_auth_testkit::DevIssuer;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://login.example.com";
pub const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// Stands in for the MCP server: reports what reached it, and opens a
/// session when asked to (as an MCP server does on `initialize`).
pub async fn echo(request: Request) -> Response {
    let subject = request
        .extensions()
        .get::<Arc<AuthContext>>()
        .map(|c| c.subject().to_owned());
    let session = request
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let open = request.headers().get("x-open-session").cloned();
    let method = request.method().clone();
    let body = to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let mut response = axum::Json(json!({
        "subject": subject,
        "session": session,
        "method": method.as_str(),
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response();
    if let Some(id) = open {
        response.headers_mut().insert("mcp-session-id", id);
    }
    response
}

pub struct Fixture {
    pub issuer: DevIssuer,
    pub clock: ManualClock,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            issuer: DevIssuer::new(ISSUER, RESOURCE),
            clock: ManualClock::at_unix(1_800_000_000),
        }
    }

    pub fn config(&self) -> ResourceConfig {
        ResourceConfig::builder(RESOURCE, ISSUER)
            .require_scopes(["mcp:tools"])
            .tool_scopes("delete_file", ["files:write"])
            .max_body_bytes(4096)
            .build()
            .unwrap()
    }

    pub fn validator(&self) -> Validator {
        let keys = KeySet::from_jwks(self.issuer.jwks_json().as_bytes()).unwrap();
        Validator::with_static_keys(Policy::new(ISSUER, RESOURCE), keys)
    }

    pub fn limits() -> Limits {
        Limits::none()
            .per_user(Some(Limit::per_minute(5).unwrap()))
            .per_tool(Some(Limit::per_minute(2).unwrap()))
    }

    pub fn stack(&self) -> McpAuth {
        let limiter = MemoryRateLimiter::new(Self::limits())
            .map(|limiter| limiter.clock(self.clock.clone()))
            .unwrap();
        let sessions: SessionManager<McpSessionData> =
            SessionManager::new(MemorySessionStore::new(), SessionConfig::default())
                .unwrap()
                .clock(self.clock.clone());
        McpAuth::with_jwks(self.config(), self.validator())
            .unwrap()
            .rate_limiter(Arc::new(limiter))
            .sessions(sessions)
    }

    pub fn app(&self) -> Router {
        self.stack().into_router(any(echo)).unwrap()
    }

    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.issuer.access_token(sub, scopes)
    }
}

pub fn post(token: Option<&str>, body: &Value) -> Request {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

pub fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

pub fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

pub async fn send(app: &Router, request: Request) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, json)
}

pub fn challenge(headers: &HeaderMap) -> String {
    headers
        .get(header::WWW_AUTHENTICATE)
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn with_session(mut request: Request, id: &str) -> Request {
    request
        .headers_mut()
        .insert("mcp-session-id", HeaderValue::from_str(id).unwrap());
    request
}
