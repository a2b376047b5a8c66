//! The server: configuration, the router and its endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::routing::{get, post};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use mcp_auth_core::{Clock, SystemClock, UserId};
use mcp_auth_http::HttpClient;
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter};
use mcp_auth_session::{MemorySessionStore, NewSession, SessionConfig, SessionManager};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_http::cors::{Any, CorsLayer};

use crate::client::{self, MetadataDocuments};
use crate::html::{self, ConsentView};
use crate::keys::KeyRing;
use crate::login::{Login, LoginContext, LoginError};
use crate::store::{
    AuthStore, ClientInfo, ClientOrigin, CodeRecord, Grant, Key, MemoryAuthStore, Pending,
    Redemption, RefreshRecord, Rotation,
};
use crate::upstream::{UpstreamLogin, UpstreamTokens};
use crate::{AUDIT, ServerError, StoreError};

/// Default access-token lifetime: 1 hour.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Authorization codes live at most this long: 60 s.
pub const CODE_TTL: u64 = 60;
/// A pending authorization (login and consent) lives this long: 10 minutes.
pub const PENDING_TTL: u64 = 600;
/// Default absolute lifetime of a grant (its refresh tokens): 30 days.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default time consent is remembered: 30 days.
pub const DEFAULT_CONSENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default grace window for a client retrying a refresh whose answer it
/// lost: 0 s (any second use revokes the grant).
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::ZERO;
/// Default time a registered client lives unused: 90 days.
pub const DEFAULT_REGISTRATION_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Largest form body read.
const MAX_FORM: usize = 16 * 1024;

const BROWSER_COOKIE: &str = "__Host-mcp-auth-browser";
const LOGIN_COOKIE: &str = "__Host-mcp-auth-login";

/// Builds an [`AuthServer`].
#[must_use = "a builder does nothing until it is built"]
pub struct AuthServerBuilder {
    issuer: String,
    resources: Vec<String>,
    scopes: Vec<String>,
    default_scopes: Option<Vec<String>>,
    login: Option<Arc<dyn Login>>,
    clients: Vec<ClientInfo>,
    client_secrets: Vec<(String, String)>,
    registration: bool,
    metadata_documents: bool,
    allow_loopback_documents: bool,
    http: Option<Arc<dyn HttpClient>>,
    private_use: Vec<String>,
    store: Option<Arc<dyn AuthStore>>,
    keys: Option<KeyRing>,
    vault: Option<Arc<mcp_auth_vault::Vault>>,
    access_ttl: Duration,
    grant_ttl: Duration,
    consent_ttl: Duration,
    refresh_grace: Duration,
    registration_ttl: Duration,
    clock: Arc<dyn Clock>,
    force_dev_login: bool,
    limits: Option<Limits>,
    upstream: Option<UpstreamLogin>,
    login_sessions: Option<Arc<dyn mcp_auth_session::SessionStore>>,
}

impl std::fmt::Debug for AuthServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServerBuilder")
            .field("issuer", &self.issuer)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

/// The authorization server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthServer {
    inner: Arc<Inner>,
    upstream: Option<UpstreamTokens>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    prefix: String,
    resources: Vec<String>,
    scopes: Vec<String>,
    default_scopes: Vec<String>,
    login: Arc<dyn Login>,
    clients: HashMap<String, ClientInfo>,
    registration: bool,
    documents: Option<MetadataDocuments>,
    private_use: Vec<String>,
    store: Arc<dyn AuthStore>,
    keys: std::sync::RwLock<KeyRing>,
    vault: Option<Arc<mcp_auth_vault::Vault>>,
    access_ttl: u64,
    grant_ttl: u64,
    consent_ttl: u64,
    refresh_grace: u64,
    registration_ttl: u64,
    clock: Arc<dyn Clock>,
    sessions: SessionManager,
    limiter: MemoryRateLimiter,
}

impl AuthServer {
    /// A server whose issuer is `issuer` (the MCP server's origin, e.g.
    /// `https://mcp.example.com`: clients build `/authorize` and friends on
    /// it) issuing tokens for `resource` (the MCP endpoint's URL).
    pub fn builder(issuer: impl Into<String>, resource: impl Into<String>) -> AuthServerBuilder {
        AuthServerBuilder {
            issuer: issuer.into(),
            resources: vec![resource.into()],
            scopes: Vec::new(),
            default_scopes: None,
            login: None,
            clients: Vec::new(),
            client_secrets: Vec::new(),
            registration: false,
            metadata_documents: true,
            allow_loopback_documents: false,
            http: None,
            private_use: Vec::new(),
            store: None,
            keys: None,
            vault: None,
            access_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            grant_ttl: DEFAULT_GRANT_TTL,
            consent_ttl: DEFAULT_CONSENT_TTL,
            refresh_grace: DEFAULT_REFRESH_GRACE,
            registration_ttl: DEFAULT_REGISTRATION_TTL,
            clock: Arc::new(SystemClock),
            force_dev_login: false,
            upstream: None,
            login_sessions: None,
            limits: None,
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The JWKS document the server publishes.
    pub fn jwks(&self) -> Value {
        self.inner.keys_read().jwks()
    }

    /// Rotates the signing keys: the already-published next key starts
    /// signing, a new next key is published, and the old key stays
    /// published for one access-token lifetime. Stored in the vault when
    /// one is configured (before the new key signs).
    pub fn rotate_keys(&self) -> Result<(), ServerError> {
        let now = self.inner.now();
        let mut ring = self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rotated = KeyRing::from_bytes(&ring.to_bytes())?;
        rotated.rotate(now, now + self.inner.access_ttl)?;
        if let Some(vault) = &self.inner.vault {
            vault
                .put_bytes(&vault_user(), VAULT_PROVIDER, &rotated.to_bytes())
                .map_err(|_| ServerError::Key("the vault cannot be written"))?;
        }
        *ring = rotated;
        tracing::info!(target: AUDIT, event = "signing_keys_rotated", kid = ring.current().kid());
        Ok(())
    }

    /// The routes: the metadata documents, `/authorize`, `/login`,
    /// `/consent`, `/token`, `/revoke`, `/register` (when on) and
    /// `/jwks.json`, under the issuer's path. No fallback: merge it with
    /// the MCP server's router. `/authorize` and the pages have no CORS;
    /// the endpoints clients call from a browser (`/token`, `/register`,
    /// `/revoke`, metadata, JWKS) allow any origin, without credentials.
    pub fn router(&self) -> Router {
        let p = &self.inner.prefix;
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("mcp-protocol-version"),
            ]);
        let mut open = Router::new()
            .route(&format!("{p}/token"), post(token))
            .route(&format!("{p}/revoke"), post(revoke))
            .route(&format!("{p}/jwks.json"), get(jwks));
        if self.inner.registration {
            open = open.route(&format!("{p}/register"), post(register));
        }
        let mut metadata_paths = vec![
            format!("/.well-known/oauth-authorization-server{p}"),
            format!("/.well-known/openid-configuration{p}"),
        ];
        if !p.is_empty() {
            metadata_paths.push(format!("{p}/.well-known/openid-configuration"));
            metadata_paths.push(format!("{p}/.well-known/oauth-authorization-server"));
        }
        for path in metadata_paths {
            open = open.route(&path, get(metadata));
        }
        let pages = Router::new()
            .route(&format!("{p}/apps"), get(apps))
            .route(&format!("{p}/apps/revoke"), post(apps_revoke))
            .route(&format!("{p}/authorize"), get(authorize))
            .route(&format!("{p}/login"), post(login_post).get(login_get))
            .route(&format!("{p}/consent"), post(consent));
        open.layer(cors).merge(pages).with_state(self.inner.clone())
    }

    /// Upstream tokens for tools, when the login is an
    /// [`UpstreamLogin`] ([`AuthServerBuilder::upstream`]).
    pub fn upstream_tokens(&self) -> Option<UpstreamTokens> {
        self.upstream.clone()
    }

    /// A user's live grants (operator view).
    pub async fn grants(&self, user: &UserId) -> Result<Vec<Grant>, StoreError> {
        let now = self.inner.clock.unix_seconds();
        self.inner.store.grants_of(user, now).await
    }

    /// Revokes one grant (its refresh tokens stop working at once; access
    /// tokens already issued live until their `exp`).
    pub async fn revoke_grant(&self, id: &str) -> Result<bool, StoreError> {
        let grant = self.inner.store.grant(id, self.inner.now()).await?;
        let revoked = self.inner.store.revoke_grant(id).await?;
        if revoked {
            tracing::info!(target: AUDIT, event = "grant_revoked", grant = short(id), by = "operator");
        }
        if let Some(grant) = grant {
            self.inner.after_revoke(&grant.subject).await;
        }
        Ok(revoked)
    }

    /// Revokes every grant of `user`. How many.
    pub async fn revoke_user(&self, user: &UserId) -> Result<usize, StoreError> {
        let mut n = 0;
        for grant in self.grants(user).await? {
            n += usize::from(self.inner.store.revoke_grant(&grant.id).await?);
        }
        tracing::info!(target: AUDIT, event = "user_grants_revoked", subject = user.as_str(), count = n);
        self.inner.after_revoke(user).await;
        Ok(n)
    }

    /// Revokes every grant of every user (emergency). How many.
    pub async fn revoke_all(&self) -> Result<usize, StoreError> {
        let n = self.inner.store.revoke_all().await?;
        tracing::warn!(target: AUDIT, event = "all_grants_revoked", count = n);
        self.inner.login.forget_all().await;
        Ok(n)
    }
}

impl AuthServerBuilder {
    /// Another resource tokens may be issued for (RFC 8707 `resource`).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// The scopes clients may ask for (advertised in `scopes_supported`).
    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes granted when a request names none (default: every supported
    /// scope but `offline_access`).
    pub fn default_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.default_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sign-in through an upstream provider (Google, Spotify, any OIDC
    /// issuer), whose tokens tools then get from
    /// [`AuthServer::upstream_tokens`]. Its OAuth client's redirect URI must
    /// be `{issuer}/login`. Replaces [`login`](Self::login).
    pub fn upstream(mut self, login: UpstreamLogin) -> Self {
        self.login = Some(Arc::new(login.clone()));
        self.upstream = Some(login);
        self
    }

    /// Where the browser sign-in sessions live (default: this process's
    /// memory). Give a shared store (Redis) to a fleet, so a person signed
    /// in on one process is signed in on all.
    pub fn login_sessions(mut self, store: Arc<dyn mcp_auth_session::SessionStore>) -> Self {
        self.login_sessions = Some(store);
        self
    }

    /// The login step.
    pub fn login(mut self, login: impl Login + 'static) -> Self {
        self.upstream = None;
        self.login = Some(Arc::new(login));
        self
    }

    /// A configured public client (PKCE, no secret).
    pub fn public_client<S: Into<String>>(
        mut self,
        client_id: impl Into<String>,
        name: impl Into<String>,
        redirect_uris: impl IntoIterator<Item = S>,
    ) -> Self {
        let client_id = client_id.into();
        self.clients.push(ClientInfo {
            name: client::display_name(Some(&name.into()), &client_id),
            client_id,
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
            secret_hash: None,
            refresh: true,
            origin: ClientOrigin::Configured,
            last_used: 0,
        });
        self
    }

    /// A configured confidential client (`client_secret_basic` or
    /// `client_secret_post`, and PKCE). The secret is kept only as a hash.
    pub fn confidential_client<S: Into<String>>(
        mut self,
        client_id: impl Into<String>,
        name: impl Into<String>,
        redirect_uris: impl IntoIterator<Item = S>,
        secret: impl Into<String>,
    ) -> Self {
        let client_id = client_id.into();
        self.client_secrets.push((client_id.clone(), secret.into()));
        self = self.public_client(client_id, name, redirect_uris);
        self
    }

    /// Turns RFC 7591 dynamic client registration on (off by default).
    pub fn dynamic_registration(mut self, on: bool) -> Self {
        self.registration = on;
        self
    }

    /// Whether `client_id`s that are https URLs are fetched as client ID
    /// metadata documents (on by default).
    pub fn metadata_documents(mut self, on: bool) -> Self {
        self.metadata_documents = on;
        self
    }

    /// Lets client metadata documents be fetched from loopback (plain
    /// `http` included): for tests and the demo only. It opens the
    /// server's own ports to whoever names a URL.
    pub fn dangerous_allow_loopback_metadata_documents(mut self) -> Self {
        self.allow_loopback_documents = true;
        self
    }

    /// The HTTP client for metadata documents (default: the workspace's
    /// `OutboundClient` with the public-address guard, 5 s, 5 KiB).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Private-use redirect URIs (e.g. an editor's `cursor://…`) accepted
    /// exactly as listed.
    pub fn private_use_redirects<S: Into<String>>(
        mut self,
        uris: impl IntoIterator<Item = S>,
    ) -> Self {
        self.private_use = uris.into_iter().map(Into::into).collect();
        self
    }

    /// The store (default: [`MemoryAuthStore`]).
    pub fn store(mut self, store: Arc<dyn AuthStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The signing keys (default: one generated at start, so tokens die
    /// with the process).
    pub fn keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Keeps the signing keys in `vault` (encrypted at rest, under the
    /// reserved user `_mcp-auth-oauth-server`): loaded at build, generated
    /// and stored there the first time, stored again on every rotation, so
    /// tokens survive a restart and every process of a fleet signs with
    /// the same keys.
    pub fn keys_in_vault(mut self, vault: Arc<mcp_auth_vault::Vault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Access-token lifetime (default 1 h).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Absolute grant lifetime (default 30 days).
    pub fn grant_ttl(mut self, ttl: Duration) -> Self {
        self.grant_ttl = ttl;
        self
    }

    /// How long consent is remembered (default 30 days; zero: always ask).
    pub fn consent_ttl(mut self, ttl: Duration) -> Self {
        self.consent_ttl = ttl;
        self
    }

    /// Grace window for a refresh retried after a lost answer (default 0).
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// How long a dynamically registered client lives unused (default 90
    /// days); each token it obtains renews it.
    pub fn registration_ttl(mut self, ttl: Duration) -> Self {
        self.registration_ttl = ttl;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Per-address rate limits on the endpoints (the "user" tier is the
    /// client's address, the "tool" tier the endpoint: `authorize`,
    /// `login`, `consent`, `token`, `revoke`, `register`). Default: 300
    /// requests a minute per address, 120 a minute per endpoint, 10
    /// registrations a minute.
    pub fn rate_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Allows a development login on an issuer that is not loopback.
    pub fn dangerous_allow_dev_login_on_public_issuer(mut self) -> Self {
        self.force_dev_login = true;
        self
    }

    /// The server, or why the settings cannot work.
    pub fn build(self) -> Result<AuthServer, ServerError> {
        let config = |setting, reason| ServerError::Config { setting, reason };
        let issuer = mcp_auth_http::check_configured_url(&self.issuer).map_err(|_| {
            config(
                "issuer",
                "must be https (http only on loopback), no fragment",
            )
        })?;
        if issuer.query().is_some() {
            return Err(config("issuer", "must not have a query"));
        }
        let prefix = issuer.path().trim_end_matches('/').to_owned();
        let issuer_text = self.issuer.trim_end_matches('/').to_owned();
        for resource in &self.resources {
            mcp_auth_http::check_configured_url(resource)
                .map_err(|_| config("resource", "must be https (http only on loopback)"))?;
        }
        let login = self
            .login
            .ok_or(config("login", "a login step is required"))?;
        if let Some(upstream) = &self.upstream
            && upstream.redirect_uri() != format!("{issuer_text}/login")
        {
            return Err(ServerError::Upstream(format!(
                "the provider client's redirect URI {:?} must be {issuer_text}/login",
                upstream.redirect_uri()
            )));
        }
        let loopback = issuer
            .host_str()
            .is_some_and(mcp_auth_core::is_loopback_host);
        if login.is_development() && !loopback && !self.force_dev_login {
            return Err(config(
                "login",
                "the development login takes any name without a password; refused on a \
                 non-loopback issuer",
            ));
        }
        let mut clients = HashMap::new();
        for mut client in self.clients {
            let (kept, refused) =
                client::filter_redirects(&client.redirect_uris, &self.private_use);
            if !refused.is_empty() || kept.is_empty() {
                return Err(config(
                    "client",
                    "a configured redirect URI is not acceptable",
                ));
            }
            client.redirect_uris = kept;
            if let Some((_, secret)) = self
                .client_secrets
                .iter()
                .find(|(id, _)| *id == client.client_id)
            {
                client.secret_hash = Some(Sha256::digest(secret.as_bytes()).into());
            }
            clients.insert(client.client_id.clone(), client);
        }
        let default_scopes = self.default_scopes.unwrap_or_else(|| {
            self.scopes
                .iter()
                .filter(|s| *s != "offline_access")
                .cloned()
                .collect()
        });
        let documents = if self.metadata_documents {
            Some(MetadataDocuments::new(
                self.http,
                self.allow_loopback_documents,
            )?)
        } else {
            None
        };
        let keys = match (self.keys, &self.vault) {
            (Some(keys), _) => keys,
            (None, Some(vault)) => match vault
                .get_bytes(&vault_user(), VAULT_PROVIDER)
                .map_err(|_| ServerError::Key("the vault cannot be read"))?
            {
                Some(bytes) => KeyRing::from_bytes(secrecy::ExposeSecret::expose_secret(&bytes))?,
                None => {
                    let ring = KeyRing::generate()?;
                    vault
                        .put_bytes(&vault_user(), VAULT_PROVIDER, &ring.to_bytes())
                        .map_err(|_| ServerError::Key("the vault cannot be written"))?;
                    ring
                }
            },
            (None, None) => KeyRing::generate()?,
        };
        let limits = match self.limits {
            Some(limits) => limits,
            None => default_limits().map_err(|_| config("rate_limits", "invalid default"))?,
        }
        .known_tools(ENDPOINTS);
        let limiter = MemoryRateLimiter::new(limits)
            .map_err(|_| config("rate_limits", "invalid limits"))?
            .clock(self.clock.clone());
        let session_config = SessionConfig::default();
        let session_store: Arc<dyn mcp_auth_session::SessionStore> = self
            .login_sessions
            .unwrap_or_else(|| Arc::new(MemorySessionStore::new()));
        let sessions = SessionManager::with_shared_store(session_store, session_config)
            .map_err(|_| config("sessions", "invalid session configuration"))?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryAuthStore::default()));
        let upstream = self
            .upstream
            .as_ref()
            .map(|login| UpstreamTokens::new(login, store.clone(), issuer_text.clone()));
        Ok(AuthServer {
            upstream,
            inner: Arc::new(Inner {
                issuer: issuer_text,
                prefix,
                resources: self.resources,
                scopes: self.scopes,
                default_scopes,
                login,
                clients,
                registration: self.registration,
                documents,
                private_use: self.private_use,
                store,
                keys: std::sync::RwLock::new(keys),
                vault: self.vault,
                access_ttl: self.access_ttl.as_secs().max(1),
                grant_ttl: self.grant_ttl.as_secs().max(1),
                consent_ttl: self.consent_ttl.as_secs(),
                refresh_grace: self.refresh_grace.as_secs(),
                registration_ttl: self.registration_ttl.as_secs().max(1),
                clock: self.clock,
                sessions,
                limiter,
            }),
        })
    }
}

// ---------------------------------------------------------------- helpers

const ENDPOINTS: [&str; 6] = [
    "authorize",
    "login",
    "consent",
    "token",
    "revoke",
    "register",
];

fn default_limits() -> Result<Limits, mcp_auth_ratelimit::RateLimitError> {
    Ok(Limits::none()
        .per_user(Some(Limit::per_minute(300)?))
        .per_tool(Some(Limit::per_minute(120)?))
        .tool_limit("register", Limit::per_minute(10)?))
}

/// `None` when the client's address may call `endpoint` now, else the 429
/// to answer (a page or JSON, with `Retry-After`).
fn throttle(s: &Inner, request: &Request, endpoint: &str, page: bool) -> Option<Response<Body>> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let key = UserId::new(format!("ip:{peer}")).ok()?;
    let decision = s.limiter.check(&key, Some(endpoint));
    let retry = decision.retry_after_secs()?;
    tracing::warn!(target: AUDIT, event = "rate_limited", endpoint, peer = %peer);
    let mut response = if page {
        html::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a moment and try again.",
        )
    } else {
        json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "temporarily_unavailable", "error_description": "too many requests"}),
            "no-store",
        )
    };
    if let Ok(value) = HeaderValue::from_str(&retry.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

fn random(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| ServerError::Random)?;
    Ok(BASE64URL_NOPAD.encode(&buf))
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Form or query parameters; a repeated parameter is an error (RFC 6749
/// section 3.1).
pub(crate) fn params(raw: &[u8]) -> Result<HashMap<String, String>, &'static str> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if map.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err("a parameter is repeated");
        }
    }
    Ok(map)
}

async fn form(request: Request) -> Result<(HeaderMap, HashMap<String, String>), &'static str> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| "the request body is too large")?;
    Ok((parts.headers, params(&bytes)?))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(response: &mut Response<Body>, name: &str, value: &str, max_age: u64) {
    let cookie =
        format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn browser_hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

fn redirect_to(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn with_params(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

fn unavailable() -> Response<Body> {
    html::error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server cannot complete sign-ins right now. Try again in a moment.",
    )
}

fn scope_list(scope: Option<&String>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.map(String::as_str).unwrap_or("").split(' ') {
        if !s.is_empty() && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

const VAULT_PROVIDER: &str = "signing-keys";

#[allow(clippy::expect_used)] // a constant, valid user id
fn vault_user() -> UserId {
    UserId::new("_mcp-auth-oauth-server").expect("a valid user id")
}

impl Inner {
    fn keys_read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The client `client_id` names: configured, registered, or a metadata
    /// document.
    async fn client(&self, client_id: &str) -> Result<Option<ClientInfo>, Response<Body>> {
        if let Some(client) = self.clients.get(client_id) {
            return Ok(Some(client.clone()));
        }
        if let Some(documents) = &self.documents
            && MetadataDocuments::is_document_url(client_id)
        {
            return Ok(documents
                .resolve(client_id, self.now(), &self.private_use)
                .await
                .map_err(|e| {
                    tracing::info!(target: AUDIT, event = "client_refused", reason = %e);
                })
                .ok());
        }
        match self.store.client(client_id).await {
            // A registration unused for `registration_ttl` is gone.
            Ok(Some(client))
                if client.last_used.saturating_add(self.registration_ttl) <= self.now() =>
            {
                tracing::info!(target: AUDIT, event = "client_expired", client = %client.client_id);
                Ok(None)
            }
            Ok(found) => Ok(found),
            Err(_) => Err(unavailable()),
        }
    }

    /// Marks a registered client used (at most once an hour).
    async fn touch_client(&self, client: &ClientInfo) {
        let now = self.now();
        if client.origin == ClientOrigin::Registered && client.last_used + 3600 <= now {
            let mut touched = client.clone();
            touched.last_used = now;
            let _ = self.store.put_client(touched).await;
        }
    }

    fn consent_key(&self, pending: &Pending, subject: &UserId) -> Key {
        let mut scopes = pending.scopes.clone();
        scopes.sort();
        let text = format!(
            "{}\0{}\0{}\0{}\0{}\0{}",
            subject.as_str(),
            pending.client.client_id,
            pending.redirect_uri,
            pending.resource,
            scopes.join(" "),
            BASE64.encode(&pending.browser),
        );
        Key::of(&text)
    }

    /// After the login: remembered consent issues the code at once (or,
    /// when the login must go back to the provider for more, goes there),
    /// otherwise the consent page.
    async fn continue_signed_in(
        &self,
        pending_id: &str,
        mut pending: Pending,
        subject: &UserId,
    ) -> Response<Body> {
        let covered = match self.login.covers(subject, &pending.scopes).await {
            Ok(covered) => covered,
            Err(_) => return unavailable(),
        };
        let key = self.consent_key(&pending, subject);
        match self.store.consent(key, self.now()).await {
            Ok(true) if covered => {
                let _ = self
                    .store
                    .take_pending(Key::of(pending_id), self.now())
                    .await;
                return self.issue_code(pending, subject.clone(), key).await;
            }
            Ok(true) => {
                pending.consented = true;
                if self
                    .store
                    .put_pending(Key::of(pending_id), pending.clone())
                    .await
                    .is_err()
                {
                    return unavailable();
                }
                return self.start_login(pending_id, &pending).await;
            }
            Ok(false) => {}
            Err(_) => return unavailable(),
        }
        let then = if covered {
            None
        } else {
            self.login.provider_name()
        };
        self.consent_page(pending_id, &pending, Some(subject), then)
    }

    fn consent_page(
        &self,
        pending_id: &str,
        pending: &Pending,
        subject: Option<&UserId>,
        then_sign_in_with: Option<&str>,
    ) -> Response<Body> {
        let source = origin_text(&pending.client.origin);
        let redirect_host = url::Url::parse(&pending.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| pending.redirect_uri.clone());
        html::consent(
            &ConsentView {
                client_name: &pending.client.name,
                client_source: &source,
                redirect_host: &redirect_host,
                resource: &pending.resource,
                scopes: &pending.scopes,
                user: subject.map(UserId::as_str),
                then_sign_in_with,
                pending: pending_id,
                csrf: &pending.csrf,
            },
            &self.endpoint("/consent"),
        )
    }

    /// Hands the browser to the login (a form, or a redirect upstream).
    async fn start_login(&self, pending_id: &str, pending: &Pending) -> Response<Body> {
        let context = LoginContext {
            pending: pending_id.to_owned(),
            csrf: pending.csrf.clone(),
            client_name: pending.client.name.clone(),
            action: self.endpoint("/login"),
            scopes: pending.scopes.clone(),
            subject: pending.subject.clone(),
        };
        match self.login.start(context).await {
            Ok(response) => response,
            Err(_) => unavailable(),
        }
    }

    /// After a revocation: when `subject` has no live grant left, the
    /// login forgets them (an upstream login revokes the provider's
    /// refresh token and deletes its vault entry).
    pub(crate) async fn after_revoke(&self, subject: &UserId) {
        match self.store.grants_of(subject, self.now()).await {
            Ok(left) if left.is_empty() => self.login.forget(subject).await,
            _ => {}
        }
    }

    async fn issue_code(&self, pending: Pending, subject: UserId, consent: Key) -> Response<Body> {
        let now = self.now();
        let (Ok(code), Ok(grant_id)) = (random(32), random(16)) else {
            return unavailable();
        };
        let grant = Grant {
            id: grant_id,
            subject,
            client_id: pending.client.client_id.clone(),
            client_name: pending.client.name.clone(),
            client_origin: pending.client.origin.clone(),
            resource: pending.resource.clone(),
            scopes: pending.scopes.clone(),
            created_at: now,
            last_used: now,
            expires_at: now + self.grant_ttl,
            consent,
        };
        let record = CodeRecord {
            grant,
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            expires_at: now + CODE_TTL,
        };
        if self.store.put_code(Key::of(&code), record).await.is_err() {
            return unavailable();
        }
        let mut pairs = vec![("code", code.as_str()), ("iss", self.issuer.as_str())];
        if let Some(state) = &pending.state {
            pairs.push(("state", state));
        }
        redirect_to(&with_params(&pending.redirect_uri, &pairs))
    }

    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> Response<Body> {
        tracing::info!(target: AUDIT, event = "authorize_refused", error, reason = description);
        let mut pairs = vec![
            ("error", error),
            ("error_description", description),
            ("iss", self.issuer.as_str()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        redirect_to(&with_params(redirect_uri, &pairs))
    }
}

// ------------------------------------------------------------- endpoints

async fn metadata(State(s): State<Arc<Inner>>) -> Response<Body> {
    let mut doc = json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.endpoint("/authorize"),
        "token_endpoint": s.endpoint("/token"),
        "jwks_uri": s.endpoint("/jwks.json"),
        "revocation_endpoint": s.endpoint("/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": s.scopes,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": s.documents.is_some(),
    });
    if s.registration {
        doc["registration_endpoint"] = json!(s.endpoint("/register"));
    }
    json_response(StatusCode::OK, &doc, "public, max-age=300")
}

async fn jwks(State(s): State<Arc<Inner>>) -> Response<Body> {
    json_response(StatusCode::OK, &s.keys_read().jwks(), "public, max-age=300")
}

fn json_response(status: StatusCode, value: &Value, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn authorize(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "authorize", true) {
        return refused;
    }
    let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
    let headers = request.headers().clone();
    let q = match params(&query) {
        Ok(q) => q,
        Err(why) => return html::error_page(StatusCode::BAD_REQUEST, why),
    };
    // 1. The client and its redirect URI: until both are known good, every
    //    error is a page, never a redirect (no open redirector).
    let Some(client_id) = q.get("client_id") else {
        return html::error_page(StatusCode::BAD_REQUEST, "The request names no client.");
    };
    let client = match s.client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            tracing::info!(target: AUDIT, event = "authorize_refused", reason = "unknown client");
            return html::error_page(
                StatusCode::BAD_REQUEST,
                "The application is not known to this server.",
            );
        }
        Err(response) => return response,
    };
    let redirect_uri = match q.get("redirect_uri") {
        Some(requested) => match client
            .redirect_uris
            .iter()
            .any(|r| client::redirect_matches(r, requested))
        {
            true => requested.clone(),
            false => {
                tracing::info!(target: AUDIT, event = "authorize_refused", reason = "redirect_uri not registered");
                return html::error_page(
                    StatusCode::BAD_REQUEST,
                    "The application asked to return to an address it did not register.",
                );
            }
        },
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return html::error_page(
                StatusCode::BAD_REQUEST,
                "The request names no redirect URI.",
            );
        }
    };
    let state = q.get("state").map(String::as_str);
    let fail =
        |error: &str, description: &str| s.error_redirect(&redirect_uri, state, error, description);
    // 2. From here on, errors go back to the client, with state and iss.
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(challenge) = q.get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge is missing",
        );
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43 || BASE64URL_NOPAD.decode(challenge.as_bytes()).is_err() {
        return fail(
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        );
    }
    let resource = match q.get("resource") {
        Some(r) if s.resources.contains(r) => r.clone(),
        Some(_) => {
            return fail(
                "invalid_target",
                "the resource is not served by this server",
            );
        }
        None if s.resources.len() == 1 => s.resources[0].clone(),
        None => return fail("invalid_target", "name the resource (RFC 8707)"),
    };
    let mut scopes = scope_list(q.get("scope"));
    if scopes.is_empty() {
        scopes = s.default_scopes.clone();
    }
    if let Some(bad) = scopes.iter().find(|x| !s.scopes.contains(x)) {
        let _ = bad;
        return fail("invalid_scope", "a requested scope is not supported");
    }
    // 3. The pending authorization, bound to this browser.
    let (browser, new_browser) = match cookie(&headers, BROWSER_COOKIE) {
        Some(value) if value.len() == 43 => (value.to_owned(), false),
        _ => match random(32) {
            Ok(value) => (value, true),
            Err(_) => return unavailable(),
        },
    };
    let (Ok(pending_id), Ok(csrf)) = (random(32), random(32)) else {
        return unavailable();
    };
    let subject = match cookie(&headers, LOGIN_COOKIE) {
        Some(id) => s
            .sessions
            .load_str(id)
            .await
            .ok()
            .map(|session| session.user),
        None => None,
    };
    let pending = Pending {
        client,
        redirect_uri,
        state: q.get("state").cloned(),
        code_challenge: challenge.clone(),
        resource,
        scopes,
        browser: browser_hash(&browser),
        csrf,
        subject: subject.clone(),
        consented: false,
        expires_at: s.now() + PENDING_TTL,
    };
    if s.store
        .put_pending(Key::of(&pending_id), pending.clone())
        .await
        .is_err()
    {
        return unavailable();
    }
    let mut response = match subject {
        Some(subject) => s.continue_signed_in(&pending_id, pending, &subject).await,
        None if s.login.consent_first() => {
            s.consent_page(&pending_id, &pending, None, s.login.provider_name())
        }
        None => s.start_login(&pending_id, &pending).await,
    };
    if new_browser {
        set_cookie(
            &mut response,
            BROWSER_COOKIE,
            &browser,
            s.consent_ttl.max(PENDING_TTL),
        );
    }
    response
}

/// The pending authorization `pending_id`, if this browser started it.
async fn bound_pending(
    s: &Inner,
    headers: &HeaderMap,
    pending_id: &str,
    csrf: Option<&str>,
) -> Result<Pending, Response<Body>> {
    let expired = || {
        html::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already completed. Start again from your application.",
        )
    };
    let pending = match s.store.pending(Key::of(pending_id), s.now()).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return Err(expired()),
        Err(_) => return Err(unavailable()),
    };
    let browser = cookie(headers, BROWSER_COOKIE).map(browser_hash);
    if !browser.is_some_and(|b| mcp_auth_core::secrets_equal(&b, &pending.browser)) {
        tracing::warn!(target: AUDIT, event = "flow_refused", reason = "another browser");
        return Err(html::error_page(
            StatusCode::FORBIDDEN,
            "This sign-in was started in another browser.",
        ));
    }
    if let Some(csrf) = csrf
        && !mcp_auth_core::secrets_equal(csrf.as_bytes(), pending.csrf.as_bytes())
    {
        tracing::warn!(target: AUDIT, event = "flow_refused", reason = "csrf");
        return Err(html::error_page(
            StatusCode::FORBIDDEN,
            "The form is not valid. Start again.",
        ));
    }
    Ok(pending)
}

async fn login_get(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "login", true) {
        return refused;
    }
    let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
    let headers = request.headers().clone();
    match params(&query) {
        Ok(fields) => finish_login(&s, &headers, fields, false).await,
        Err(why) => html::error_page(StatusCode::BAD_REQUEST, why),
    }
}

async fn login_post(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "login", true) {
        return refused;
    }
    match form(request).await {
        Ok((headers, fields)) => finish_login(&s, &headers, fields, true).await,
        Err(why) => html::error_page(StatusCode::BAD_REQUEST, why),
    }
}

async fn finish_login(
    s: &Inner,
    headers: &HeaderMap,
    fields: HashMap<String, String>,
    posted: bool,
) -> Response<Body> {
    let signed_in = match s.login.finish(fields).await {
        Ok(signed_in) => signed_in,
        Err(LoginError::Unavailable) => return unavailable(),
        Err(e) => return html::error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // A posted form must carry the page's CSRF token; a callback (GET) is
    // vouched for by the login's own state.
    let csrf = match (posted, signed_in.csrf.as_deref()) {
        (true, None) => {
            return html::error_page(StatusCode::FORBIDDEN, "The form is not valid. Start again.");
        }
        (_, csrf) => csrf,
    };
    let mut pending = match bound_pending(s, headers, &signed_in.pending, csrf).await {
        Ok(pending) => pending,
        Err(response) => return response,
    };
    let subject = signed_in.subject;
    let created = match s
        .sessions
        .create(NewSession::new(subject.clone(), "browser"))
        .await
    {
        Ok(created) => created,
        Err(_) => return unavailable(),
    };
    tracing::info!(target: AUDIT, event = "signed_in", subject = subject.as_str());
    pending.subject = Some(subject.clone());
    if s.store
        .put_pending(Key::of(&signed_in.pending), pending.clone())
        .await
        .is_err()
    {
        return unavailable();
    }
    let mut response = if pending.consented {
        // Approved before the login went upstream: the code now.
        match s
            .store
            .take_pending(Key::of(&signed_in.pending), s.now())
            .await
        {
            Ok(Some(_)) => s.approve(pending, subject).await,
            Ok(None) => html::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in was already completed.",
            ),
            Err(_) => unavailable(),
        }
    } else {
        s.continue_signed_in(&signed_in.pending, pending, &subject)
            .await
    };
    set_cookie(&mut response, LOGIN_COOKIE, created.id.expose(), 24 * 3600);
    response
}

async fn consent(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "consent", true) {
        return refused;
    }
    let (headers, fields) = match form(request).await {
        Ok(parsed) => parsed,
        Err(why) => return html::error_page(StatusCode::BAD_REQUEST, why),
    };
    let (Some(pending_id), Some(csrf)) = (fields.get("pending"), fields.get("csrf")) else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "The form is not valid. Start again.",
        );
    };
    let pending = match bound_pending(&s, &headers, pending_id, Some(csrf)).await {
        Ok(pending) => pending,
        Err(response) => return response,
    };
    let approved = fields.get("decision").map(String::as_str) == Some("approve");
    let covered = match &pending.subject {
        Some(subject) if approved => match s.login.covers(subject, &pending.scopes).await {
            Ok(covered) => covered,
            Err(_) => return unavailable(),
        },
        Some(_) => true,
        None if s.login.consent_first() => false,
        None => return html::error_page(StatusCode::FORBIDDEN, "Sign in first."),
    };
    if approved && !covered {
        // Approved; now the login (upstream) names the person or adds
        // the provider's permissions, and the code follows its callback.
        let mut pending = pending;
        pending.consented = true;
        if s.store
            .put_pending(Key::of(pending_id), pending.clone())
            .await
            .is_err()
        {
            return unavailable();
        }
        return s.start_login(pending_id, &pending).await;
    }
    // Single use from here on.
    match s.store.take_pending(Key::of(pending_id), s.now()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return html::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in was already completed.",
            );
        }
        Err(_) => return unavailable(),
    }
    match (approved, pending.subject.clone()) {
        (true, Some(subject)) => s.approve(pending, subject).await,
        _ => s.error_redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the user denied the request",
        ),
    }
}

impl Inner {
    /// Remembers the consent (taken pending `pending`) and issues the code.
    async fn approve(&self, pending: Pending, subject: UserId) -> Response<Body> {
        let key = self.consent_key(&pending, &subject);
        if self.consent_ttl > 0
            && self
                .store
                .put_consent(key, self.now() + self.consent_ttl)
                .await
                .is_err()
        {
            return unavailable();
        }
        tracing::info!(target: AUDIT, event = "consent_given", subject = subject.as_str(), client = %pending.client.client_id);
        self.issue_code(pending, subject, key).await
    }
}

// ------------------------------------------------------- connected apps

/// The signed-in person of this browser, and the CSRF token of the
/// connected-apps page (derived from the browser cookie, which a page of
/// another site cannot read).
async fn apps_viewer(s: &Inner, headers: &HeaderMap) -> Option<(UserId, String)> {
    let session = cookie(headers, LOGIN_COOKIE)?;
    let user = s.sessions.load_str(session).await.ok()?.user;
    let browser = cookie(headers, BROWSER_COOKIE)?;
    let csrf = BASE64URL_NOPAD.encode(&Sha256::digest(
        format!("apps\0{browser}\0{session}").as_bytes(),
    ));
    Some((user, csrf))
}

fn origin_text(origin: &ClientOrigin) -> String {
    match origin {
        ClientOrigin::Configured => "configured on this server".to_owned(),
        ClientOrigin::Registered => "registered itself with this server".to_owned(),
        ClientOrigin::MetadataDocument { host } => format!("identified by {host}"),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// `GET /apps`: the applications holding a grant on the signed-in
/// person's behalf, each with a Revoke button.
async fn apps(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    let Some((user, csrf)) = apps_viewer(&s, request.headers()).await else {
        return html::error_page(
            StatusCode::UNAUTHORIZED,
            "You are not signed in on this server in this browser. Sign in from an application first.",
        );
    };
    let grants = match s.store.grants_of(&user, s.now()).await {
        Ok(grants) => grants,
        Err(_) => return unavailable(),
    };
    let action = html::escape(&s.endpoint("/apps/revoke"));
    let mut items = String::new();
    for grant in &grants {
        items.push_str(&format!(
            "<li><strong>{name}</strong><br><span class=\"note\">{origin}</span>\
             <dl><dt>Permissions</dt><dd>{scopes}</dd><dt>Last used</dt><dd>{last}</dd></dl>\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"grant\" value=\"{id}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Revoke access</button></form></li>",
            name = html::escape(&grant.client_name),
            origin = html::escape(&origin_text(&grant.client_origin)),
            scopes = html::escape(&grant.scopes.join(" ")),
            last = html::utc(grant.last_used),
            id = html::escape(&grant.id),
            csrf = html::escape(&csrf),
        ));
    }
    if grants.is_empty() {
        items.push_str("<li>No application holds access on your behalf.</li>");
    }
    html::page(
        StatusCode::OK,
        "Connected apps",
        &format!(
            "<h1>Connected apps</h1><p>Signed in as <strong>{}</strong>.</p><ul>{items}</ul>",
            html::escape(user.as_str())
        ),
    )
}

/// `POST /apps/revoke`: revokes one of the person's own grants.
async fn apps_revoke(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "consent", true) {
        return refused;
    }
    let (headers, fields) = match form(request).await {
        Ok(parsed) => parsed,
        Err(why) => return html::error_page(StatusCode::BAD_REQUEST, why),
    };
    let Some((user, csrf)) = apps_viewer(&s, &headers).await else {
        return html::error_page(StatusCode::UNAUTHORIZED, "Sign in first.");
    };
    let valid = fields
        .get("csrf")
        .is_some_and(|given| mcp_auth_core::secrets_equal(given.as_bytes(), csrf.as_bytes()));
    if !valid {
        tracing::warn!(target: AUDIT, event = "flow_refused", reason = "csrf");
        return html::error_page(
            StatusCode::FORBIDDEN,
            "The form is not valid. Reload the page.",
        );
    }
    let Some(id) = fields.get("grant") else {
        return html::error_page(StatusCode::BAD_REQUEST, "No application named.");
    };
    match s.store.grant(id, s.now()).await {
        Ok(Some(grant)) if grant.subject == user => {
            if s.store.revoke_grant(id).await.is_err() {
                return unavailable();
            }
            tracing::info!(target: AUDIT, event = "grant_revoked", grant = short(id), by = "user");
            s.after_revoke(&user).await;
            redirect_to(&s.endpoint("/apps"))
        }
        Ok(_) => html::error_page(StatusCode::NOT_FOUND, "No such application."),
        Err(_) => unavailable(),
    }
}

// ---------------------------------------------------------------- /token

fn token_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    tracing::info!(target: AUDIT, event = "token_refused", error, reason = description);
    let mut response = json_response(
        status,
        &json!({"error": error, "error_description": description}),
        "no-store",
    );
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"token\""),
        );
    }
    response
}

/// The calling client, authenticated per its registration.
async fn authenticate(
    s: &Inner,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Result<ClientInfo, Response<Body>> {
    let invalid = || {
        token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim().as_bytes()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |x: &str| {
                url::form_urlencoded::parse(format!("a={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (client_id, secret) = match (&basic, fields.get("client_id")) {
        (Some((id, secret)), None) => (id.clone(), Some(secret.clone())),
        (Some((id, secret)), Some(form_id)) if form_id == id => (id.clone(), Some(secret.clone())),
        (Some(_), Some(_)) => return Err(invalid()),
        (None, Some(id)) => (id.clone(), fields.get("client_secret").cloned()),
        (None, None) => {
            return Err(token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client_id",
            ));
        }
    };
    let client = match s.client(&client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(invalid()),
        Err(_) => {
            return Err(token_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "try again",
            ));
        }
    };
    match (&client.secret_hash, secret) {
        (None, _) => Ok(client),
        (Some(hash), Some(secret)) => {
            let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            if mcp_auth_core::secrets_equal(&presented, hash) {
                Ok(client)
            } else {
                Err(invalid())
            }
        }
        (Some(_), None) => Err(invalid()),
    }
}

async fn token(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "token", false) {
        return refused;
    }
    let (headers, fields) = match form(request).await {
        Ok(parsed) => parsed,
        Err(why) => return token_error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let client = match authenticate(&s, &headers, &fields).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    s.touch_client(&client).await;
    match fields.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(&s, &client, &fields).await,
        Some("refresh_token") => refresh_grant(&s, &client, &fields).await,
        _ => token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code or refresh_token",
        ),
    }
}

fn pkce_holds(verifier: &str, challenge: &str) -> bool {
    let shape = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    shape && mcp_auth_core::secrets_equal(computed.as_bytes(), challenge.as_bytes())
}

async fn code_grant(
    s: &Inner,
    client: &ClientInfo,
    fields: &HashMap<String, String>,
) -> Response<Body> {
    let invalid = |why| token_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let Some(code) = fields.get("code") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is missing",
        );
    };
    let now = s.now();
    let record = match s.store.redeem_code(Key::of(code), now).await {
        Ok(Redemption::Fresh(record)) => record,
        Ok(Redemption::Replayed { grant_id }) => {
            // RFC 6749 section 4.1.2: a code used twice revokes what it gave.
            let _ = s.store.revoke_grant(&grant_id).await;
            tracing::warn!(target: AUDIT, event = "code_replayed", grant = short(&grant_id));
            return invalid("the code was already used; its grant is revoked");
        }
        Ok(_) => return invalid("unknown or expired code"),
        Err(_) => return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again"),
    };
    if record.grant.client_id != client.client_id {
        return invalid("the code was issued to another client");
    }
    if fields
        .get("redirect_uri")
        .is_some_and(|r| *r != record.redirect_uri)
    {
        return invalid("redirect_uri differs from the authorization request");
    }
    if fields
        .get("resource")
        .is_some_and(|r| *r != record.grant.resource)
    {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the authorization request",
        );
    }
    let Some(verifier) = fields.get("code_verifier") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier is missing",
        );
    };
    if !pkce_holds(verifier, &record.code_challenge) {
        return invalid("PKCE verification failed");
    }
    let grant = record.grant;
    if s.store.put_grant(grant.clone()).await.is_err() {
        return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again");
    }
    tracing::info!(target: AUDIT, event = "grant_issued", grant = short(&grant.id), subject = grant.subject.as_str(), client = %grant.client_id);
    issue_tokens(s, client, &grant, &grant.scopes, None).await
}

async fn refresh_grant(
    s: &Inner,
    client: &ClientInfo,
    fields: &HashMap<String, String>,
) -> Response<Body> {
    let invalid = |why| token_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let Some(presented) = fields.get("refresh_token") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is missing",
        );
    };
    let now = s.now();
    let old = Key::of(presented);
    let record = match s.store.refresh(old).await {
        Ok(Some(record)) => record,
        Ok(None) => return invalid("unknown refresh token"),
        Err(_) => return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again"),
    };
    let grant = match s.store.grant(&record.grant_id, now).await {
        Ok(Some(grant)) => grant,
        Ok(None) => return invalid("the grant has ended"),
        Err(_) => return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again"),
    };
    if grant.client_id != client.client_id {
        return invalid("the refresh token was issued to another client");
    }
    if fields.get("resource").is_some_and(|r| *r != grant.resource) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the grant",
        );
    }
    // A refresh may narrow the scopes, never widen them.
    let scopes = match fields.get("scope") {
        Some(_) => {
            let asked = scope_list(fields.get("scope"));
            if asked.iter().any(|x| !record.scopes.contains(x)) {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a refresh cannot widen the scopes",
                );
            }
            asked
        }
        None => record.scopes.clone(),
    };
    let Ok(next) = random(32) else {
        return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again");
    };
    let new_record = RefreshRecord {
        grant_id: grant.id.clone(),
        scopes: scopes.clone(),
    };
    match s
        .store
        .rotate_refresh(old, Key::of(&next), new_record, now, s.refresh_grace)
        .await
    {
        Ok(Rotation::Rotated(_)) => {}
        Ok(Rotation::Reused { grant_id }) => {
            tracing::warn!(target: AUDIT, event = "refresh_reused", grant = short(&grant_id), subject = grant.subject.as_str());
            return invalid("the refresh token was already used; its grant is revoked");
        }
        Ok(_) => return invalid("unknown refresh token"),
        Err(_) => return token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again"),
    }
    let _ = s.store.touch_grant(&grant.id, now).await;
    tracing::info!(target: AUDIT, event = "refresh_rotated", grant = short(&grant.id));
    issue_tokens(s, client, &grant, &scopes, Some(next)).await
}

async fn issue_tokens(
    s: &Inner,
    client: &ClientInfo,
    grant: &Grant,
    scopes: &[String],
    refresh: Option<String>,
) -> Response<Body> {
    let now = s.now();
    let failed = || token_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again");
    let Ok(jti) = random(16) else { return failed() };
    let claims = json!({
        "iss": s.issuer,
        "sub": grant.subject.as_str(),
        "aud": grant.resource,
        "client_id": grant.client_id,
        "scope": scopes.join(" "),
        "iat": now,
        "exp": now + s.access_ttl,
        "jti": jti,
    });
    let signed = s.keys_read().current().sign("at+jwt", &claims);
    let Ok(access) = signed else {
        return failed();
    };
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": s.access_ttl,
        "scope": scopes.join(" "),
    });
    let refresh = match refresh {
        Some(token) => Some(token),
        None if client.refresh => {
            let Ok(token) = random(32) else {
                return failed();
            };
            let record = RefreshRecord {
                grant_id: grant.id.clone(),
                scopes: scopes.to_vec(),
            };
            if s.store.put_refresh(Key::of(&token), record).await.is_err() {
                return failed();
            }
            Some(token)
        }
        None => None,
    };
    if let Some(token) = refresh {
        body["refresh_token"] = json!(token);
    }
    let mut response = json_response(StatusCode::OK, &body, "no-store");
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

// --------------------------------------------------------------- /revoke

async fn revoke(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "revoke", false) {
        return refused;
    }
    let (headers, fields) = match form(request).await {
        Ok(parsed) => parsed,
        Err(why) => return token_error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let client = match authenticate(&s, &headers, &fields).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let Some(token) = fields.get("token") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    // Refresh tokens revoke their grant. Access tokens are JWTs that live
    // until `exp` (1 h by default): RFC 7009 lets us answer 200 anyway.
    if let Ok(Some(record)) = s.store.refresh(Key::of(token)).await
        && let Ok(Some(grant)) = s.store.grant(&record.grant_id, s.now()).await
        && grant.client_id == client.client_id
        && s.store.revoke_grant(&grant.id).await.unwrap_or(false)
    {
        tracing::info!(target: AUDIT, event = "grant_revoked", grant = short(&grant.id), by = "client");
        s.after_revoke(&grant.subject).await;
    }
    json_response(StatusCode::OK, &json!({}), "no-store")
}

// ------------------------------------------------------------- /register

async fn register(State(s): State<Arc<Inner>>, request: Request) -> Response<Body> {
    if let Some(refused) = throttle(&s, &request, "register", false) {
        return refused;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM + 1).await else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_client_metadata", "error_description": "the registration is too large"}),
            "no-store",
        );
    };
    let bad = |error: &str, why: &str| {
        tracing::info!(target: AUDIT, event = "registration_refused", error, reason = why);
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": error, "error_description": why}),
            "no-store",
        )
    };
    if body.len() > MAX_FORM {
        return bad("invalid_client_metadata", "the registration is too large");
    }
    let Ok(metadata) = serde_json::from_slice::<client::ClientMetadata>(&body) else {
        return bad("invalid_client_metadata", "not JSON client metadata");
    };
    let method = metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return bad(
            "invalid_client_metadata",
            "token_endpoint_auth_method is not supported",
        );
    }
    if metadata
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return bad(
            "invalid_client_metadata",
            "only the code response type is supported",
        );
    }
    let grant_types = metadata
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
    if grant_types
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return bad(
            "invalid_client_metadata",
            "only authorization_code and refresh_token are supported",
        );
    }
    let (redirect_uris, refused) =
        client::filter_redirects(&metadata.redirect_uris, &s.private_use);
    if redirect_uris.is_empty() {
        return bad("invalid_redirect_uri", "no acceptable redirect URI");
    }
    let (Ok(id), Ok(secret)) = (random(16), random(32)) else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "server_error"}),
            "no-store",
        );
    };
    let client_id = format!("mcp-{id}");
    let confidential = method != "none";
    let now = s.now();
    let info = ClientInfo {
        client_id: client_id.clone(),
        name: client::display_name(metadata.client_name.as_deref(), "Unnamed application"),
        redirect_uris: redirect_uris.clone(),
        secret_hash: confidential.then(|| Sha256::digest(secret.as_bytes()).into()),
        refresh: grant_types.iter().any(|g| g == "refresh_token"),
        origin: ClientOrigin::Registered,
        last_used: now,
    };
    if s.store.put_client(info.clone()).await.is_err() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "server_error"}),
            "no-store",
        );
    }
    tracing::info!(target: AUDIT, event = "client_registered", client = %client_id, refused_redirects = refused.len());
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "client_name": info.name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": ["code"],
    });
    if confidential {
        answer["client_secret"] = json!(secret);
        answer["client_secret_expires_at"] = json!(0);
    }
    json_response(StatusCode::CREATED, &answer, "no-store")
}
