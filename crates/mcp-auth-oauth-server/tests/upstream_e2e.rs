//! End to end with a real OpenID provider and a real MCP client, neither
//! written here: npm `oidc-provider` (OpenID Certified) is the upstream
//! identity provider, this crate's authorization server proxies it, an
//! rmcp server has a tool that calls the provider's userinfo endpoint with
//! the upstream token, and the official MCP TypeScript SDK client
//! (`tests/upstream_e2e/client.mjs`) signs in and calls it.
//!
//! Covered: discovery and dynamic registration (SDK), our consent before
//! the provider, the provider's login and consent (scripted browser), our
//! callback and the code exchange, a tool call with the upstream token,
//! upstream token expiry → transparent refresh (the refresh margin is
//! longer than the provider's token lifetime, so every call refreshes),
//! and the provider killing the refresh token → the tool says reconnect
//! and our grant is revoked. No upstream token, refresh token or ID token
//! reaches the client.
//!
//! Needs `node` and `npm`: ignored by a plain `cargo test`, run by
//! `scripts/test-all.sh`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use mcp_auth_axum::{McpAuth, McpSessionData, ResourceConfig};
use mcp_auth_core::UserId;
use mcp_auth_jwks::Validator;
use mcp_auth_oauth_server::{
    AuthServer, ProviderQuirks, UpstreamError, UpstreamLogin, UpstreamToken,
};
use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri, TokenKind, TokenSet};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone)]
struct Tools {
    userinfo: String,
    tool_router: ToolRouter<Self>,
}

impl Tools {
    async fn profile(&self, upstream: &UpstreamToken) -> Result<String, String> {
        let http = reqwest::Client::new();
        let mut token = upstream.access_token().await.map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            let response = http
                .get(&self.userinfo)
                .bearer_auth(token.expose_secret())
                .send()
                .await
                .map_err(|_| "the provider is unreachable".to_owned())?;
            if response.status() == 401 && attempt == 0 {
                token = upstream
                    .refresh_rejected(&token)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|_| "the provider answered garbage".to_owned())?;
            return Ok(format!("sub={} email={}", body["sub"], body["email"]));
        }
        Err("the provider refused the token".into())
    }
}

#[tool_router]
impl Tools {
    #[tool(description = "The signed-in person's profile at the identity provider")]
    async fn upstream_profile(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        let Some(upstream) = parts.extensions.get::<UpstreamToken>() else {
            return CallToolResult::error(vec![ContentBlock::text(
                "not signed in through the proxy",
            )]);
        };
        match self.profile(upstream).await {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_signs_in_through_oidc_provider_and_uses_the_upstream_token() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upstream_e2e");
    mcp_auth_testkit::npm_ready(&dir, "oidc-provider", "the upstream proxy end-to-end test");
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());

    // The upstream provider, our /login registered as its redirect URI.
    let (op_issuer, mut op) =
        mcp_auth_testkit::oidc_provider(&dir, &format!("{issuer}/login")).await;

    // Our authorization server in front of it.
    let provider = Provider::discover("oidc", &op_issuer).await.unwrap();
    let upstream_client = |provider: Provider| {
        OAuthClient::builder(
            provider,
            "mcp-proxy",
            RedirectUri::new(format!("{issuer}/login")).unwrap(),
        )
        .client_secret(SecretString::from("mcp-proxy-client-secret"))
        .build()
        .unwrap()
    };
    let vault = Arc::new(
        Vault::builder(StorageMode::MemoryOnly)
            .key(KeyMaterial::raw([3; 32]))
            .open()
            .unwrap(),
    );
    let mut quirks = ProviderQuirks::default();
    // oidc-provider, like Google, issues a refresh token only on consent.
    quirks.prompt_consent_without_refresh_token = true;
    let login = UpstreamLogin::builder(upstream_client(provider.clone()), vault.clone())
        .base_scopes(["openid", "offline_access"])
        .scope("profile:read", ["email"])
        .quirks(quirks)
        // Longer than the provider's access-token lifetime: every tool
        // call finds the token due and refreshes it first.
        .refresh_margin(Duration::from_secs(7200))
        .build()
        .unwrap();
    let server = AuthServer::builder(&issuer, &resource)
        .scopes(["profile:read"])
        .dynamic_registration(true)
        .upstream(login)
        .build()
        .unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(as_listener, router).await.unwrap() });

    // The MCP server: its tool reads the upstream token from the request.
    let config = ResourceConfig::builder(&resource, &issuer)
        .require_scopes(["profile:read"])
        .build()
        .unwrap();
    let validator = Validator::from_issuer(config.policy()).await.unwrap();
    let tool_router = Tools::tool_router();
    let tools = Tools {
        userinfo: format!("{op_issuer}/me"),
        tool_router,
    };
    let rmcp_config =
        StreamableHttpServerConfig::default().with_allowed_hosts(config.allowed_hosts());
    let mcp = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        rmcp_config,
    );
    let mcp = tower::Layer::layer(&server.upstream_tokens().unwrap().layer(), mcp);
    let app = McpAuth::with_jwks(config, validator)
        .unwrap()
        .tools(["upstream_profile"])
        .sessions(
            SessionManager::<McpSessionData>::new(
                MemorySessionStore::new(),
                SessionConfig::default(),
            )
            .unwrap(),
        )
        .into_router(mcp)
        .unwrap();
    tokio::spawn(async move { mcp_auth_axum::serve(mcp_listener, app).await.unwrap() });

    // The client, phase by phase.
    let mut client = tokio::process::Command::new("node")
        .args(["client.mjs", &resource])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut to_client = client.stdin.take().unwrap();
    let mut from_client = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(60), from_client.next_line())
            .await
            .expect("the client answered within 60 s")
            .unwrap()
            .expect("the client is still running")
    };
    let alice = UserId::new("oidc:alice").unwrap();
    let on_file = |vault: &Vault| vault.get(&alice, "upstream:oidc").unwrap();

    // 1. Signed in: the provider's tokens are in the vault, not in ours.
    let line = next().await;
    let ours = line
        .strip_prefix("SIGNED_IN ")
        .unwrap_or_else(|| panic!("{line}"));
    let held = on_file(&vault).expect("the upstream tokens are in the vault");
    let first_access = held.access_token().expose_secret().to_owned();
    let first_refresh = held.refresh_token().unwrap().expose_secret().to_owned();
    assert!(
        !ours.contains(&first_access) && !ours.contains(&first_refresh),
        "{ours}"
    );
    assert!(!ours.contains("id_token"), "{ours}");
    to_client.write_all(b"GO\n").await.unwrap();

    // 2. The tool call refreshed the upstream token first.
    let line = next().await;
    assert!(
        line.starts_with("CALLED ") && line.contains("alice@example.com"),
        "{line}"
    );
    let held = on_file(&vault).unwrap();
    assert_ne!(held.access_token().expose_secret(), first_access);
    assert_ne!(
        held.refresh_token().unwrap().expose_secret(),
        first_refresh,
        "rotated"
    );
    assert_eq!(server.grants(&alice).await.unwrap().len(), 1);
    // The provider kills the refresh token (as when the person removes
    // the app at the provider).
    let tokens = TokenSet::new(
        held.access_token().clone(),
        held.refresh_token().cloned(),
        held.expires_at(),
        held.scopes().to_vec(),
    );
    upstream_client(provider)
        .revoke(&tokens, TokenKind::Refresh)
        .await
        .unwrap();
    to_client.write_all(b"GO\n").await.unwrap();

    // 3. Reconnect: our grant is revoked, the vault entry deleted.
    let line = next().await;
    assert!(line.starts_with("DONE"), "{line}");
    let status = tokio::time::timeout(Duration::from_secs(30), client.wait())
        .await
        .expect("the client exits")
        .unwrap();
    assert!(status.success());
    assert!(server.grants(&alice).await.unwrap().is_empty());
    assert!(on_file(&vault).is_none());
    let gone = server
        .upstream_tokens()
        .unwrap()
        .for_user(&alice)
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(gone, UpstreamError::Reconnect { .. }));
    let _ = op.kill().await;
}
