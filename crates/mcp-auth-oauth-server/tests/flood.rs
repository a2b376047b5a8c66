//! Floods that need no login (issue: the authorization server under
//! attack), in process so that they are fast: N `/authorize` requests
//! (half with a 4 KiB `state`, refused before anything is stored; half
//! with a 1 KiB one, stored), N/10 consent posts for pending requests no
//! one signed in to, and N registrations, each from its own address,
//! against a store of N/15 entries per table (so every table overflows
//! fifteen times), while a real person signs in over HTTP. N is 30,000 in
//! CI (`MCP_AUTH_FLOOD=100000` for the issue's figure; see
//! docs/oauth-server.md for both runs). The sign-in completes; the
//! tables stay at their bound (the oldest unauthenticated entries and
//! unused registered clients are evicted, not every sign-in refused); the
//! process grows by less than the documented bound.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::Router;
use common::*;
use mcp_auth_oauth_server::{MAX_STATE_LEN, MemoryAuthStore};
use mcp_auth_testkit::browser::Browser;
use reqwest::StatusCode;
use tower::ServiceExt;

fn size() -> usize {
    std::env::var("MCP_AUTH_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000)
}

/// The documented bound on what the flood may add to the process: the
/// tables at capacity (pending requests ≤ 1 KiB of state and their
/// client's copy, clients), the per-address limiter's entries (one per
/// address: 2N), with slack for the allocator: 16 MiB + 1 KiB per request.
fn max_growth_mib(n: usize) -> u64 {
    16 + (n as u64) / 1024
}

/// A distinct address per request: IPv6 /64s, as a real flood would use.
fn address(n: usize) -> IpAddr {
    let n = n as u64;
    // The limiter keys IPv6 by /64: the number goes in the /64 prefix.
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        (n >> 16) as u16,
        n as u16,
        0,
        0,
        0,
        1,
    ))
}

fn request(method: &str, uri: &str, body: String, from: IpAddr) -> http::Request<axum::body::Body> {
    let content_type = if uri == "/register" {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap();
    request
        .extensions_mut()
        .insert(mcp_auth_axum::ClientAddress(Some(from)));
    request
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn flood(
    router: Router,
    client_id: String,
    challenge: String,
    resource: String,
    n_requests: usize,
) -> [usize; 4] {
    let (authorizes, consent_posts, registrations) = (n_requests, n_requests / 10, n_requests);
    // [stored pending, refused long states, refused consents, registrations]
    let mut seen = [0usize; 4];
    let long = "s".repeat(4 * 1024);
    let short = "s".repeat(MAX_STATE_LEN);
    for n in 0..authorizes {
        let state = if n % 2 == 0 { &long } else { &short };
        let uri = format!(
            "/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A53123%2Fcallback&code_challenge={challenge}&code_challenge_method=S256&resource={}&state={state}",
            urlencoding(&resource)
        );
        let status = router
            .clone()
            .oneshot(request("GET", &uri, String::new(), address(n)))
            .await
            .unwrap()
            .status();
        match (n % 2, status) {
            (0, http::StatusCode::BAD_REQUEST) => seen[1] += 1,
            (1, http::StatusCode::OK) => seen[0] += 1,
            (_, other) => panic!("authorize {n}: {other}"),
        }
        if n % 10 == 0 && n / 10 < consent_posts {
            let body = format!("pending=p{n}&csrf=c{n}&decision=approve");
            let status = router
                .clone()
                .oneshot(request("POST", "/consent", body, address(n)))
                .await
                .unwrap()
                .status();
            assert!(status.is_client_error(), "consent {n}: {status}");
            seen[2] += 1;
        }
        if n < registrations {
            let body = format!(
                r#"{{"client_name":"flood {n}","redirect_uris":["http://localhost/cb{n}"],"token_endpoint_auth_method":"none"}}"#
            );
            let status = router
                .clone()
                .oneshot(request("POST", "/register", body, address(authorizes + n)))
                .await
                .unwrap()
                .status();
            assert_eq!(status, http::StatusCode::CREATED, "registration {n}");
            seen[3] += 1;
        }
        if n % 1_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    seen
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_fills_no_table_and_a_real_sign_in_completes() {
    let n = size();
    let env = env_custom(true, |b| b.store(Arc::new(MemoryAuthStore::new(n / 15)))).await;
    let flood_client = register(&env, "Flood").await;
    let person_client = register(&env, "A person's client").await;
    let pkce = new_pkce();
    let before = rss_kib();
    let started = std::time::Instant::now();
    let task = tokio::spawn(flood(
        env.server.router(),
        flood_client,
        new_pkce().challenge,
        env.resource.clone(),
        n,
    ));
    // While the flood runs: a person signs in, over HTTP, and gets tokens.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut browser = Browser::new();
    let callback = sign_in(&env, &mut browser, &person_client, &pkce, "rosa").await;
    let q = query(&callback);
    let (status, tokens) = exchange(&env, &person_client, &q["code"], &pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(!task.is_finished(), "the sign-in ran during the flood");
    let seen = task.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(seen, [n / 2, n / 2, n / 10, n]);
    // After N registrations and N/2 stored authorizations, the
    // person's client (in use by a grant) and its refresh token still work.
    let (status, answer) = refresh(
        &env,
        &person_client,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // And a new sign-in (another browser) still works: nothing answers 503.
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let callback = sign_in(&env, &mut browser, &person_client, &pkce, "rosa").await;
    let q = query(&callback);
    assert_eq!(
        exchange(&env, &person_client, &q["code"], &pkce.verifier)
            .await
            .0,
        StatusCode::OK
    );
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    let bound = max_growth_mib(n);
    println!(
        "flood: {n} authorizes, {} consent posts, {n} registrations, tables of {} in {:.1} s; RSS grew {grown_mib} MiB (bound {bound})",
        n / 10,
        n / 15,
        elapsed.as_secs_f64()
    );
    assert!(grown_mib < bound, "grew {grown_mib} MiB");
}
