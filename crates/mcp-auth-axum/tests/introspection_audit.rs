//! The introspection verifier's log output, in a test binary of its own:
//! `tracing` caches callsite interest process-wide, so a thread-local
//! subscriber can miss events that tests running in parallel trigger first.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;
mod introspection_server;

use common::RESOURCE;
use introspection_server::*;
use mcp_auth_axum::token::{IntrospectionVerifier, TokenVerifier};
use mcp_auth_testkit::CapturedLog;

#[tokio::test]
async fn neither_the_token_nor_the_secret_reaches_logs_or_debug() {
    let (captured, _guard) = CapturedLog::install();
    let s = server().await;
    let v = verifier(&s.url, CLIENT_SECRET);
    let shown = format!("{v:?}");
    assert!(!shown.contains("introspection-secret"), "{shown}");
    assert!(shown.contains(CLIENT_ID));
    let builder = IntrospectionVerifier::builder(&s.url, RESOURCE, CLIENT_ID, CLIENT_SECRET);
    assert!(!format!("{builder:?}").contains("introspection-secret"));
    let _ = v.verify("garbage").await;
    let _ = verifier(&s.url, "wrong-secret-value")
        .verify("good+/token==")
        .await;
    let log = captured.contents();
    assert!(log.contains("introspection_unavailable"), "{log}");
    for secret in [
        "introspection-secret",
        "wrong-secret-value",
        "good+/token==",
        "garbage",
    ] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}
