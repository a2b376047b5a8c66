//! Drives `N` refresh grants over loopback (16 keep-alive clients, each on
//! its own grant and connection, from the oauth_server bench's lean load
//! generator, or reqwest with `REQWEST=1`; 2 runtime workers, client and
//! server in this process)
//! against the authorization server on its memory store, or against a
//! canned `/token` handler that answers every request with a token
//! response of the same shape and size (the floor: the HTTP client, hyper,
//! axum's routing and the kernel's loopback, with none of the server's
//! work). `benches/callgrind-token.sh` runs both under valgrind and prints
//! instructions per refresh, which unlike time do not move with the
//! machine's load.
//!
//! `cargo run --release -p mcp-auth-benches --example token_instructions -- <canned|refresh|code> <N>`
//! (`code`: authorization-code grants through a signed-in browser with
//! consent remembered, reqwest's).

use std::sync::Arc;

use mcp_auth_benches::load::Connection;
use mcp_auth_benches::signin::{REDIRECT, authorize_url, register};
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin};
use mcp_auth_ratelimit::Limits;
use mcp_auth_testkit::browser::{Browser, Pkce, query_of};
use serde_json::Value;

const CLIENTS: u64 = 16;

#[allow(clippy::expect_used)]
fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1600);
    if !["canned", "refresh", "code"].contains(&mode.as_str()) {
        eprintln!("usage: token_instructions <canned|refresh|code> <N>");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = std::time::Instant::now();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let resource = format!("{issuer}/mcp");
        let server = AuthServer::builder(&issuer, &resource)
            .scopes(["mcp:tools"])
            .login(DangerousDevLogin)
            .dynamic_registration(true)
            .rate_limits(Limits::none())
            .build()
            .expect("server");
        // Each client's first refresh token comes from a real sign-in, so
        // the canned answer has the real one's shape and size.
        let setup = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let setup_issuer = format!("http://{}", setup.local_addr().expect("address"));
        let mut clients = Vec::new();
        let mut body = String::new();
        {
            let router = server.router();
            let handle = tokio::spawn(async move { axum::serve(listener, router).await });
            for i in 0..CLIENTS {
                clients.push(sign_in(&issuer, &resource, i).await);
            }
            if mode == "canned" {
                let (http, client_id, token) = &clients[0];
                body = refresh(http, &issuer, client_id, token).await.to_string();
                handle.abort();
            }
        }
        let target = if mode == "canned" {
            let body: Arc<str> = body.into();
            let canned = axum::Router::new().route(
                "/token",
                axum::routing::post(move || {
                    let body = body.clone();
                    async move {
                        (
                            [
                                (http::header::CONTENT_TYPE, "application/json"),
                                (http::header::CACHE_CONTROL, "no-store"),
                            ],
                            body.to_string(),
                        )
                    }
                }),
            );
            tokio::spawn(async move { axum::serve(setup, canned).await });
            setup_issuer
        } else {
            drop(setup);
            issuer
        };
        let target = Arc::new(target);
        let mut tasks = Vec::new();
        let (code, resource) = (mode == "code", Arc::new(resource));
        // The bench's lean load generator; REQWEST=1: reqwest instead.
        let lean = std::env::var_os("REQWEST").is_none();
        for (i, (http, client_id, mut token)) in clients.into_iter().enumerate() {
            let (target, resource) = (target.clone(), resource.clone());
            tasks.push(tokio::spawn(async move {
                // Signed in once, then every sign-in remembered.
                let mut browser = Browser::new();
                let mut connection: Option<Connection> = None;
                for _ in 0..n / CLIENTS {
                    if code {
                        code_grant(&http, &mut browser, &target, &resource, &client_id, i).await;
                        continue;
                    }
                    if lean {
                        if connection.is_none() {
                            connection = Some(Connection::open(&target).await.expect("connection"));
                        }
                        let connection = connection.as_mut().expect("opened");
                        let tokens = connection
                            .tokens(
                                "/token",
                                &[
                                    ("grant_type", "refresh_token"),
                                    ("refresh_token", &token),
                                    ("client_id", &client_id),
                                ],
                            )
                            .await
                            .expect("refresh");
                        token = tokens.refresh_token.expect("a refresh token");
                        continue;
                    }
                    let tokens = refresh(&http, &target, &client_id, &token).await;
                    token = tokens["refresh_token"]
                        .as_str()
                        .expect("refresh")
                        .to_owned();
                }
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
    });
    eprintln!(
        "{mode}: {} grants, {:.1} µs each with the start-up (wall time; meaningless under valgrind)",
        n / CLIENTS * CLIENTS,
        start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
    );
}

#[allow(clippy::expect_used)]
async fn refresh(http: &reqwest::Client, issuer: &str, client_id: &str, token: &str) -> Value {
    let response = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("token request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("token response")
}

/// One authorization-code grant: `/authorize` (the login form the first
/// time, then a remembered sign-in and consent) and the code exchange.
#[allow(clippy::expect_used)]
async fn code_grant(
    http: &reqwest::Client,
    browser: &mut Browser,
    issuer: &str,
    resource: &str,
    client_id: &str,
    i: impl std::fmt::Display,
) -> Value {
    let pkce = Pkce::new();
    let url = authorize_url(issuer, resource, client_id, &pkce);
    let callback = browser
        .sign_in(issuer, &url, &format!("user-{i}"))
        .await
        .expect("sign-in")
        .expect("a callback");
    let code = query_of(&callback)["code"].clone();
    let tokens: Value = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .expect("code exchange")
        .json()
        .await
        .expect("tokens");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    tokens
}

/// Registers a client and signs a person in: (HTTP client, client id,
/// refresh token).
#[allow(clippy::expect_used)]
async fn sign_in(issuer: &str, resource: &str, i: u64) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::new();
    let client_id = register(&http, issuer, &format!("bench {i}")).await;
    let tokens = code_grant(&http, &mut Browser::new(), issuer, resource, &client_id, i).await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    (http, client_id, refresh)
}
