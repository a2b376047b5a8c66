//! The audit log during a whole sign-in, in a process of its own (the
//! capture is per thread, and tracing's callsite cache is per process).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcp_auth_testkit::browser::Browser;

#[tokio::test]
async fn the_audit_log_records_every_decision_and_no_secret() {
    let (log, _guard) = mcp_auth_testkit::CapturedLog::install();
    let env = env().await;
    let client_id = register(&env, "Audit").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let callback = sign_in(&env, &mut browser, &client_id, &pkce, "judy").await;
    let code = query(&callback)["code"].clone();
    let (_, tokens) = exchange(&env, &client_id, &code, &pkce.verifier).await;
    let _ = exchange(&env, &client_id, &code, &pkce.verifier).await; // replay
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let _ = refresh(&env, &client_id, &refresh_token).await;
    let (_, confidential) = token_form(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "static-conf"),
            ("client_secret", CONF_SECRET),
        ],
        None,
    )
    .await;
    let _ = confidential;
    let text = log.contents();
    for event in [
        "client_registered",
        "signed_in",
        "consent_given",
        "grant_issued",
        "code_replayed",
        "token_refused",
    ] {
        assert!(text.contains(event), "{event} missing:\n{text}");
    }
    let access = tokens["access_token"].as_str().unwrap();
    for secret in [
        code.as_str(),
        access,
        refresh_token.as_str(),
        CONF_SECRET,
        pkce.verifier.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log:\n{text}");
    }
    for cookie in browser.cookies().values() {
        assert!(!text.contains(cookie.as_str()), "a cookie reached the log");
    }
    let debug = format!("{:?}", env.server);
    assert!(!debug.contains(CONF_SECRET));
    assert!(
        debug.contains("confidential: true") && !debug.contains("secret_hash"),
        "{debug}"
    );
}
