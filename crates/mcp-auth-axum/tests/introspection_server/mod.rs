//! An in-process RFC 7662 introspection endpoint on loopback, answering
//! per token value (see `introspect`), for the introspection tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mcp_auth_axum::token::IntrospectionVerifier;
use mcp_auth_core::ManualClock;
use serde_json::json;

use crate::common::{ISSUER, RESOURCE};

pub const NOW: u64 = 1_800_000_000;
pub const CLIENT_ID: &str = "mcp server";
pub const CLIENT_SECRET: &str = "introspection-secret:&=value";

#[derive(Default)]
pub struct Seen {
    pub calls: AtomicUsize,
}

/// The authorization server's answer for each token.
async fn introspect(seen: Arc<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    // RFC 6749 section 2.3.1: id and secret form-encoded, then Basic.
    let expected = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"mcp+server:introspection-secret%3A%26%3Dvalue")
    );
    if headers.get("authorization").map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    assert!(form.contains(&("token_type_hint".into(), "access_token".into())));
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .unwrap();
    let good = json!({
        "active": true, "sub": "alice", "client_id": "app-1",
        "scope": "mcp:tools notes:read", "aud": [RESOURCE, "https://other.example"],
        "iss": ISSUER, "exp": NOW + 300, "token_type": "Bearer", "ext": {"tenant": "t1"}
    });
    let with = |key: &str, value: serde_json::Value| {
        let mut answer = good.clone();
        answer[key] = value;
        axum::Json(answer).into_response()
    };
    match token.as_str() {
        "good+/token==" => axum::Json(good).into_response(),
        "one-aud" => with("aud", json!(RESOURCE)),
        "no-exp" => {
            let mut answer = good.clone();
            answer.as_object_mut().unwrap().remove("exp");
            axum::Json(answer).into_response()
        }
        "inactive" => axum::Json(json!({"active": false})).into_response(),
        "expired" => with("exp", json!(NOW - 1)),
        "future" => with("nbf", json!(NOW + 3600)),
        "other-aud" => with("aud", json!("https://other.example")),
        "no-aud" => {
            let mut answer = good.clone();
            answer.as_object_mut().unwrap().remove("aud");
            axum::Json(answer).into_response()
        }
        "wrong-iss" => with("iss", json!("https://evil.example")),
        "refresh" => with("token_type", json!("refresh_token")),
        "no-sub" => with("sub", json!(null)),
        "bad-sub" => with("sub", json!("a\u{0}b")),
        "garbage" => "not json".into_response(),
        "not-object" => axum::Json(json!([1, 2])).into_response(),
        "wrong-types" => with("active", json!("yes")),
        "huge" => "x".repeat(200 * 1024).into_response(),
        "server-error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => axum::Json(json!({"active": false})).into_response(),
    }
}

pub struct Server {
    pub url: String,
    pub seen: Arc<Seen>,
}

pub async fn server() -> Server {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/introspect",
        post(move |headers: HeaderMap, body: Bytes| introspect(state.clone(), headers, body)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, seen }
}

pub fn verifier(url: &str, secret: &str) -> IntrospectionVerifier {
    IntrospectionVerifier::builder(url, RESOURCE, CLIENT_ID, secret)
        .issuer(ISSUER)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .unwrap()
}
