//! The authorization server's token endpoint on loopback, memory store,
//! ES256 signing included: refresh grants per second (each one a rotation:
//! a lookup, an atomic rotate, a signature) and authorization-code grants
//! per second (a remembered-consent `/authorize` plus the code exchange).
//! 16 concurrent clients, each on its own grant and its own task. Figures are recorded in
//! docs/oauth-server.md. `cargo test --benches` runs it once, small.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use mcp_auth_benches::load::Connection;
use mcp_auth_benches::signin::{REDIRECT, authorize_url, register};
use mcp_auth_benches::{bench_mode, spawn_each};
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin};
use mcp_auth_ratelimit::Limits;
use mcp_auth_testkit::browser::{Browser, Pkce, query_of};
use serde_json::{Value, json};

const CLIENTS: usize = 16;

struct Client {
    http: reqwest::Client,
    /// The lean load generator's connection (token requests, and the
    /// signed-in browser's `/authorize` once its cookies are known).
    conn: Option<Connection>,
    /// The signed-in browser's cookies (empty until it signed in).
    cookie: String,
    browser: Browser,
    client_id: String,
    refresh: String,
}

async fn token(http: &reqwest::Client, issuer: &str, form: &[(&str, &str)]) -> Value {
    let response = http
        .post(format!("{issuer}/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// One code grant: authorize (signed in, consent remembered) and exchange.
/// The first one signs the browser in through the pages; later ones send
/// its cookies from the lean generator's connection.
async fn code_grant(client: &mut Client, issuer: &str, resource: &str, user: &str) -> Value {
    let pkce = Pkce::new();
    let url = authorize_url(issuer, resource, &client.client_id, &pkce);
    let callback = match &mut client.conn {
        Some(conn) if !client.cookie.is_empty() => {
            let path_and_query = &url[issuer.len()..];
            let (status, location, body) = conn.get(path_and_query, &client.cookie).await.unwrap();
            // The page's title only: its forms carry the pending id and
            // the CSRF token.
            let page = String::from_utf8_lossy(&body);
            let title = page
                .split_once("<title>")
                .and_then(|(_, rest)| rest.split_once("</title>"))
                .map_or("", |(title, _)| title);
            assert!(
                status.is_redirection(),
                "a remembered sign-in redirects, got {status} \"{title}\""
            );
            location
        }
        _ => {
            let callback = client
                .browser
                .sign_in(issuer, &url, user)
                .await
                .unwrap()
                .unwrap();
            client.cookie = client
                .browser
                .cookies()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            callback
        }
    };
    let code = query_of(&callback)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("client_id", &client.client_id),
        ("code_verifier", &pkce.verifier),
    ];
    match &mut client.conn {
        Some(conn) => {
            let tokens = conn.tokens("/token", &form).await.unwrap();
            json!({"access_token": tokens.access_token, "refresh_token": tokens.refresh_token})
        }
        None => token(&client.http, issuer, &form).await,
    }
}

fn main() {
    let (refreshes, codes) = if bench_mode() { (400, 60) } else { (3, 2) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let memory = grants("memory", None, refreshes, codes).await;
        // The embedded store: every write committed (fsync) before the
        // answer, concurrent writes sharing one commit.
        let dir = tempfile::tempdir().unwrap();
        let embedded = mcp_auth_oauth_server::EmbeddedAuthStore::open(dir.path()).unwrap();
        let embedded = grants("embedded", Some(std::sync::Arc::new(embedded)), refreshes, codes).await;
        println!(
            "ratio: refresh grants per second, memory / embedded = {:.2} (embedded: {embedded:.0}/s, goal: at least 5,000/s)",
            memory / embedded
        );
        peer_refreshes(memory, refreshes).await;
        scale_curve(refreshes).await;
        #[cfg(feature = "redis")]
        redis_grants(memory, refreshes, codes).await;
        resource_requests(if bench_mode() { 4000 } else { 3 }).await;
    });
}

/// Refresh grants per second on the memory store holding 1,000 to
/// 1,000,000 other grants (each with a refresh token), the same 16 clients.
async fn scale_curve(refreshes: usize) {
    use mcp_auth_core::UserId;
    use mcp_auth_oauth_server::{AuthStore, Grant, MemoryAuthStore, RefreshRecord, StoreKey};
    let sizes: &[usize] = if bench_mode() {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for &n in sizes {
        let store = MemoryAuthStore::new(n * 2 + 10_000);
        for i in 0..n {
            let id = format!("other-{i}");
            let grant = Grant::new(
                &id,
                UserId::new(format!("other-user-{i}")).unwrap(),
                "other-client",
                "Other",
                "http://127.0.0.1:9/mcp",
                vec!["mcp:tools".into()],
                now,
                now + 86_400,
                StoreKey::of(&format!("consent-{id}")),
            );
            store.put_grant(grant).await.unwrap();
            store
                .put_refresh(
                    StoreKey::of(&format!("refresh-{id}")),
                    RefreshRecord::new(&id, vec!["mcp:tools".into()]),
                )
                .await
                .unwrap();
        }
        let label = format!("memory, {n} other grants");
        let rate = grants(&label, Some(std::sync::Arc::new(store)), refreshes, 1).await;
        println!("scale: refresh grants per second with {n} other grants stored: {rate:.0}");
    }
}

/// The same refresh load on npm `oidc-provider` (`benches/oidc/peer.mjs`:
/// a public client, rotation, one ES256-signed JWT access token per
/// refresh, its in-memory adapter), and our memory store's rate over its.
async fn peer_refreshes(memory: f64, refreshes: usize) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_node {
        println!("figure: oidc-provider: skipped (no node)");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc");
    mcp_auth_testkit::npm_ready(&dir, "oidc-provider", "the oauth_server bench's peer");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut peer = tokio::process::Command::new("node")
        .arg("peer.mjs")
        .arg(port.to_string())
        .arg("http://127.0.0.1:9/mcp")
        .arg(CLIENTS.to_string())
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    // oidc-provider prints its notices on stdout too: the line that counts
    // starts with READY.
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("READY ") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    let mut words = ready.split_whitespace();
    assert_eq!(words.next(), Some("READY"), "{ready}");
    let issuer = words.next().unwrap().to_owned();
    let clients: Vec<(reqwest::Client, String)> = words
        .map(|token| (reqwest::Client::new(), token.to_owned()))
        .collect();
    assert_eq!(clients.len(), CLIENTS);
    let started = Instant::now();
    spawn_each(clients, |_, (http, mut refresh)| {
        let issuer = issuer.clone();
        async move {
            let mut connection = Connection::open(&issuer).await.unwrap();
            for _ in 0..refreshes {
                let tokens = connection
                    .tokens(
                        "/token",
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &refresh),
                            ("client_id", "bench"),
                        ],
                    )
                    .await
                    .unwrap();
                assert!(!tokens.access_token.is_empty());
                refresh = tokens.refresh_token.unwrap();
            }
            (http, refresh)
        }
    })
    .await;
    let theirs = (CLIENTS * refreshes) as f64 / started.elapsed().as_secs_f64();
    println!(
        "figure: refresh grants per second (npm oidc-provider 9.13.3, in-memory adapter, {CLIENTS} concurrent clients, loopback, ES256 JWT): {theirs:.0}"
    );
    println!(
        "ratio: refresh grants per second, ours (memory store) / oidc-provider = {:.1} (goal: at least 10)",
        memory / theirs
    );
}

/// Refresh grants on Redis, plain and over TLS (a private CA, as a managed
/// Redis would be), with the ratios to memory and TLS to plain.
#[cfg(feature = "redis")]
async fn redis_grants(memory: f64, refreshes: usize, codes: usize) {
    use mcp_auth_oauth_server::RedisAuthStore;
    use mcp_auth_testkit::{RedisServer, TlsOptions};
    let Some(plain) = RedisServer::try_start("oauth_server bench") else {
        println!("figure: redis store: skipped (no redis-server)");
        return;
    };
    let tls = RedisServer::start_tls("oauth_server bench over TLS", TlsOptions::default());
    let mut rates = Vec::new();
    for (label, server) in [("redis", &plain), ("redis over TLS", &tls)] {
        let store = RedisAuthStore::connect(server.config(RedisAuthStore::DEFAULT_PREFIX))
            .await
            .unwrap();
        rates.push(grants(label, Some(std::sync::Arc::new(store)), refreshes, codes).await);
    }
    println!(
        "ratio: refresh grants per second, memory / redis = {:.2}, memory / redis over TLS = {:.2}, redis / redis over TLS = {:.2} (goal: at most 1.3)",
        memory / rates[0],
        memory / rates[1],
        rates[0] / rates[1]
    );
    // A three-primary cluster: the store's keys share one hash tag, so its
    // work lands on one primary; the cost is the cluster client's routing.
    let cluster = mcp_auth_testkit::cluster::RedisCluster::start("oauth_server bench on a cluster");
    let store = RedisAuthStore::connect(cluster.config(RedisAuthStore::DEFAULT_PREFIX))
        .await
        .unwrap();
    let on_cluster = grants(
        "redis cluster",
        Some(std::sync::Arc::new(store)),
        refreshes,
        codes,
    )
    .await;
    println!(
        "ratio: refresh grants per second, redis / redis cluster = {:.2} (goal: at most 1.3)",
        rates[0] / on_cluster
    );
    // WAIT (`REDIS_WAIT_REPLICAS=1`): each redemption, rotation and
    // revocation waits for one replica. A primary with two replicas (and
    // its sentinels), the store pointed at the primary, with and without.
    let set = mcp_auth_testkit::sentinel::SentinelSet::start("oauth_server bench with WAIT");
    let primary = set.primary_port().expect("a primary");
    let config = mcp_auth_core::RedisConfig::new(
        format!("redis://127.0.0.1:{primary}/"),
        RedisAuthStore::DEFAULT_PREFIX,
    );
    let no_wait = RedisAuthStore::connect(config.clone()).await.unwrap();
    let without = grants(
        "redis primary, no WAIT",
        Some(std::sync::Arc::new(no_wait)),
        refreshes,
        codes,
    )
    .await;
    let waiting = RedisAuthStore::connect(config)
        .await
        .unwrap()
        .wait_for_replicas(1, std::time::Duration::from_millis(500));
    let with = grants(
        "redis primary, WAIT 1 replica",
        Some(std::sync::Arc::new(waiting)),
        refreshes,
        codes,
    )
    .await;
    println!(
        "ratio: refresh grants per second, no WAIT / WAIT for 1 replica = {:.2} (the cost of REDIS_WAIT_REPLICAS=1: one replica round trip per rotation)",
        without / with
    );
}

/// A resource request (cache hit) with one of our tokens and with the
/// development issuer's: the same work, so the same time.
async fn resource_requests(requests: usize) {
    use mcp_auth_axum::McpAuth;
    use mcp_auth_axum::token::{ByIssuer, CachedVerifier};
    use mcp_auth_jwks::{KeySet, Policy, Validator};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{origin}/mcp");
    let server = AuthServer::builder(&origin, &resource)
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dynamic_registration(true)
        .rate_limits(Limits::none())
        .build()
        .unwrap();
    let dev = mcp_auth_testkit::DevIssuer::new("http://127.0.0.1:9", &resource);
    let config = server
        .resource_config()
        .require_scopes(["mcp:tools"])
        .build()
        .unwrap();
    let ours = server.token_verifier(&config);
    let theirs = Validator::with_static_keys(
        Policy::new("http://127.0.0.1:9", &resource),
        KeySet::from_jwks(dev.jwks_json().as_bytes()).unwrap(),
    );
    let verifier = ByIssuer::new()
        .issuer(&origin, std::sync::Arc::new(CachedVerifier::new(ours)))
        .issuer(
            "http://127.0.0.1:9",
            std::sync::Arc::new(CachedVerifier::new(theirs)),
        );
    let echo = axum::routing::post(|| async {
        axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
    });
    let app = McpAuth::new(config, std::sync::Arc::new(verifier))
        .unwrap()
        .into_router(echo)
        .unwrap()
        .merge(server.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut client = Client {
        http: reqwest::Client::new(),
        conn: None,
        cookie: String::new(),
        browser: Browser::new(),
        client_id: register(&reqwest::Client::new(), &origin, "bench").await,
        refresh: String::new(),
    };
    let ours = code_grant(&mut client, &origin, &resource, "bench-user").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = dev.access_token("bench-user", &["mcp:tools"]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mut per_request = Vec::new();
    for token in [&ours, &theirs, &ours, &theirs] {
        let started = Instant::now();
        for _ in 0..requests {
            let status = client
                .http
                .post(&resource)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_success(), "{status}");
        }
        per_request.push(started.elapsed().as_secs_f64() * 1e6 / requests as f64);
    }
    let (ours_us, theirs_us) = (
        (per_request[0] + per_request[2]) / 2.0,
        (per_request[1] + per_request[3]) / 2.0,
    );
    println!(
        "ratio: resource request (cache hit) with our token {ours_us:.1} us vs the development issuer's {theirs_us:.1} us = {:.3}",
        ours_us / theirs_us
    );
}

async fn grants(
    label: &str,
    store: Option<std::sync::Arc<dyn mcp_auth_oauth_server::AuthStore>>,
    refreshes: usize,
    codes: usize,
) -> f64 {
    {
        // Each run signs in people of its own: runs sharing a Redis (the
        // WAIT pair) must not push each other's people past the per-user
        // grant cap.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let run = format!("run{run}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let resource = format!("{issuer}/mcp");
        let mut builder = AuthServer::builder(&issuer, &resource)
            .scopes(["mcp:tools"])
            .login(DangerousDevLogin)
            .dynamic_registration(true)
            .rate_limits(Limits::none());
        if let Some(store) = store {
            builder = builder.store(store);
        }
        let server = builder.build().unwrap();
        tokio::spawn(async move { axum::serve(listener, server.router()).await.unwrap() });

        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let http = reqwest::Client::new();
            let client_id = register(&http, &issuer, &format!("bench {i}")).await;
            let mut client = Client {
                http,
                conn: Some(Connection::open(&issuer).await.unwrap()),
                cookie: String::new(),
                browser: Browser::new(),
                client_id,
                refresh: String::new(),
            };
            let tokens =
                code_grant(&mut client, &issuer, &resource, &format!("{run}-user-{i}")).await;
            client.refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
            clients.push(client);
        }

        let started = Instant::now();
        let clients = spawn_each(clients, |_, mut client| async move {
            let connection = client.conn.as_mut().unwrap();
            for _ in 0..refreshes {
                let tokens = connection
                    .tokens(
                        "/token",
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &client.refresh),
                            ("client_id", &client.client_id),
                        ],
                    )
                    .await
                    .unwrap();
                client.refresh = tokens.refresh_token.unwrap();
            }
            client
        })
        .await;
        let refresh_rate = (CLIENTS * refreshes) as f64 / started.elapsed().as_secs_f64();
        let per_second = refresh_rate;
        println!(
            "figure: refresh grants per second ({label} store, {CLIENTS} concurrent clients, loopback, ES256): {per_second:.0}"
        );
        let clients = if label == "memory" {
            // The same load from reqwest, whose per-request work (URL
            // parsing, redirect policy, pool) shares the two cores.
            let started = Instant::now();
            let clients = spawn_each(clients, |_, mut client| {
                let issuer = issuer.clone();
                async move {
                    for _ in 0..refreshes {
                        let tokens = token(
                            &client.http,
                            &issuer,
                            &[
                                ("grant_type", "refresh_token"),
                                ("refresh_token", &client.refresh),
                                ("client_id", &client.client_id),
                            ],
                        )
                        .await;
                        client.refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
                    }
                    client
                }
            })
            .await;
            let rate = (CLIENTS * refreshes) as f64 / started.elapsed().as_secs_f64();
            println!(
                "figure: refresh grants per second ({label} store, the same load from reqwest instead of the lean generator): {rate:.0} (lean / reqwest = {:.2})",
                refresh_rate / rate
            );
            clients
        } else {
            clients
        };

        let started = Instant::now();
        spawn_each(clients, |i, mut client| {
            let (issuer, resource, run) = (issuer.clone(), resource.clone(), run.clone());
            async move {
                for _ in 0..codes {
                    code_grant(&mut client, &issuer, &resource, &format!("{run}-user-{i}")).await;
                }
                client
            }
        })
        .await;
        let per_second = (CLIENTS * codes) as f64 / started.elapsed().as_secs_f64();
        println!(
            "figure: authorization-code grants per second ({label} store; authorize with remembered consent + exchange, {CLIENTS} clients): {per_second:.0}"
        );
        refresh_rate
    }
}
