//! The rate-limit layer: per subject, and per (subject, tool) for
//! `tools/call`, through [`mcp_auth_ratelimit::RateLimiter`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use mcp_auth_ratelimit::{Decision, DeniedBy, OVERFLOW_TOOL, RateLimiter};
use tower::{Layer, Service};

use crate::challenge::retry_later;
use crate::{AuthContext, RpcSummary, audit};

/// Applies a [`RateLimiter`] to authenticated requests.
///
/// Must sit inside [`crate::BearerAuthLayer`], which provides the subject
/// and the JSON-RPC summary. Every request counts against the global and
/// per-user tiers; each `tools/call` also against its (user, tool) tier. A
/// denial answers 429 with `Retry-After`; a limiter that cannot decide
/// (Redis down, fail-closed) answers 503 with `Retry-After`.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<dyn RateLimiter>,
    known: KnownTools,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl RateLimitLayer {
    /// A layer deciding with `limiter`.
    pub fn new(limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            limiter,
            known: KnownTools::default(),
        }
    }

    /// The server's tool names (as `tools/list` gives them): a call of any
    /// other tool is charged to the limiter's shared overflow bucket. See
    /// [`crate::McpAuth::tools`].
    #[must_use]
    pub fn tools<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.known = KnownTools::new(names);
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            known: self.known.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<dyn RateLimiter>,
    known: KnownTools,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for RateLimit<S>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = crate::BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        let known = self.known.clone();
        Box::pin(async move {
            let context = match crate::context::required(&request, "RateLimitLayer") {
                Ok(context) => context,
                Err(response) => return Ok(response),
            };
            let summary = request.extensions().get::<Arc<RpcSummary>>().cloned();
            if let Err(refused) = admit(&*limiter, &known, &context, summary.as_deref()).await {
                return Ok(refused);
            }
            Ok(inner.call(request).await?.into_response())
        })
    }
}

/// The server's real tool names, when the stack knows them: a call naming
/// any other tool is charged to the limiter's shared overflow bucket, so
/// invented names can never take the place of real tools in the limiter's
/// bounded table of tool names.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownTools(Option<Arc<std::collections::HashSet<String>>>);

impl KnownTools {
    pub(crate) fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self(Some(Arc::new(names.into_iter().map(Into::into).collect())))
    }

    pub(crate) fn is_known(&self) -> bool {
        self.0.is_some()
    }

    /// The bucket name to charge `tool` to.
    fn bucket<'a>(&self, tool: &'a str) -> &'a str {
        match &self.0 {
            Some(names) if !names.contains(tool) => OVERFLOW_TOOL,
            _ => tool,
        }
    }
}

/// Decides a request by `context`'s subject, with its JSON-RPC `summary`
/// (every `tools/call` in it is also charged to its tool, all or nothing):
/// `Ok` to go on, or the 429 / 503 to send.
pub(crate) async fn admit(
    limiter: &dyn RateLimiter,
    known: &KnownTools,
    context: &AuthContext,
    summary: Option<&RpcSummary>,
) -> Result<(), Response<Body>> {
    // A plain slice walk: an iterator adapter held across the awaits trips
    // the compiler's `Send` check of the calling future.
    let calls = summary.map_or(&[][..], |s| &s.calls[..]);
    let mut tools = calls.iter().filter_map(|call| call.tool.as_deref());
    let (decision, tool) = match (tools.next(), tools.next()) {
        (None, _) => (limiter.decide(&context.user, None).await, None),
        (Some(one), None) => {
            let bucket = known.bucket(one);
            (limiter.decide(&context.user, Some(bucket)).await, Some(one))
        }
        (Some(_), Some(_)) => {
            // A batch: every call is charged, or none is.
            let names: Vec<&str> = calls
                .iter()
                .filter_map(|call| call.tool.as_deref())
                .map(|tool| known.bucket(tool))
                .collect();
            (limiter.decide_calls(&context.user, &names).await, None)
        }
    };
    match decision {
        Decision::Allowed => Ok(()),
        denied => Err(denied_response(context, tool, &denied)),
    }
}

fn denied_response(
    context: &AuthContext,
    tool: Option<&str>,
    decision: &Decision,
) -> Response<Body> {
    let retry_after = decision.retry_after_secs().unwrap_or(1);
    let by = match decision {
        Decision::Denied { by, .. } => *by,
        // Not reached: only denials get here.
        Decision::Allowed => DeniedBy::Global,
    };
    audit::rate_limited(context.subject(), tool, by.as_str(), retry_after);
    limited(by, retry_after, "rate limit exceeded")
}

/// The answer to a limiter's denial `by`: 503 when the limiter could not
/// decide (its store is down), else 429 saying `why`; both with
/// `Retry-After`.
pub(crate) fn limited(by: DeniedBy, retry_after: u64, why: &'static str) -> Response<Body> {
    if by == DeniedBy::StoreUnavailable {
        retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            "the rate limiter is temporarily unavailable",
        )
    } else {
        retry_later(StatusCode::TOO_MANY_REQUESTS, retry_after, why)
    }
}
