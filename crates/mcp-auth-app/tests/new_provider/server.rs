use axum::http::request::Parts;
use http::Method;
use mcp_auth_app::tool::result;
use mcp_auth_app::{
    Endpoints, McpTools, ProviderApi, ProviderProfile, ProviderQuirks, Scope, Serving, Settings,
    StartError, ToolError, UpstreamToken,
};
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension};
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

// ------------------------------------------------------------ the wiring

/// Our one scope: every tool needs it; it asks the provider for `email`.
pub const SCOPES: &[Scope] = &[Scope::every_tool("profile:read", &["email"])];

/// The provider, found by OpenID Connect discovery at `issuer`. Its
/// client id and secret come from `OIDC_CLIENT_ID` and `OIDC_CLIENT_SECRET`.
pub fn profile(issuer: &str) -> ProviderProfile {
    let mut quirks = ProviderQuirks::default();
    // A refresh token only after the provider's consent prompt.
    quirks.prompt_consent_without_refresh_token = true;
    let endpoints = Endpoints::Discover {
        name: "oidc".into(),
        issuer: issuer.into(),
    };
    ProviderProfile::new("OIDC", endpoints, issuer)
        .base_scopes(["openid", "offline_access"])
        .quirks(quirks)
        .scopes(SCOPES)
}

/// Serves on `listener` until the returned handle is dropped.
pub async fn start(
    issuer: &str,
    settings: &Settings,
    listener: tokio::net::TcpListener,
) -> Result<Serving<()>, StartError> {
    profile(issuer)
        .start(settings, listener, None, Tools::new)
        .await
}

/// The binary: `OIDC_ISSUER=https://login.example.com oidc-mcp`.
#[tokio::main]
pub async fn main() -> std::process::ExitCode {
    let issuer = std::env::var("OIDC_ISSUER").unwrap_or_default();
    profile(&issuer).main(Tools::new).await
}

// ------------------------------------------------------------ the tools

/// The tools: one, which asks the provider who you are.
#[derive(Clone)]
pub struct Tools {
    api: ProviderApi,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    fn new(api: ProviderApi) -> Self {
        let tool_router = Self::tool_router();
        Self { api, tool_router }
    }

    #[tool(description = "Who you are at the identity provider")]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        result(self.userinfo(&parts).await)
    }
}

impl Tools {
    /// The provider's userinfo answer, with the caller's provider token.
    async fn userinfo(&self, parts: &Parts) -> Result<Value, ToolError> {
        let upstream = parts
            .extensions
            .get::<UpstreamToken>()
            .ok_or_else(|| ToolError::Provider("sign in through this server".into()))?;
        let response = self.api.send(upstream, Method::GET, "/me", None).await?;
        serde_json::from_slice(response.body())
            .map_err(|_| ToolError::Provider("the provider did not answer JSON".into()))
    }
}

impl McpTools for Tools {
    fn tool_names(&self) -> Vec<String> {
        mcp_auth_app::tool_names(&self.tool_router)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
