//! RFC 7662 introspection against an in-process authorization server on
//! loopback: each rule of `IntrospectionVerifier`, failing closed when the
//! server cannot answer, and the verifier behind `McpAuth` with the cache.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;
mod introspection_server;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::routing::any;
use common::*;
use introspection_server::*;
use mcp_auth_axum::token::{
    CachedVerifier, ConfigError, IntrospectionVerifier, TokenVerifier, VerifyError,
};
use mcp_auth_axum::{McpAuth, ResourceConfig};
use mcp_auth_core::ManualClock;

#[tokio::test]
async fn an_active_token_for_this_resource_gives_its_context() {
    let s = server().await;
    let v = verifier(&s.url, CLIENT_SECRET);
    let context = v.verify("good+/token==").await.unwrap();
    assert_eq!(context.user.as_str(), "alice");
    assert_eq!(context.client_id.as_deref(), Some("app-1"));
    assert_eq!(context.scopes, ["mcp:tools", "notes:read"]);
    assert!(context.audiences.iter().any(|a| a == RESOURCE));
    assert_eq!(context.expires_at, NOW + 300);
    assert_eq!(context.claims["ext"]["tenant"], "t1");
    assert!(v.verify("one-aud").await.is_ok());
    // No `exp`: accepted for now, and a cache will not keep it.
    assert_eq!(v.verify("no-exp").await.unwrap().expires_at, NOW);
}

#[tokio::test]
async fn each_rule_refuses_with_its_name() {
    let s = server().await;
    let v = verifier(&s.url, CLIENT_SECRET);
    let cases = [
        ("inactive", VerifyError::Invalid { rule: "inactive" }),
        ("unknown", VerifyError::Invalid { rule: "inactive" }),
        ("expired", VerifyError::Expired),
        (
            "future",
            VerifyError::Invalid {
                rule: "not-yet-valid",
            },
        ),
        ("other-aud", VerifyError::Invalid { rule: "audience" }),
        ("no-aud", VerifyError::Invalid { rule: "audience" }),
        ("wrong-iss", VerifyError::Invalid { rule: "issuer" }),
        ("refresh", VerifyError::Invalid { rule: "token-type" }),
        ("no-sub", VerifyError::Invalid { rule: "subject" }),
        ("bad-sub", VerifyError::Invalid { rule: "subject" }),
    ];
    for (token, expected) in cases {
        assert_eq!(v.verify(token).await.unwrap_err(), expected, "{token}");
    }
}

#[tokio::test]
async fn a_server_that_cannot_answer_fails_closed() {
    let s = server().await;
    let v = verifier(&s.url, CLIENT_SECRET);
    for token in [
        "garbage",
        "not-object",
        "wrong-types",
        "huge",
        "server-error",
    ] {
        assert_eq!(
            v.verify(token).await.unwrap_err(),
            VerifyError::Unavailable,
            "{token}"
        );
    }
    // Our credentials refused (401) is a configuration problem, not the
    // client's: 503, never a pass.
    let wrong = verifier(&s.url, "not-the-secret");
    assert_eq!(
        wrong.verify("good+/token==").await.unwrap_err(),
        VerifyError::Unavailable
    );
    // Nothing listening.
    let dead = verifier("http://127.0.0.1:9/introspect", CLIENT_SECRET);
    assert_eq!(
        dead.verify("good+/token==").await.unwrap_err(),
        VerifyError::Unavailable
    );
}

#[tokio::test]
async fn behind_mcp_auth_with_the_cache_the_server_is_asked_once() {
    let s = server().await;
    let config = ResourceConfig::builder(RESOURCE, ISSUER)
        .require_scopes(["mcp:tools"])
        .build()
        .unwrap();
    // What `McpAuth::with_introspection` builds, with the cache on the same
    // manual clock as the verifier.
    let cached =
        CachedVerifier::new(verifier(&s.url, CLIENT_SECRET)).clock(ManualClock::at_unix(NOW));
    let app = McpAuth::new(config, Arc::new(cached))
        .unwrap()
        .into_router(any(echo))
        .unwrap();
    for _ in 0..3 {
        let (status, _, body) = send(&app, post(Some("good+/token=="), &list())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["subject"], "alice");
    }
    assert_eq!(s.seen.calls.load(Ordering::SeqCst), 1);
    let (status, headers, _) = send(&app, post(Some("inactive"), &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("invalid_token"));
    let (status, _, _) = send(&app, post(Some("garbage"), &list())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn with_introspection_refuses_a_verifier_for_another_resource_or_issuer() {
    use mcp_auth_axum::ConfigError as StackError;
    let s = server().await;
    let same = ResourceConfig::builder(RESOURCE, ISSUER).build().unwrap();
    assert!(McpAuth::with_introspection(same, verifier(&s.url, CLIENT_SECRET)).is_ok());
    let config = ResourceConfig::builder("https://other.example.com/mcp", ISSUER)
        .build()
        .unwrap();
    assert!(matches!(
        McpAuth::with_introspection(config, verifier(&s.url, CLIENT_SECRET)),
        Err(StackError::AudienceMismatch { .. })
    ));
    // An issuer the metadata does not advertise.
    let config = ResourceConfig::builder(RESOURCE, "https://elsewhere.example.com")
        .build()
        .unwrap();
    assert!(matches!(
        McpAuth::with_introspection(config, verifier(&s.url, CLIENT_SECRET)),
        Err(StackError::IssuerMismatch { .. })
    ));
    // Built from the configuration: resource and issuer agree by
    // construction.
    let config = ResourceConfig::builder(RESOURCE, ISSUER).build().unwrap();
    let built = config
        .introspection(&s.url, CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    assert_eq!(built.resource(), RESOURCE);
    assert_eq!(TokenVerifier::issuer(&built), Some(ISSUER));
    assert!(McpAuth::with_introspection(config, built).is_ok());
}

#[test]
fn unsafe_settings_are_refused() {
    let build = |endpoint: &str, id: &str, secret: &str| {
        IntrospectionVerifier::builder(endpoint, RESOURCE, id, secret).build()
    };
    assert!(matches!(
        build(
            "http://login.example.com/introspect",
            CLIENT_ID,
            CLIENT_SECRET
        ),
        Err(ConfigError::Url { .. })
    ));
    assert!(matches!(
        build(
            "https://login.example.com/introspect#x",
            CLIENT_ID,
            CLIENT_SECRET
        ),
        Err(ConfigError::Url { .. })
    ));
    assert!(matches!(
        build("https://login.example.com/introspect", "", CLIENT_SECRET),
        Err(ConfigError::Credentials { .. })
    ));
    assert!(matches!(
        build("https://login.example.com/introspect", CLIENT_ID, ""),
        Err(ConfigError::Credentials { .. })
    ));
    assert!(
        build(
            "https://login.example.com/introspect",
            CLIENT_ID,
            CLIENT_SECRET
        )
        .is_ok()
    );
}

/// The HTTP seam: a fake client stands in for the network, sees exactly
/// the request the verifier sends, and answers it.
#[derive(Debug, Default)]
struct FakeIntrospection {
    seen: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl mcp_auth_http::HttpClient for FakeIntrospection {
    fn send(
        &self,
        request: mcp_auth_http::HttpRequest,
    ) -> mcp_auth_core::BoxFuture<'_, Result<mcp_auth_http::HttpResponse, mcp_auth_http::HttpError>>
    {
        let limit = request
            .extensions()
            .get::<mcp_auth_http::ResponseLimit>()
            .copied();
        self.seen.lock().unwrap().push((
            request.uri().to_string(),
            request.headers()["authorization"]
                .to_str()
                .unwrap()
                .to_owned(),
            String::from_utf8(request.body().clone()).unwrap(),
        ));
        let answer = serde_json::json!({"active": true, "sub": "carol", "aud": RESOURCE,
            "iss": ISSUER, "exp": NOW + 60, "scope": "mcp:tools"});
        assert_eq!(
            limit,
            Some(mcp_auth_http::ResponseLimit(
                mcp_auth_axum::token::MAX_INTROSPECTION_RESPONSE
            ))
        );
        Box::pin(async move { Ok(axum::http::Response::new(answer.to_string().into_bytes())) })
    }
}

#[tokio::test]
async fn the_verifier_can_be_given_a_fake_http_client() {
    let fake = Arc::new(FakeIntrospection::default());
    let v = IntrospectionVerifier::builder(
        "https://as.example.com/introspect",
        RESOURCE,
        CLIENT_ID,
        CLIENT_SECRET,
    )
    .issuer(ISSUER)
    .clock(Arc::new(ManualClock::at_unix(NOW)))
    .http(fake.clone())
    .build()
    .unwrap();
    let context = v.verify("tok+en/1=").await.unwrap();
    assert_eq!(context.user.as_str(), "carol");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (url, authorization, body) = &seen[0];
    assert_eq!(url, "https://as.example.com/introspect");
    assert!(authorization.starts_with("Basic "), "{authorization}");
    assert_eq!(body, "token=tok%2Ben%2F1%3D&token_type_hint=access_token");
}
