//! Two server processes' worth of `AuthServer` sharing one Redis and one
//! key ring: a sign-in started on one finishes on the other, a code issued
//! by one is redeemed at the other, a refresh token rotated on one is
//! reused at the other and the grant is revoked for both.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;

use mcp_auth_oauth_server::{
    AuthServer, DangerousDevLogin, KeyRing, RedisAuthStore, RedisAuthStoreConfig,
};
use mcp_auth_testkit::browser::{Browser, Pkce, query_of};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_sign_in_moves_between_processes_sharing_redis() {
    let redis = mcp_auth_testkit::RedisServer::start("oauth-server fleet");
    let ring = KeyRing::generate().unwrap().to_bytes();
    // One public origin (a load balancer in front); here each process has
    // its own port and the test plays the balancer.
    let (first, second) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let issuer = "http://127.0.0.1:1".to_owned();
    let resource = format!("{issuer}/mcp");
    let mut origins = Vec::new();
    for listener in [first, second] {
        origins.push(format!("http://{}", listener.local_addr().unwrap()));
        let store = RedisAuthStore::connect(&redis.url(), RedisAuthStoreConfig::default())
            .await
            .unwrap();
        let server = AuthServer::builder(&issuer, &resource)
            .scopes(["mcp:tools"])
            .login(DangerousDevLogin)
            .dynamic_registration(true)
            .store(Arc::new(store))
            .keys(KeyRing::from_bytes(&ring).unwrap())
            .build()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, server.router()).await.unwrap() });
    }
    let (a, b) = (&origins[0], &origins[1]);
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(format!("{a}/register"))
        .json(
            &json!({"client_name": "Fleet", "redirect_uris": ["http://localhost/cb"],
                      "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    // authorize on A; login and consent on B.
    let pkce = Pkce::new();
    let mut url = url::Url::parse(&format!("{a}/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", "http://localhost:5000/cb")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &resource);
    let mut browser = Browser::new();
    let callback = browser
        .sign_in(b, url.as_str(), "fleet-user")
        .await
        .unwrap()
        .unwrap();
    let q = query_of(&callback);
    assert_eq!(q["iss"], issuer);

    // The code, issued by B, redeemed at A.
    let tokens: Value = http
        .post(format!("{a}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "http://localhost:5000/cb"),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |at: &str, token: &str| {
        let (http, at, token, client_id) = (
            http.clone(),
            at.to_owned(),
            token.to_owned(),
            client_id.clone(),
        );
        async move {
            let response = http
                .post(format!("{at}/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", &client_id),
                ])
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    // Rotated on B; the old one at A is reuse; the new one is dead on B.
    let (status, rotated) = refresh(b, &first).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    let (status, reused) = refresh(a, &first).await;
    assert_eq!(status, 400);
    assert_eq!(reused["error"], "invalid_grant");
    let (status, _) = refresh(b, &second).await;
    assert_eq!(status, 400, "the grant is revoked for every process");
}
