//! Everything assembled: [`McpAuth`] wraps an MCP service into a router.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use mcp_auth_jwks::Validator;
use mcp_auth_ratelimit::RateLimiter;
use tower::Service;

use crate::headers::OriginPolicy;
use crate::ratelimit::KnownTools;
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
    /// A stack for `config` that verifies tokens with `verifier`.
    pub fn new(config: ResourceConfig, verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            config: Arc::new(config),
            verifier,
            limiter: None,
            sessions: None,
            cors: CorsConfig::default(),
            verification_limit: None,
            known: KnownTools::default(),
        }
    }

    /// A stack verifying JWT access tokens with `validator`, whose policy
    /// must require the configured resource as audience, behind a
    /// [`CachedVerifier`] with its defaults (10,000 tokens, 60 s).
    pub fn with_jwks(config: ResourceConfig, validator: Validator) -> Result<Self, ConfigError> {
        if validator.policy().audience() != config.resource() {
            return Err(ConfigError::AudienceMismatch {
                verifier: validator.policy().audience().to_owned(),
                resource: config.resource().to_owned(),
            });
        }
        Ok(Self::new(config, Arc::new(CachedVerifier::new(validator))))
    }

    /// A stack verifying opaque access tokens by RFC 7662 introspection
    /// with `verifier`, which must require the configured resource as
    /// audience, behind a [`CachedVerifier`] with its defaults (10,000
    /// tokens, 60 s: a token revoked at the authorization server stays
    /// accepted here for at most that long).
    pub fn with_introspection(
        config: ResourceConfig,
        verifier: crate::IntrospectionVerifier,
    ) -> Result<Self, ConfigError> {
        if verifier.resource() != config.resource() {
            return Err(ConfigError::AudienceMismatch {
                verifier: verifier.resource().to_owned(),
                resource: config.resource().to_owned(),
            });
        }
        Ok(Self::new(config, Arc::new(CachedVerifier::new(verifier))))
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

    /// Binds MCP sessions to their subject through `sessions`.
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
        // The three layers' work and the security headers in one service
        // and one future (the same functions the separate layers run): the
        // router boxes the result once.
        let service = Combined {
            config: self.config.clone(),
            verifier: self.verifier,
            limiter: self.limiter,
            sessions: self.sessions,
            verification_limit: self.verification_limit,
            known: self.known,
            origins,
            headers,
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

/// Bearer auth, rate limit, session binding and security headers as one
/// service: what [`crate::BearerAuthLayer`], [`crate::RateLimitLayer`],
/// [`crate::SessionBindingLayer`] and [`SecurityHeaders::layer`] do
/// stacked, with one boxed future and one clone of the inner service per
/// request instead of nine.
#[derive(Clone)]
struct Combined<S> {
    config: Arc<ResourceConfig>,
    verifier: Arc<dyn TokenVerifier>,
    limiter: Option<Arc<dyn RateLimiter>>,
    sessions: Option<McpSessions>,
    verification_limit: Option<VerificationLimit>,
    known: KnownTools,
    origins: OriginPolicy,
    headers: SecurityHeaders,
    inner: S,
}

impl Combined<()> {
    async fn respond<S>(
        &self,
        request: Request<Body>,
        mut inner: S,
    ) -> Result<axum::response::Response, Infallible>
    where
        S: Service<Request<Body>, Error = Infallible>,
        S::Response: IntoResponse,
    {
        if !self.origins.allows(request.headers()) {
            crate::audit::auth_failed("origin", 403);
            return Ok(crate::challenge::refusal(
                axum::http::StatusCode::FORBIDDEN,
                "invalid_origin",
                "requests from this Origin are not allowed",
            ));
        }
        let (request, summary) = match crate::bearer::authenticate(
            &self.config,
            &*self.verifier,
            self.verification_limit.as_ref(),
            request,
        )
        .await
        {
            Ok(authenticated) => authenticated,
            Err(refused) => return Ok(refused),
        };
        if let Some(limiter) = &self.limiter {
            // The summary is handed over, not put in the request's
            // extensions: nothing after the rate limit reads it.
            let context = match crate::context::required(&request, "McpAuth") {
                Ok(context) => context,
                Err(response) => return Ok(response),
            };
            if let Err(refused) =
                crate::ratelimit::admit(&**limiter, &self.known, &context, summary.as_ref()).await
            {
                return Ok(refused);
            }
        }
        match &self.sessions {
            Some(sessions) => crate::session::bind(sessions, request, inner).await,
            None => Ok(inner.call(request).await?.into_response()),
        }
    }
}

impl<S> Service<Request<Body>> for Combined<S>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = crate::BoxFuture<Result<axum::response::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let this = Combined {
            config: self.config.clone(),
            verifier: self.verifier.clone(),
            limiter: self.limiter.clone(),
            sessions: self.sessions.clone(),
            verification_limit: self.verification_limit.clone(),
            known: self.known.clone(),
            origins: self.origins.clone(),
            headers: self.headers,
            inner: (),
        };
        Box::pin(async move {
            let mut response = this.respond(request, inner).await?;
            // Tool results are private to the caller: never stored by a
            // cache, whatever the MCP service said (rmcp's streams say
            // `no-cache`, which allows storing).
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            this.headers.insert_into(response.headers_mut());
            Ok(response)
        })
    }
}
