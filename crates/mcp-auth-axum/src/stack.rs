//! Everything assembled: [`McpAuth`] wraps an MCP service into a router.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use mcp_auth_jwks::Validator;
use mcp_auth_ratelimit::RateLimiter;
use tower::Service;

use crate::bearer::BearerAuth;
use crate::headers::OriginPolicy;
use crate::pipeline::{RequestFacts, Step};
use crate::ratelimit::{KnownTools, RateLimit};
use crate::session::SessionBinding;
use crate::{
    CachedVerifier, ConfigError, CorsConfig, McpSessions, ResourceConfig, SecurityHeaders,
    TokenVerifier, VerificationLimit, metadata_router,
};

/// The whole resource-server stack around one MCP endpoint.
///
/// ```text
/// request ─▶ security headers ─▶ CORS ─▶ /.well-known/oauth-protected-resource[/path]  (open)
///                                     └▶ <resource path>: Origin ─▶ bearer auth ─▶ rate limit ─▶ session binding ─▶ MCP service
/// ```
///
/// On the MCP route, a request whose `Origin` header is present and is
/// neither the resource's own origin nor in the [`CorsConfig`] allow-list
/// is refused with 403 before anything else (MCP transport, DNS rebinding),
/// and every response carries `Cache-Control: no-store`, whatever the MCP
/// service set: tool results are private to the caller.
#[derive(Debug, Clone)]
pub struct McpAuth {
    config: Arc<ResourceConfig>,
    verifier: Arc<dyn TokenVerifier>,
    limiter: Option<Arc<dyn RateLimiter>>,
    sessions: Option<McpSessions>,
    cors: CorsConfig,
    verification_limit: Option<VerificationLimit>,
    known: KnownTools,
}

impl McpAuth {
    /// A stack for `config` that verifies tokens with `verifier`, as it is
    /// (no cache is added: wrap it in a [`CachedVerifier`] for one).
    ///
    /// The verifier's issuer and audience, when it reports them
    /// ([`TokenVerifier::issuer`], [`TokenVerifier::audience`]), must agree
    /// with the configuration: the issuer one of the configured
    /// authorization servers ([`ConfigError::IssuerMismatch`]), the audience
    /// the configured resource ([`ConfigError::AudienceMismatch`]).
    /// Otherwise the metadata would point clients at one server while
    /// tokens of another, or for another resource, are accepted. Build the
    /// verifier from the configuration ([`ResourceConfig::policy`],
    /// [`ResourceConfig::introspection`]) and they agree by construction.
    pub fn new(
        config: ResourceConfig,
        verifier: Arc<dyn TokenVerifier>,
    ) -> Result<Self, ConfigError> {
        if let Some(issuer) = verifier.issuer()
            && !config.authorization_servers().iter().any(|s| s == issuer)
        {
            return Err(ConfigError::IssuerMismatch {
                verifier: issuer.to_owned(),
                configured: config.authorization_servers().to_vec(),
            });
        }
        if let Some(audience) = verifier.audience()
            && audience != config.resource()
        {
            return Err(ConfigError::AudienceMismatch {
                verifier: audience.to_owned(),
                resource: config.resource().to_owned(),
            });
        }
        Ok(Self {
            config: Arc::new(config),
            verifier,
            limiter: None,
            sessions: None,
            cors: CorsConfig::default(),
            verification_limit: None,
            known: KnownTools::default(),
        })
    }

    /// A stack verifying JWT access tokens with `validator` (build its
    /// policy with [`ResourceConfig::policy`]), behind a [`CachedVerifier`]
    /// with its defaults: a token seen in the last 60 s (10,000 tokens at
    /// most) is not checked again, so a key withdrawn from the JWKS stops
    /// working up to 60 s later. For another size or lifetime, or no
    /// cache, use [`McpAuth::new`] with `CachedVerifier::new(validator)`
    /// configured, or with the bare validator.
    pub fn with_jwks(config: ResourceConfig, validator: Validator) -> Result<Self, ConfigError> {
        Self::new(config, Arc::new(CachedVerifier::new(validator)))
    }

    /// A stack verifying opaque access tokens by RFC 7662 introspection
    /// with `verifier` (build it with [`ResourceConfig::introspection`]),
    /// behind a [`CachedVerifier`] with its defaults (10,000 tokens, 60 s:
    /// a token revoked at the authorization server stays accepted here for
    /// at most that long).
    pub fn with_introspection(
        config: ResourceConfig,
        verifier: mcp_auth_token::IntrospectionVerifier,
    ) -> Result<Self, ConfigError> {
        Self::new(config, Arc::new(CachedVerifier::new(verifier)))
    }

    /// Rate-limits authenticated requests with `limiter`.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Charges each real token verification (not a cache hit) to the
    /// client's address, refusing with 429 over the budget: see
    /// [`VerificationLimit`]. Off by default.
    pub fn verification_limit(mut self, limit: VerificationLimit) -> Self {
        self.verification_limit = Some(limit);
        self
    }

    /// The server's tool names, as its `tools/list` gives them (with rmcp:
    /// `tool_router.list_all().iter().map(|t| t.name.to_string())`). A call
    /// of any other tool is charged to the rate limiter's shared overflow
    /// bucket, so invented names cannot fill the limiter's bounded table of
    /// tool names and push real tools into that bucket. Without this (and
    /// without `Limits::known_tools`), the first names seen get buckets of
    /// their own, whoever sends them; [`McpAuth::into_router`] logs a
    /// warning in that case.
    #[must_use]
    pub fn tools<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.known = KnownTools::new(names);
        self
    }

    /// Binds MCP sessions to their subject through `sessions`: needed when
    /// the MCP service keeps sessions (rmcp's default, stateful mode). Each
    /// `Mcp-Session-Id` the service issues is swapped for the id of an
    /// `mcp-auth-session` session holding {user, client, the service's
    /// id}, and every later request must come with a token of that user
    /// and client (else 404).
    ///
    /// Without it, a response carrying an `Mcp-Session-Id` is refused with
    /// 500 and an `unbound_session_refused` audit event: a session id bound
    /// to nobody would let anyone with any valid token continue it. With a
    /// stateless MCP service (rmcp: `legacy_session_mode: false`), no id is
    /// issued and this is not needed; if set anyway it costs nothing on
    /// requests without the header.
    pub fn sessions(mut self, sessions: McpSessions) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Which browser origins may call the server (default: none).
    pub fn cors(mut self, cors: CorsConfig) -> Self {
        self.cors = cors;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ResourceConfig {
        &self.config
    }

    /// The router serving `mcp` at the resource path behind every layer, and
    /// the metadata documents in the open.
    pub fn into_router<S>(self, mcp: S) -> Result<Router, ConfigError>
    where
        S: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let cors = self.cors.layer()?;
        let own_origin = url::Url::parse(self.config.resource())
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        let origins = OriginPolicy::new(&self.cors, &own_origin)?;
        if let Some(limiter) = &self.limiter
            && !self.known.is_known()
            && limiter.limits().tool_names().is_none()
            && limiter.limits().has_tool_tier()
        {
            tracing::warn!(
                target: crate::audit::TARGET,
                "McpAuth: the rate limiter has per-tool limits but the server's tool names are \
                 unknown (McpAuth::tools or Limits::known_tools): invented tool names can \
                 take the place of real tools in its table"
            );
        }
        let headers = SecurityHeaders::new(self.config.hsts);
        let mut bearer = BearerAuth::new(self.config.clone(), self.verifier);
        if let Some(limit) = self.verification_limit {
            bearer = bearer.verification_limit(limit);
        }
        let rate_limit = self.limiter.map(|limiter| {
            let step = RateLimit::new(limiter);
            match self.known.names() {
                Some(names) => step.tools(names.iter().cloned()),
                None => step,
            }
        });
        // The steps the separate layers run, in sequence in one service and
        // one future: the router boxes the result once.
        let service = Pipeline {
            steps: Arc::new(Steps {
                origin: origins,
                bearer,
                rate_limit,
                session: self.sessions.map(SessionBinding::new),
                headers,
            }),
            inner: Shared(Arc::new(mcp)),
        };
        // Unknown paths get a 404 with the same headers.
        let not_found = tower::Layer::layer(
            &headers.layer(),
            tower::service_fn(|_: Request<Body>| async {
                Ok::<_, Infallible>(axum::http::StatusCode::NOT_FOUND.into_response())
            }),
        );
        // The MCP route is added after the header layer (it sets its own)
        // and not through `Router::merge`, which would box it a second time
        // (one more clone and one more future per request).
        let mut router = headers
            .apply(metadata_router(&self.config))
            .route_service(self.config.resource_path(), service)
            .fallback_service(not_found);
        if let Some(cors) = cors {
            router = router.layer(cors);
        }
        Ok(router)
    }
}

/// The steps of the MCP route, in their one order.
struct Steps {
    origin: OriginPolicy,
    bearer: BearerAuth,
    rate_limit: Option<RateLimit>,
    session: Option<SessionBinding>,
    headers: SecurityHeaders,
}

/// Goes on with what a step let through, or returns the answer it gave
/// (closing the connection when the request's body may be unread).
macro_rules! pass {
    ($step:expr, $body:expr) => {
        match $step.await {
            Ok(passed) => passed,
            Err(answer) => return crate::pipeline::close_if_body_unread(answer, $body),
        }
    };
}

impl Steps {
    /// A bearer token's walk through the stack, top to bottom.
    async fn run<S>(&self, request: Request<Body>, mut inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Error = Infallible>,
        S::Response: IntoResponse,
    {
        let mut facts = RequestFacts::default();
        let body = crate::pipeline::carries_body(&request);
        // 1. A browser page from an origin we do not serve: 403 (DNS rebinding).
        let (request, ()) = pass!(self.origin.before(request, &mut facts), body);
        // 2. The token (one `Authorization: Bearer`, verified, for this
        //    resource), the JSON-RPC body (read once, capped, `Mcp-Name`
        //    checked) and the scopes it needs: 400 / 401 / 403 / 413 / 503.
        let (request, ()) = pass!(self.bearer.before(request, &mut facts), body);
        // 3. Rate limits: per user, per (user, tool), batches all or nothing.
        let (request, _) = pass!(self.rate_limit.before(request, &mut facts), body);
        // 4. The MCP session must be this subject's and this client's.
        let (request, session) = pass!(self.session.before(request, &mut facts), body);
        // 5. The MCP server.
        let response = match inner.call(request).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        };
        // 4'. A session the server opened is bound to the subject; without
        //     session binding, a session id the server issues is refused.
        match &self.session {
            Some(_) => self.session.after(session, response).await,
            None => refuse_unbound_session(response),
        }
    }
}

/// Without [`McpAuth::sessions`], an MCP service that issues an
/// `Mcp-Session-Id` (rmcp's stateful mode) would hand out session ids that
/// are bound to nobody: anyone holding one, with any valid token, could
/// continue the session. The response is replaced by a 500 that says what
/// to change, and the id never reaches the client.
fn refuse_unbound_session(response: Response<Body>) -> Response<Body> {
    if !response.headers().contains_key(crate::MCP_SESSION_ID) {
        return response;
    }
    tracing::error!(
        target: crate::audit::TARGET,
        event = "unbound_session_refused",
        "McpAuth: the MCP service issued an Mcp-Session-Id but no session binding is \
         configured. Add .sessions(SessionManager::<McpSessionData>::new(..)) to bind \
         sessions to their user, or run the MCP service stateless (rmcp: \
         StreamableHttpServerConfig {{ legacy_session_mode: false, .. }})"
    );
    crate::challenge::refusal(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server is misconfigured: MCP sessions are not bound to their user",
    )
}

/// The MCP route's one service: the steps, then the security headers.
struct Pipeline<S> {
    steps: Arc<Steps>,
    inner: S,
}

impl<S: Clone> Clone for Pipeline<S> {
    fn clone(&self) -> Self {
        Self {
            steps: self.steps.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S> Service<Request<Body>> for Pipeline<S>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = crate::BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let steps = self.steps.clone();
        Box::pin(async move {
            let mut response = steps.run(request, inner).await;
            // Tool results are private to the caller: never stored by a
            // cache, whatever the MCP service said (rmcp's streams say
            // `no-cache`, which allows storing).
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            steps.headers.insert_into(response.headers_mut());
            Ok(response)
        })
    }
}

/// The MCP service behind an `Arc`: each layer clones its inner service per
/// request (the tower idiom), and without this every one of those clones
/// would deep-copy the MCP service (rmcp's carries its configuration's
/// vectors). Now only the call itself clones it, once.
struct Shared<S>(Arc<S>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S, R> Service<R> for Shared<S>
where
    S: Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tower::util::Oneshot<S, R>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Readiness is awaited per call on the fresh clone (`oneshot`).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        tower::ServiceExt::oneshot(S::clone(&self.0), request)
    }
}
