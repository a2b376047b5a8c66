//! What an operator watches, through the [`metrics`] facade: nothing is
//! recorded until the application installs a recorder (mcp-auth-app does
//! on its admin listener, `MCP_ADMIN_LISTEN`, in the Prometheus text
//! format). Labels are bounded: a route pattern, a status class, a tier;
//! never a user id, a token, a client id or a header value.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `mcp_auth_requests_total` | counter | `route` (the matched route pattern, or `unmatched`), `outcome` (`2xx`, `3xx`, `401`, `403`, `429`, `4xx`, `5xx`) |
//! | `mcp_auth_token_verification_seconds` | histogram | `path`: `cache` (a token verified before) or `full` (signature and claims) |
//! | `mcp_auth_rate_limited_total` | counter | `tier`: `global`, `user`, `tool`, `store_unavailable`, … |

use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// `mcp_auth_requests_total`.
pub const REQUESTS: &str = "mcp_auth_requests_total";
/// `mcp_auth_token_verification_seconds`.
pub const TOKEN_VERIFICATION: &str = "mcp_auth_token_verification_seconds";
/// `mcp_auth_rate_limited_total`.
pub const RATE_LIMITED: &str = "mcp_auth_rate_limited_total";

/// Middleware (`axum::middleware::from_fn(mcp_auth_axum::metrics::count_requests)`,
/// added with `Router::layer`) that counts every answer in
/// `mcp_auth_requests_total` by route pattern and outcome.
pub async fn count_requests(request: Request<Body>, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics::counter!(REQUESTS, "route" => route, "outcome" => outcome(response.status()))
        .increment(1);
    response
}

/// The outcome label of a status.
pub fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "401",
        403 => "403",
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "1xx",
    }
}

pub(crate) fn verification(path: &'static str, took: Duration) {
    metrics::histogram!(TOKEN_VERIFICATION, "path" => path).record(took.as_secs_f64());
}

pub(crate) fn rate_limited(tier: &'static str) {
    metrics::counter!(RATE_LIMITED, "tier" => tier).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_a_fixed_set() {
        for (code, label) in [
            (200, "2xx"),
            (204, "2xx"),
            (303, "3xx"),
            (400, "4xx"),
            (401, "401"),
            (403, "403"),
            (413, "4xx"),
            (429, "429"),
            (503, "5xx"),
        ] {
            assert_eq!(outcome(StatusCode::from_u16(code).unwrap()), label);
        }
    }
}
