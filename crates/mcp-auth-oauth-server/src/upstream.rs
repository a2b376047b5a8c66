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
use crate::store::{AuthStore, Key};

/// How an upstream access token is refreshed ahead of its expiry by
/// default: when it has less than this left.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Longest wait for another process's refresh of the same user.
const FLEET_WAIT: Duration = Duration::from_secs(10);
/// A fleet refresh lock outlives a crashed holder by at most this.
const LOCK_TTL: u64 = 30;
/// Largest "who am I" answer read.
const MAX_USERINFO: usize = 64 * 1024;

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
pub struct Quirks {
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

impl Quirks {
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
    quirks: Quirks,
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
    pub fn quirks(mut self, quirks: Quirks) -> Self {
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
        let config = crate::ServerError::Upstream;
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
    quirks: Quirks,
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
            quirks: Quirks::default(),
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

impl Upstream {
    /// The mapped upstream scopes of `ours` (base scopes not included).
    fn mapped(&self, ours: &[String]) -> BTreeSet<String> {
        ours.iter()
            .filter_map(|s| self.scope_map.get(s))
            .flatten()
            .cloned()
            .collect()
    }

    async fn load(&self, subject: &UserId) -> Result<Option<Credential>, ()> {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        match tokio::task::spawn_blocking(move || vault.get(&subject, &key)).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    async fn store(&self, subject: &UserId, credential: Credential) -> Result<(), ()> {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        match tokio::task::spawn_blocking(move || vault.put(&subject, &key, &credential)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    async fn delete(&self, subject: &UserId) {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || vault.delete(&subject, &key)).await
        {
            tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
        }
    }

    fn usable(&self, credential: &Credential) -> bool {
        credential.refresh_token().is_some()
            || !credential.expires_within(self.clock.as_ref(), self.margin)
    }

    fn fresh(&self, credential: &Credential) -> bool {
        !credential.expires_within(self.clock.as_ref(), self.margin)
    }

    /// The person's subject from the new tokens.
    async fn subject_of(&self, tokens: &TokenSet) -> Result<UserId, LoginError> {
        let id = match &self.subject {
            SubjectSource::IdToken => {
                tokens
                    .subject()
                    .map(str::to_owned)
                    .ok_or(LoginError::Invalid(
                        "the provider's ID token names no subject",
                    ))?
            }
            SubjectSource::UserInfo { url, field } => {
                let request = http::Request::get(url.as_str())
                    .header(header::ACCEPT, "application/json")
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", tokens.access_token.expose_secret()),
                    )
                    .body(Vec::new())
                    .map_err(|_| LoginError::Unavailable)?;
                let response = self.http.send(request).await.map_err(|e| {
                    tracing::warn!(target: AUDIT, event = "upstream_userinfo_failed", reason = %e);
                    LoginError::Unavailable
                })?;
                if !response.status().is_success() {
                    tracing::warn!(target: AUDIT, event = "upstream_userinfo_failed", status = response.status().as_u16());
                    return Err(LoginError::Unavailable);
                }
                let value: serde_json::Value = serde_json::from_slice(response.body())
                    .map_err(|_| LoginError::Invalid("the provider's user-info answer"))?;
                match value.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(LoginError::Invalid("the provider's user-info answer")),
                }
            }
        };
        UserId::new(format!("{}:{id}", self.namespace))
            .map_err(|_| LoginError::Invalid("the provider's account id"))
    }
}

/// What the vault keeps of `tokens`: the refresh token, or `kept` when the
/// provider sent none.
fn credential(
    tokens: &TokenSet,
    scopes: impl IntoIterator<Item = String>,
    kept: Option<SecretString>,
) -> Credential {
    let mut credential = Credential::new(tokens.access_token.clone())
        .with_scopes(scopes)
        .with_token_type("Bearer");
    if let Some(exp) = tokens.expires_at {
        credential = credential.with_expires_at(exp);
    }
    if let Some(refresh) = tokens.refresh_token.clone().or(kept) {
        credential = credential.with_refresh_token(refresh);
    }
    credential
}

/// The vault's record as tokens to refresh or revoke.
fn token_set(held: &Credential) -> TokenSet {
    TokenSet::new(
        held.access_token().clone(),
        held.refresh_token().cloned(),
        held.expires_at(),
        held.scopes().to_vec(),
    )
}

fn login_error(error: &OAuthError) -> LoginError {
    match error {
        OAuthError::AuthorizationDenied { .. } => LoginError::Refused,
        OAuthError::Network(_)
        | OAuthError::PendingStoreUnavailable(_)
        | OAuthError::TooManyPending => LoginError::Unavailable,
        OAuthError::UnknownState | OAuthError::ExpiredState | OAuthError::MissingState => {
            LoginError::Invalid("the sign-in expired or was already used; start again")
        }
        OAuthError::IdToken(_) | OAuthError::MissingIdToken => {
            LoginError::Invalid("the provider's ID token was refused")
        }
        OAuthError::IssuerMismatch | OAuthError::MissingIssuer => {
            LoginError::Invalid("the answer did not come from the provider")
        }
        _ => LoginError::Invalid("the provider's answer"),
    }
}

fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = header::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

impl Login for UpstreamLogin {
    fn start(&self, context: LoginContext) -> BoxFuture<'_, Result<Response<Body>, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let mapped = up.mapped(&context.scopes);
            let on_file = match &context.subject {
                Some(subject) => up.load(subject).await.ok().flatten(),
                None => None,
            };
            let mut scopes: BTreeSet<String> = up.base_scopes.iter().cloned().collect();
            let mut extra: Vec<(String, String)> = up.quirks.authorize_params.clone();
            match &on_file {
                Some(held) if up.quirks.include_granted_scopes => {
                    // Only what is added; the provider keeps the rest.
                    let have: BTreeSet<&String> = held.scopes().iter().collect();
                    scopes.extend(mapped.into_iter().filter(|s| !have.contains(s)));
                    extra.push(("include_granted_scopes".into(), "true".into()));
                }
                Some(held) => {
                    scopes.extend(mapped);
                    scopes.extend(held.scopes().iter().cloned());
                }
                None => scopes.extend(mapped),
            }
            if up.quirks.prompt_consent_without_refresh_token
                && on_file.as_ref().is_none_or(|c| c.refresh_token().is_none())
            {
                extra.push(("prompt".into(), "consent".into()));
            }
            let scopes: Vec<String> = scopes.into_iter().collect();
            let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let extra_refs: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            // The binding carries our pending id and what was asked for
            // (sealed with the pending entry, never sent upstream).
            let binding = format!("{} {}", context.pending, scopes.join(" "));
            let request = up
                .client
                .start_sign_in(&binding, &scope_refs, &extra_refs)
                .await
                .map_err(|e| login_error(&e))?;
            Ok(see_other(&request.url))
        })
    }

    fn finish(
        &self,
        fields: HashMap<String, String>,
    ) -> BoxFuture<'_, Result<SignedIn, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter())
                .finish();
            let (binding, tokens) = up
                .client
                .finish_sign_in(&query)
                .await
                .map_err(|e| login_error(&e))?;
            let (pending, asked) = binding.split_once(' ').unwrap_or((binding.as_str(), ""));
            let subject = up.subject_of(&tokens).await?;
            let on_file = up
                .load(&subject)
                .await
                .map_err(|()| LoginError::Unavailable)?;
            let mut scopes: BTreeSet<String> = if tokens.scopes.is_empty() {
                // RFC 6749 section 5.1: no scope in the answer means as asked.
                asked
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            } else {
                tokens.scopes.iter().cloned().collect()
            };
            if up.quirks.include_granted_scopes
                && let Some(held) = &on_file
            {
                scopes.extend(held.scopes().iter().cloned());
            }
            // A provider that does not issue a new refresh token on every
            // sign-in (Google without a consent screen) keeps the one on file.
            let kept = on_file.as_ref().and_then(|c| c.refresh_token().cloned());
            let credential = credential(&tokens, scopes, kept);
            up.store(&subject, credential)
                .await
                .map_err(|()| LoginError::Unavailable)?;
            tracing::info!(target: AUDIT, event = "upstream_signed_in", provider = %up.display, subject = subject.as_str());
            Ok(SignedIn::new(pending.to_owned(), None, subject))
        })
    }

    fn consent_first(&self) -> bool {
        true
    }

    fn provider_name(&self) -> Option<&str> {
        Some(&self.inner.display)
    }

    fn covers<'a>(
        &'a self,
        subject: &'a UserId,
        scopes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let Some(held) = up
                .load(subject)
                .await
                .map_err(|()| LoginError::Unavailable)?
            else {
                return Ok(false);
            };
            let have: BTreeSet<&String> = held.scopes().iter().collect();
            Ok(up.usable(&held) && up.mapped(scopes).iter().all(|s| have.contains(s)))
        })
    }

    fn forget<'a>(&'a self, subject: &'a UserId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let up = &self.inner;
            if let Ok(Some(held)) = up.load(subject).await {
                let revocable = up.client.provider().revocation_endpoint.is_some()
                    && held.refresh_token().is_some();
                if revocable
                    && let Err(e) = up
                        .client
                        .revoke(&token_set(&held), TokenKind::Refresh)
                        .await
                {
                    tracing::warn!(target: AUDIT, event = "upstream_revoke_failed", provider = %up.display, subject = subject.as_str(), reason = %e);
                }
                up.delete(subject).await;
                tracing::info!(target: AUDIT, event = "upstream_forgotten", provider = %up.display, subject = subject.as_str());
            }
        })
    }

    fn forget_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let vault = self.inner.vault.clone();
            let users = tokio::task::spawn_blocking(move || vault.users())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for user in users {
                self.forget(&user).await;
            }
        })
    }
}

// ------------------------------------------------------------ for tools

/// Hands out upstream tokens: one [`UpstreamToken`] per signed-in user.
/// From [`AuthServer::upstream_tokens`](crate::AuthServer::upstream_tokens).
#[derive(Clone)]
pub struct UpstreamTokens {
    upstream: Arc<Upstream>,
    store: Arc<dyn AuthStore>,
    issuer: String,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("provider", &self.upstream.display)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl UpstreamTokens {
    pub(crate) fn new(login: &UpstreamLogin, store: Arc<dyn AuthStore>, issuer: String) -> Self {
        Self {
            upstream: login.inner.clone(),
            store,
            issuer,
        }
    }

    /// The handle for `subject` (a user this server signed in).
    pub fn for_user(&self, subject: &UserId) -> UpstreamToken {
        UpstreamToken {
            tokens: self.clone(),
            subject: subject.clone(),
        }
    }

    /// A layer that puts an [`UpstreamToken`] into the request's
    /// extensions next to the `Arc<AuthContext>` the resource server's
    /// authentication left there, when that token was issued by this
    /// authorization server (a token from another issuer, such as a
    /// development mint, gets no handle: its `sub` could name anyone).
    /// Add it inside the authentication layer.
    pub fn layer(&self) -> UpstreamLayer {
        UpstreamLayer {
            tokens: self.clone(),
        }
    }

    fn handle_for(&self, context: &AuthContext) -> Option<UpstreamToken> {
        let issued_here = context
            .claims
            .get("iss")
            .and_then(|v| v.as_str())
            .is_some_and(|iss| iss == self.issuer);
        issued_here.then(|| self.for_user(&context.user))
    }
}

/// See [`UpstreamTokens::layer`].
#[derive(Debug, Clone)]
pub struct UpstreamLayer {
    tokens: UpstreamTokens,
}

impl<S> tower::Layer<S> for UpstreamLayer {
    type Service = UpstreamService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UpstreamService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service of [`UpstreamLayer`].
#[derive(Debug, Clone)]
pub struct UpstreamService<S> {
    inner: S,
    tokens: UpstreamTokens,
}

impl<S, B> tower::Service<http::Request<B>> for UpstreamService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let handle = request
            .extensions()
            .get::<Arc<AuthContext>>()
            .and_then(|context| self.tokens.handle_for(context));
        if let Some(handle) = handle {
            request.extensions_mut().insert(handle);
        }
        self.inner.call(request)
    }
}

/// One user's upstream tokens, as a tool sees them. `Debug` shows the
/// subject only.
#[derive(Clone)]
pub struct UpstreamToken {
    tokens: UpstreamTokens,
    subject: UserId,
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamToken")
            .field("provider", &self.tokens.upstream.display)
            .field("subject", &self.subject)
            .finish()
    }
}

impl UpstreamToken {
    /// Whose tokens these are.
    pub fn subject(&self) -> &UserId {
        &self.subject
    }

    fn reconnect(&self) -> UpstreamError {
        UpstreamError::Reconnect {
            provider: self.tokens.upstream.display.clone(),
        }
    }

    fn unavailable(&self) -> UpstreamError {
        UpstreamError::Unavailable {
            provider: self.tokens.upstream.display.clone(),
        }
    }

    /// What is on file for this user; nothing is `Reconnect`.
    async fn held(&self) -> Result<Credential, UpstreamError> {
        self.tokens
            .upstream
            .load(&self.subject)
            .await
            .map_err(|()| self.unavailable())?
            .ok_or_else(|| self.reconnect())
    }

    /// An access token valid for at least the refresh margin, refreshed
    /// first when needed: one refresh per user at a time in this process,
    /// and across a fleet whose grant store is shared (a short lock in the
    /// store; a process that loses the race reads the refreshed token).
    pub async fn access_token(&self) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        let held = self.held().await?;
        if up.fresh(&held) {
            return Ok(held.access_token().clone());
        }
        self.refresh(None).await
    }

    /// The provider refused `rejected` (HTTP 401) although it had not
    /// expired by the clock: refresh once (unless another call already
    /// replaced it) and return the new token.
    pub async fn refresh_rejected(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, UpstreamError> {
        self.refresh(Some(rejected)).await
    }

    /// A token on file that is fresh and not the rejected one, if any.
    async fn settled(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<Option<SecretString>, UpstreamError> {
        let up = &self.tokens.upstream;
        let held = self.held().await?;
        let replaced = rejected.is_none_or(|r| {
            !mcp_auth_core::secrets_equal(
                r.expose_secret().as_bytes(),
                held.access_token().expose_secret().as_bytes(),
            )
        });
        Ok((up.fresh(&held) && replaced).then(|| held.access_token().clone()))
    }

    async fn refresh(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        let flight = up
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.subject.clone())
            .or_default()
            .clone();
        let _in_process = flight.lock().await;
        if let Some(token) = self.settled(rejected).await? {
            return Ok(token);
        }
        // Across the fleet: one holder of the lock refreshes; the others
        // wait for its result in the vault.
        let store = &self.tokens.store;
        let lock = Key::of(&format!(
            "upstream-refresh\0{}\0{}",
            up.namespace,
            self.subject.as_str()
        ));
        let mut holder = [0u8; 16];
        getrandom::fill(&mut holder).map_err(|_| self.unavailable())?;
        let holder = data_encoding::HEXLOWER.encode(&holder);
        let deadline = tokio::time::Instant::now() + FLEET_WAIT;
        loop {
            let now = up.clock.unix_seconds();
            match store.try_lock(lock, &holder, now, LOCK_TTL).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(_) => return Err(self.unavailable()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.unavailable());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(token) = self.settled(rejected).await? {
                return Ok(token);
            }
        }
        let result = self.refresh_locked(rejected).await;
        let _ = store.unlock(lock, &holder).await;
        result
    }

    async fn refresh_locked(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        // Another process may have refreshed just before the lock was ours.
        if let Some(token) = self.settled(rejected).await? {
            return Ok(token);
        }
        let held = self.held().await?;
        match up.client.refresh(&self.subject, &token_set(&held)).await {
            Ok(fresh) => {
                let credential = credential(&fresh, fresh.scopes.iter().cloned(), None);
                up.store(&self.subject, credential)
                    .await
                    .map_err(|()| self.unavailable())?;
                tracing::info!(target: AUDIT, event = "upstream_refreshed", provider = %up.display, subject = self.subject.as_str());
                Ok(fresh.access_token)
            }
            Err(e) if e.requires_sign_in() => {
                // The provider says the refresh token is dead: forget it and
                // end this user's grants, so the client signs in again.
                up.delete(&self.subject).await;
                let now = up.clock.unix_seconds();
                let mut revoked = 0;
                if let Ok(grants) = self.tokens.store.grants_of(&self.subject, now).await {
                    for grant in grants {
                        revoked += usize::from(
                            self.tokens
                                .store
                                .revoke_grant(&grant.id)
                                .await
                                .unwrap_or(false),
                        );
                    }
                }
                tracing::warn!(target: AUDIT, event = "upstream_reconnect_required", provider = %up.display, subject = self.subject.as_str(), grants_revoked = revoked);
                Err(self.reconnect())
            }
            Err(e) => {
                tracing::warn!(target: AUDIT, event = "upstream_refresh_failed", provider = %up.display, subject = self.subject.as_str(), reason = %e);
                Err(self.unavailable())
            }
        }
    }
}
