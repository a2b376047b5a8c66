//! The shape every concern of the MCP route has: a [`Step`], "request in,
//! request or response out" (tower-http's `AsyncAuthorizeRequest`), with an
//! optional look at the response on its way back. [`StepLayer`] runs one
//! step as a tower layer; [`crate::McpAuth`] runs the same steps in
//! sequence in one service and one future. Each concern is written once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use crate::{AuthContext, RpcSummary};

/// What the steps have learnt about one request, handed from one step to
/// the next: who is calling, and what the JSON-RPC body asks for.
#[derive(Debug, Default)]
pub struct RequestFacts {
    pub(crate) context: Option<Arc<AuthContext>>,
    pub(crate) summary: Option<Summary>,
}

/// The JSON-RPC summary: handed over as it was read in a pipeline, or
/// shared through the request's extensions between separate layers.
#[derive(Debug)]
pub(crate) enum Summary {
    Owned(RpcSummary),
    Shared(Arc<RpcSummary>),
}

impl RequestFacts {
    /// The authenticated caller, once the bearer step has run.
    pub fn context(&self) -> Option<&Arc<AuthContext>> {
        self.context.as_ref()
    }

    /// The JSON-RPC summary of a POST body, once the bearer step has run.
    pub fn summary(&self) -> Option<&RpcSummary> {
        match &self.summary {
            Some(Summary::Owned(summary)) => Some(summary),
            Some(Summary::Shared(summary)) => Some(summary),
            None => None,
        }
    }

    /// What an earlier layer left in `request`'s extensions (a step run on
    /// its own by [`StepLayer`]).
    fn from_extensions(request: &Request<Body>) -> Self {
        Self {
            context: request.extensions().get::<Arc<AuthContext>>().cloned(),
            summary: request
                .extensions()
                .get::<Arc<RpcSummary>>()
                .cloned()
                .map(Summary::Shared),
        }
    }

    /// Leaves the facts in `request`'s extensions for the layers inside.
    /// The context is there already: the bearer step puts it there for the
    /// handlers, and only it establishes one.
    fn into_extensions(self, request: &mut Request<Body>) {
        if let Some(Summary::Owned(summary)) = self.summary {
            request.extensions_mut().insert(Arc::new(summary));
        }
    }
}

/// One concern of the MCP route.
///
/// [`Step::before`] sees the request (and the [`RequestFacts`] earlier steps
/// established) and returns it, possibly changed, with something to keep for
/// the response, or returns the response to send instead. [`Step::after`]
/// sees the inner service's response, with what `before` kept.
pub trait Step: Send + Sync + 'static {
    /// What `before` keeps for `after`.
    type Kept: Send + 'static;

    /// Lets the request go on, or answers it.
    fn before<'a>(
        &'a self,
        request: Request<Body>,
        facts: &'a mut RequestFacts,
    ) -> impl Future<Output = Result<(Request<Body>, Self::Kept), Response<Body>>> + Send + 'a;

    /// Looks at the response on its way out (by default: nothing).
    fn after(
        &self,
        carry: Self::Kept,
        response: Response<Body>,
    ) -> impl Future<Output = Response<Body>> + Send + '_ {
        let _ = carry;
        std::future::ready(response)
    }
}

/// A step that is configured or not: when not, it lets everything through.
impl<T: Step> Step for Option<T> {
    type Kept = Option<T::Kept>;

    async fn before(
        &self,
        request: Request<Body>,
        facts: &mut RequestFacts,
    ) -> Result<(Request<Body>, Self::Kept), Response<Body>> {
        match self {
            Some(step) => {
                let (request, carry) = step.before(request, facts).await?;
                Ok((request, Some(carry)))
            }
            None => Ok((request, None)),
        }
    }

    async fn after(&self, carry: Self::Kept, response: Response<Body>) -> Response<Body> {
        match (self, carry) {
            (Some(step), Some(carry)) => step.after(carry, response).await,
            _ => response,
        }
    }
}

/// Runs one [`Step`] around an inner service, for stacks assembled by hand.
/// The facts a step establishes travel to the layers inside through the
/// request's extensions (`Arc<AuthContext>`, `Arc<RpcSummary>`).
#[derive(Debug)]
pub struct StepLayer<T> {
    pub(crate) step: Arc<T>,
}

impl<T> Clone for StepLayer<T> {
    fn clone(&self) -> Self {
        Self {
            step: self.step.clone(),
        }
    }
}

impl<T> StepLayer<T> {
    /// A layer running `step`.
    pub fn from_step(step: T) -> Self {
        Self {
            step: Arc::new(step),
        }
    }
}

impl<S, T> Layer<S> for StepLayer<T> {
    type Service = StepService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        StepService {
            inner,
            step: self.step.clone(),
        }
    }
}

/// The service made by [`StepLayer`].
#[derive(Debug)]
pub struct StepService<S, T> {
    inner: S,
    step: Arc<T>,
}

impl<S: Clone, T> Clone for StepService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            step: self.step.clone(),
        }
    }
}

impl<S, T> Service<Request<Body>> for StepService<S, T>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    T: Step,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = crate::BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let step = self.step.clone();
        Box::pin(async move {
            let mut facts = RequestFacts::from_extensions(&request);
            let body = carries_body(&request);
            let (mut request, carry) = match step.before(request, &mut facts).await {
                Ok(passed) => passed,
                Err(refused) => return Ok(close_if_body_unread(refused, body)),
            };
            facts.into_extensions(&mut request);
            let response = inner.call(request).await?.into_response();
            Ok(step.after(carry, response).await)
        })
    }
}

/// Whether `request` comes with a body (a length above zero, or chunked).
pub(crate) fn carries_body(request: &Request<Body>) -> bool {
    let headers = request.headers();
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// A refusal sent before the request's body was read: `Connection: close`,
/// so a proxy does not reuse a connection the server will close (which it
/// would answer with a 502).
pub(crate) fn close_if_body_unread(mut response: Response<Body>, body: bool) -> Response<Body> {
    if body {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}
