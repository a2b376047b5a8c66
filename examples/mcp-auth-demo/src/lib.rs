//! The mcp-auth demo as a library: a protected MCP server on the official
//! Rust SDK (`rmcp`, streamable HTTP), wired through every mcp-auth crate,
//! with an embedded development issuer. The binary (`cargo run -p
//! mcp-auth-demo`) serves it; the interop tests and the bench start it in
//! process.
//!
//! Request path: security headers and CORS, then the bearer layer (token
//! from `Authorization` only, validated by `mcp-auth-jwks` against the dev
//! issuer's JWKS fetched by discovery; audience = this server; scopes per
//! tool), the rate-limit layer (`mcp-auth-ratelimit`), the session binding
//! (`mcp-auth-session`), then rmcp. Tools read the caller from the
//! `AuthContext` and keep a per-user note in the encrypted vault
//! (`mcp-auth-vault`).

pub mod smoke;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use mcp_auth_axum::token::AuthContext;
use mcp_auth_axum::token::{ByIssuer, CachedVerifier};
use mcp_auth_axum::{McpAuth, McpSessionData, ResourceConfig, ResourceConfigBuilder};
use mcp_auth_core::UserId;
use mcp_auth_http::HttpClient;
use mcp_auth_jwks::{Policy, Validator};
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin};
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use mcp_auth_testkit::DevIssuer;
use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use secrecy::ExposeSecret;

/// Errors while starting the demo.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every request needs this scope.
pub const BASE_SCOPE: &str = "mcp:tools";
/// `read_note` needs this scope too.
pub const READ_SCOPE: &str = "notes:read";
/// `save_note` needs this scope too (the dev token lacks it: step-up demo).
pub const WRITE_SCOPE: &str = "notes:write";
/// The demo user the printed token is for.
pub const DEMO_USER: &str = "alice@example.com";
/// The vault provider name the notes live under.
const NOTE: &str = "demo-note";

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// Arguments of `save_note`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct NoteArgs {
    /// The note to keep (encrypted at rest, readable only by you).
    pub text: String,
}

/// The demo's MCP tools.
#[derive(Debug, Clone)]
pub struct DemoTools {
    vault: Option<Arc<Vault>>,
    tool_router: ToolRouter<Self>,
}

fn caller(parts: &axum::http::request::Parts) -> Result<Arc<AuthContext>, ErrorData> {
    parts
        .extensions
        .get::<Arc<AuthContext>>()
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("no authenticated caller", None))
}

#[tool_router]
impl DemoTools {
    /// Tools backed by `vault`; `None` serves `echo` only (the bench's bare
    /// server).
    pub fn new(vault: Option<Arc<Vault>>) -> Self {
        Self {
            vault,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Says who you are: the subject, client and scopes of your access token")]
    fn whoami(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller(&parts)?;
        let text = serde_json::json!({
            "subject": who.subject(),
            "client_id": who.client_id,
            "scopes": who.scopes,
        })
        .to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(description = "Sends the text back")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Reads your private note from the encrypted vault (needs notes:read)")]
    async fn read_note(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller(&parts)?;
        let vault = self.vault()?;
        let user = who.user.clone();
        let note = tokio::task::spawn_blocking(move || vault.get_bytes(&user, NOTE))
            .await
            .map_err(|_| ErrorData::internal_error("vault task failed", None))?
            .map_err(|e| ErrorData::internal_error(format!("vault: {e}"), None))?;
        let text = match note {
            Some(bytes) => String::from_utf8_lossy(bytes.expose_secret()).into_owned(),
            None => "(no note yet)".to_owned(),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(description = "Saves your private note in the encrypted vault (needs notes:write)")]
    async fn save_note(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(NoteArgs { text }): Parameters<NoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller(&parts)?;
        let vault = self.vault()?;
        let user = who.user.clone();
        tokio::task::spawn_blocking(move || vault.put_bytes(&user, NOTE, text.as_bytes()))
            .await
            .map_err(|_| ErrorData::internal_error("vault task failed", None))?
            .map_err(|e| ErrorData::invalid_params(format!("vault: {e}"), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text("saved")]))
    }
}

impl DemoTools {
    fn vault(&self) -> Result<Arc<Vault>, ErrorData> {
        self.vault
            .clone()
            .ok_or_else(|| ErrorData::internal_error("this server has no vault", None))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The rmcp streamable-HTTP service for `tools`.
pub fn mcp_service(
    tools: DemoTools,
    rmcp_config: StreamableHttpServerConfig,
) -> StreamableHttpService<DemoTools, LocalSessionManager> {
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        rmcp_config,
    )
}

/// How to start the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Port for the MCP server on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Rate limits. Default: 120 requests a minute per user, 30 calls a
    /// minute per (user, tool).
    pub limits: Limits,
    /// rmcp's transport settings (sessions on by default).
    pub rmcp: StreamableHttpServerConfig,
    /// How the authorization server fetches client ID metadata documents
    /// (default: the workspace's `OutboundClient`, loopback allowed for the
    /// demo); tests give it a fake that serves an `https` document.
    pub metadata_documents_http: Option<Arc<dyn HttpClient>>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            port: 0,
            limits: demo_limits(),
            rmcp: StreamableHttpServerConfig::default().with_sse_keep_alive(None),
            metadata_documents_http: None,
        }
    }
}

/// The demo's rate limits.
pub fn demo_limits() -> Limits {
    Limits::none()
        .per_user(Limit::per_minute(120).ok())
        .per_tool(Limit::per_minute(30).ok())
}

/// A running demo.
#[derive(Debug)]
pub struct Demo {
    /// The protected MCP endpoint (the resource URL).
    pub url: String,
    /// The server's address.
    pub addr: SocketAddr,
    /// The authorization server MCP clients sign in through, on the demo's
    /// own origin (development login: any user name).
    pub auth_server: AuthServer,
    /// The development issuer: mints tokens directly, for the `curl`
    /// walkthrough and the tests (not advertised to clients).
    pub issuer: Arc<DevIssuer>,
    /// Where the issuer listens.
    pub issuer_addr: SocketAddr,
    _vault_dir: tempfile::TempDir,
}

impl Demo {
    /// A token for `sub` with `scopes`, valid for ten minutes, for this server.
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.issuer.access_token(sub, scopes)
    }
}

/// The resource configuration the demo uses for `url`, with tokens from
/// `issuer`.
pub fn resource_config(url: &str, issuer: &str) -> Result<ResourceConfig, BoxError> {
    Ok(demo_resource(ResourceConfig::builder(url, issuer)).build()?)
}

/// The demo's scopes and name on a resource configuration.
fn demo_resource(config: ResourceConfigBuilder) -> ResourceConfigBuilder {
    config
        .require_scopes([BASE_SCOPE])
        .tool_scopes("read_note", [READ_SCOPE])
        .tool_scopes("save_note", [WRITE_SCOPE])
        .resource_name("mcp-auth demo")
}

/// Starts the issuer and the protected MCP server on loopback; both run until
/// the runtime shuts down.
pub async fn start(options: DemoOptions) -> Result<Demo, BoxError> {
    let listener =
        tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, options.port)).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/mcp");
    let (issuer, issuer_addr) = DevIssuer::serve_loopback(url.clone()).await?;

    // The authorization server clients sign in through, on this origin.
    let origin = format!("http://{addr}");
    let mut auth_server = AuthServer::builder(&origin, &url)
        .scopes([BASE_SCOPE, READ_SCOPE, WRITE_SCOPE, "offline_access"])
        .default_scopes([BASE_SCOPE, READ_SCOPE])
        .login(DangerousDevLogin)
        .dynamic_registration(true)
        .dangerous_allow_loopback_metadata_documents();
    if let Some(http) = options.metadata_documents_http.clone() {
        auth_server = auth_server.http(http);
    }
    let auth_server = auth_server.build()?;
    // Issuer and resource come from the authorization server; tokens it
    // signed are checked against its key ring in this process; tokens from
    // the development mint against the mint's JWKS, found by discovery.
    let config = demo_resource(auth_server.resource_config()).build()?;
    let signed_in = auth_server.token_verifier(&config);
    let minted =
        Validator::from_issuer(Policy::new(issuer.issuer(), &url).require_access_token_type())
            .await?;
    let verifier = ByIssuer::new()
        .issuer(&origin, Arc::new(CachedVerifier::new(signed_in)))
        .issuer(issuer.issuer(), Arc::new(CachedVerifier::new(minted)));

    let vault_dir = tempfile::tempdir()?;
    let vault = Vault::builder(StorageMode::EncryptedFile(vault_dir.path().join("vault")))
        .key(KeyMaterial::generate()?)
        .open()?;
    let alice = UserId::new(DEMO_USER)?;
    vault.put_bytes(
        &alice,
        NOTE,
        b"Hello Alice: this note is encrypted at rest, and only you can read it.",
    )?;

    let sessions: SessionManager<McpSessionData> =
        SessionManager::new(MemorySessionStore::new(), SessionConfig::default())?;
    let limiter = MemoryRateLimiter::new(options.limits)?;
    let mcp = mcp_service(DemoTools::new(Some(Arc::new(vault))), options.rmcp);
    // The real tool names, from rmcp's router: calls of other names share
    // the limiter's overflow bucket instead of taking real tools' places.
    let tool_names: Vec<String> = DemoTools::tool_router()
        .list_all()
        .iter()
        .map(|tool| tool.name.to_string())
        .collect();
    let app: Router = McpAuth::new(config, Arc::new(verifier))?
        .tools(tool_names)
        .rate_limiter(Arc::new(limiter))
        .sessions(sessions)
        .into_router(mcp)?
        .merge(auth_server.router());
    tokio::spawn(async move {
        let _ = mcp_auth_axum::serve(listener, app).await;
    });
    Ok(Demo {
        url,
        addr,
        auth_server,
        issuer,
        issuer_addr,
        _vault_dir: vault_dir,
    })
}
