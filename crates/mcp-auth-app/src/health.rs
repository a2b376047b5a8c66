//! `/healthz` and `/readyz`: what a load balancer or an orchestrator asks.
//! Cheap, unauthenticated, and saying nothing an attacker could use.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use mcp_auth_axum::Drain;
use mcp_auth_oauth_server::AuthServer;

/// `/healthz`: 200 while the process serves. `/readyz`: 200 when the
/// stores answer and the server is not draining, else 503.
pub(crate) fn router(auth_server: AuthServer, drain: Drain) -> Router {
    let ready = move || {
        let (auth_server, drain) = (auth_server.clone(), drain.clone());
        async move {
            let status = if drain.is_draining() {
                StatusCode::SERVICE_UNAVAILABLE
            } else if let Err(e) = auth_server.ready().await {
                tracing::warn!(error = %e, "not ready");
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            answer(status)
        }
    };
    Router::new()
        .route("/healthz", get(|| async { answer(StatusCode::OK) }))
        .route("/readyz", get(ready))
}

fn answer(status: StatusCode) -> impl IntoResponse {
    let text = if status == StatusCode::OK {
        "ok\n"
    } else {
        "unavailable\n"
    };
    (status, [(header::CACHE_CONTROL, "no-store")], text)
}
