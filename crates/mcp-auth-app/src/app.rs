//! Wiring: the vault, the stores, the authorization server with its
//! upstream login, and the protected MCP endpoint.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use http::Request;
use mcp_auth_axum::{McpAuth, McpSessions, ResourceConfig};
use mcp_auth_core::ConfigProblem;
#[cfg(feature = "redis")]
use mcp_auth_core::RedisConfig;
use mcp_auth_oauth_server::{AuthServer, AuthStore, UpstreamLogin, UpstreamTokenSource};
use mcp_auth_pkce::{MemoryPendingStore, OAuthClient, PendingStore, Provider, RedirectUri};
use mcp_auth_ratelimit::{Limits, MemoryRateLimiter, RateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionStore};
use mcp_auth_token::CachedVerifier;
use mcp_auth_vault::{StorageMode, Vault, VaultError};
use secrecy::SecretString;
use tower::Service;

use crate::AppConfig;

/// Why the server could not be assembled. Each names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(#[from] ConfigProblem),
    /// The vault cannot be opened (a wrong key is refused and nothing is
    /// changed).
    #[error("the vault cannot be opened: {0}")]
    Vault(#[from] VaultError),
    /// The authorization server refused its configuration.
    #[error("the authorization server: {0}")]
    Server(#[from] mcp_auth_oauth_server::ServerError),
    /// The provider's OAuth client refused its configuration.
    #[error("the provider client: {0}")]
    OAuth(#[from] mcp_auth_pkce::OAuthError),
    /// The resource server refused its configuration.
    #[error("the MCP endpoint: {0}")]
    Resource(#[from] mcp_auth_axum::ConfigError),
    /// A store (Redis) could not be set up.
    #[error("a store: {0}")]
    Store(String),
    /// Binding or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The provider: where it is and this server's registration with it.
#[non_exhaustive]
pub struct ProviderSetup {
    /// Its endpoints.
    pub provider: Provider,
    /// The client id from the provider's console.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Option<SecretString>,
    /// The one HTTP client for everything sent to the provider (its token
    /// and revocation endpoints, its keys, the who-am-I call, its API):
    /// one connection pool. Default: [`provider_http`](crate::provider_http).
    pub http: Option<Arc<dyn mcp_auth_http::HttpClient>>,
}

impl std::fmt::Debug for ProviderSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSetup")
            .field("provider", &self.provider.name)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ProviderSetup {
    /// Everything sent to the provider goes through `http`.
    pub fn http(mut self, http: Arc<dyn mcp_auth_http::HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// A registration of `client_id` (with `client_secret`) at `provider`.
    pub fn new(
        provider: Provider,
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
    ) -> Self {
        Self {
            provider,
            client_id: client_id.into(),
            client_secret,
            http: None,
        }
    }
}

/// The MCP side: our scopes, which tools need which, the limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ToolSetup {
    /// Every scope clients may ask for.
    pub scopes: Vec<String>,
    /// Asked for when a client names none (the read-only set).
    pub default_scopes: Vec<String>,
    /// Needed for every MCP request.
    pub required_scopes: Vec<String>,
    /// Extra scopes per tool (a client without them gets 403
    /// `insufficient_scope`, then signs in again for more).
    pub tool_scopes: Vec<(String, Vec<String>)>,
    /// Each scope's description in plain words, for the consent page.
    pub scope_descriptions: Vec<(String, String)>,
    /// The tools' names (rate-limit keys).
    pub tool_names: Vec<String>,
    /// The rate limits.
    pub limits: Limits,
    /// A name for the resource's metadata.
    pub resource_name: String,
}

impl ToolSetup {
    /// Scopes `scopes`, of which `default_scopes` are asked for by default
    /// and `required_scopes` needed for any request, for `tool_names`.
    pub fn new<S: Into<String>>(
        scopes: impl IntoIterator<Item = S>,
        default_scopes: impl IntoIterator<Item = S>,
        required_scopes: impl IntoIterator<Item = S>,
        tool_names: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
            default_scopes: default_scopes.into_iter().map(Into::into).collect(),
            required_scopes: required_scopes.into_iter().map(Into::into).collect(),
            tool_scopes: Vec::new(),
            scope_descriptions: Vec::new(),
            tool_names: tool_names.into_iter().map(Into::into).collect(),
            limits: Limits::default(),
            resource_name: "MCP server".into(),
        }
    }

    /// `tool` needs `scopes` too.
    pub fn tool_scopes<S: Into<String>>(
        mut self,
        tool: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.tool_scopes
            .push((tool.into(), scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// The rate limits (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The resource's name in its metadata.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = name.into();
        self
    }
}

struct Stores {
    auth: Arc<dyn AuthStore>,
    sessions: Arc<dyn SessionStore>,
    /// Browser logins, apart from MCP sessions: each has its own per-user
    /// cap, so a person's MCP sessions never evict their browser login.
    logins: Arc<dyn SessionStore>,
    pending: Arc<dyn PendingStore>,
    limiter: Arc<dyn RateLimiter>,
    /// The authorization server's per-address limits; `None`: its own, in
    /// this process.
    auth_limiter: Option<Arc<dyn RateLimiter>>,
    vault: Vault,
}

#[cfg(feature = "redis")]
async fn stores(
    config: &AppConfig,
    key: mcp_auth_vault::KeyMaterial,
    limits: Limits,
) -> Result<Stores, AppError> {
    let Some(url) = &config.redis_url else {
        return memory_stores(config, key, limits);
    };
    let store = |e: &dyn std::fmt::Display| AppError::Store(format!("Redis: {e}"));
    // One Redis, one configuration; each store keeps its keys under its
    // own prefix.
    let redis = RedisConfig::new(url.as_str(), "mcp-auth:").tls(redis_tls(&config.redis_tls)?);
    // One connection first, so a wrong URL, password or CA is an error at
    // start that names the setting, not a store failing later.
    redis
        .connect()
        .await
        .map_err(|e| redis_setting_problem(&e))?;
    use mcp_auth_oauth_server::RedisAuthStore;
    use mcp_auth_pkce::RedisPendingStore;
    use mcp_auth_ratelimit::{RedisLimiterOptions, RedisRateLimiter};
    use mcp_auth_session::RedisSessionStore;
    use mcp_auth_vault::store::RedisStore;
    let vault = Vault::builder_with_store(RedisStore::open(
        redis.with_prefix(RedisStore::DEFAULT_PREFIX),
    )?)
    .key(key)
    .open()?;
    // No user id at rest: every store names users by pseudonym and seals
    // their ids, under keys derived from the vault's (the same in every
    // process that opens the vault).
    let pseudonyms = vault.user_pseudonyms().ok_or_else(|| {
        AppError::Store("the vault gives no pseudonym key (a plaintext vault)".to_owned())
    })?;
    let limiter = |prefix: &str, limits: Limits| {
        let mut options = RedisLimiterOptions::default();
        options.user_pseudonyms = Some(pseudonyms.derive("rate limits"));
        RedisRateLimiter::connect(
            redis
                .with_prefix(prefix)
                .response_timeout(RedisRateLimiter::RESPONSE_TIMEOUT),
            limits,
            options,
        )
    };
    Ok(Stores {
        auth: Arc::new(
            RedisAuthStore::connect(redis.with_prefix(RedisAuthStore::DEFAULT_PREFIX))
                .await
                .map_err(|e| store(&e))?
                .wait_for_replicas(
                    config.redis_wait_replicas,
                    std::time::Duration::from_millis(500),
                )
                .user_pseudonyms(pseudonyms.derive("oauth-server")),
        ),
        sessions: Arc::new(
            RedisSessionStore::connect(redis.with_prefix(RedisSessionStore::DEFAULT_PREFIX))
                .await
                .map_err(|e| store(&e))?
                .user_pseudonyms(pseudonyms.derive("sessions")),
        ),
        logins: Arc::new(
            RedisSessionStore::connect(redis.with_prefix("mcp-auth:login:"))
                .await
                .map_err(|e| store(&e))?
                .user_pseudonyms(pseudonyms.derive("logins")),
        ),
        pending: Arc::new(
            RedisPendingStore::connect(redis.with_prefix(RedisPendingStore::DEFAULT_PREFIX))
                .await
                .map_err(|e| store(&e))?,
        ),
        limiter: Arc::new(
            limiter(RedisRateLimiter::DEFAULT_PREFIX, limits)
                .await
                .map_err(|e| store(&e))?,
        ),
        // The authorization server's per-address budgets, shared by the
        // fleet, under their own prefix (its endpoint names are not tools).
        auth_limiter: Some(Arc::new(
            limiter(
                "mcp-auth:as-rl:",
                mcp_auth_oauth_server::default_rate_limits(),
            )
            .await
            .map_err(|e| store(&e))?,
        )),
        vault,
    })
}

#[cfg(feature = "redis")]
fn redis_tls(
    files: &crate::RedisTlsFiles,
) -> Result<mcp_auth_core::redis_conn::RedisTls, AppError> {
    mcp_auth_core::redis_conn::RedisTls::from_files(
        files.ca_file.as_deref().map(|p| ("REDIS_CA_FILE", p)),
        files
            .client_cert
            .as_deref()
            .map(|p| ("REDIS_CLIENT_CERT", p)),
        files.client_key.as_deref().map(|p| ("REDIS_CLIENT_KEY", p)),
    )
    .map_err(|mut problems| AppError::Config(problems.0.remove(0)))
}

/// A failed first connection to Redis, as the setting to fix.
#[cfg(feature = "redis")]
fn redis_setting_problem(e: &mcp_auth_core::redis_conn::RedisSetupError) -> AppError {
    use mcp_auth_core::redis_conn::RedisSetupError as E;
    let setting = match e {
        E::Untrusted | E::BadTlsFile("CA file") => "REDIS_CA_FILE",
        E::BadTlsFile("client key") => "REDIS_CLIENT_KEY",
        E::BadTlsFile(_) => "REDIS_CLIENT_CERT",
        _ => "REDIS_URL",
    };
    let reason = match e {
        E::Unavailable(what) => format!("Redis does not answer: {what}"),
        other => other.to_string(),
    };
    AppError::Config(ConfigProblem::new(setting, reason))
}

#[cfg(not(feature = "redis"))]
async fn stores(
    config: &AppConfig,
    key: mcp_auth_vault::KeyMaterial,
    limits: Limits,
) -> Result<Stores, AppError> {
    if config.redis_url.is_some() {
        return Err(AppError::Config(ConfigProblem::new(
            "REDIS_URL",
            "set, but this build has no Redis support (build with the `redis` feature)",
        )));
    }
    memory_stores(config, key, limits)
}

fn memory_stores(
    config: &AppConfig,
    key: mcp_auth_vault::KeyMaterial,
    limits: Limits,
) -> Result<Stores, AppError> {
    let vault = Vault::builder(StorageMode::EncryptedFile(config.vault_dir.clone()))
        .key(key)
        .open()?;
    let mut auth = mcp_auth_oauth_server::EmbeddedAuthStore::open(&config.data_dir)
        .map_err(|e| ConfigProblem::new("MCP_DATA_DIR", e.to_string()))?;
    // No user id at rest in the data file either (the vault's names key).
    if let Some(pseudonyms) = vault.user_pseudonyms() {
        auth = auth.user_pseudonyms(pseudonyms.derive("oauth-server"));
    }
    Ok(Stores {
        auth: Arc::new(auth),
        sessions: Arc::new(MemorySessionStore::new()),
        logins: Arc::new(MemorySessionStore::new()),
        pending: Arc::new(MemoryPendingStore::default()),
        limiter: Arc::new(
            MemoryRateLimiter::new(limits)
                .map_err(|e| ConfigProblem::new("limits", e.to_string()))?,
        ),
        auth_limiter: None,
        vault,
    })
}

/// The assembled server, waiting for its MCP service ([`App::serve`]).
pub struct App {
    listener: tokio::net::TcpListener,
    auth_server: AuthServer,
    upstream: UpstreamTokenSource,
    resource: ResourceConfig,
    verifier: Arc<dyn mcp_auth_token::TokenVerifier>,
    limiter: Arc<dyn RateLimiter>,
    sessions: McpSessions,
    tool_names: Vec<String>,
    redis: bool,
    client_address: mcp_auth_axum::ClientAddressPolicy,
    admin_listen: Option<std::net::SocketAddr>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("issuer", &self.auth_server.issuer())
            .field("resource", &self.resource.resource())
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Assembles everything but the MCP service: the vault (needs
    /// `config.vault_key`), the stores (memory, or Redis when
    /// `config.redis_url` is set), the provider client (redirect URI
    /// `{public_url}/login`), the upstream login that `login` configures,
    /// the authorization server (issuer `{public_url}`, signing keys kept in
    /// the vault), and the resource server for `{public_url}/mcp`.
    pub async fn build(
        mut config: AppConfig,
        listener: tokio::net::TcpListener,
        provider: ProviderSetup,
        login: impl FnOnce(
            OAuthClient,
            Arc<Vault>,
            Arc<dyn mcp_auth_http::HttpClient>,
        ) -> Result<UpstreamLogin, mcp_auth_oauth_server::ServerError>,
        tools: ToolSetup,
    ) -> Result<Self, AppError> {
        let key = config
            .vault_key
            .take()
            .ok_or_else(|| ConfigProblem::new("MCP_VAULT_KEY", "not set"))?;
        let redis = config.redis_url.is_some();
        let stores = stores(
            &config,
            key,
            tools.limits.clone().known_tools(tools.tool_names.clone()),
        )
        .await?;
        let vault = Arc::new(stores.vault);
        let http = match provider.http {
            Some(http) => http,
            None => crate::provider_http()
                .map_err(|e| ConfigProblem::new("HTTP client", e.to_string()))?,
        };
        let mut client = OAuthClient::builder(
            provider.provider,
            provider.client_id,
            RedirectUri::new(config.redirect_uri())?,
        )
        .pending_store(stores.pending)
        .http(http.clone());
        if let Some(secret) = provider.client_secret {
            client = client.client_secret(secret);
        }
        let upstream_login = login(client.build()?, vault.clone(), http)?;
        let resource = config.resource();
        let mut auth_server = AuthServer::builder(&config.public_url, &resource);
        if let Some(limiter) = stores.auth_limiter {
            auth_server = auth_server.rate_limiter(limiter);
        }
        for (scope, text) in &tools.scope_descriptions {
            auth_server = auth_server.describe_scope(scope.clone(), text.clone());
        }
        let auth_server = auth_server
            .scopes(tools.scopes.clone())
            .default_scopes(tools.default_scopes.clone())
            .dynamic_registration(true)
            .metadata_documents(true)
            .upstream(upstream_login)
            .keys_in_vault(vault)
            .key_reload_every(config.key_reload)
            .store(stores.auth)
            .login_sessions(stores.logins.clone())
            .build()?;
        let upstream = auth_server
            .upstream_tokens()
            .ok_or_else(|| ConfigProblem::new("login", "the upstream login is missing"))?;
        // The issuer and the resource are the authorization server's; its
        // tokens are checked against its key ring in this process.
        // Least privilege at the first sign-in: the 401 and the metadata
        // name the default scopes; the others are asked for on step-up.
        let mut resource_config = auth_server
            .resource_config()
            .require_scopes(tools.required_scopes.clone())
            .challenge_scopes(tools.default_scopes.clone())
            .scopes_supported(tools.default_scopes.clone())
            .resource_name(tools.resource_name.clone());
        for (tool, scopes) in &tools.tool_scopes {
            resource_config = resource_config.tool_scopes(tool.clone(), scopes.clone());
        }
        let resource_config = resource_config.build()?;
        let validator = auth_server.token_verifier(&resource_config);
        let sessions = McpSessions::with_shared_store(stores.sessions, SessionConfig::default())
            .map_err(|e| ConfigProblem::new("sessions", e.to_string()))?;
        Ok(Self {
            listener,
            auth_server,
            upstream,
            resource: resource_config,
            verifier: Arc::new(CachedVerifier::new(validator).ttl(config.token_cache)),
            limiter: stores.limiter,
            sessions,
            tool_names: tools.tool_names,
            redis,
            client_address: config.client_address.clone(),
            admin_listen: config.admin_listen,
        })
    }

    /// The MCP sessions (operator actions).
    pub fn mcp_sessions(&self) -> &McpSessions {
        &self.sessions
    }

    /// The authorization server (operator actions: grants, revocation).
    pub fn auth_server(&self) -> &AuthServer {
        &self.auth_server
    }

    /// Upstream tokens, for operator tools and tests.
    pub fn upstream(&self) -> &UpstreamTokenSource {
        &self.upstream
    }

    /// The host names rmcp must accept (`StreamableHttpServerConfig::with_allowed_hosts`).
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.resource.allowed_hosts()
    }

    /// The MCP endpoint's URL.
    pub fn resource_url(&self) -> String {
        self.resource.resource().to_owned()
    }

    /// The address served.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The router: `mcp` behind authentication, rate limits and session
    /// binding, with each authenticated request's [`UpstreamToken`](crate::UpstreamToken),
    /// and the authorization server's routes.
    pub fn router<S>(&self, mcp: S) -> Result<Router, AppError>
    where
        S: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let mcp = tower::Layer::layer(&self.upstream.layer(), mcp);
        let mut router = McpAuth::new(self.resource.clone(), self.verifier.clone())?
            .tools(self.tool_names.clone())
            .rate_limiter(self.limiter.clone())
            .sessions(self.sessions.clone())
            .into_router(mcp)?
            .merge(self.auth_server.router());
        if self.admin_listen.is_some() {
            // Requests by route and outcome, for the admin listener's /metrics.
            router = router.layer(axum::middleware::from_fn(
                mcp_auth_axum::metrics::count_requests,
            ));
        }
        // One decision of the client's address for everything above.
        Ok(router.layer(mcp_auth_axum::ClientAddressLayer::new(
            self.client_address.clone(),
        )))
    }

    /// Whether this process is one of a fleet sharing Redis (`REDIS_URL`):
    /// then it serves MCP statelessly (see docs/deploy.md).
    pub fn is_fleet(&self) -> bool {
        self.redis
    }

    /// The admin listener's address (`MCP_ADMIN_LISTEN`), when it is on.
    pub fn admin_listen(&self) -> Option<std::net::SocketAddr> {
        self.admin_listen
    }

    /// The listener, for serving [`router`](Self::router)'s answer with
    /// [`serve`](crate::serve) in a task of one's own.
    pub fn into_listener(self) -> tokio::net::TcpListener {
        self.listener
    }

    /// Serves `mcp` until the process ends.
    pub async fn serve<S>(self, mcp: S) -> Result<(), AppError>
    where
        S: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let router = self.router(mcp)?;
        if let Some(addr) = self.admin_listen {
            crate::admin::spawn(addr, self.auth_server.clone(), mcp_auth_axum::Drain::new())?;
        }
        mcp_auth_axum::serve(self.listener, router).await?;
        Ok(())
    }
}
