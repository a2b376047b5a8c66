//! No secret (client secret, code, state, verifier, tokens) in `Debug`,
//! error messages or captured log output. A test binary of its own: the
//! captured log must not race other tests for `tracing`'s callsite cache.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use mcp_auth_core::ManualClock;
use mcp_auth_testkit::CapturedLog;
use secrecy::ExposeSecret;

#[tokio::test]
async fn no_secret_in_debug_errors_or_logs() {
    let (log, _guard) = CapturedLog::install();
    let d = double().await;
    d.accounts.rotate.store(true, Ordering::SeqCst);
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    let code = query
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("code=")
        .to_owned();
    let state = query.split("state=").nth(1).unwrap().to_owned();
    let tokens = client.callback(&alice(), &query).await.unwrap();
    let replay = client.callback(&alice(), &query).await.unwrap_err();
    let refreshed = client.refresh(&alice(), &tokens).await.unwrap();
    let stale = client.refresh(&alice(), &tokens).await.unwrap_err();
    let verifier = d.accounts.seen_verifiers.lock().unwrap()[0].clone();

    let mut shown =
        format!("{client:?} {tokens:?} {refreshed:?} {replay} {replay:?} {stale} {stale:?}");
    shown.push_str(&log.contents());
    let secrets = [
        CLIENT_SECRET.to_owned(),
        code,
        state,
        verifier,
        tokens.access_token.expose_secret().to_owned(),
        tokens
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        refreshed.access_token.expose_secret().to_owned(),
    ];
    for secret in &secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "secret {secret:?} leaked in:\n{shown}"
        );
    }
    assert!(
        log.contents().contains("oauth_signed_in"),
        "{}",
        log.contents()
    );
}
