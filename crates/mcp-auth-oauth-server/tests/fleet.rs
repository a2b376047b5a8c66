//! Two server processes' worth of `AuthServer` sharing one Redis and one
//! key ring: a sign-in started on one finishes on the other, a code issued
//! by one is redeemed at the other, a refresh token rotated on one is
//! reused at the other and the grant is revoked for both.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;

use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin, KeyRing, RedisAuthStore};
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
        let store = RedisAuthStore::connect(mcp_auth_core::RedisConfig::new(
            redis.url(),
            RedisAuthStore::DEFAULT_PREFIX,
        ))
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

/// The proxy across a fleet: two `AuthServer`s whose only shared state is
/// Redis (grants, login sessions, pending provider sign-ins, the vault)
/// behind one public origin, played by the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn the_upstream_proxy_works_across_processes_sharing_redis() {
    use std::sync::atomic::Ordering;

    use mcp_auth_core::UserId;
    use mcp_auth_oauth_server::{SubjectSource, UpstreamError, UpstreamLogin};
    use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri, RedisPendingStore};
    use mcp_auth_session::RedisSessionStore;
    use mcp_auth_testkit::spotify::{CLIENT_ID, CLIENT_SECRET, SpotifyDouble};
    use mcp_auth_vault::store::RedisStore;
    use mcp_auth_vault::{KeyMaterial, Vault};
    use secrecy::{ExposeSecret, SecretString};

    let redis = mcp_auth_testkit::RedisServer::start("oauth-server upstream fleet");
    let ring = KeyRing::generate().unwrap().to_bytes();
    let issuer = "http://127.0.0.1:1".to_owned();
    let resource = format!("{issuer}/mcp");
    let callback = "http://127.0.0.1:9/cb";
    let double = SpotifyDouble::start(&[&format!("{issuer}/login")]).await;
    double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    let mut origins = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        origins.push(format!("http://{}", listener.local_addr().unwrap()));
        let client = OAuthClient::builder(
            Provider::new(
                "spotify",
                double.authorization_endpoint(),
                double.token_endpoint(),
            )
            .with_revocation_endpoint(double.revocation_endpoint()),
            CLIENT_ID,
            RedirectUri::new(format!("{issuer}/login")).unwrap(),
        )
        .client_secret(SecretString::from(CLIENT_SECRET))
        .pending_store(Arc::new(
            RedisPendingStore::connect(mcp_auth_core::RedisConfig::new(
                redis.url(),
                RedisPendingStore::DEFAULT_PREFIX,
            ))
            .await
            .unwrap(),
        ))
        .build()
        .unwrap();
        let vault = Arc::new(
            Vault::builder_with_store(
                RedisStore::open(mcp_auth_core::RedisConfig::new(
                    redis.url(),
                    RedisStore::DEFAULT_PREFIX,
                ))
                .unwrap(),
            )
            .key(KeyMaterial::raw([9; 32]))
            .open()
            .unwrap(),
        );
        let login = UpstreamLogin::builder(client, vault)
            .display_name("Spotify")
            .subject(SubjectSource::user_info(double.me_endpoint(), "id"))
            .scope("spotify:read", ["user-read-playback-state"])
            .build()
            .unwrap();
        let store = RedisAuthStore::connect(mcp_auth_core::RedisConfig::new(
            redis.url(),
            RedisAuthStore::DEFAULT_PREFIX,
        ))
        .await
        .unwrap();
        let sessions = RedisSessionStore::connect(mcp_auth_core::RedisConfig::new(
            redis.url(),
            RedisSessionStore::DEFAULT_PREFIX,
        ))
        .await
        .unwrap();
        let server = AuthServer::builder(&issuer, &resource)
            .scopes(["spotify:read"])
            .public_client("fleet-client", "Fleet client", [callback])
            .upstream(login)
            .store(Arc::new(store))
            .login_sessions(Arc::new(sessions))
            .keys(KeyRing::from_bytes(&ring).unwrap())
            .build()
            .unwrap();
        let router = server.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        servers.push(server);
    }
    let (a, b) = (origins[0].clone(), origins[1].clone());
    let authorize = |origin: &str, pkce: &Pkce| {
        let mut url = url::Url::parse(&format!("{origin}/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "fleet-client")
            .append_pair("redirect_uri", callback)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", "spotify:read")
            .append_pair("resource", &resource);
        url.to_string()
    };

    // Started on A (consent, then the provider), finished on B (the
    // provider's callback lands on B).
    let mut browser = Browser::new();
    let pkce = Pkce::new();
    let consent = browser.get(&authorize(&a, &pkce)).await.unwrap();
    let to_provider = browser
        .post(
            &format!("{a}/consent"),
            &[
                ("pending", &consent.field("pending").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    let back = browser
        .sign_in_through(to_provider.location(), "alice", &format!("{issuer}/login"))
        .await
        .unwrap()
        .unwrap();
    let on_b = back.replacen(&issuer, &b, 1);
    let done = browser.get(&on_b).await.unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    let q = query_of(done.location());
    let http = reqwest::Client::new();
    let tokens: Value = http
        .post(format!("{a}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", callback),
            ("client_id", "fleet-client"),
            ("code_verifier", &pkce.verifier),
            ("resource", &resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // Signed in on B means signed in on A: a new authorization on A
    // needs neither consent nor the provider.
    let asked = double.state.authorize_queries.lock().unwrap().len();
    let again = browser.get(&authorize(&a, &Pkce::new())).await.unwrap();
    assert_eq!(again.status, 303, "{}", again.body);
    assert!(again.location().starts_with(callback));
    assert_eq!(double.state.authorize_queries.lock().unwrap().len(), asked);

    // Concurrent tool calls on both processes with a token due for
    // refresh: one refresh for the fleet; everyone gets the new token.
    double
        .state
        .access_token_lifetime
        .store(3600, Ordering::SeqCst);
    let alice = UserId::new("spotify:alice").unwrap();
    let mut calls = Vec::new();
    for server in &servers {
        for _ in 0..8 {
            let handle = server.upstream_tokens().unwrap().for_user(&alice);
            calls.push(tokio::spawn(async move { handle.access_token().await }));
        }
    }
    let mut seen = Vec::new();
    for call in calls {
        seen.push(call.await.unwrap().unwrap().expose_secret().to_owned());
    }
    assert_eq!(double.state.refreshes.load(Ordering::SeqCst), 1);
    assert!(seen.iter().all(|t| *t == seen[0]));

    // A revoke on A is enforced by B: our refresh token, and the upstream
    // tokens (revoked at the provider, deleted from the shared vault).
    assert_eq!(servers[0].revoke_user(&alice).await.unwrap(), 1);
    let refused = http
        .post(format!("{b}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "fleet-client"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(matches!(
        servers[1]
            .upstream_tokens()
            .unwrap()
            .for_user(&alice)
            .access_token()
            .await
            .unwrap_err(),
        UpstreamError::Reconnect { .. }
    ));
    assert_eq!(double.state.revoked.lock().unwrap().len(), 1);
}
