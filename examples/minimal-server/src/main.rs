//! The smallest complete protected MCP server: one rmcp tool behind `McpAuth`.
//!
//! `MCP_ISSUER`: your authorization server (found by discovery); unset, a
//! development issuer starts on loopback and prints a token. `MCP_RESOURCE`:
//! the endpoint's public URL. `MCP_LISTEN`: the address to bind.
//! `MCP_STATELESS=1`: rmcp without sessions, JSON responses.
use std::sync::Arc;

use axum::http::request::Parts;
use mcp_auth_axum::{McpAuth, McpSessionData, ResourceConfig, token::AuthContext};
use mcp_auth_jwks::Validator;
use mcp_auth_ratelimit::{Limits, MemoryRateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

#[derive(Debug, Clone)]
struct Hello {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Hello {
    #[tool(description = "Says who the signed-in user is")]
    fn whoami(&self, Extension(parts): Extension<Parts>) -> String {
        let caller = parts.extensions.get::<Arc<AuthContext>>();
        caller.map_or("nobody".into(), |c| format!("You are {}", c.subject()))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let listen = env("MCP_LISTEN", "127.0.0.1:8788");
    let resource = env("MCP_RESOURCE", &format!("http://{listen}/mcp"));
    let stateless = env("MCP_STATELESS", "0") == "1";
    let issuer = match std::env::var("MCP_ISSUER") {
        Ok(issuer) => issuer,
        Err(_) => {
            let (dev, _) = mcp_auth_testkit::DevIssuer::serve_loopback(&*resource).await?;
            let token = dev.access_token("alice", &["mcp:tools"]);
            println!("dev issuer token: {token}");
            dev.issuer().to_owned()
        }
    };

    // Issuer, audience and scopes once; the validator's policy comes from here.
    let config = ResourceConfig::builder(&resource, &issuer)
        .require_scopes(["mcp:tools"])
        .build()?;
    let validator = Validator::from_issuer(config.policy()).await?;

    // rmcp: accept the public host name; sessions, or stateless JSON.
    let mut rmcp = StreamableHttpServerConfig::default().with_allowed_hosts(config.allowed_hosts());
    rmcp.legacy_session_mode = !stateless;
    rmcp.json_response = stateless;
    let tool_router = Hello::tool_router();
    let names: Vec<_> = tool_router
        .list_all()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let tools = Hello { tool_router };
    let sessions = Arc::new(LocalSessionManager::default());
    let mcp = StreamableHttpService::new(move || Ok(tools.clone()), sessions, rmcp);

    let mut auth = McpAuth::with_jwks(config, validator)?
        .tools(names)
        .rate_limiter(Arc::new(MemoryRateLimiter::new(Limits::default())?));
    if !stateless {
        // Each rmcp session bound to the user who opened it.
        let (store, settings) = (MemorySessionStore::new(), SessionConfig::default());
        auth = auth.sessions(SessionManager::<McpSessionData>::new(store, settings)?);
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("MCP server {resource} on {}", listener.local_addr()?);
    // SIGTERM or Ctrl-C: stop accepting, finish what is in progress.
    mcp_auth_axum::serve(listener, auth.into_router(mcp)?)
        .with_graceful_shutdown(async {
            mcp_auth_axum::shutdown_signal().await;
        })
        .await?;
    Ok(())
}
