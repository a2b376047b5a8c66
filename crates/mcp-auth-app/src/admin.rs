//! The admin listener (`MCP_ADMIN_LISTEN`): `/metrics` (the Prometheus text
//! format, from the [`metrics`] facade the crates record through),
//! `/healthz` and `/readyz`. Off by default, and never on the public
//! listener.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use mcp_auth_axum::Drain;
use mcp_auth_oauth_server::AuthServer;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppError;

/// Token verification buckets, in seconds: a cache hit takes microseconds,
/// a full check (ES256 signature) tens of them, a JWKS fetch milliseconds.
const VERIFICATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
];

/// The process's recorder: installed once (a process has one), shared by
/// every server it runs.
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The Prometheus recorder, installed at the first call.
pub(crate) fn recorder() -> Result<PrometheusHandle, AppError> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(mcp_auth_axum::metrics::TOKEN_VERIFICATION.to_owned()),
                    VERIFICATION_BUCKETS,
                )
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| format!("{e} (another metrics recorder is installed)"))?;
            let upkeep = handle.clone();
            // Histograms are folded in on a schedule: without it their
            // samples would pile up between scrapes.
            std::thread::Builder::new()
                .name("mcp-auth-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|e| AppError::Config(mcp_auth_core::ConfigProblem::new("MCP_ADMIN_LISTEN", e)))
}

/// Binds `addr` and serves the admin routes in a task until `drain`
/// finishes. Returns the bound address (for port 0).
pub(crate) fn spawn(
    addr: SocketAddr,
    auth_server: AuthServer,
    drain: Drain,
) -> Result<SocketAddr, AppError> {
    let handle = recorder()?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        AppError::Config(mcp_auth_core::ConfigProblem::new(
            "MCP_ADMIN_LISTEN",
            format!("cannot bind {addr}: {e}"),
        ))
    })?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                            (header::CACHE_CONTROL, "no-store"),
                        ],
                        text,
                    )
                }
            }),
        )
        .merge(crate::health::router(auth_server, drain.clone()));
    tokio::spawn(async move {
        if let Err(e) = mcp_auth_axum::serve(listener, router).drain(drain).await {
            tracing::error!("the admin listener stopped: {e}");
        }
    });
    Ok(bound)
}
