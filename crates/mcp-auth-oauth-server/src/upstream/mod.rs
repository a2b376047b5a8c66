//! The proxy half: people sign in through an upstream provider (Google,
//! Spotify, any OpenID Connect issuer) with one static client
//! registration; the provider's tokens stay in the vault under (subject,
//! provider), and tools get a fresh upstream access token with one call.
//!
//! MCP clients never see the provider's tokens: they get this server's own
//! tokens. The client's `resource` and redirect URI are never sent
//! upstream (they name us): the provider sees our one registered redirect
//! URI, `{issuer}/login`, and scopes mapped from ours.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use mcp_auth_core::{BoxFuture, Clock, SystemClock, UserId};
use mcp_auth_http::{HttpClient, OutboundClient};
use mcp_auth_pkce::{OAuthClient, OAuthError, TokenKind, TokenSet};
use mcp_auth_token::AuthContext;
use mcp_auth_vault::{Credential, Vault};
use secrecy::{ExposeSecret, SecretString};

use crate::AUDIT;
use crate::login::{Login, LoginContext, LoginError, SignedIn};
use crate::store::{AuthStore, StoreKey};

/// How an upstream access token is refreshed ahead of its expiry by
/// default: when it has less than this left.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Longest wait for another process's refresh of the same user.
const FLEET_WAIT: Duration = Duration::from_secs(10);
/// A fleet refresh lock outlives a crashed holder by at most this.
const LOCK_TTL: u64 = 30;
/// Largest "who am I" answer read.
const MAX_USERINFO: usize = 64 * 1024;

/// A problem with the upstream login's configuration; `reason` names the
/// value at fault.
pub(crate) fn upstream_problem(reason: String) -> crate::ServerError {
    crate::ServerError::Config(mcp_auth_core::ConfigProblem::new("upstream login", reason))
}

/// Where the person's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectSource {
    /// The verified ID token's `sub` (OpenID Connect: Google, any OIDC
    /// issuer). Its `iss` is the configured issuer (checked by the
    /// validation), so the namespace stands for it.
    IdToken,
    /// A "who am I" call with the new access token: `GET url`, the JSON
    /// answer's `field` (a string or a number). Spotify: `/v1/me` → `id`.
    UserInfo {
        /// The endpoint.
        url: String,
        /// The field naming the account.
        field: String,
    },
}

impl SubjectSource {
    /// A "who am I" call.
    pub fn user_info(url: impl Into<String>, field: impl Into<String>) -> Self {
        Self::UserInfo {
            url: url.into(),
            field: field.into(),
        }
    }

    /// Spotify's `GET https://api.spotify.com/v1/me` → `id`.
    pub fn spotify() -> Self {
        Self::user_info("https://api.spotify.com/v1/me", "id")
    }
}

/// What a provider needs beyond the standard (each a documented quirk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderQuirks {
    /// Added to every authorization request (Google:
    /// `access_type=offline`, without which it issues no refresh token).
    pub authorize_params: Vec<(String, String)>,
    /// Sends `prompt=consent` when no refresh token is on file for the
    /// person (Google issues a refresh token only on a consent screen).
    pub prompt_consent_without_refresh_token: bool,
    /// Incremental authorization: a person coming back for more asks only
    /// for the added scopes with `include_granted_scopes=true`, and the new
    /// token covers old and new (Google). Without it the full set is asked
    /// for again, which keeps what the person had (Spotify).
    pub include_granted_scopes: bool,
}

impl ProviderQuirks {
    /// Google: offline access, consent when no refresh token is on file,
    /// incremental authorization. (Google does not rotate refresh tokens:
    /// the one on file is kept when a refresh returns none.)
    pub fn google() -> Self {
        Self {
            authorize_params: vec![("access_type".into(), "offline".into())],
            prompt_consent_without_refresh_token: true,
            include_granted_scopes: true,
        }
    }

    /// Spotify: nothing beyond the standard. It sometimes rotates refresh
    /// tokens (the new one replaces the old on file), returns no email
    /// (the subject comes from `/v1/me`), and accepts only https or
    /// loopback-IP redirect URIs (the issuer must be one).
    pub fn spotify() -> Self {
        Self::default()
    }
}

/// Why a tool could not get an upstream token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Nothing usable is on file (never connected, or the provider said the
    /// refresh token is dead: then this user's grants were revoked, so the
    /// client signs in again).
    #[error("reconnect your {provider} account: sign in again from your application")]
    Reconnect {
        /// The provider's display name.
        provider: String,
    },
    /// The provider or a store could not answer now; nothing was revoked.
    /// Retrying later may help.
    #[error("{provider} is unavailable right now; try again shortly")]
    Unavailable {
        /// The provider's display name.
        provider: String,
    },
}

impl UpstreamError {
    /// Whether retrying later may succeed (as opposed to signing in again).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Builds an [`UpstreamLogin`].
#[must_use = "a builder does nothing until it is built"]
pub struct UpstreamLoginBuilder {
    client: OAuthClient,
    vault: Arc<Vault>,
    display_name: Option<String>,
    namespace: Option<String>,
    base_scopes: Vec<String>,
    scope_map: HashMap<String, Vec<String>>,
    subject: SubjectSource,
    quirks: ProviderQuirks,
    http: Option<Arc<dyn HttpClient>>,
    margin: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UpstreamLoginBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLoginBuilder")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl UpstreamLoginBuilder {
    /// The name people see ("sign in with Spotify"); default: the
    /// provider's name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The prefix of subjects (`{namespace}:{id}`); default: the provider's
    /// name. Subjects of different namespaces never collide.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Upstream scopes asked for at every sign-in (`openid email`, or
    /// whatever "who am I" needs).
    pub fn base_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.base_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Our scope `ours` needs these upstream scopes.
    pub fn scope<S: Into<String>>(
        mut self,
        ours: impl Into<String>,
        upstream: impl IntoIterator<Item = S>,
    ) -> Self {
        self.scope_map
            .insert(ours.into(), upstream.into_iter().map(Into::into).collect());
        self
    }

    /// Where the subject comes from (default: the ID token).
    pub fn subject(mut self, source: SubjectSource) -> Self {
        self.subject = source;
        self
    }

    /// The provider's quirks (default: none).
    pub fn quirks(mut self, quirks: ProviderQuirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// Sends the "who am I" call through `http` (default: the workspace's
    /// hardened client, 10 s, 64 KiB).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Refreshes an upstream access token that has less than `margin` left
    /// (default [`DEFAULT_REFRESH_MARGIN`]).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<UpstreamLogin, crate::ServerError> {
        let config = upstream_problem;
        let provider = self.client.provider().clone();
        if let SubjectSource::UserInfo { url, field } = &self.subject {
            mcp_auth_http::check_configured_url(url)
                .map_err(|e| config(format!("the user-info URL {url:?}: {e}")))?;
            if field.is_empty() {
                return Err(config("the user-info field is empty".into()));
            }
        }
        if self.subject == SubjectSource::IdToken && !provider.is_openid() {
            return Err(config(format!(
                "{} is not OpenID Connect (no jwks_uri): name the subject with a user-info call",
                provider.name
            )));
        }
        let namespace = self.namespace.unwrap_or_else(|| provider.name.clone());
        if namespace.is_empty()
            || namespace.contains(':')
            || namespace.chars().any(char::is_control)
        {
            return Err(config(format!(
                "the subject namespace {namespace:?} must be non-empty, without ':'"
            )));
        }
        let http = match self.http {
            Some(http) => http,
            None => Arc::new(
                OutboundClient::builder()
                    .max_response(MAX_USERINFO)
                    .build()
                    .map_err(|e| config(format!("HTTP client: {e}")))?,
            ),
        };
        Ok(UpstreamLogin {
            inner: Arc::new(Upstream {
                display: self.display_name.unwrap_or_else(|| provider.name.clone()),
                vault_key: format!("upstream:{namespace}"),
                namespace,
                client: self.client,
                vault: self.vault,
                base_scopes: self.base_scopes,
                scope_map: self.scope_map,
                subject: self.subject,
                quirks: self.quirks,
                http,
                margin: self.margin,
                clock: self.clock,
                flights: Mutex::default(),
            }),
        })
    }
}

struct Upstream {
    client: OAuthClient,
    vault: Arc<Vault>,
    display: String,
    namespace: String,
    /// The vault's provider name for these tokens.
    vault_key: String,
    base_scopes: Vec<String>,
    scope_map: HashMap<String, Vec<String>>,
    subject: SubjectSource,
    quirks: ProviderQuirks,
    http: Arc<dyn HttpClient>,
    margin: Duration,
    clock: Arc<dyn Clock>,
    /// One refresh per subject at a time in this process.
    flights: Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Signs people in through an upstream provider and keeps its tokens.
/// Give it to [`AuthServerBuilder::upstream`](crate::AuthServerBuilder::upstream);
/// tools then get tokens from
/// [`AuthServer::upstream_tokens`](crate::AuthServer::upstream_tokens).
#[derive(Clone)]
pub struct UpstreamLogin {
    inner: Arc<Upstream>,
}

impl std::fmt::Debug for UpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLogin")
            .field("provider", &self.inner.display)
            .field("namespace", &self.inner.namespace)
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}

impl UpstreamLogin {
    /// A login through `client`'s provider (its redirect URI must be the
    /// issuer's `{issuer}/login`), keeping tokens in `vault`.
    pub fn builder(client: OAuthClient, vault: Arc<Vault>) -> UpstreamLoginBuilder {
        UpstreamLoginBuilder {
            client,
            vault,
            display_name: None,
            namespace: None,
            base_scopes: Vec::new(),
            scope_map: HashMap::new(),
            subject: SubjectSource::IdToken,
            quirks: ProviderQuirks::default(),
            http: None,
            margin: DEFAULT_REFRESH_MARGIN,
            clock: Arc::new(SystemClock),
        }
    }

    /// The subject namespace (`{namespace}:{id}`).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The redirect URI registered with the provider (must be
    /// `{issuer}/login`).
    pub(crate) fn redirect_uri(&self) -> &str {
        self.inner.client.redirect_uri().as_str()
    }
}

mod login;
mod tokens;
pub use tokens::{UpstreamLayer, UpstreamService, UpstreamToken, UpstreamTokenSource};
