//! The layer's rules, one test each, through `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::routing::any;
use common::*;
use mcp_auth_axum::token::{AuthContext, TokenVerifier, VerifyError, VerifyFuture};
use mcp_auth_axum::{ConfigError, CorsConfig, McpAuth, ResourceConfig};
use mcp_auth_core::UserId;
use mcp_auth_jwks::{KeySet, Policy, Validator};
use mcp_auth_ratelimit::{
    Decision, DecisionFuture, DeniedBy, Limits, MemoryRateLimiter, RateLimiter,
};
use mcp_auth_testkit::DevIssuer;
use serde_json::json;

#[tokio::test]
async fn no_token_gets_401_pointing_at_the_metadata() {
    let f = Fixture::new();
    let (status, headers, body) = send(&f.app(), post(None, &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let c = challenge(&headers);
    assert!(c.starts_with("Bearer "), "{c}");
    assert!(
        c.contains(&format!("resource_metadata=\"{METADATA}\"")),
        "{c}"
    );
    assert!(c.contains("scope=\"mcp:tools\""), "{c}");
    assert!(!c.contains("error="), "no error code without a token: {c}");
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn another_auth_scheme_gets_the_bare_challenge() {
    let f = Fixture::new();
    let mut request = post(None, &list());
    request.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    let (status, headers, _) = send(&f.app(), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!challenge(&headers).contains("error="));
}

#[tokio::test]
async fn a_bad_token_gets_401_invalid_token_without_details() {
    let f = Fixture::new();
    let forged = DevIssuer::new(ISSUER, RESOURCE).access_token("alice", &["mcp:tools"]);
    for token in ["not-a-jwt", "a.b.c", forged.as_str()] {
        let (status, headers, body) = send(&f.app(), post(Some(token), &list())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        let c = challenge(&headers);
        assert!(c.contains("error=\"invalid_token\""), "{c}");
        assert!(
            c.contains("error_description=\"the access token is invalid\""),
            "{c}"
        );
        assert!(
            c.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{c}"
        );
        assert!(!c.contains("signature") && !body.to_string().contains("signature"));
    }
}

#[tokio::test]
async fn a_malformed_authorization_header_is_invalid_token() {
    let f = Fixture::new();
    let (status, headers, _) = send(&f.app(), post(Some("two words"), &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn an_expired_token_says_so() {
    let f = Fixture::new();
    let mut claims = f
        .issuer
        .claims("alice", &["mcp:tools"], None, Duration::from_secs(60));
    claims["exp"] = json!(1_000);
    claims["iat"] = json!(900);
    let token = f.issuer.mint(&claims);
    let (status, headers, _) = send(&f.app(), post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("error_description=\"the access token expired\""));
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused() {
    let f = Fixture::new();
    let claims = f.issuer.claims(
        "alice",
        &["mcp:tools"],
        Some("https://other.example.com/mcp"),
        Duration::from_secs(60),
    );
    let token = f.issuer.mint(&claims);
    let (status, headers, _) = send(&f.app(), post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let c = challenge(&headers);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    // What docs/axum.md promises, also when the validator (not the layer)
    // is the one that notices.
    assert!(
        c.contains("error_description=\"the access token was not issued for this resource\""),
        "{c}"
    );
}

/// A verifier that accepts anything, for a given audience.
#[derive(Debug)]
struct Lenient {
    audience: &'static str,
    outcome: Option<VerifyError>,
}

impl TokenVerifier for Lenient {
    fn verify<'a>(&'a self, _token: &'a str) -> VerifyFuture<'a> {
        let result = match &self.outcome {
            Some(error) => Err(error.clone()),
            None => Ok(Arc::new(
                AuthContext::new(UserId::new("mallory").unwrap())
                    .with_scopes(["mcp:tools", "files:write"])
                    .with_audiences([self.audience]),
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

fn with_verifier(f: &Fixture, verifier: Lenient) -> Router {
    McpAuth::new(f.config(), Arc::new(verifier))
        .unwrap()
        .into_router(any(echo))
        .unwrap()
}

#[tokio::test]
async fn the_layer_checks_the_audience_even_if_the_verifier_does_not() {
    let f = Fixture::new();
    let app = with_verifier(
        &f,
        Lenient {
            audience: "https://other.example.com/mcp",
            outcome: None,
        },
    );
    let (status, headers, _) = send(&app, post(Some("opaque"), &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("not issued for this resource"));
    let app = with_verifier(
        &f,
        Lenient {
            audience: RESOURCE,
            outcome: None,
        },
    );
    assert_eq!(
        send(&app, post(Some("opaque"), &list())).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_jwks_validator_for_another_audience_is_a_config_error() {
    let f = Fixture::new();
    let keys = KeySet::from_jwks(f.issuer.jwks_json().as_bytes()).unwrap();
    let validator =
        Validator::with_static_keys(Policy::new(ISSUER, "https://elsewhere.example.com"), keys);
    let err = McpAuth::with_jwks(f.config(), validator).unwrap_err();
    assert!(matches!(err, ConfigError::AudienceMismatch { .. }), "{err}");
}

#[test]
fn the_allowed_hosts_for_the_mcp_service_follow_the_resource_url() {
    let hosts = |resource: &str| {
        ResourceConfig::builder(resource, ISSUER)
            .build()
            .unwrap()
            .allowed_hosts()
    };
    assert_eq!(hosts("https://mcp.example.com/mcp"), ["mcp.example.com"]);
    assert_eq!(
        hosts("https://mcp.example.com:8443/mcp"),
        ["mcp.example.com:8443"]
    );
    assert_eq!(hosts("http://127.0.0.1:8080/mcp"), ["127.0.0.1:8080"]);
    assert_eq!(hosts("http://[::1]:9000/mcp"), ["[::1]:9000"]);
    // The default port is not written, as clients do not send it.
    assert_eq!(
        hosts("https://mcp.example.com:443/mcp"),
        ["mcp.example.com"]
    );
}

#[tokio::test]
async fn a_jwks_validator_for_an_issuer_the_metadata_does_not_name_is_a_config_error() {
    let f = Fixture::new();
    let keys = || KeySet::from_jwks(f.issuer.jwks_json().as_bytes()).unwrap();
    // The metadata would send clients to ISSUER while tokens of another
    // issuer are accepted.
    let validator = Validator::with_static_keys(
        Policy::new("https://elsewhere.example.com", f.config().resource()),
        keys(),
    );
    let err = McpAuth::with_jwks(f.config(), validator).unwrap_err();
    assert!(matches!(err, ConfigError::IssuerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("elsewhere.example.com"), "{err}");
    // The same for a bare verifier given to `new`, and for a second
    // authorization server that is configured.
    let validator = Validator::with_static_keys(
        Policy::new("https://elsewhere.example.com", f.config().resource()),
        keys(),
    );
    assert!(McpAuth::new(f.config(), Arc::new(validator)).is_err());
    let config = ResourceConfig::builder(RESOURCE, ISSUER)
        .authorization_server("https://elsewhere.example.com")
        .build()
        .unwrap();
    let validator = Validator::with_static_keys(
        Policy::new("https://elsewhere.example.com", RESOURCE),
        keys(),
    );
    assert!(McpAuth::with_jwks(config, validator).is_ok());
    // The policy derived from the configuration agrees by construction.
    let config = f.config();
    let validator = Validator::with_static_keys(config.policy(), keys());
    assert_eq!(validator.policy().issuer(), ISSUER);
    assert_eq!(validator.policy().audience(), RESOURCE);
    assert!(McpAuth::with_jwks(config, validator).is_ok());
}

#[tokio::test]
async fn an_unavailable_verifier_answers_503() {
    let f = Fixture::new();
    let app = with_verifier(
        &f,
        Lenient {
            audience: RESOURCE,
            outcome: Some(VerifyError::Unavailable),
        },
    );
    let (status, headers, _) = send(&app, post(Some("opaque"), &list())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    for uri in [
        format!("/mcp?access_token={token}"),
        format!("/mcp?x=1&access_token={token}"),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Body::from(list().to_string()))
            .unwrap();
        let (status, headers, _) = send(&f.app(), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(challenge(&headers).contains("error=\"invalid_request\""));
    }
    // Even alongside a valid header.
    let mut request = post(Some(&token), &list());
    *request.uri_mut() = "/mcp?access_token=x".parse().unwrap();
    assert_eq!(send(&f.app(), request).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let mut request = post(Some(&token), &list());
    request.headers_mut().append(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    assert_eq!(send(&f.app(), request).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_good_token_reaches_the_server_with_its_context_and_the_body_intact() {
    let f = Fixture::new();
    let token = f.token("alice@example.com", &["mcp:tools"]);
    let payload = call("echo");
    let (status, headers, body) = send(&f.app(), post(Some(&token), &payload)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subject"], "alice@example.com");
    assert_eq!(body["body"], payload.to_string());
    assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
    // GET (the SSE stream) and DELETE pass through the same checks.
    let get = Request::builder()
        .uri("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&f.app(), get).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["method"], "GET");
}

#[tokio::test]
async fn missing_the_base_scope_is_403() {
    let f = Fixture::new();
    let token = f.token("alice", &["profile"]);
    let (status, headers, body) = send(&f.app(), post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let c = challenge(&headers);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"mcp:tools\""), "{c}");
    assert!(
        c.contains(&format!("resource_metadata=\"{METADATA}\"")),
        "{c}"
    );
    assert_eq!(body["error"], "insufficient_scope");
}

#[tokio::test]
async fn a_tool_needing_more_scope_is_403_with_every_scope_it_needs() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let (status, headers, _) = send(&f.app(), post(Some(&token), &call("delete_file"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let c = challenge(&headers);
    assert!(c.contains("scope=\"mcp:tools files:write\""), "{c}");
    // Other tools are fine with the base scope; with the scope, so is this one.
    assert_eq!(
        send(&f.app(), post(Some(&token), &call("echo"))).await.0,
        StatusCode::OK
    );
    let token = f.token("alice", &["mcp:tools", "files:write"]);
    assert_eq!(
        send(&f.app(), post(Some(&token), &call("delete_file")))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_batch_needs_the_scopes_of_every_tool_in_it() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let batch = json!([call("echo"), call("delete_file")]);
    assert_eq!(
        send(&f.app(), post(Some(&token), &batch)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_mcp_name_header_that_disagrees_with_the_body_is_refused() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let mut request = post(Some(&token), &call("delete_file"));
    request
        .headers_mut()
        .insert("mcp-name", HeaderValue::from_static("echo"));
    let (status, _, body) = send(&f.app(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A JSON-RPC error with the transport's header-mismatch code and the
    // request's id, as rmcp answers a wrong Mcp-Method: SDK clients act on
    // -32020.
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], 1, "{body}");
    assert_eq!(body["error"]["code"], -32020, "{body}");
    assert!(body.get("error_description").is_none(), "{body}");

    // A batch is compared call by call, not only when it calls one tool.
    let batch = json!([call("echo"), {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "delete_file", "arguments": {}}}]);
    let mut request = post(
        Some(&f.token("alice", &["mcp:tools", "files:write"])),
        &batch,
    );
    request
        .headers_mut()
        .insert("mcp-name", HeaderValue::from_static("echo"));
    let (status, _, body) = send(&f.app(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], -32020, "{body}");
    assert_eq!(body["id"], 9, "{body}");

    let mut request = post(Some(&token), &call("echo"));
    request
        .headers_mut()
        .insert("mcp-name", HeaderValue::from_static("echo"));
    assert_eq!(send(&f.app(), request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn offline_access_is_never_advertised_in_a_challenge() {
    let f = Fixture::new();
    let config = ResourceConfig::builder(RESOURCE, ISSUER)
        .require_scopes(["mcp:tools", "offline_access"])
        .tool_scopes("sync", ["offline_access", "files:read"])
        .build()
        .unwrap();
    let app = McpAuth::with_jwks(config, f.validator())
        .unwrap()
        .into_router(any(echo))
        .unwrap();
    let (status, headers, _) = send(&app, post(None, &list())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let c = challenge(&headers);
    assert!(
        c.contains("scope=\"mcp:tools\"") && !c.contains("offline_access"),
        "{c}"
    );
    let token = f.token("alice", &["profile"]);
    let (status, headers, _) = send(&app, post(Some(&token), &call("sync"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let c = challenge(&headers);
    assert!(
        c.contains("scope=\"mcp:tools files:read\"") && !c.contains("offline_access"),
        "{c}"
    );
}

#[tokio::test]
async fn a_malformed_json_rpc_body_is_400() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    for body in ["{", "[]", r#"{"method":"tools/call","params":{}}"#] {
        let mut request = post(Some(&token), &json!(null));
        *request.body_mut() = Body::from(body);
        let (status, _, json) = send(&f.app(), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], "invalid_request");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let big = json!({"method": "tools/call", "params": {"name": "echo", "arguments": {"x": "y".repeat(5000)}}});
    assert_eq!(
        send(&f.app(), post(Some(&token), &big)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn the_metadata_is_served_on_both_paths_without_a_token() {
    let f = Fixture::new();
    let config = ResourceConfig::builder(RESOURCE, ISSUER)
        .require_scopes(["mcp:tools"])
        .tool_scopes("delete_file", ["files:write"])
        .resource_name("Example MCP")
        .build()
        .unwrap();
    let app = McpAuth::with_jwks(config, f.validator())
        .unwrap()
        .into_router(any(echo))
        .unwrap();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let (status, headers, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body,
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["mcp:tools", "files:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example MCP",
            })
        );
    }
}

#[tokio::test]
async fn a_burst_over_the_user_limit_gets_429_with_retry_after() {
    let f = Fixture::new();
    let app = f.app();
    let token = f.token("alice", &["mcp:tools"]);
    for _ in 0..5 {
        assert_eq!(
            send(&app, post(Some(&token), &list())).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, body) = send(&app, post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    assert_eq!(body["error"], "rate_limited");
    // Another user has their own budget.
    let bob = f.token("bob", &["mcp:tools"]);
    assert_eq!(
        send(&app, post(Some(&bob), &list())).await.0,
        StatusCode::OK
    );
    // And time refills it.
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(
        send(&app, post(Some(&token), &list())).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tool_calls_are_limited_per_tool() {
    let f = Fixture::new();
    let app = f.app();
    let token = f.token("alice", &["mcp:tools"]);
    for _ in 0..2 {
        assert_eq!(
            send(&app, post(Some(&token), &call("echo"))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, post(Some(&token), &call("echo"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another tool, and non-tool requests, still pass (user budget 5).
    assert_eq!(
        send(&app, post(Some(&token), &call("other"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post(Some(&token), &list())).await.0,
        StatusCode::OK
    );
}

#[derive(Debug)]
struct DeadStore(Limits);

impl RateLimiter for DeadStore {
    fn decide<'a>(&'a self, _: &'a UserId, _: Option<&'a str>) -> DecisionFuture<'a> {
        Box::pin(std::future::ready(Decision::Denied {
            by: DeniedBy::StoreUnavailable,
            retry_after: Duration::from_secs(2),
        }))
    }
    fn decide_calls<'a>(&'a self, user: &'a UserId, _: &'a [&'a str]) -> DecisionFuture<'a> {
        self.decide(user, None)
    }
    fn limits(&self) -> &Limits {
        &self.0
    }
}

#[tokio::test]
async fn a_limiter_that_cannot_decide_fails_closed_with_503() {
    let f = Fixture::new();
    let app = McpAuth::with_jwks(f.config(), f.validator())
        .unwrap()
        .rate_limiter(Arc::new(DeadStore(Limits::none())))
        .into_router(any(echo))
        .unwrap();
    let token = f.token("alice", &["mcp:tools"]);
    let (status, headers, _) = send(&app, post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "2");
}

#[tokio::test]
async fn sessions_are_bound_to_their_subject() {
    let f = Fixture::new();
    let app = f.app();
    let alice = f.token("alice", &["mcp:tools"]);
    let mallory = f.token("mallory", &["mcp:tools"]);

    // The MCP server opens a session; the client sees a different, strong id.
    let mut open = post(Some(&alice), &list());
    open.headers_mut()
        .insert("x-open-session", HeaderValue::from_static("inner-123"));
    let (status, headers, _) = send(&app, open).await;
    assert_eq!(status, StatusCode::OK);
    let outer = headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert_ne!(outer, "inner-123");
    assert_eq!(outer.len(), 43);

    // Alice's next request reaches the server with the server's own id.
    let (status, _, body) = send(&app, with_session(post(Some(&alice), &list()), &outer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session"], "inner-123");

    // Mallory replaying Alice's session id is refused like an unknown id.
    let (status, _, body) = send(&app, with_session(post(Some(&mallory), &list()), &outer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "session_not_found");
    // The server's raw id is no use either.
    let (status, _, _) = send(&app, with_session(post(Some(&alice), &list()), "inner-123")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Alice's session survived the attempt; DELETE ends it.
    let mut delete = with_session(post(Some(&alice), &json!(null)), &outer);
    *delete.method_mut() = Method::DELETE;
    *delete.body_mut() = Body::empty();
    assert_eq!(send(&app, delete).await.0, StatusCode::OK);
    let (status, _, _) = send(&app, with_session(post(Some(&alice), &list()), &outer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_session_binding_a_session_the_server_opens_is_refused() {
    // A stateful MCP service behind a stack without `.sessions(..)`: the id
    // it issues would be bound to nobody. It never reaches the client.
    let f = Fixture::new();
    let app = McpAuth::with_jwks(f.config(), f.validator())
        .unwrap()
        .into_router(any(echo))
        .unwrap();
    let alice = f.token("alice", &["mcp:tools"]);
    let (log, _guard) = mcp_auth_testkit::CapturedLog::install();
    let mut open = post(Some(&alice), &list());
    open.headers_mut()
        .insert("x-open-session", HeaderValue::from_static("inner-123"));
    let (status, headers, body) = send(&app, open).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!headers.contains_key("mcp-session-id"));
    assert_eq!(body["error"], "server_error");
    let logged = log.contents();
    assert!(logged.contains("unbound_session_refused"), "{logged}");
    assert!(logged.contains(".sessions("), "{logged}");
    assert!(!logged.contains("inner-123"), "{logged}");
    // A stateless service (no session id issued) is served as usual.
    let (status, _, _) = send(&app, post(Some(&alice), &list())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let f = Fixture::new();
    let app = f.app();
    let alice = f.token("alice", &["mcp:tools"]);
    let mut open = post(Some(&alice), &list());
    open.headers_mut()
        .insert("x-open-session", HeaderValue::from_static("inner-1"));
    let (_, headers, _) = send(&app, open).await;
    let outer = headers["mcp-session-id"].to_str().unwrap().to_owned();
    f.clock.advance(Duration::from_secs(3601));
    let (status, _, _) = send(&app, with_session(post(Some(&alice), &list()), &outer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn security_headers_are_set_and_hsts_only_behind_tls() {
    let f = Fixture::new();
    let (_, headers, _) = send(&f.app(), post(None, &list())).await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The MCP endpoint sets them in its own service, the metadata and
    // unknown paths through tower-http: the same set, the same values, on
    // refusals and successes alike.
    let security = |headers: &HeaderMap| {
        [
            "x-content-type-options",
            "referrer-policy",
            "content-security-policy",
            "x-frame-options",
            "cache-control",
            "strict-transport-security",
        ]
        .map(|name| headers.get(name).cloned())
    };
    let expected = security(&headers);
    assert!(expected.iter().all(Option::is_some), "{headers:?}");
    let token = f.token("alice", &["mcp:tools"]);
    let (status, ok_headers, _) = send(&f.app(), post(Some(&token), &list())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(security(&ok_headers), expected);
    for path in ["/.well-known/oauth-protected-resource/mcp", "/nowhere"] {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let (_, headers, _) = send(&f.app(), request).await;
        let mut expected = expected.clone();
        if path.contains("well-known") {
            // A header the handler set is kept: the metadata is cacheable.
            assert_eq!(headers["cache-control"], "public, max-age=3600");
            expected[4] = Some(HeaderValue::from_static("public, max-age=3600"));
        }
        assert_eq!(security(&headers), expected, "{path}");
    }
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );

    let config = ResourceConfig::builder("http://127.0.0.1:8080/mcp", "http://127.0.0.1:9000")
        .build()
        .unwrap();
    let app = McpAuth::new(
        config,
        Arc::new(Lenient {
            audience: "x",
            outcome: None,
        }),
    )
    .unwrap()
    .into_router(any(echo))
    .unwrap();
    let (_, headers, _) = send(&app, post(None, &list())).await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(!headers.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let f = Fixture::new();
    let app = f
        .stack()
        .cors(CorsConfig::allow_origins(["https://app.example.com"]))
        .into_router(any(echo))
        .unwrap();
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/mcp")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = send(&app, preflight("https://app.example.com")).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    let (_, headers, _) = send(&app, preflight("https://evil.example.com")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    assert!(matches!(
        CorsConfig::any_origin().allow_credentials().layer(),
        Err(ConfigError::Cors { .. })
    ));
    assert!(matches!(
        CorsConfig::allow_origins(["*"]).allow_credentials().layer(),
        Err(ConfigError::Cors { .. })
    ));
    assert!(matches!(
        CorsConfig::allow_origins(["https://app.example.com/path"]).layer(),
        Err(ConfigError::Cors { .. })
    ));
}

#[test]
fn unsafe_resource_configurations_are_refused() {
    let bad = [
        ("http://mcp.example.com/mcp", ISSUER),
        ("mcp.example.com/mcp", ISSUER),
        ("https://mcp.example.com/mcp#x", ISSUER),
        ("https://mcp.example.com/mcp?x=1", ISSUER),
        ("https://user:pw@mcp.example.com/mcp", ISSUER),
        (RESOURCE, "http://login.example.com"),
        // Paths the router could not serve as themselves.
        (
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            ISSUER,
        ),
        ("https://mcp.example.com/:tenant/mcp", ISSUER),
        ("https://mcp.example.com/mcp/*rest", ISSUER),
    ];
    for (resource, issuer) in bad {
        assert!(
            matches!(
                ResourceConfig::builder(resource, issuer).build(),
                Err(ConfigError::Url { .. })
            ),
            "{resource} {issuer}"
        );
    }
    assert!(matches!(
        ResourceConfig::builder(RESOURCE, ISSUER)
            .require_scopes(["bad scope"])
            .build(),
        Err(ConfigError::Scope { .. })
    ));
}

#[tokio::test]
async fn inner_layers_mounted_outside_the_bearer_layer_refuse_with_500() {
    use mcp_auth_axum::{RateLimit, SessionBinding};
    use mcp_auth_ratelimit::MemoryRateLimiter;
    use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
    let limiter = Arc::new(MemoryRateLimiter::new(Limits::default()).unwrap());
    let app = Router::new()
        .route_service("/mcp", any(echo))
        .layer(RateLimit::new(limiter));
    assert_eq!(
        send(&app, post(None, &list())).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let sessions =
        SessionManager::new(MemorySessionStore::new(), SessionConfig::default()).unwrap();
    let app = Router::new()
        .route_service("/mcp", any(echo))
        .layer(SessionBinding::new(sessions));
    assert_eq!(
        send(&app, post(None, &list())).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn the_layers_stacked_by_hand_behave_like_mcp_auth() {
    use mcp_auth_axum::{BearerAuth, RateLimit, SessionBinding};
    use mcp_auth_ratelimit::MemoryRateLimiter;
    use mcp_auth_session::{MemorySessionStore, SessionConfig, SessionManager};
    let f = Fixture::new();
    let limiter = MemoryRateLimiter::new(Fixture::limits())
        .map(|limiter| limiter.clock(f.clock.clone()))
        .unwrap();
    let sessions =
        SessionManager::new(MemorySessionStore::new(), SessionConfig::default()).unwrap();
    let app = Router::new()
        .route_service("/mcp", any(echo))
        .layer(SessionBinding::new(sessions))
        .layer(RateLimit::new(Arc::new(limiter)))
        .layer(BearerAuth::new(
            Arc::new(f.config()),
            Arc::new(f.validator()),
        ));
    assert_eq!(
        send(&app, post(None, &list())).await.0,
        StatusCode::UNAUTHORIZED
    );
    let alice = f.token("alice", &["mcp:tools"]);
    let mut open = post(Some(&alice), &list());
    open.headers_mut()
        .insert("x-open-session", HeaderValue::from_static("inner-7"));
    let (status, headers, body) = send(&app, open).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subject"], "alice");
    let outer = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let mallory = f.token("mallory", &["mcp:tools"]);
    let (status, _, _) = send(&app, with_session(post(Some(&mallory), &list()), &outer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, body) = send(&app, with_session(post(Some(&alice), &list()), &outer)).await;
    assert_eq!(body["session"], "inner-7");
    let token = f.token("carol", &["mcp:tools"]);
    for _ in 0..5 {
        send(&app, post(Some(&token), &list())).await;
    }
    assert_eq!(
        send(&app, post(Some(&token), &list())).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The rate limit layer reads the tool from the bearer layer's summary
    // (request extensions): the per-tool tier (2 a minute) applies.
    let dave = f.token("dave", &["mcp:tools"]);
    for _ in 0..2 {
        assert_eq!(
            send(&app, post(Some(&dave), &call("echo"))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, post(Some(&dave), &call("echo"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&app, post(Some(&dave), &call("other"))).await.0,
        StatusCode::OK
    );
}

#[test]
fn session_data_does_not_print_the_servers_session_id() {
    let data = mcp_auth_axum::McpSessionData::new("server-session-secret");
    assert!(!format!("{data:?}").contains("server-session-secret"));
}

#[derive(Debug)]
struct Counting {
    inner: Validator,
    calls: std::sync::atomic::AtomicUsize,
}

impl TokenVerifier for Counting {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify(token)
    }
}

fn from(peer: &str, mut request: Request) -> Request {
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

#[tokio::test]
async fn made_up_tokens_spend_the_clients_verification_budget_and_cache_hits_are_free() {
    use mcp_auth_axum::VerificationLimit;
    use mcp_auth_axum::token::CachedVerifier;
    use mcp_auth_ratelimit::{Limit, MemoryRateLimiter};
    use std::sync::atomic::Ordering;
    let f = Fixture::new();
    let counting = Arc::new(Counting {
        inner: f.validator(),
        calls: Default::default(),
    });
    // The cache reads the system clock, as the validator and the dev
    // issuer's tokens do; the budget reads the manual one.
    let cached = CachedVerifier::new(counting.clone());
    let budget =
        MemoryRateLimiter::new(Limits::none().per_user(Some(Limit::per_minute(3).unwrap())))
            .map(|limiter| limiter.clock(f.clock.clone()))
            .unwrap();
    let app = McpAuth::new(f.config(), Arc::new(cached))
        .unwrap()
        .verification_limit(VerificationLimit::per_peer(Arc::new(budget)))
        .into_router(any(echo))
        .unwrap();
    let attacker = "203.0.113.66:40000";
    let alice = f.token("alice", &["mcp:tools"]);
    // A good token is checked once (charged), then cached.
    assert_eq!(
        send(&app, from(attacker, post(Some(&alice), &list())))
            .await
            .0,
        StatusCode::OK
    );
    for made_up in ["made.up.token", "another.made.up"] {
        assert_eq!(
            send(&app, from(attacker, post(Some(made_up), &list())))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(counting.calls.load(Ordering::SeqCst), 3);
    // The budget (3 a minute) is spent: refused before any verification.
    let (status, headers, _) =
        send(&app, from(attacker, post(Some("third.made.up"), &list()))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(counting.calls.load(Ordering::SeqCst), 3);
    // A cached token still works from there, and costs nothing.
    assert_eq!(
        send(&app, from(attacker, post(Some(&alice), &list())))
            .await
            .0,
        StatusCode::OK
    );
    // A request without a token is not a verification.
    assert_eq!(
        send(&app, from(attacker, post(None, &list()))).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Other clients keep their own budget.
    let bob = f.token("bob", &["mcp:tools"]);
    assert_eq!(
        send(&app, from("198.51.100.2:1", post(Some(&bob), &list())))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(counting.calls.load(Ordering::SeqCst), 4);
    // And the budget comes back with time.
    f.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        send(&app, from(attacker, post(Some("made.up.again"), &list())))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

fn with_origin(mut request: Request, origin: &'static str) -> Request {
    request
        .headers_mut()
        .insert(header::ORIGIN, HeaderValue::from_static(origin));
    request
}

#[tokio::test]
async fn an_origin_that_is_not_allowed_is_refused_with_403_even_with_a_good_token() {
    let f = Fixture::new();
    let token = f.token("alice", &["mcp:tools"]);
    let app = f
        .stack()
        .cors(CorsConfig::allow_origins(["https://app.example.com"]))
        .into_router(any(echo))
        .unwrap();
    for origin in [
        "http://evil.example",
        "null",
        "https://app.example.com.evil.example",
    ] {
        let (status, headers, body) =
            send(&app, with_origin(post(Some(&token), &list()), origin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(body["error"], "invalid_origin", "{origin}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        // Refused before the token is looked at: no challenge.
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
    }
    // Allowed: no Origin (SDK clients, curl), the CORS list, the resource's own origin.
    let allowed = [
        post(Some(&token), &list()),
        with_origin(post(Some(&token), &list()), "https://app.example.com"),
        with_origin(post(Some(&token), &list()), "https://mcp.example.com"),
    ];
    for request in allowed {
        assert_eq!(send(&app, request).await.0, StatusCode::OK);
    }
    // Without any CORS configuration only the own origin passes.
    let (status, _, _) = send(
        &f.app(),
        with_origin(post(Some(&token), &list()), "https://app.example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// An MCP service that answers as rmcp's streams do: `Cache-Control: no-cache`.
async fn caching_echo(request: Request) -> axum::response::Response {
    let mut response = echo(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[tokio::test]
async fn responses_on_the_mcp_route_are_never_cacheable() {
    let f = Fixture::new();
    let app = f.stack().into_router(any(caching_echo)).unwrap();
    let token = f.token("alice", &["mcp:tools"]);
    let (status, headers, _) = send(&app, post(Some(&token), &call("echo"))).await;
    assert_eq!(status, StatusCode::OK);
    let values: Vec<_> = headers.get_all(header::CACHE_CONTROL).iter().collect();
    assert_eq!(values, ["no-store"]);
}

#[tokio::test]
async fn invented_tool_names_cannot_push_real_tools_into_the_overflow_bucket() {
    let f = Fixture::new();
    // A limiter that tracks at most 4 distinct tool names (256 by default).
    let limits = Fixture::limits().per_user(None).max_distinct_tools(4);
    let limiter = Arc::new(
        MemoryRateLimiter::new(limits)
            .map(|limiter| limiter.clock(f.clock.clone()))
            .unwrap(),
    );
    let app = f
        .stack()
        .rate_limiter(limiter)
        .tools(["echo", "search"])
        .into_router(any(echo))
        .unwrap();
    let mallory = f.token("mallory", &["mcp:tools"]);
    // Invented names: the first two fill the shared overflow bucket (2 a
    // minute), the rest are refused.
    let mut admitted = 0;
    for i in 0..10 {
        if send(&app, post(Some(&mallory), &call(&format!("made_up_{i}"))))
            .await
            .0
            == StatusCode::OK
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2);
    // Real tools keep buckets of their own, for every user.
    let alice = f.token("alice", &["mcp:tools"]);
    for tool in ["echo", "search"] {
        for token in [&alice, &mallory] {
            assert_eq!(
                send(&app, post(Some(token), &call(tool))).await.0,
                StatusCode::OK,
                "{tool}"
            );
        }
    }
}

#[tokio::test]
async fn a_batch_refused_by_a_later_call_spends_nothing() {
    let f = Fixture::new();
    let app = f.app(); // 5 a minute per user, 2 a minute per (user, tool)
    let token = f.token("alice", &["mcp:tools"]);
    assert_eq!(
        send(&app, post(Some(&token), &call("search"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post(Some(&token), &call("search"))).await.0,
        StatusCode::OK
    );
    // echo is free, search is spent: the batch is refused as a whole...
    let batch = json!([call("echo"), call("search")]);
    for _ in 0..3 {
        assert_eq!(
            send(&app, post(Some(&token), &batch)).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // ...and kept none of echo's charges (2 left) nor the user tier's (3 left).
    for _ in 0..2 {
        assert_eq!(
            send(&app, post(Some(&token), &call("echo"))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, post(Some(&token), &list())).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post(Some(&token), &list())).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// The step-up challenge names what the call needs *and* what the token
/// already has of this resource's scopes, so a client that replaces its
/// scopes with the challenge's keeps them: read → write → read converges
/// in one consent. Scopes foreign to this resource are not named.
#[tokio::test]
async fn a_step_up_challenge_keeps_the_scopes_the_token_already_has() {
    let f = Fixture::new();
    let config = ResourceConfig::builder(RESOURCE, ISSUER)
        .require_scopes(["mcp:tools"])
        .tool_scopes("read_note", ["notes:read"])
        .tool_scopes("save_note", ["notes:write"])
        .build()
        .unwrap();
    let app = McpAuth::with_jwks(config, f.validator())
        .unwrap()
        .into_router(any(echo))
        .unwrap();
    let token = f.token("alice", &["mcp:tools", "notes:read", "profile"]);
    let (status, headers, _) = send(&app, post(Some(&token), &call("save_note"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let c = challenge(&headers);
    assert!(
        c.contains("scope=\"mcp:tools notes:write notes:read\""),
        "needed, then held: {c}"
    );
    assert!(!c.contains("profile"), "{c}");
    // With the challenge's scopes, every tool works: nothing was lost.
    let widened = f.token("alice", &["mcp:tools", "notes:write", "notes:read"]);
    for tool in ["save_note", "read_note"] {
        assert_eq!(
            send(&app, post(Some(&widened), &call(tool))).await.0,
            StatusCode::OK
        );
    }
}
