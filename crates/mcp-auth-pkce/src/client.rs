//! The client: start a sign-in, finish it at the callback, refresh, revoke.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_core::{Clock, ConfigProblem, ConfigProblems, SystemClock, UserId};
use mcp_auth_http::{HttpClient, HttpError, OutboundClient};
use mcp_auth_jwks::{ClaimRule, JwksCache, Policy, Validator};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::pending::{PendingAuthorization, PendingKey, PendingStore};
use crate::{
    CallbackParams, CodeVerifier, MemoryPendingStore, NetworkError, Nonce, OAuthError, Provider,
    RedirectUri, StateToken, TokenSet,
};

/// Default lifetime of a pending sign-in: 10 minutes.
pub const DEFAULT_PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Largest token-endpoint response read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const AUDIT: &str = "mcp_auth::audit";

/// The ID token travels next to the standard fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenFields {}

type TokenResponseBody = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type Oauth2Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponseBody,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// The browser redirect that starts a sign-in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// Where to send the user.
    pub url: String,
}

/// Which token [`OAuthClient::revoke`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token (revoking it usually ends the whole grant).
    Refresh,
}

type RefreshResult = Option<Result<TokenSet, OAuthError>>;

/// An OAuth 2.0 authorization-code + PKCE client for one provider and many
/// users. Build with [`OAuthClient::builder`].
pub struct OAuthClient {
    provider: Provider,
    oauth: Oauth2Client,
    http: Arc<dyn HttpClient>,
    redirect_uri: RedirectUri,
    pending: Arc<dyn PendingStore>,
    pending_lifetime: Duration,
    jwks: Option<JwksCache>,
    client_secret: Option<SecretString>,
    clock: Arc<dyn Clock>,
    refreshing: Arc<Mutex<HashMap<UserId, watch::Receiver<RefreshResult>>>>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider.name)
            .field("client_id", &self.oauth.client_id().as_str())
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Builder for [`OAuthClient`].
#[must_use = "a builder does nothing until it is built"]
pub struct OAuthClientBuilder {
    provider: Provider,
    client_id: String,
    client_secret: Option<SecretString>,
    redirect_uri: RedirectUri,
    pending: Option<Arc<dyn PendingStore>>,
    pending_lifetime: Duration,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    http: Option<Arc<dyn HttpClient>>,
}

impl std::fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientBuilder")
            .field("provider", &self.provider.name)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| mcp_auth_core::REDACTED),
            )
            .finish_non_exhaustive()
    }
}

impl OAuthClientBuilder {
    /// The client secret (confidential clients).
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Where pending sign-ins live (default: [`MemoryPendingStore`]).
    pub fn pending_store(mut self, store: Arc<dyn PendingStore>) -> Self {
        self.pending = Some(store);
        self
    }

    /// How long a sign-in may take (default 10 minutes).
    pub fn pending_lifetime(mut self, lifetime: Duration) -> Self {
        self.pending_lifetime = lifetime;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Timeout of each request to the provider (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the token, refresh and revocation requests (and fetches the
    /// provider's keys) through `http` instead of the default
    /// [`OutboundClient`] (this builder's timeout, 1 MiB cap). Tests give a
    /// fake.
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Validates the endpoints and builds the client.
    pub fn build(self) -> Result<OAuthClient, OAuthError> {
        let mut problems = ConfigProblems::new();
        let url = |what: &'static str, value: &str, problems: &mut ConfigProblems| {
            let ok = url::Url::parse(value).is_ok_and(|u| {
                u.scheme() == "https"
                    || (u.scheme() == "http"
                        && u.host_str().is_some_and(mcp_auth_core::is_loopback_ip))
            });
            if !ok {
                problems.push(ConfigProblem::new(
                    what,
                    format!("{value:?} must be an https URL (http only on a loopback IP)"),
                ));
            }
        };
        url(
            "authorization endpoint",
            &self.provider.authorization_endpoint,
            &mut problems,
        );
        url(
            "token endpoint",
            &self.provider.token_endpoint,
            &mut problems,
        );
        if let Some(r) = &self.provider.revocation_endpoint {
            url("revocation endpoint", r, &mut problems);
        }
        if let Some(j) = &self.provider.jwks_uri {
            url("jwks_uri", j, &mut problems);
            if self.provider.issuer.is_none() {
                problems.push(ConfigProblem::new(
                    "issuer",
                    "an OpenID Connect provider needs an issuer",
                ));
            }
        }
        if self.client_id.is_empty() {
            problems.push(ConfigProblem::new("client id", "is empty"));
        }
        if !problems.is_empty() {
            return Err(OAuthError::Config(problems));
        }
        let config = |e: &dyn std::fmt::Display| {
            OAuthError::Config(ConfigProblem::new("endpoint", e.to_string()).into())
        };
        let mut oauth = oauth2::Client::new(ClientId::new(self.client_id))
            .set_auth_uri(
                AuthUrl::new(self.provider.authorization_endpoint.clone())
                    .map_err(|e| config(&e))?,
            )
            .set_token_uri(
                TokenUrl::new(self.provider.token_endpoint.clone()).map_err(|e| config(&e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.as_str().to_owned()).map_err(|e| config(&e))?,
            )
            .set_revocation_url_option(
                self.provider
                    .revocation_endpoint
                    .clone()
                    .map(RevocationUrl::new)
                    .transpose()
                    .map_err(|e| config(&e))?,
            );
        if let Some(secret) = &self.client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        let http: Arc<dyn HttpClient> = match self.http {
            Some(http) => http,
            None => Arc::new(
                OutboundClient::builder()
                    .timeout(self.timeout)
                    .max_response(MAX_RESPONSE_BYTES)
                    .build()
                    .map_err(|e| {
                        OAuthError::Config(ConfigProblem::new("HTTP client", e.to_string()).into())
                    })?,
            ),
        };
        let jwks = match &self.provider.jwks_uri {
            Some(uri) => Some(
                JwksCache::builder(uri.clone())
                    .http(http.clone())
                    .clock(self.clock.clone())
                    .build()
                    .map_err(|e| {
                        OAuthError::Config(ConfigProblem::new("jwks_uri", e.to_string()).into())
                    })?,
            ),
            None => None,
        };
        Ok(OAuthClient {
            provider: self.provider,
            oauth,
            http,
            redirect_uri: self.redirect_uri,
            pending: self
                .pending
                .unwrap_or_else(|| Arc::new(MemoryPendingStore::default())),
            pending_lifetime: self.pending_lifetime,
            jwks,
            client_secret: self.client_secret,
            clock: self.clock,
            refreshing: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

/// The workspace's HTTP seam as oauth2's [`oauth2::AsyncHttpClient`]
/// (the request and response types are the same `http` types).
struct Http<'a>(&'a dyn HttpClient);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = HttpError;
    type Future = mcp_auth_core::BoxFuture<'c, Result<oauth2::HttpResponse, HttpError>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        self.0.send(request)
    }
}

fn token_error(error: RequestTokenError<HttpError, BasicErrorResponse>) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::ReauthenticationRequired,
            other => OAuthError::TokenEndpoint(other.to_string()),
        },
        RequestTokenError::Request(e) => OAuthError::Network(e.into()),
        // The body may hold tokens: never quote it.
        RequestTokenError::Parse(..) => {
            OAuthError::Network(NetworkError::Unexpected("unparseable token response"))
        }
        RequestTokenError::Other(_) => {
            OAuthError::Network(NetworkError::Unexpected("unexpected token response"))
        }
    }
}

/// The placeholder user of a sign-in whose user the provider names.
#[allow(clippy::expect_used)] // a constant, valid user id
fn sign_in_user() -> UserId {
    UserId::new("_sign-in").expect("a valid user id")
}

fn trimmed(text: Option<String>) -> Option<String> {
    text.map(|t| t.chars().take(200).collect())
}

impl OAuthClient {
    /// A client for `provider` registered as `client_id` with `redirect_uri`.
    pub fn builder(
        provider: Provider,
        client_id: impl Into<String>,
        redirect_uri: RedirectUri,
    ) -> OAuthClientBuilder {
        OAuthClientBuilder {
            provider,
            client_id: client_id.into(),
            client_secret: None,
            redirect_uri,
            pending: None,
            pending_lifetime: DEFAULT_PENDING_LIFETIME,
            clock: Arc::new(SystemClock),
            timeout: Duration::from_secs(10),
            http: None,
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The redirect URI this client is registered with.
    pub fn redirect_uri(&self) -> &RedirectUri {
        &self.redirect_uri
    }

    /// Starts a sign-in for `user`: remembers a pending authorization (state,
    /// PKCE verifier, nonce) and returns the URL to redirect the browser to.
    /// `scopes` empty means the provider's defaults; `extra` adds parameters
    /// (e.g. `access_type=offline`, `prompt=consent`).
    pub async fn start(
        &self,
        user: &UserId,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<AuthorizationRequest, OAuthError> {
        self.begin(user.clone(), None, scopes, extra).await
    }

    /// Starts a sign-in for someone the provider has yet to name (a login
    /// through the provider): `binding` is the caller's own handle on the
    /// browser's request (an authorization server's pending request id),
    /// sealed with the pending entry, never logged, and handed back by
    /// [`finish_sign_in`](Self::finish_sign_in). The caller must check that
    /// the browser which comes back is the one `binding` belongs to.
    pub async fn start_sign_in(
        &self,
        binding: &str,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<AuthorizationRequest, OAuthError> {
        self.begin(sign_in_user(), Some(binding.to_owned()), scopes, extra)
            .await
    }

    async fn begin(
        &self,
        user: UserId,
        binding: Option<String>,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<AuthorizationRequest, OAuthError> {
        let state = StateToken::generate()?;
        let verifier = CodeVerifier::generate()?;
        let nonce = if self.provider.is_openid() {
            Some(Nonce::generate()?)
        } else {
            None
        };
        let pkce = PkceCodeVerifier::new(verifier.secret().to_owned());
        let state_value = state.as_str().to_owned();
        let mut request = self
            .oauth
            .authorize_url(move || CsrfToken::new(state_value))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&pkce));
        let scopes: Vec<String> = if scopes.is_empty() {
            self.provider.default_scopes.clone()
        } else {
            scopes.iter().map(|s| (*s).to_owned()).collect()
        };
        request = request.add_scopes(scopes.into_iter().map(Scope::new));
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.as_str().to_owned());
        }
        for (name, value) in extra {
            request = request.add_extra_param((*name).to_owned(), (*value).to_owned());
        }
        let (url, _) = request.url();
        let now = self.clock.unix_seconds();
        tracing::info!(target: AUDIT, event = "oauth_start", provider = %self.provider.name, user = user.as_str());
        let pending = PendingAuthorization {
            user,
            verifier,
            nonce,
            expected_issuer: self.provider.issuer.clone(),
            created_at: now,
            binding,
        };
        let key = PendingKey::for_state(state.as_str());
        self.pending
            .insert(&key, pending, now, self.pending_lifetime.as_secs())
            .await?;
        Ok(AuthorizationRequest {
            url: url.to_string(),
        })
    }

    /// Finishes a sign-in [`start_sign_in`](Self::start_sign_in) began, from
    /// the callback's query string: the same checks as
    /// [`callback`](Self::callback), and the binding given at the start.
    /// A callback for a sign-in started with [`start`](Self::start) is
    /// refused ([`OAuthError::StateUserMismatch`]).
    pub async fn finish_sign_in(&self, query: &str) -> Result<(String, TokenSet), OAuthError> {
        self.finish_sign_in_checked(query, |_| std::future::ready(true))
            .await
    }

    /// [`finish_sign_in`](Self::finish_sign_in), asking `check` about the
    /// binding before anything is sent to the provider: a callback whose
    /// binding `check` refuses (it came back in another browser than the
    /// one that started, RFC 9700 §4.7.1) is
    /// [`OAuthError::StateUserMismatch`] and the code is never redeemed.
    /// The state is used up either way.
    pub async fn finish_sign_in_checked<F, Fut>(
        &self,
        query: &str,
        check: F,
    ) -> Result<(String, TokenSet), OAuthError>
    where
        F: FnOnce(&str) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let result = self.exchange(None, query, check).await;
        match &result {
            Ok(_) => {
                tracing::info!(target: AUDIT, event = "oauth_signed_in", provider = %self.provider.name)
            }
            Err(e) => {
                tracing::warn!(target: AUDIT, event = "oauth_callback_refused", provider = %self.provider.name, reason = %e)
            }
        }
        result
    }

    /// Finishes a sign-in from the callback's query string, for the `user`
    /// whose browser came back (their session). Checks, in order: state
    /// present, known, unused, unexpired and `user`'s; provider error;
    /// RFC 9207 `iss`; then exchanges the code with the PKCE verifier and,
    /// for OpenID Connect, validates the ID token (signature via JWKS, iss,
    /// aud, exp, nonce).
    pub async fn callback(&self, user: &UserId, query: &str) -> Result<TokenSet, OAuthError> {
        let result = self
            .exchange(Some(user), query, |_| std::future::ready(true))
            .await
            .map(|(_, tokens)| tokens);
        match &result {
            Ok(_) => {
                tracing::info!(target: AUDIT, event = "oauth_signed_in", provider = %self.provider.name, user = user.as_str())
            }
            Err(e) => {
                tracing::warn!(target: AUDIT, event = "oauth_callback_refused", provider = %self.provider.name, user = user.as_str(), reason = %e)
            }
        }
        result
    }

    /// The callback's checks and the code exchange. `user` is the browser's
    /// user for [`callback`](Self::callback); `None` for a sign-in started
    /// with [`start_sign_in`](Self::start_sign_in) (its binding is returned).
    async fn exchange<F, Fut>(
        &self,
        user: Option<&UserId>,
        query: &str,
        check: F,
    ) -> Result<(String, TokenSet), OAuthError>
    where
        F: FnOnce(&str) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let params = CallbackParams::parse(query)?;
        let state = params.state.as_deref().ok_or(OAuthError::MissingState)?;
        // Single use: the entry is gone from here on, whatever happens next.
        let key = PendingKey::for_state(state);
        let pending = self
            .pending
            .take(&key)
            .await?
            .ok_or(OAuthError::UnknownState)?;
        let now = self.clock.unix_seconds();
        if now
            >= pending
                .created_at
                .saturating_add(self.pending_lifetime.as_secs())
        {
            return Err(OAuthError::ExpiredState);
        }
        let binding = match (user, pending.binding) {
            (Some(user), None) if &pending.user == user => String::new(),
            (None, Some(binding)) => binding,
            _ => return Err(OAuthError::StateUserMismatch),
        };
        if !check(&binding).await {
            return Err(OAuthError::StateUserMismatch);
        }
        if let Some(error) = params.error {
            return Err(OAuthError::AuthorizationDenied {
                error: error.chars().take(64).collect(),
                description: trimmed(params.error_description),
            });
        }
        match (&params.iss, &pending.expected_issuer) {
            // RFC 9207 section 2.4: exact string comparison.
            (Some(iss), Some(expected)) if iss != expected => {
                return Err(OAuthError::IssuerMismatch);
            }
            (Some(_), None) => return Err(OAuthError::IssuerMismatch),
            (None, Some(_)) if self.provider.iss_parameter_supported => {
                return Err(OAuthError::MissingIssuer);
            }
            _ => {}
        }
        let code = params.code.ok_or(OAuthError::MissingCode)?;
        let verifier = PkceCodeVerifier::new(pending.verifier.secret().to_owned());
        let http = Http(self.http.as_ref());
        let response = self
            .oauth
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .map_err(token_error)?;
        let mut tokens = self.token_set(&response, None);
        if self.provider.is_openid() {
            let id_token = response
                .extra_fields()
                .id_token
                .as_deref()
                .ok_or(OAuthError::MissingIdToken)?;
            tokens.id_token_claims = Some(
                self.validate_id_token(id_token, pending.nonce.as_ref())
                    .await?,
            );
        }
        Ok((binding, tokens))
    }

    async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: Option<&Nonce>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
        let (Some(jwks), Some(issuer)) = (&self.jwks, &self.provider.issuer) else {
            return Err(OAuthError::IdToken("no-jwks"));
        };
        let mut policy = Policy::new(issuer.clone(), self.oauth.client_id().as_str());
        if let Some(nonce) = nonce {
            policy = policy.rule(ClaimRule::equals("nonce", nonce.as_str()));
        }
        let validator = Validator::new(policy, jwks.clone()).clock(self.clock.clone());
        let verified = validator.validate(id_token).await.map_err(|e| {
            OAuthError::IdToken(if e.rule() == "claim-rule" {
                "nonce"
            } else {
                e.rule()
            })
        })?;
        Ok(verified.claims().clone())
    }

    fn token_set(&self, response: &TokenResponseBody, previous: Option<&TokenSet>) -> TokenSet {
        let now = self.clock.unix_seconds();
        TokenSet {
            access_token: SecretString::from(response.access_token().secret().to_owned()),
            // Keep the old refresh token when the provider does not rotate it.
            refresh_token: response
                .refresh_token()
                .map(|r| SecretString::from(r.secret().to_owned()))
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: response
                .expires_in()
                .map(|d| now.saturating_add(d.as_secs())),
            scopes: response
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .or_else(|| previous.map(|p| p.scopes.clone()))
                .unwrap_or_default(),
            id_token_claims: previous.and_then(|p| p.id_token_claims.clone()),
        }
    }

    /// Refreshes `current` for `user`. Concurrent calls for the same user
    /// share one request to the provider (single flight) and all get its
    /// result. `invalid_grant` gives [`OAuthError::ReauthenticationRequired`];
    /// a network failure gives [`OAuthError::Network`].
    pub async fn refresh(&self, user: &UserId, current: &TokenSet) -> Result<TokenSet, OAuthError> {
        enum Role {
            Leader(watch::Sender<RefreshResult>),
            Follower(watch::Receiver<RefreshResult>),
        }
        let role = {
            let mut flights = self
                .refreshing
                .lock()
                .map_err(|_| OAuthError::Network(NetworkError::RefreshAbandoned))?;
            match flights.get(user) {
                Some(rx) => Role::Follower(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(user.clone(), rx);
                    Role::Leader(tx)
                }
            }
        };
        match role {
            Role::Follower(mut rx) => {
                let result = rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| OAuthError::Network(NetworkError::RefreshAbandoned))?;
                result
                    .clone()
                    .unwrap_or(Err(OAuthError::Network(NetworkError::RefreshAbandoned)))
            }
            Role::Leader(tx) => {
                // Removes the in-flight entry even if this future is dropped.
                struct Landing<'a>(
                    &'a Mutex<HashMap<UserId, watch::Receiver<RefreshResult>>>,
                    &'a UserId,
                );
                impl Drop for Landing<'_> {
                    fn drop(&mut self) {
                        if let Ok(mut flights) = self.0.lock() {
                            flights.remove(self.1);
                        }
                    }
                }
                let _landing = Landing(&self.refreshing, user);
                let result = self.refresh_once(current).await;
                match &result {
                    Ok(_) => {
                        tracing::info!(target: AUDIT, event = "oauth_refreshed", provider = %self.provider.name, user = user.as_str())
                    }
                    Err(e) => {
                        tracing::warn!(target: AUDIT, event = "oauth_refresh_failed", provider = %self.provider.name, user = user.as_str(), reason = %e)
                    }
                }
                let _ = tx.send(Some(result.clone()));
                result
            }
        }
    }

    async fn refresh_once(&self, current: &TokenSet) -> Result<TokenSet, OAuthError> {
        let refresh = current
            .refresh_token
            .as_ref()
            .ok_or(OAuthError::NoRefreshToken)?;
        let refresh = RefreshToken::new(refresh.expose_secret().to_owned());
        let http = Http(self.http.as_ref());
        let response = self
            .oauth
            .exchange_refresh_token(&refresh)
            .request_async(&http)
            .await
            .map_err(token_error)?;
        Ok(self.token_set(&response, Some(current)))
    }

    /// Refreshes when the access token expires within `margin`; returns
    /// `None` when it is still good.
    pub async fn refresh_if_expiring(
        &self,
        user: &UserId,
        current: &TokenSet,
        margin: Duration,
    ) -> Result<Option<TokenSet>, OAuthError> {
        if current.expires_within(&*self.clock, margin.as_secs()) {
            self.refresh(user, current).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Revokes a token at the provider (RFC 7009). Sent directly rather than
    /// through oauth2, whose revocation request refuses non-https endpoints
    /// even on loopback.
    pub async fn revoke(&self, tokens: &TokenSet, kind: TokenKind) -> Result<(), OAuthError> {
        let endpoint = self
            .provider
            .revocation_endpoint
            .as_deref()
            .ok_or(OAuthError::RevocationUnsupported)?;
        let (token, hint) = match kind {
            TokenKind::Access => (&tokens.access_token, "access_token"),
            TokenKind::Refresh => (
                tokens
                    .refresh_token
                    .as_ref()
                    .ok_or(OAuthError::NoRefreshToken)?,
                "refresh_token",
            ),
        };
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let client_id = self.oauth.client_id().as_str();
        let mut body = format!(
            "token={}&token_type_hint={hint}",
            enc(token.expose_secret())
        );
        let mut request = http::Request::post(endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        match &self.client_secret {
            // RFC 6749 section 2.3.1: form-encode, then Basic.
            Some(secret) => {
                let credentials = zeroize::Zeroizing::new(format!(
                    "{}:{}",
                    enc(client_id),
                    enc(secret.expose_secret())
                ));
                let basic = data_encoding::BASE64.encode(credentials.as_bytes());
                request = request.header("authorization", format!("Basic {basic}"));
            }
            None => body.push_str(&format!("&client_id={}", enc(client_id))),
        }
        let request = request.body(body.into_bytes()).map_err(|_| {
            OAuthError::Network(NetworkError::Unexpected(
                "the revocation endpoint is not a valid URL",
            ))
        })?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| OAuthError::Network(e.into()))?;
        let status = response.status();
        if status.is_success() {
            tracing::info!(target: AUDIT, event = "oauth_revoked", provider = %self.provider.name);
            return Ok(());
        }
        let code = serde_json::from_slice::<serde_json::Value>(response.body())
            .ok()
            .and_then(|v| {
                v.get("error")
                    .and_then(|e| e.as_str())
                    .map(|e| e.chars().take(64).collect::<String>())
            });
        Err(match code {
            Some(code) if status.is_client_error() => OAuthError::TokenEndpoint(code),
            _ => OAuthError::Network(NetworkError::Status(status.as_u16())),
        })
    }
}
