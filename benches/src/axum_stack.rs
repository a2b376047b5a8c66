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

/// The floor under the full stack: the bare server behind the least work
/// its guarantees need, written by hand in one service: the bearer token
/// looked up in a one-entry cache (its SHA-256 against the one known
/// token's, as the verified-token cache keys it), the body read and its
/// JSON-RPC `method` and tool `name` parsed (per-tool scopes and limits need
/// them), and the five security headers set. No limiter, no session
/// binding, no `Origin` check, no challenge, no metrics. What the full stack
/// costs over this is its own work; what this costs over bare is the price
/// of the guarantees. A token for it.
pub fn floor_app(url: &str) -> (axum::Router, String) {
    use sha2::Digest;
    let issuer = DevIssuer::new(ISSUER, url);
    let token = issuer.access_token("bench@example.com", &[BASE_SCOPE]);
    let known: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let floor = Floor {
        inner: Arc::new(mcp_service(DemoTools::new(None), rmcp_config())),
        known,
    };
    (axum::Router::new().route_service("/mcp", floor), token)
}

/// See [`floor_app`].
struct Floor<S> {
    inner: Arc<S>,
    known: [u8; 32],
}

impl<S> Clone for Floor<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            known: self.known,
        }
    }
}

/// What the floor reads of a JSON-RPC request (borrowed from the body).
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<PeekParams<'a>>,
}

#[derive(serde::Deserialize)]
struct PeekParams<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

const FLOOR_HEADERS: [(http::HeaderName, &str); 5] = [
    (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (http::header::REFERRER_POLICY, "no-referrer"),
    (
        http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (http::header::X_FRAME_OPTIONS, "DENY"),
    (http::header::CACHE_CONTROL, "no-store"),
];

impl<S, B> tower::Service<http::Request<axum::body::Body>> for Floor<S>
where
    S: tower::Service<
            http::Request<axum::body::Body>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = http::Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        use sha2::Digest;
        let (inner, known) = (self.inner.clone(), self.known);
        Box::pin(async move {
            let refuse = |status: http::StatusCode| {
                let mut response = http::Response::new(axum::body::Body::empty());
                *response.status_mut() = status;
                Ok(response)
            };
            let authorized = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
                .is_some_and(|t| sha2::Sha256::digest(t).as_slice() == known);
            if !authorized {
                return refuse(http::StatusCode::UNAUTHORIZED);
            }
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
                return refuse(http::StatusCode::PAYLOAD_TOO_LARGE);
            };
            let Ok(peek) = serde_json::from_slice::<Peek<'_>>(&bytes) else {
                return refuse(http::StatusCode::BAD_REQUEST);
            };
            let tool = peek.params.and_then(|p| p.name);
            if peek.method == "tools/call" && tool.as_deref() != Some("echo") {
                return refuse(http::StatusCode::FORBIDDEN);
            }
            let request = http::Request::from_parts(parts, axum::body::Body::from(bytes));
            let Ok(response) = tower::ServiceExt::oneshot(S::clone(&inner), request).await;
            let mut response = response.map(axum::body::Body::new);
            let headers = response.headers_mut();
            for (name, value) in FLOOR_HEADERS {
                headers
                    .entry(name)
                    .or_insert(http::HeaderValue::from_static(value));
            }
            Ok(response)
        })
    }
}
