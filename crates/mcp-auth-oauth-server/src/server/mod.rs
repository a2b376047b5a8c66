//! The server: the [`AuthServer`] handle, its router, and the state every
//! flow shares. One module per flow: [`authorize`] (the request and the
//! code), [`signin`] (the login's answer), [`consent`], [`token`],
//! [`revoke`], [`register`], [`apps`] (connected apps), [`metadata`];
//! [`builder`] for the settings; [`extract`] and [`reply`] for what every
//! handler takes and answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, header};
use axum::routing::{get, post};
use mcp_auth_axum::{ConfigError, McpAuth, ResourceConfig, ResourceConfigBuilder, SecurityHeaders};
use mcp_auth_core::{Clock, UserId};
use mcp_auth_jwks::{KeySet, SharedKeySet, Validator};
use mcp_auth_ratelimit::RateLimiter;
use mcp_auth_session::{SessionCookie, SessionManager};
use serde_json::Value;
use tower_http::cors::{Any, CorsLayer};

use crate::client::MetadataDocuments;
use crate::keys::KeyRing;
use crate::login::Login;
use crate::store::{AuthStore, ClientInfo, ClientOrigin, Grant};
use crate::upstream::UpstreamTokenSource;
use crate::{AUDIT, ServerError, StoreError};

mod apps;
mod authorize;
pub(crate) mod builder;
mod consent;
pub(crate) mod extract;
mod fleet_keys;
mod metadata;
mod register;
mod reply;
mod revoke;
mod signin;
mod token;

pub use builder::AuthServerBuilder;
use extract::ClientAddr;
pub use fleet_keys::DEFAULT_KEY_RELOAD;
use reply::{OAuthError, PageError};

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
/// The longest `state` `/authorize` accepts: 1,024 bytes. It is stored
/// with the pending authorization and echoed back, so an unbounded one
/// would let anonymous requests fill the store (RFC 6749 gives no limit;
/// clients use 16–64 random bytes).
pub const MAX_STATE_LEN: usize = 1024;
/// Default most live grants one person has: 100 (a new sign-in past it
/// revokes the person's oldest grant).
pub const DEFAULT_MAX_GRANTS_PER_USER: usize = 100;
/// Default time a registered client lives unused: 90 days.
pub const DEFAULT_REGISTRATION_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default lifetime of a browser's login session (and its cookie): 24
/// hours; `AuthServerBuilder::login_session_ttl` to change.
pub const DEFAULT_LOGIN_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The `client_id` of browser login sessions in the session store.
const BROWSER_LOGIN: &str = "browser";

/// The authorization server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthServer {
    inner: Arc<Inner>,
    upstream: Option<UpstreamTokenSource>,
}

/// What every flow shares: the settings, the stores, the keys.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The issuer, once: the upstream token source shares it.
    issuer: Arc<str>,
    prefix: String,
    resources: Vec<String>,
    scopes: Vec<String>,
    default_scopes: Vec<String>,
    login: Arc<dyn Login>,
    clients: HashMap<String, ClientInfo>,
    registration: bool,
    documents: Option<MetadataDocuments>,
    private_use: crate::client::PrivateUse,
    store: Arc<dyn AuthStore>,
    keys: std::sync::RwLock<KeyRing>,
    /// The public keys of `keys`, for the in-process token verifier.
    published: SharedKeySet,
    vault: Option<Arc<mcp_auth_vault::Vault>>,
    access_ttl: u64,
    grant_ttl: u64,
    consent_ttl: u64,
    refresh_grace: u64,
    max_grants_per_user: usize,
    scope_descriptions: HashMap<String, String>,
    registration_ttl: u64,
    clock: Arc<dyn Clock>,
    sessions: SessionManager,
    browser_cookie: SessionCookie,
    login_cookie: SessionCookie,
    limiter: Arc<dyn RateLimiter>,
    hsts_max_age: Option<Duration>,
}

impl AuthServer {
    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The JWKS document the server publishes.
    pub fn jwks(&self) -> Value {
        self.inner.keys_read().jwks()
    }

    /// The protected resource's configuration, seeded with this server's
    /// issuer (as its authorization server) and its first resource: the
    /// pair is written once, here, in the server's builder.
    pub fn resource_config(&self) -> ResourceConfigBuilder {
        ResourceConfig::builder(&self.inner.resources[0], &*self.inner.issuer)
    }

    /// A verifier of this server's access tokens for `config`'s resource,
    /// checked against the key ring in this process: no HTTP to itself, and
    /// a rotation is seen by the next request. It requires RFC 9068
    /// `at+jwt` tokens and runs on the server's clock.
    pub fn token_verifier(&self, config: &ResourceConfig) -> Validator {
        Validator::with_shared_keys(
            config.policy().require_access_token_type(),
            self.inner.published.clone(),
        )
        .clock(self.inner.clock.clone())
    }

    /// The protected endpoint for `config` (from
    /// [`resource_config`](Self::resource_config)), verifying with
    /// [`token_verifier`](Self::token_verifier) behind the verified-token
    /// cache.
    pub fn protect(&self, config: ResourceConfig) -> Result<McpAuth, ConfigError> {
        let verifier = self.token_verifier(&config);
        McpAuth::with_jwks(config, verifier)
    }

    /// The routes: the metadata documents, `/authorize`, `/login`,
    /// `/consent`, `/token`, `/revoke`, `/register` (when on) and
    /// `/jwks.json`, under the issuer's path. No fallback: merge it with
    /// the MCP server's router. `/authorize` and the pages have no CORS;
    /// the endpoints clients call from a browser (`/token`, `/register`,
    /// `/revoke`, metadata, JWKS) allow any origin, without credentials.
    /// Every answer carries `mcp-auth-axum`'s [`SecurityHeaders`] (a
    /// page's own stricter headers win), with `Strict-Transport-Security`
    /// when the issuer is https: they hold wherever the router is merged.
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
            .route(&format!("{p}/token"), post(token::token))
            .route(&format!("{p}/revoke"), post(revoke::revoke))
            .route(&format!("{p}/jwks.json"), get(metadata::jwks));
        if self.inner.registration {
            open = open.route(&format!("{p}/register"), post(register::register));
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
            open = open.route(&path, get(metadata::metadata));
        }
        let pages = Router::new()
            .route(&format!("{p}/apps"), get(apps::apps))
            .route(&format!("{p}/apps/revoke"), post(apps::apps_revoke))
            .route(&format!("{p}/logout"), post(apps::logout))
            .route(&format!("{p}/authorize"), get(authorize::authorize))
            .route(
                &format!("{p}/login"),
                post(signin::login_post).get(signin::login_get),
            )
            .route(&format!("{p}/consent"), post(consent::consent));
        let https = self.inner.issuer.starts_with("https://");
        let mut headers = SecurityHeaders::new(https);
        if let Some(max_age) = self.inner.hsts_max_age {
            headers = headers.hsts_max_age(max_age);
        }
        headers.apply(open.layer(cors).merge(pages).with_state(self.inner.clone()))
    }

    /// Upstream tokens for tools, when the login is an
    /// [`UpstreamLogin`](crate::UpstreamLogin)
    /// ([`AuthServerBuilder::upstream`]).
    pub fn upstream_tokens(&self) -> Option<UpstreamTokenSource> {
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

    /// The emergency switch: revokes every grant (so no refresh token
    /// works), revokes the users' provider tokens at the provider and
    /// deletes them from the vault (an upstream login), ends every browser
    /// session of the sign-in pages, and replaces every signing key (so no
    /// access token issued validates: in this process at once, in the
    /// other processes of a fleet within their key reload and their
    /// verified-token cache). Everyone must sign in again. How many grants
    /// were revoked.
    pub async fn revoke_everything(&self) -> Result<usize, ServerError> {
        let grants = self.revoke_all().await?;
        self.inner
            .sessions
            .revoke_everything()
            .await
            .map_err(|_| ServerError::Store(StoreError::Unavailable("sessions")))?;
        self.retire_all_keys()?;
        tracing::warn!(target: AUDIT, event = "everything_revoked", grants);
        Ok(grants)
    }
}

// ---------------------------------------------------------------- helpers

/// The public keys of `ring`, as a validator reads them.
fn published_keys(ring: &KeyRing) -> Result<KeySet, ServerError> {
    KeySet::from_jwks(ring.jwks().to_string().as_bytes())
        .map_err(|_| ServerError::Key("the published keys do not load"))
}

/// The first characters of an id, for the audit log.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A space-separated scope list, duplicates dropped, order kept.
fn scope_list(scope: Option<&str>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.unwrap_or("").split(' ') {
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

/// Why a request from an address is refused for now.
#[derive(Debug, Clone, Copy)]
struct Throttled {
    retry_after: u64,
}

impl From<Throttled> for PageError {
    fn from(t: Throttled) -> Self {
        Self::RateLimited {
            retry_after: t.retry_after,
        }
    }
}

impl From<Throttled> for OAuthError {
    fn from(t: Throttled) -> Self {
        Self::RateLimited {
            retry_after: t.retry_after,
        }
    }
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

    /// Whether `addr` may call `endpoint` now (the per-address limits).
    async fn throttle(&self, addr: ClientAddr, endpoint: &str) -> Result<(), Throttled> {
        // IPv6 per /64, like every per-address limit.
        let Ok(key) = UserId::new(mcp_auth_axum::ClientAddress(addr.0).rate_key()) else {
            return Ok(());
        };
        let decision = self.limiter.decide(&key, Some(endpoint)).await;
        match decision.retry_after_secs() {
            None => Ok(()),
            Some(retry_after) => {
                tracing::warn!(target: AUDIT, event = "rate_limited", endpoint, peer = %addr);
                crate::metrics::rate_limited(endpoint);
                Err(Throttled { retry_after })
            }
        }
    }

    /// The client `client_id` names: configured, registered, or a metadata
    /// document. `Ok(None)` when it names none.
    async fn client(&self, client_id: &str) -> Result<Option<ClientInfo>, StoreError> {
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
        match self.store.client(client_id).await? {
            // A registration unused for `registration_ttl` is gone.
            Some(client)
                if client.last_used.saturating_add(self.registration_ttl) <= self.now() =>
            {
                tracing::info!(target: AUDIT, event = "client_expired", client = %client.client_id);
                Ok(None)
            }
            found => Ok(found),
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

    /// After a revocation: when `subject` has no live grant left, the
    /// login forgets them (an upstream login revokes the provider's
    /// refresh token and deletes its vault entry).
    pub(crate) async fn after_revoke(&self, subject: &UserId) {
        match self.store.grants_of(subject, self.now()).await {
            Ok(left) if left.is_empty() => self.login.forget(subject).await,
            _ => {}
        }
    }
}

/// Where a client came from, in words.
impl Inner {
    /// `scopes` as a person reads them (see `describe_scope`).
    pub(crate) fn describe_scopes(&self, scopes: &[String]) -> Vec<crate::pages::ScopeLine> {
        scopes
            .iter()
            .map(|scope| match self.scope_descriptions.get(scope) {
                Some(text) => crate::pages::ScopeLine {
                    text: text.clone(),
                    scope: Some(scope.clone()),
                },
                None if scope == "offline_access" => crate::pages::ScopeLine {
                    text:
                        "Stay connected: keep access without asking you again, until you revoke it"
                            .to_owned(),
                    scope: Some(scope.clone()),
                },
                None => crate::pages::ScopeLine {
                    text: scope.clone(),
                    scope: None,
                },
            })
            .collect()
    }
}

/// This browser's login: who, and when they signed in.
pub(crate) struct BrowserLogin {
    pub(crate) user: UserId,
    pub(crate) signed_in_at: u64,
}

impl Inner {
    /// The person this browser is signed in as, from its login cookie: a
    /// live session that is a browser login (not an MCP session that
    /// happens to share the store).
    pub(crate) async fn browser_login(&self, cookies: &extract::Cookies) -> Option<BrowserLogin> {
        let session = self.sessions.load(cookies.login.as_ref()?).await.ok()?;
        if session.client_id != BROWSER_LOGIN {
            return None;
        }
        let signed_in_at = session
            .created_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(BrowserLogin {
            user: session.user,
            signed_in_at,
        })
    }
}

fn origin_text(origin: &ClientOrigin) -> String {
    match origin {
        ClientOrigin::Configured => "configured on this server".to_owned(),
        ClientOrigin::Registered => {
            "registered itself with this server: its name is its own claim, not verified".to_owned()
        }
        ClientOrigin::MetadataDocument { host } => format!("identified by {host}"),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// The parsers of outside input, for the fuzz targets.
pub(crate) fn params(raw: &[u8]) -> Option<HashMap<String, String>> {
    extract::Params::parse(raw)
        .ok()
        .map(extract::Params::into_map)
}
