//! Reading the caller from a request.

use std::sync::Arc;

use mcp_auth_token::AuthContext;

/// Reads the [`AuthContext`] from a request's extensions.
pub fn auth_context(extensions: &axum::http::Extensions) -> Option<&Arc<AuthContext>> {
    extensions.get::<Arc<AuthContext>>()
}

/// The 500 a step answers when it runs before the bearer step, by a
/// mistake in a stack assembled by hand (never in [`crate::McpAuth`]).
pub(crate) fn misplaced(layer: &'static str) -> axum::http::Response<axum::body::Body> {
    tracing::error!(
        target: crate::audit::TARGET,
        layer,
        "request without an AuthContext: put this layer inside BearerAuth"
    );
    crate::challenge::refusal(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server is misconfigured",
    )
}
