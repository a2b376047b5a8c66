//! Binds MCP sessions (`Mcp-Session-Id`) to the authenticated subject.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use mcp_auth_session::{NewSession, SessionError, SessionManager};
use serde::{Deserialize, Serialize};

use crate::challenge::{refusal, retry_later};
use crate::pipeline::{RequestFacts, Step, StepLayer, StepService};
use crate::{AuthContext, audit};

/// The MCP session header of the streamable HTTP transport.
pub const MCP_SESSION_ID: &str = "mcp-session-id";

/// What the binding layer keeps in each `mcp-auth-session` session: the
/// session id the MCP server issued, which the client never sees.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct McpSessionData {
    /// The MCP server's own session id.
    pub inner: String,
}

impl McpSessionData {
    /// The data for the MCP server's session id `inner`.
    pub fn new(inner: impl Into<String>) -> Self {
        Self {
            inner: inner.into(),
        }
    }
}

// Not derived: the server's session id continues the session on the server
// side, so it is kept out of `Debug` like any session id.
impl std::fmt::Debug for McpSessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSessionData")
            .field("inner", &mcp_auth_core::REDACTED)
            .finish()
    }
}

/// The session manager type the binding layer uses.
pub type McpSessions = SessionManager<McpSessionData>;

/// Ties every MCP session to the subject (and client) that created it.
///
/// When the MCP server opens a session (its response carries
/// `Mcp-Session-Id`), the layer creates an `mcp-auth-session` session for
/// the authenticated user holding the server's id, and gives the client the
/// new session's 256-bit id instead. On later requests it loads that session
/// (touching its idle timeout), refuses it with 404 unless it belongs to the
/// same subject and client, and forwards the server's own id. So a session
/// id replayed with another user's token is refused (MCP security best
/// practices: session hijacking), sessions get idle and absolute timeouts,
/// per-user caps and revocation, and with the Redis store they work across a
/// fleet. A `DELETE` that the server accepts revokes the binding.
///
/// Must sit inside [`crate::BearerAuth`].
#[derive(Clone, Debug)]
pub struct SessionBinding {
    sessions: McpSessions,
}

impl SessionBinding {
    /// The step binding sessions through `sessions`.
    pub fn new(sessions: McpSessions) -> Self {
        Self { sessions }
    }
}

/// The step is also its own tower layer; put it inside [`crate::BearerAuth`].
impl<S> tower::Layer<S> for SessionBinding {
    type Service = StepService<S, SessionBinding>;

    fn layer(&self, inner: S) -> Self::Service {
        StepLayer::from_step(self.clone()).layer(inner)
    }
}

fn client_key(context: &AuthContext) -> &str {
    context.client_id.as_deref().unwrap_or("-")
}

/// What the session step keeps for the response. `Debug` never prints the
/// session id the client presented (a bearer secret).
pub enum SessionKept {
    /// The request continued a bound session.
    Existing {
        /// The id the client holds (ours).
        outer: String,
        /// The binding, to revoke on a successful DELETE.
        handle: mcp_auth_session::SessionHandle,
        /// Whether the request was a DELETE.
        is_delete: bool,
        /// The caller.
        context: Arc<AuthContext>,
    },
    /// The request had no session: the response may open one.
    New {
        /// The caller.
        context: Arc<AuthContext>,
    },
}

impl std::fmt::Debug for SessionKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Existing {
                handle, is_delete, ..
            } => f
                .debug_struct("Existing")
                .field("outer", &mcp_auth_core::REDACTED)
                .field("session", &handle.short())
                .field("is_delete", is_delete)
                .finish_non_exhaustive(),
            Self::New { context } => f
                .debug_struct("New")
                .field("subject", &context.subject())
                .finish(),
        }
    }
}

impl Step for SessionBinding {
    type Kept = SessionKept;

    async fn before(
        &self,
        request: Request<Body>,
        facts: &mut RequestFacts,
    ) -> Result<(Request<Body>, SessionKept), Response<Body>> {
        let Some(context) = facts.context().cloned() else {
            return Err(crate::context::misplaced("SessionBinding"));
        };
        let mut request = request;
        let Some(outer) = presented_session(&request)? else {
            return Ok((request, SessionKept::New { context }));
        };
        let session = match self.sessions.load_str(&outer).await {
            Ok(session) => session,
            Err(error) => return Err(load_failed(&context, &error)),
        };
        if session.user != context.user || session.client_id != client_key(&context) {
            let rule = if session.user != context.user {
                "subject-mismatch"
            } else {
                "client-mismatch"
            };
            audit::session_refused(context.subject(), rule, &session.handle.short());
            return Err(session_not_found());
        }
        let Ok(inner_id) = HeaderValue::from_str(&session.data.inner) else {
            return Err(session_not_found());
        };
        request.headers_mut().insert(MCP_SESSION_ID, inner_id);
        let is_delete = request.method() == Method::DELETE;
        Ok((
            request,
            SessionKept::Existing {
                outer,
                handle: session.handle,
                is_delete,
                context,
            },
        ))
    }

    async fn after(&self, carry: SessionKept, mut response: Response<Body>) -> Response<Body> {
        match carry {
            SessionKept::Existing {
                outer,
                handle,
                is_delete,
                context,
            } => {
                if response.headers().contains_key(MCP_SESSION_ID)
                    && let Ok(value) = HeaderValue::from_str(&outer)
                {
                    response.headers_mut().insert(MCP_SESSION_ID, value);
                }
                if is_delete && response.status().is_success() {
                    if let Err(error) = self.sessions.revoke_handle(&handle).await {
                        tracing::warn!(target: audit::TARGET, error = %error, "could not revoke an MCP session binding");
                    } else {
                        audit::session_event("session_closed", context.subject(), &handle.short());
                    }
                }
                response
            }
            SessionKept::New { context } => {
                let Some(issued) = response.headers_mut().remove(MCP_SESSION_ID) else {
                    return response;
                };
                let Ok(issued) = issued.to_str().map(str::to_owned) else {
                    return refusal(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the MCP server issued an unusable session id",
                    );
                };
                let new = NewSession::new(context.user.clone(), client_key(&context))
                    .with_scopes(context.scopes.iter().cloned())
                    .with_data(McpSessionData::new(issued));
                match self.sessions.create(new).await {
                    Ok(created) => {
                        audit::session_event(
                            "session_opened",
                            context.subject(),
                            &created.session.handle.short(),
                        );
                        if let Ok(value) = HeaderValue::from_str(created.id.expose()) {
                            response.headers_mut().insert(MCP_SESSION_ID, value);
                        }
                        response
                    }
                    Err(error) => create_failed(&context, &error),
                }
            }
        }
    }
}

#[allow(clippy::result_large_err)]
fn presented_session(request: &Request<Body>) -> Result<Option<String>, Response<Body>> {
    let mut values = request.headers().get_all(MCP_SESSION_ID).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "more than one Mcp-Session-Id header",
        ));
    }
    match value.to_str() {
        Ok(text) => Ok(Some(text.to_owned())),
        Err(_) => Err(session_not_found()),
    }
}

fn session_not_found() -> Response<Body> {
    refusal(
        StatusCode::NOT_FOUND,
        "session_not_found",
        "the MCP session does not exist or has expired; start a new one",
    )
}

fn load_failed(context: &AuthContext, error: &SessionError) -> Response<Body> {
    match error {
        SessionError::NotFound | SessionError::MalformedId => {
            audit::session_refused(context.subject(), "unknown-session", "-");
            session_not_found()
        }
        SessionError::StoreUnavailable(_) => {
            tracing::warn!(target: audit::TARGET, error = %error, "session store unavailable");
            retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "the session store is temporarily unavailable",
            )
        }
        other => {
            tracing::error!(target: audit::TARGET, error = %other, "session load failed");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the session could not be loaded",
            )
        }
    }
}

fn create_failed(context: &AuthContext, error: &SessionError) -> Response<Body> {
    tracing::warn!(target: audit::TARGET, subject = context.subject(), error = %error, "MCP session not opened");
    match error {
        SessionError::UserLimitReached { .. } => retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            60,
            "too many open sessions for this user",
        ),
        SessionError::StoreUnavailable(_) | SessionError::StoreFull { .. } => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            5,
            "the session store is temporarily unavailable",
        ),
        _ => refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the session could not be opened for this client",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_core::UserId;
    use mcp_auth_session::SessionId;

    #[test]
    fn the_carry_does_not_print_the_presented_session_id() {
        let id = SessionId::generate().unwrap();
        let carry = SessionKept::Existing {
            outer: id.expose().to_owned(),
            handle: id.handle(),
            is_delete: false,
            context: Arc::new(AuthContext::new(UserId::new("alice").unwrap())),
        };
        let shown = format!("{carry:?}");
        assert!(!shown.contains(id.expose()), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
