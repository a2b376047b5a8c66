//! Building an [`AuthServer`]: every setting, checked at once in
//! [`AuthServerBuilder::build`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::{Clock, SystemClock};
use mcp_auth_http::HttpClient;
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter, RateLimiter};
use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
use sha2::{Digest, Sha256};

use super::{
    AuthServer, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CONSENT_TTL, DEFAULT_GRANT_TTL,
    DEFAULT_LOGIN_SESSION_TTL, DEFAULT_MAX_GRANTS_PER_USER, DEFAULT_REFRESH_GRACE,
    DEFAULT_REGISTRATION_TTL, Inner, PENDING_TTL, VAULT_PROVIDER, extract, vault_user,
};
use crate::ServerError;
use crate::client::{self, MetadataDocuments};
use crate::keys::KeyRing;
use crate::login::Login;
use crate::store::{AuthStore, ClientInfo, ClientOrigin, MemoryAuthStore};
use crate::upstream::{UpstreamLogin, UpstreamTokenSource};

/// The endpoints the per-address limits know by name (the "tool" tier).
pub const RATE_LIMITED_ENDPOINTS: [&str; 6] = [
    "authorize",
    "login",
    "consent",
    "token",
    "revoke",
    "register",
];

/// The default per-address limits: 300 requests a minute per address, 120
/// a minute per endpoint, 10 registrations a minute. The "user" tier is
/// the client's address, the "tool" tier the endpoint
/// ([`RATE_LIMITED_ENDPOINTS`]). Build a shared (Redis) limiter from these
/// for a fleet.
#[allow(clippy::expect_used)] // constant, valid limits
pub fn default_rate_limits() -> Limits {
    let per_minute = |n| Limit::per_minute(n).expect("a valid constant limit");
    Limits::none()
        .per_user(Some(per_minute(300)))
        .per_tool(Some(per_minute(120)))
        .tool_limit("register", per_minute(10))
        .known_tools(RATE_LIMITED_ENDPOINTS)
}

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
    private_use: client::PrivateUse,
    store: Option<Arc<dyn AuthStore>>,
    keys: Option<KeyRing>,
    vault: Option<Arc<mcp_auth_vault::Vault>>,
    key_reload: Duration,
    key_rotation: Option<Duration>,
    hsts_max_age: Option<Duration>,
    access_ttl: Duration,
    grant_ttl: Duration,
    consent_ttl: Duration,
    refresh_grace: Duration,
    max_grants_per_user: usize,
    login_session_ttl: Duration,
    scope_descriptions: std::collections::HashMap<String, String>,
    registration_ttl: Duration,
    clock: Arc<dyn Clock>,
    force_dev_login: bool,
    limits: Option<Limits>,
    limiter: Option<Arc<dyn RateLimiter>>,
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
            private_use: client::PrivateUse::default(),
            store: None,
            keys: None,
            vault: None,
            key_reload: super::DEFAULT_KEY_RELOAD,
            key_rotation: None,
            hsts_max_age: None,
            access_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            grant_ttl: DEFAULT_GRANT_TTL,
            consent_ttl: DEFAULT_CONSENT_TTL,
            refresh_grace: DEFAULT_REFRESH_GRACE,
            max_grants_per_user: DEFAULT_MAX_GRANTS_PER_USER,
            login_session_ttl: DEFAULT_LOGIN_SESSION_TTL,
            scope_descriptions: std::collections::HashMap::new(),
            registration_ttl: DEFAULT_REGISTRATION_TTL,
            clock: Arc::new(SystemClock),
            force_dev_login: false,
            upstream: None,
            login_sessions: None,
            limits: None,
            limiter: None,
        }
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

    /// What a scope lets an application do, in plain words ("Read your
    /// playlists"), shown on the consent and connected-apps pages with the
    /// scope string small beside it. A scope without one is shown as its
    /// string; `offline_access` has a built-in description.
    pub fn describe_scope(
        mut self,
        scope: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.scope_descriptions
            .insert(scope.into(), description.into());
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

    /// Private-use redirect URIs (e.g. an app's `com.example.app:/cb`)
    /// accepted exactly as listed, whatever the policy.
    pub fn private_use_redirects<S: Into<String>>(
        mut self,
        uris: impl IntoIterator<Item = S>,
    ) -> Self {
        self.private_use.listed = uris.into_iter().map(Into::into).collect();
        self
    }

    /// Which other private-use redirect URIs registrations may use
    /// (default: reverse-domain schemes and the known editors', see
    /// [`PrivateUsePolicy`](crate::PrivateUsePolicy)); `ListedOnly` to
    /// accept only those listed with `private_use_redirects`.
    pub fn private_use_policy(mut self, policy: crate::PrivateUsePolicy) -> Self {
        self.private_use.policy = policy;
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

    /// With [`keys_in_vault`](Self::keys_in_vault): how often the ring is
    /// reloaded from the vault, the longest a process signs with a key
    /// another process has rotated out (default [`DEFAULT_KEY_RELOAD`],
    /// 60 s). A token signed with a key this process does not know yet
    /// makes it reload at once (at most once a second). Needs the server
    /// built inside a Tokio runtime.
    ///
    /// [`DEFAULT_KEY_RELOAD`]: super::DEFAULT_KEY_RELOAD
    pub fn key_reload_every(mut self, every: Duration) -> Self {
        self.key_reload = every;
        self
    }

    /// `Strict-Transport-Security` `max-age` on every answer of an https
    /// issuer (default 2 years; never sent for an http issuer).
    pub fn hsts_max_age(mut self, max_age: Duration) -> Self {
        self.hsts_max_age = Some(max_age);
        self
    }

    /// Rotates the signing keys every `every` (default: never; rotate with
    /// `AuthServer::rotate_keys`). With the keys in a shared vault and a
    /// shared store, one process of the fleet rotates (the one that takes
    /// the store's lock first); the others reload. Checked at each reload.
    pub fn key_rotation_every(mut self, every: Duration) -> Self {
        self.key_rotation = Some(every);
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

    /// How long a browser stays signed in on this server after signing in
    /// (default 24 hours, [`DEFAULT_LOGIN_SESSION_TTL`]); the login cookie
    /// lasts as long. Clients can ask for a fresh sign-in sooner with
    /// `prompt=login` or `max_age`.
    pub fn login_session_ttl(mut self, ttl: Duration) -> Self {
        self.login_session_ttl = ttl;
        self
    }

    /// The most live grants one person has (default 100,
    /// [`DEFAULT_MAX_GRANTS_PER_USER`]): a sign-in past it revokes the
    /// person's oldest grants (their refresh tokens stop working), so no one
    /// can grow the store without bound by signing in over and over.
    pub fn max_grants_per_user(mut self, max: usize) -> Self {
        self.max_grants_per_user = max;
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

    /// The rate limiter (default: one in this process's memory with
    /// [`rate_limits`](Self::rate_limits)). Give a fleet a shared one (a
    /// Redis limiter built from [`default_rate_limits`]), so every process
    /// spends one budget per address.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Allows a development login on an issuer that is not loopback.
    pub fn dangerous_allow_dev_login_on_public_issuer(mut self) -> Self {
        self.force_dev_login = true;
        self
    }

    /// The server, or why the settings cannot work.
    pub fn build(self) -> Result<AuthServer, ServerError> {
        let config = |setting: &'static str, reason: &'static str| {
            ServerError::Config(mcp_auth_core::ConfigProblem::new(setting, reason))
        };
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
        let issuer_text: Arc<str> = Arc::from(self.issuer.trim_end_matches('/'));
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
            return Err(crate::upstream::upstream_problem(format!(
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
                    let mut ring = KeyRing::generate()?;
                    ring.rotated_at = self.clock.unix_seconds();
                    vault
                        .put_bytes(&vault_user(), VAULT_PROVIDER, &ring.to_bytes())
                        .map_err(|_| ServerError::Key("the vault cannot be written"))?;
                    ring
                }
            },
            (None, None) => KeyRing::generate()?,
        };
        let limiter: Arc<dyn RateLimiter> = match self.limiter {
            Some(limiter) => limiter,
            None => {
                let limits = match self.limits {
                    Some(limits) => limits.known_tools(RATE_LIMITED_ENDPOINTS),
                    None => default_rate_limits(),
                };
                Arc::new(
                    MemoryRateLimiter::new(limits)
                        .map_err(|_| config("rate_limits", "invalid limits"))?
                        .clock(self.clock.clone()),
                )
            }
        };
        let session_store: Arc<dyn mcp_auth_session::SessionStore> = self
            .login_sessions
            .unwrap_or_else(|| Arc::new(MemorySessionStore::new()));
        // The login sessions run on the server's clock like everything else.
        // A login lasts `login_session_ttl` from sign-in, used or not.
        let login_config = SessionConfig::default()
            .absolute_timeout(self.login_session_ttl)
            .idle_timeout(self.login_session_ttl);
        let sessions = SessionManager::with_shared_store(session_store, login_config)
            .map_err(|_| config("sessions", "invalid session configuration"))?
            .clock(self.clock.clone());
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryAuthStore::default()));
        let upstream = self
            .upstream
            .as_ref()
            .map(|login| UpstreamTokenSource::new(login, store.clone(), issuer_text.clone()));
        let published = mcp_auth_jwks::SharedKeySet::new(super::published_keys(&keys)?);
        let shared_keys = self.vault.is_some();
        let inner = Arc::new_cyclic(|weak| Inner {
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
            published: if shared_keys {
                published.on_unknown_kid(super::fleet_keys::reload_on_unknown_kid(weak.clone()))
            } else {
                published
            },
            keys: std::sync::RwLock::new(keys),
            vault: self.vault,
            access_ttl: self.access_ttl.as_secs().max(1),
            grant_ttl: self.grant_ttl.as_secs().max(1),
            consent_ttl: self.consent_ttl.as_secs(),
            browser_cookie: extract::browser_cookie()
                .with_max_age(self.consent_ttl.max(Duration::from_secs(PENDING_TTL))),
            login_cookie: extract::login_cookie().with_max_age(self.login_session_ttl),
            refresh_grace: self.refresh_grace.as_secs(),
            max_grants_per_user: self.max_grants_per_user.max(1),
            scope_descriptions: self.scope_descriptions,
            registration_ttl: self.registration_ttl.as_secs().max(1),
            clock: self.clock,
            sessions,
            limiter,
            hsts_max_age: self.hsts_max_age,
        });
        if shared_keys {
            super::fleet_keys::watch(&inner, self.key_reload, self.key_rotation);
        }
        Ok(AuthServer { upstream, inner })
    }
}
