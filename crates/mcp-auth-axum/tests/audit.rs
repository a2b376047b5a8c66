//! Audit events, in a test binary of their own: `tracing` caches per-callsite
//! interest across threads, so a thread-local subscriber can miss events when
//! other tests run the same callsites in parallel without one.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::HeaderValue;
use common::*;
use mcp_auth_testkit::{CapturedLog, DevIssuer};

#[tokio::test]
async fn audit_events_name_the_rule_and_never_hold_a_secret() {
    let (captured, _guard) = CapturedLog::install();

    let f = Fixture::new();
    let app = f.app();
    let good = f.token("alice", &["mcp:tools"]);
    let forged = DevIssuer::new(ISSUER, RESOURCE).access_token("alice", &["mcp:tools"]);
    send(&app, post(Some(&forged), &list())).await;
    let mut query = post(None, &list());
    *query.uri_mut() = format!("/mcp?access_token={good}").parse().unwrap();
    send(&app, query).await;
    let weak = f.token("alice", &["profile"]);
    send(&app, post(Some(&weak), &list())).await;
    let mut open = post(Some(&good), &list());
    open.headers_mut()
        .insert("x-open-session", HeaderValue::from_static("inner-secret-9"));
    let (_, headers, _) = send(&app, open).await;
    let outer = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let mallory = f.token("mallory", &["mcp:tools"]);
    send(&app, with_session(post(Some(&mallory), &list()), &outer)).await;
    for _ in 0..6 {
        send(&app, post(Some(&good), &list())).await;
    }
    // A client over its verification budget.
    let limited = f
        .stack()
        .verification_limit(mcp_auth_axum::VerificationLimit::per_peer(
            std::sync::Arc::new(
                mcp_auth_ratelimit::MemoryRateLimiter::new(
                    mcp_auth_ratelimit::Limits::none()
                        .per_user(Some(mcp_auth_ratelimit::Limit::per_minute(1).unwrap())),
                )
                .unwrap(),
            ),
        ))
        .into_router(axum::routing::any(echo))
        .unwrap();
    for _ in 0..2 {
        let mut request = post(Some(&forged), &list());
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            "203.0.113.9:4000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        send(&limited, request).await;
    }

    let log = captured.contents();
    for needle in [
        "mcp_auth::audit",
        "rule=\"unknown-kid\"",
        "rule=\"token-in-query\"",
        "event=\"insufficient_scope\"",
        "event=\"session_opened\"",
        "rule=\"subject-mismatch\"",
        "event=\"rate_limited\"",
        "event=\"verification_limited\" client=\"ip:203.0.113.9\"",
    ] {
        assert!(log.contains(needle), "missing {needle} in:\n{log}");
    }
    for secret in [
        &*good,
        &*forged,
        &*weak,
        &*mallory,
        &*outer,
        "inner-secret-9",
    ] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    // Not even a fragment of a token (the signature part is the secret bit).
    for token in [&good, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature));
    }
}
