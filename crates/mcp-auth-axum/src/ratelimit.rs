//! The rate-limit layer: per subject, and per (subject, tool) for
//! `tools/call`, through [`mcp_auth_ratelimit::RateLimiter`].

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use mcp_auth_ratelimit::{Decision, DeniedBy, OVERFLOW_TOOL, RateLimiter};

use crate::challenge::retry_later;
use crate::pipeline::{RequestFacts, Step, StepLayer, StepService};
use crate::{AuthContext, RpcSummary, audit};

/// The rate-limit step: a [`RateLimiter`] applied to authenticated requests.
///
/// Runs after the bearer step, which provides the subject and the JSON-RPC
/// summary. Every request counts against the global and per-user tiers;
/// each `tools/call` also against its (user, tool) tier, a batch all or
/// nothing. A denial answers 429 with `Retry-After`; a limiter that cannot
/// decide (Redis down, fail-closed) answers 503 with `Retry-After`.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<dyn RateLimiter>,
    known: KnownTools,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// The step deciding with `limiter`.
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

impl Step for RateLimit {
    type Kept = ();

    async fn before(
        &self,
        request: Request<Body>,
        facts: &mut RequestFacts,
    ) -> Result<(Request<Body>, ()), Response<Body>> {
        let Some(context) = facts.context() else {
            return Err(crate::context::misplaced("RateLimit"));
        };
        admit(&*self.limiter, &self.known, context, facts.summary()).await?;
        Ok((request, ()))
    }
}

/// The step is also its own tower layer; put it inside [`crate::BearerAuth`].
impl<S> tower::Layer<S> for RateLimit {
    type Service = StepService<S, RateLimit>;

    fn layer(&self, inner: S) -> Self::Service {
        StepLayer::from_step(self.clone()).layer(inner)
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

    pub(crate) fn names(&self) -> Option<&std::collections::HashSet<String>> {
        self.0.as_deref()
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
    crate::metrics::rate_limited(by.as_str());
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
