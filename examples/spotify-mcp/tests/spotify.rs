//! The Spotify MCP server against the embedded Spotify double, with rmcp's
//! own OAuth client (a client no one here wrote) signing in through the
//! whole flow: our consent, the double's Spotify login, our callback, the
//! code exchange; then every tool, two users at once, the step-up to wider
//! scopes, the upstream failures, input checks, the per-tool limit, and a
//! restart on the file vault.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcp_auth_app::Settings;
use mcp_auth_testkit::browser::Browser;
use mcp_auth_testkit::spotify::{SpotifyDouble, TRACKS};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationManager, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use spotify_mcp::{Running, StartError, start_with};

const CALLBACK: &str = "http://localhost:48781/callback";
const ALL: [&str; 3] = ["spotify:read", "spotify:playback", "spotify:playlists"];

type Client = RunningService<RoleClient, ClientConfig>;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_sources(
        &spotify_mcp::setting_names(),
        |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        None,
    )
    .unwrap()
}

async fn server() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    start_with(&settings(&[("MCP_LISTEN", &addr)]), listener, None)
        .await
        .unwrap()
}

fn double(s: &Running) -> &SpotifyDouble {
    s.double.as_ref().unwrap()
}

/// rmcp's OAuth client signs in as `user` for `scopes`; the browser part
/// (our consent, the double's login) is scripted.
async fn sign_in(s: &Running, user: &str, scopes: &[&str]) -> AuthorizationManager {
    let mut state = OAuthState::new(s.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(CALLBACK)
                .with_client_name("rmcp via spotify-mcp")
                .with_scopes(scopes.iter().copied()),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();
    let callback = Browser::new()
        .sign_in_through(&url, user, CALLBACK)
        .await
        .unwrap()
        .unwrap_or_else(|page| panic!("the sign-in stopped: {} {}", page.status, page.body));
    state.handle_callback_url(&callback).await.unwrap();
    state.into_authorization_manager().unwrap()
}

async fn connect(s: &Running, manager: AuthorizationManager) -> Client {
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(s.url.clone()),
    );
    ClientConfig::default().serve(transport).await.unwrap()
}

async fn client(s: &Running, user: &str, scopes: &[&str]) -> Client {
    let manager = sign_in(s, user, scopes).await;
    connect(s, manager).await
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await.unwrap()
}

fn ok(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    result.structured_content.clone().unwrap()
}

fn text(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn failed(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{}", text(result));
    let t = text(result);
    assert!(!t.contains("sp-at-") && !t.contains("sp-rt-"), "{t}");
    t
}

fn uri(i: usize) -> String {
    format!("spotify:track:{}", TRACKS[i].id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rmcps_oauth_client_signs_in_and_calls_every_tool() {
    let s = server().await;
    let alice = client(&s, "alice", &ALL).await;
    let tools = alice.list_all_tools().await.unwrap();
    assert_eq!(
        tools.len(),
        13,
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let search = tools.iter().find(|t| t.name == "search").unwrap();
    assert_eq!(
        search.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    let play = tools.iter().find(|t| t.name == "play").unwrap();
    assert_eq!(
        play.annotations.as_ref().unwrap().read_only_hint,
        Some(false)
    );

    let found = ok(&call(
        &alice,
        "search",
        json!({"query": "sync", "types": ["track", "artist"]}),
    )
    .await);
    assert_eq!(found["tracks"]["items"][0]["name"], "Send and Sync");
    assert_eq!(found["tracks"]["items"][0]["uri"], uri(2));
    assert!(found["artists"]["items"].is_array());
    let now = ok(&call(&alice, "now_playing", json!({})).await);
    assert_eq!(now["track"]["name"], "Lifetimes");
    ok(&call(&alice, "pause", json!({})).await);
    assert_eq!(
        double(&s).state.playing("alice"),
        (Some(TRACKS[0].id.into()), false)
    );
    ok(&call(&alice, "play", json!({"track_uri": uri(3)})).await);
    assert_eq!(
        double(&s).state.playing("alice"),
        (Some(TRACKS[3].id.into()), true)
    );
    ok(&call(&alice, "add_to_queue", json!({"track_uri": uri(1)})).await);
    assert_eq!(double(&s).state.queued("alice"), [TRACKS[1].id]);
    ok(&call(&alice, "next_track", json!({})).await);
    assert_eq!(
        double(&s).state.playing("alice").0.as_deref(),
        Some(TRACKS[1].id)
    );
    ok(&call(&alice, "previous_track", json!({})).await);
    assert_eq!(
        double(&s).state.playing("alice").0.as_deref(),
        Some(TRACKS[3].id)
    );
    let mine = ok(&call(&alice, "my_playlists", json!({})).await);
    assert_eq!(mine["total"], 2);
    let id = mine["items"][0]["id"].as_str().unwrap().to_owned();
    let items = ok(&call(&alice, "playlist_items", json!({"playlist_id": id})).await);
    assert_eq!(items["items"][0]["name"], "Lifetimes");
    let created = ok(&call(
        &alice,
        "create_playlist",
        json!({"name": "From MCP", "description": "made by a tool"}),
    )
    .await);
    assert_eq!(created["name"], "From MCP");
    let new_id = created["id"].as_str().unwrap().to_owned();
    let added = ok(&call(
        &alice,
        "add_to_playlist",
        json!({"playlist_id": new_id, "track_uris": [uri(0), uri(4)]}),
    )
    .await);
    assert_eq!(added["added"], 2);
    let items = ok(&call(&alice, "playlist_items", json!({"playlist_id": new_id})).await);
    assert_eq!(items["total"], 2);
    let recent = ok(&call(&alice, "recently_played", json!({"limit": 5})).await);
    assert!(!recent["items"].as_array().unwrap().is_empty());
    let top = ok(&call(
        &alice,
        "top_items",
        json!({"kind": "artists", "time_range": "short_term"}),
    )
    .await);
    assert_eq!(top["items"].as_array().unwrap().len(), 3);
    assert!(
        double(&s)
            .state
            .playlist_names("alice")
            .contains(&"From MCP".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_people_at_once_each_see_only_their_own_spotify() {
    let s = server().await;
    let (alice, bob) = tokio::join!(client(&s, "alice", &ALL), client(&s, "bob", &ALL));
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            call(&alice, "my_playlists", json!({})),
            call(&bob, "my_playlists", json!({}))
        );
        let names = |v: Value| -> Vec<String> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let (a, b) = (names(ok(&a)), names(ok(&b)));
        assert!(a.iter().all(|n| n.starts_with("Alice")), "{a:?}");
        assert_eq!(b, ["Bob's secret favourites"]);
        let (a, b) = tokio::join!(
            call(&alice, "now_playing", json!({})),
            call(&bob, "now_playing", json!({}))
        );
        assert_eq!(ok(&a)["track"]["name"], "Lifetimes");
        assert_eq!(ok(&b)["track"]["name"], "Async Await");
    }
    // Bob's private playlist is not Alice's to read.
    let refused = call(
        &alice,
        "playlist_items",
        json!({"playlist_id": "e3nNyjOq9wMxEhh2FDEEtf"}),
    )
    .await;
    assert!(failed(&refused).contains("not found"));
    // Every API call carried the token of the person it was for.
    let state = &double(&s).state;
    let calls = state.api_tokens();
    assert!(calls.len() >= 12);
    let mut seen = std::collections::HashSet::new();
    for (path, token) in &calls {
        let owner = state
            .user_of(token)
            .unwrap_or_else(|| panic!("{path}: unknown token"));
        seen.insert(owner);
    }
    assert_eq!(seen.len(), 2, "both users' tokens were used: {seen:?}");
    // The call of Alice's that touched Bob's playlist used Alice's token.
    let (path, token) = calls
        .iter()
        .find(|(p, _)| p.contains("e3nNyjOq9wMxEhh2FDEEtf"))
        .unwrap();
    assert_eq!(state.user_of(token).as_deref(), Some("alice"), "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_modifying_tool_needs_the_wider_scope_and_a_second_sign_in_grants_it() {
    let s = server().await;
    let reader = client(&s, "alice", &["spotify:read"]).await;
    ok(&call(&reader, "now_playing", json!({})).await);
    // The resource server answers 403 insufficient_scope: the call fails
    // at the transport, before any tool runs.
    let calls = double(&s).state.api_tokens().len();
    let mut params = CallToolRequestParams::new("pause");
    params = params.with_arguments(serde_json::Map::new());
    let refused = reader.call_tool(params).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        double(&s).state.api_tokens().len(),
        calls,
        "nothing sent upstream"
    );
    // Signing in again for playback asks Spotify for the added scope too.
    let player = client(&s, "alice", &["spotify:read", "spotify:playback"]).await;
    ok(&call(&player, "pause", json!({})).await);
    let asked = double(&s).state.authorize_scopes.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert!(!asked[0].contains(&"user-modify-playback-state".to_owned()));
    assert!(asked[1].contains(&"user-modify-playback-state".to_owned()));
    assert!(
        asked[1].contains(&"user-read-playback-state".to_owned()),
        "kept what it had"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_failures_become_clear_tool_errors() {
    let s = server().await;
    let alice = client(&s, "alice", &ALL).await;
    let state = &double(&s).state;
    // 401: one transparent refresh and one retry.
    let refreshes = state.refreshes.load(Ordering::SeqCst);
    state.fail_next("/v1/me/player/currently-playing", 401, None);
    ok(&call(&alice, "now_playing", json!({})).await);
    assert_eq!(state.refreshes.load(Ordering::SeqCst), refreshes + 1);
    // 429: when to retry.
    state.fail_next("/v1/search", 429, Some(7));
    let t = failed(&call(&alice, "search", json!({"query": "rust"})).await);
    assert!(t.contains("retry in 7 s"), "{t}");
    // 404.
    let t = failed(
        &call(
            &alice,
            "playlist_items",
            json!({"playlist_id": "WHtP3fS2qHx6kwXoIIXGvO"}),
        )
        .await,
    );
    assert!(t.contains("not found"), "{t}");
    // 5xx: retryable.
    state.fail_next("/v1/me/playlists", 503, None);
    let t = failed(&call(&alice, "my_playlists", json!({})).await);
    assert!(t.contains("unavailable right now; try again"), "{t}");
    // Premium required (carol is on the free plan).
    let carol = client(&s, "carol", &ALL).await;
    let t = failed(&call(&carol, "pause", json!({})).await);
    assert!(t.contains("needs Spotify Premium"), "{t}");
    // A dead Spotify refresh token: reconnect, and the grant is gone.
    state.kill_refresh_tokens("alice");
    state.fail_next("/v1/me/player/currently-playing", 401, None);
    let t = failed(&call(&alice, "now_playing", json!({})).await);
    assert!(t.contains("reconnect your Spotify account"), "{t}");
    let alice_id = mcp_auth_core::UserId::new("spotify:alice").unwrap();
    assert!(s.auth_server.grants(&alice_id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_are_refused_before_anything_reaches_spotify() {
    let s = server().await;
    let alice = client(&s, "alice", &ALL).await;
    let before = double(&s).state.api_tokens().len();
    for (tool, args, says) in [
        ("search", json!({"query": ""}), "empty"),
        (
            "search",
            json!({"query": "x".repeat(201)}),
            "longer than 200",
        ),
        (
            "search",
            json!({"query": "ok", "limit": 11}),
            "between 1 and 10",
        ),
        (
            "search",
            json!({"query": "ok", "types": ["show"]}),
            "types are",
        ),
        ("search", json!({"query": "a\u{7}b"}), "control characters"),
        (
            "play",
            json!({"track_uri": "spotify:album:c9QeWJKY40uvSwMFLZDe1f"}),
            "spotify:track:",
        ),
        (
            "add_to_queue",
            json!({"track_uri": "spotify:track:../../me"}),
            "22 letters",
        ),
        (
            "playlist_items",
            json!({"playlist_id": "G8NPRVdD53X83RZJzzzzg/"}),
            "22 letters",
        ),
        ("my_playlists", json!({"limit": 51}), "between 1 and 50"),
        (
            "my_playlists",
            json!({"offset": 10001}),
            "between 0 and 10000",
        ),
        ("create_playlist", json!({"name": " "}), "empty"),
        (
            "create_playlist",
            json!({"name": "x".repeat(101)}),
            "longer than 100",
        ),
        (
            "add_to_playlist",
            json!({"playlist_id": "G8NPRVdD53X83RZJzzzzgE", "track_uris": []}),
            "between 1 and 100",
        ),
        ("top_items", json!({"kind": "albums"}), "tracks or artists"),
        (
            "top_items",
            json!({"kind": "tracks", "time_range": "forever"}),
            "time_range",
        ),
    ] {
        let t = failed(&call(&alice, tool, args).await);
        assert!(
            t.starts_with("invalid input") && t.contains(says),
            "{tool}: {t}"
        );
    }
    assert_eq!(
        double(&s).state.api_tokens().len(),
        before,
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_tool_has_its_own_rate_limit() {
    let s = server().await;
    let alice = client(&s, "alice", &["spotify:read"]).await;
    // Limits::default: 60 calls a minute per (user, tool): a burst of 60,
    // then one a second. Counted until the first refusal, against the time
    // the calls took (a slow machine earns a refill a second).
    let started = std::time::Instant::now();
    let mut allowed = 0usize;
    loop {
        let mut params = CallToolRequestParams::new("now_playing");
        params = params.with_arguments(serde_json::Map::new());
        if alice.call_tool(params).await.is_err() {
            break;
        }
        allowed += 1;
        assert!(allowed < 1_000, "never refused");
    }
    let refills = started.elapsed().as_secs() as usize + 1;
    assert!(
        (60..=60 + refills).contains(&allowed),
        "{allowed} calls allowed in {:?}",
        started.elapsed()
    );
    // Another tool still works.
    ok(&call(&alice, "my_playlists", json!({})).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_on_the_file_vault_keeps_people_signed_in_and_a_wrong_key_destroys_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("vault");
    let data_dir = dir.path().join("data");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = |key: &str| {
        settings(&[
            ("MCP_LISTEN", addr.as_str()),
            ("MCP_VAULT_KEY", key),
            ("MCP_VAULT_DIR", vault_dir.to_str().unwrap()),
            ("MCP_DATA_DIR", data_dir.to_str().unwrap()),
        ])
    };
    let first = start_with(&config(key), listener, None).await.unwrap();
    let double = first.double.clone().unwrap();
    let manager = sign_in(&first, "alice", &ALL).await;
    let (client_id, credentials) = manager.get_credentials().await.unwrap();
    let alice = connect(&first, manager).await;
    ok(&call(&alice, "now_playing", json!({})).await);
    drop(alice);
    drop(first);
    // Nothing on disk names the user: not the vault's file names or
    // contents, not the data file (grants named by pseudonym, ids sealed).
    let id = mcp_auth_core::UserId::new("spotify:alice").unwrap();
    let mut files = 0;
    for sub in [&vault_dir, &data_dir] {
        for entry in std::fs::read_dir(sub).unwrap() {
            let entry = entry.unwrap();
            let mut bytes = entry
                .file_name()
                .to_string_lossy()
                .into_owned()
                .into_bytes();
            bytes.extend(std::fs::read(entry.path()).unwrap());
            for needle in ["alice", id.storage_key().as_str()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {}",
                    entry.path().display()
                );
            }
            files += 1;
        }
    }
    assert!(files >= 3, "the vault file, its manifest and auth.redb");

    // Same address, same vault, same key: the access token still verifies
    // (the signing keys are in the vault) and Spotify's tokens are there.
    let listener = loop {
        match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let second = start_with(&config(key), listener, Some(double.clone()))
        .await
        .unwrap();
    // The client keeps the access token it had (rmcp's token as it stored it).
    let credentials = serde_json::to_value(credentials.unwrap()).unwrap();
    let token = credentials["access_token"].as_str().unwrap().to_owned();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(second.url.clone()).auth_header(token),
    );
    let again = ClientConfig::default().serve(transport).await.unwrap();
    ok(&call(&again, "now_playing", json!({})).await);
    drop(again);
    // The refresh token issued before the restart still refreshes (the
    // embedded store in MCP_DATA_DIR kept the grant), once.
    let refresh = credentials["refresh_token"].as_str().unwrap().to_owned();
    let refresh_grant = || {
        reqwest::Client::new()
            .post(format!("{}/token", second.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
    };
    let renewed = refresh_grant().await.unwrap();
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.unwrap();
    assert!(renewed["refresh_token"].is_string() && renewed["access_token"].is_string());
    drop(second);

    // A wrong key: a clear error, and the vault's files are untouched.
    let snapshot = |dir: &std::path::Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&vault_dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wrong = start_with(
        &config("7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u4="),
        listener,
        Some(double),
    )
    .await
    .unwrap_err();
    let message = wrong.to_string();
    assert!(matches!(wrong, StartError::App(_)), "{message}");
    assert!(message.contains("wrong passphrase or key"), "{message}");
    assert_eq!(snapshot(&vault_dir), before);
}

#[tokio::test]
async fn every_configuration_problem_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = start_with(
        &settings(&[
            ("SPOTIFY_CLIENT_ID", "id-only"),
            ("MCP_PUBLIC_URL", "http://mcp.example.com"),
            ("REDIS_URL", "localhost:6379"),
        ]),
        listener,
        None,
    )
    .await
    .unwrap_err();
    let StartError::Config(problems) = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    for name in [
        "SPOTIFY_CLIENT_SECRET",
        "MCP_PUBLIC_URL",
        "MCP_VAULT_KEY",
        "REDIS_URL",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert_eq!(problems.len(), 4, "{text}");
}

/// A balancer in front of two servers: new connections go to the one
/// `to_second` names.
async fn balancer(
    first: std::net::SocketAddr,
    second: std::net::SocketAddr,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let to_second = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = to_second.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = if flag.load(Ordering::SeqCst) {
                second
            } else {
                first
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (origin, to_second)
}

/// `REDIS_URL`: two processes' worth of the server share one Redis behind
/// one origin; a person signed in through the first uses the tools on the
/// second, which finds the grant and Spotify's tokens (the Redis vault).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn with_redis_two_servers_share_grants_sessions_and_the_vault() {
    let redis = mcp_auth_testkit::RedisServer::start("spotify-mcp with Redis");
    two_servers_share_grants_sessions_and_the_vault(&redis.url(), &[redis.port()]).await;
}

/// No key and no value in Redis names the user (`spotify:alice`), neither
/// as itself nor as its storage key (which decodes to it): grants, codes,
/// sessions, limits and the vault name users by pseudonym and seal ids.
fn assert_no_user_id_in(ports: &[u16], user: &str) {
    let id = mcp_auth_core::UserId::new(user).unwrap();
    let everything: String = ports
        .iter()
        .map(|p| mcp_auth_testkit::everything_in(*p))
        .collect();
    assert!(everything.contains("=>"), "the dump is empty: {everything}");
    let name = user.rsplit(':').next().unwrap();
    for needle in [user, name, id.storage_key().as_str()] {
        assert!(
            !everything.contains(needle),
            "{needle} is in Redis:\n{everything}"
        );
    }
}

/// The same with `REDIS_URL=redis+cluster://…`, a Redis Cluster of three
/// primaries: every store (grants, sessions, limits, pending sign-ins, the
/// vault) keeps its keys under its own hash tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn with_a_redis_cluster_two_servers_share_grants_sessions_and_the_vault() {
    let cluster = mcp_auth_testkit::cluster::RedisCluster::start("spotify-mcp on a cluster");
    two_servers_share_grants_sessions_and_the_vault(&cluster.url(), &cluster.ports()).await;
    // Every key is under a hash tag: none is left outside one.
    for port in cluster.ports() {
        let keys = mcp_auth_testkit::command(port, &["KEYS", "*"]).unwrap_or_default();
        for line in keys
            .lines()
            .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
        {
            assert!(line.starts_with('{'), "a key without a hash tag: {line}");
        }
    }
}

async fn two_servers_share_grants_sessions_and_the_vault(redis_url: &str, ports: &[u16]) {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (origin, to_second) = balancer(
        a_listener.local_addr().unwrap(),
        b_listener.local_addr().unwrap(),
    )
    .await;
    let config = settings(&[
        ("MCP_PUBLIC_URL", &origin),
        ("MCP_VAULT_KEY", key),
        ("REDIS_URL", redis_url),
    ]);
    let a = start_with(&config, a_listener, None).await.unwrap();
    let double = a.double.clone().unwrap();
    let b = start_with(&config, b_listener, Some(double.clone()))
        .await
        .unwrap();
    let manager = sign_in(&a, "alice", &ALL).await;
    to_second.store(true, Ordering::SeqCst);
    let on_b = connect(&b, manager).await;
    let now = ok(&call(&on_b, "now_playing", json!({})).await);
    assert_eq!(now["track"]["name"], "Lifetimes");
    let alice = mcp_auth_core::UserId::new("spotify:alice").unwrap();
    assert_no_user_id_in(ports, "spotify:alice");
    // The operator's view by user still works, through the key.
    assert_eq!(b.auth_server.grants(&alice).await.unwrap().len(), 1);
    // A revoke through the second server ends the grant for both.
    assert_eq!(b.auth_server.revoke_user(&alice).await.unwrap(), 1);
    assert!(a.auth_server.grants(&alice).await.unwrap().is_empty());
}

/// `REDIS_URL`: the authorization server's per-address budget is the
/// fleet's, not each process's: 70 token requests to each of two servers
/// from one address exceed the 120 a minute they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn with_redis_two_servers_spend_one_budget_per_address() {
    let redis = mcp_auth_testkit::RedisServer::start("spotify-mcp with Redis");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = a_listener.local_addr().unwrap();
    let b_addr = b_listener.local_addr().unwrap();
    let (origin, _) = balancer(a_addr, b_addr).await;
    let config = settings(&[
        ("MCP_PUBLIC_URL", &origin),
        ("MCP_VAULT_KEY", key),
        ("REDIS_URL", &redis.url()),
    ]);
    let a = start_with(&config, a_listener, None).await.unwrap();
    let _b = start_with(&config, b_listener, a.double.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut limited = [0usize; 2];
    for (i, addr) in [a_addr, b_addr].iter().enumerate() {
        for _ in 0..70 {
            let status = http
                .post(format!("http://{addr}/token"))
                .form(&[("grant_type", "refresh_token"), ("client_id", "nobody")])
                .send()
                .await
                .unwrap()
                .status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                limited[i] += 1;
            }
        }
    }
    assert_eq!(limited[0], 0, "the first 70 are within the budget");
    assert!(
        (15..=25).contains(&limited[1]),
        "the second server spends what the first left: {limited:?}"
    );
}

/// Records the path of every request sent through it, then sends it on.
#[derive(Debug)]
struct Recording {
    inner: mcp_auth_http::OutboundClient,
    paths: std::sync::Mutex<Vec<String>>,
}

impl mcp_auth_http::HttpClient for Recording {
    fn send(
        &self,
        request: mcp_auth_http::HttpRequest,
    ) -> mcp_auth_core::BoxFuture<'_, Result<mcp_auth_http::HttpResponse, mcp_auth_http::HttpError>>
    {
        self.paths
            .lock()
            .unwrap()
            .push(request.uri().path().to_owned());
        self.inner.send(request)
    }
}

/// One HTTP client (one connection pool) carries everything the server
/// sends to the provider: the code exchange, the who-am-I call, the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_http_client_carries_everything_sent_to_the_provider() {
    let recording = std::sync::Arc::new(Recording {
        inner: mcp_auth_http::OutboundClient::new().unwrap(),
        paths: std::sync::Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = spotify_mcp::profile()
        .http(recording.clone())
        .start(&settings(&[("MCP_LISTEN", &addr)]), listener, None, |api| {
            spotify_mcp::tools::SpotifyTools::new(spotify_mcp::spotify::Spotify::new(api))
        })
        .await
        .unwrap();
    let alice = client(&s, "alice", &ALL).await;
    ok(&call(&alice, "now_playing", json!({})).await);
    let paths = recording.paths.lock().unwrap().clone();
    for expected in ["/api/token", "/v1/me", "/v1/me/player/currently-playing"] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:?}"
        );
    }
}

/// `REDIS_URL=rediss://…`: a TLS-only Redis with a password and a private
/// CA (`REDIS_CA_FILE`) holds everything; a sign-in and a tool call work.
/// Each wrong setting is an error at start naming it, never the password:
/// no CA file (the system roots do not know the private CA), another CA,
/// a plain-text server behind `rediss://`, a wrong password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn with_tls_redis_everything_works_and_each_wrong_setting_is_named() {
    use mcp_auth_testkit::{RedisServer, TlsOptions};
    let password = "tls-redis-pass-7f3a";
    let redis = RedisServer::start_tls(
        "spotify-mcp over TLS",
        TlsOptions {
            password: Some(password.to_owned()),
            ..TlsOptions::default()
        },
    );
    let ca = redis.ca_file().unwrap().to_str().unwrap().to_owned();
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let start = |pairs: Vec<(&'static str, String)>| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut all: Vec<(&str, String)> =
            vec![("MCP_LISTEN", addr), ("MCP_VAULT_KEY", key.into())];
        all.extend(pairs);
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_with(&settings(&refs), listener, None).await
    };

    let s = start(vec![
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", ca.clone()),
    ])
    .await
    .unwrap();
    let client = connect(&s, sign_in(&s, "alice", &ALL).await).await;
    let now = ok(&call(&client, "now_playing", json!({})).await);
    assert_eq!(now["track"]["name"], "Lifetimes");

    let dir = tempfile::tempdir().unwrap();
    let other_ca = mcp_auth_testkit::tls::TestCa::new("another CA").write_cert(dir.path(), "other");
    let plain = RedisServer::start("plain text behind rediss://");
    let plain_as_tls = format!("rediss://127.0.0.1:{}/", plain.port());
    let wrong_password = redis.url().replace(password, "not-the-password");
    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        &'static str,
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            "no CA file",
            vec![("REDIS_URL", redis.url())],
            "REDIS_CA_FILE",
            "not trusted",
        ),
        (
            "another CA",
            vec![
                ("REDIS_URL", redis.url()),
                ("REDIS_CA_FILE", other_ca.to_str().unwrap().to_owned()),
            ],
            "REDIS_CA_FILE",
            "not trusted",
        ),
        (
            "a plain-text server",
            vec![("REDIS_URL", plain_as_tls), ("REDIS_CA_FILE", ca.clone())],
            "REDIS_URL",
            "did not answer in TLS",
        ),
        (
            "a wrong password",
            vec![("REDIS_URL", wrong_password), ("REDIS_CA_FILE", ca.clone())],
            "REDIS_URL",
            "refused the credentials",
        ),
    ];
    for (case, pairs, setting, words) in cases {
        let err = start(pairs).await.map(|_| ()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, StartError::App(mcp_auth_app::AppError::Config(p)) if p.setting() == setting),
            "{case}: {text}"
        );
        assert!(text.contains(words), "{case}: {text}");
        assert!(
            !text.contains(password) && !text.contains("not-the-password"),
            "{case}: {text}"
        );
    }
}

/// `/healthz` answers while the process serves; `/readyz` follows the
/// Redis behind it: 503 while it is down, 200 again once it is back, with
/// no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn readiness_follows_redis_going_down_and_coming_back() {
    let mut redis = mcp_auth_testkit::RedisServer::start("spotify-mcp readiness");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let s = start_with(
        &settings(&[
            ("MCP_LISTEN", addr.as_str()),
            ("MCP_VAULT_KEY", key),
            ("REDIS_URL", &redis.url()),
            ("MCP_ADMIN_LISTEN", "127.0.0.1:0"),
        ]),
        listener,
        None,
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, addr) = (http.clone(), addr.clone());
        async move {
            http.get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 200);
    redis.stop();
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(status("/healthz").await, 200, "alive, only not ready");
    // The outage is counted (the metrics are process-wide: at least one).
    let metrics = http
        .get(format!("http://{}/metrics", s.admin_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mcp_auth_redis_errors_total{kind=")),
        "{metrics}"
    );
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status("/readyz").await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "ready again without a restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Draining: not ready any more.
    let drain = s.drain.clone();
    drain.start();
    assert!(drain.is_draining());
    drop(s);
}

/// The binary under load receives SIGTERM: it stops accepting, answers
/// what reaches it afterwards with 503, finishes what is in progress and
/// exits 0; nothing fails before the signal, and after it only with a 503
/// or a refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_and_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spotify-mcp"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MCP_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, base, signalled, exited) = (
            http.clone(),
            base.clone(),
            signalled.clone(),
            exited.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0usize, 0usize);
            // Until the process is gone (what reaches it after that finds
            // nobody: a load balancer has long stopped sending).
            while !exited.load(Ordering::SeqCst) {
                let answer = http
                    .get(format!("{base}/.well-known/oauth-authorization-server"))
                    .send()
                    .await;
                let after = signalled.load(Ordering::SeqCst);
                match answer {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) if r.status() == 503 && after => refused += 1,
                    // After the signal a connection may also be refused
                    // (no longer accepting) or cut as the process exits
                    // under a request sent that instant: never an answer
                    // other than 200 or 503, never before the signal.
                    Err(e) if after && connection_level(&e) => refused += 1,
                    Ok(r) => panic!("status {} (signalled: {after})", r.status()),
                    Err(_) if exited.load(Ordering::SeqCst) => break,
                    Err(e) => panic!("a request failed (signalled: {after}): {e:?}"),
                }
            }
            (ok, refused)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    signalled.store(true, Ordering::SeqCst);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no exit within the bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    exited.store(true, Ordering::SeqCst);
    let mut ok = 0;
    for worker in workers {
        ok += worker.await.unwrap().0;
    }
    assert!(status.success(), "exit status {status}");
    assert!(ok > 50, "the load ran: {ok}");
}

/// Behind nginx (trusted: it connects from 127.0.0.2), 200 users on their
/// own addresses each keep their own budget; a forged `X-Forwarded-For`
/// sent straight to the server by an untrusted peer changes nothing; 300
/// addresses of one IPv6 /64 share one budget; a malformed header is
/// ignored, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_trusted_proxy_each_user_keeps_their_own_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listen = addr.to_string();
    let s = start_with(
        &settings(&[
            ("MCP_LISTEN", listen.as_str()),
            ("MCP_TRUSTED_PROXIES", "127.0.0.2/32"),
        ]),
        listener,
        None,
    )
    .await
    .unwrap();
    let nginx = mcp_auth_testkit::proxy::Nginx::start(addr, "127.0.0.2".parse().unwrap());
    let token = |http: reqwest::Client, base: String, forwarded: Option<String>| async move {
        let mut request = http
            .post(format!("{base}/token"))
            .form(&[("grant_type", "refresh_token"), ("client_id", "nobody")]);
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        request.send().await.unwrap().status().as_u16()
    };
    // 200 users, each from its own loopback address, 5 token requests
    // each (1,000 in all; one budget is 120 a minute).
    let mut tasks = tokio::task::JoinSet::new();
    for user in 0..200u32 {
        let base = nginx.url();
        let local: std::net::IpAddr = format!("127.0.{}.{}", 10 + user / 200, 1 + user % 200)
            .parse()
            .unwrap();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .local_address(local)
                .build()
                .unwrap();
            let mut statuses = Vec::new();
            for _ in 0..5 {
                statuses.push(token(http.clone(), base.clone(), None).await);
            }
            statuses
        });
    }
    while let Some(statuses) = tasks.join_next().await {
        let statuses = statuses.unwrap();
        // Refused as an unknown client, never rate-limited.
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    }
    // Straight to the server from an untrusted peer: the forged header is
    // not read; 130 requests from one address exceed its budget.
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut limited = 0;
    for i in 0..130 {
        let status = token(
            http.clone(),
            base.clone(),
            Some(format!("203.0.113.{}", i % 250)),
        )
        .await;
        limited += usize::from(status == 429);
    }
    assert!(limited >= 10, "one budget for the peer: {limited} refused");
    drop(s);
    drop(nginx);

    // Trusting the loopback peer itself: 300 addresses of one /64 share a
    // budget, a malformed header counts as the peer and never fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listen = addr.to_string();
    let _s = start_with(
        &settings(&[
            ("MCP_LISTEN", listen.as_str()),
            ("MCP_TRUSTED_PROXIES", "127.0.0.1/32"),
        ]),
        listener,
        None,
    )
    .await
    .unwrap();
    let base = format!("http://{addr}");
    let mut limited = 0;
    for i in 0..300u32 {
        let f = format!("2001:db8:0:1:{:x}::1", i + 1);
        limited += usize::from(token(http.clone(), base.clone(), Some(f)).await == 429);
    }
    assert!(limited >= 150, "one /64, one budget: {limited} refused");
    let status = token(http.clone(), base.clone(), Some("not an address".into())).await;
    assert!(status == 401 || status == 429, "{status}");
}

/// Early answers keep connections honest: through nginx (pooled upstream
/// connections), 1,000 POSTs with bodies, a third refused before their
/// body is read (no token on `/mcp`, a 20 KiB body): no 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_refusals_through_a_proxy_cause_no_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listen = addr.to_string();
    let _s = start_with(
        &settings(&[("MCP_LISTEN", listen.as_str())]),
        listener,
        None,
    )
    .await
    .unwrap();
    let nginx = mcp_auth_testkit::proxy::Nginx::start(addr, "127.0.0.1".parse().unwrap());
    let http = reqwest::Client::new();
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(20 * 1024)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, base, big) = (http.clone(), nginx.url(), big.clone());
        tasks.spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for i in 0..125 {
                let response = if (worker * 125 + i) % 3 == 0 {
                    http.post(format!("{base}/mcp"))
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .body(big.clone())
                        .send()
                        .await
                } else {
                    http.get(format!("{base}/.well-known/oauth-authorization-server"))
                        .send()
                        .await
                };
                *statuses
                    .entry(response.unwrap().status().as_u16())
                    .or_default() += 1;
            }
            statuses
        });
    }
    let mut all = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(statuses) = tasks.join_next().await {
        for (status, n) in statuses.unwrap() {
            *all.entry(status).or_default() += n;
        }
    }
    assert!(!all.contains_key(&502), "{all:?}");
    assert_eq!(all.get(&401).copied().unwrap_or(0), 334, "{all:?}");
    assert_eq!(all.values().sum::<usize>(), 1000);
}

/// The emergency switch across a fleet: two servers on one Redis; after
/// `revoke_everything` on the first, within the documented bound (key
/// reload + verified-token cache, 1 s each here) the access token fails at
/// both and the refresh token is dead. The binary's `admin
/// revoke-everything` runs the same switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn the_emergency_switch_signs_everyone_out_across_the_fleet() {
    let redis = mcp_auth_testkit::RedisServer::start("spotify-mcp emergency switch");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a_addr, b_addr) = (
        a_listener.local_addr().unwrap(),
        b_listener.local_addr().unwrap(),
    );
    let (origin, _) = balancer(a_addr, b_addr).await;
    let config = settings(&[
        ("MCP_PUBLIC_URL", &origin),
        ("MCP_VAULT_KEY", key),
        ("REDIS_URL", &redis.url()),
        ("MCP_KEY_RELOAD_SECONDS", "1"),
        ("MCP_TOKEN_CACHE_SECONDS", "1"),
    ]);
    let a = start_with(&config, a_listener, None).await.unwrap();
    let b = start_with(&config, b_listener, a.double.clone())
        .await
        .unwrap();
    let manager = sign_in(&a, "alice", &ALL).await;
    let (client_id, credentials) = manager.get_credentials().await.unwrap();
    let credentials = serde_json::to_value(credentials.unwrap()).unwrap();
    let access = credentials["access_token"].as_str().unwrap().to_owned();
    let refresh = credentials["refresh_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let mcp_status = |addr: std::net::SocketAddr| {
        let (http, access) = (http.clone(), access.clone());
        async move {
            http.post(format!("http://{addr}/mcp"))
                .bearer_auth(&access)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_ne!(mcp_status(a_addr).await, 401);
    assert_ne!(
        mcp_status(b_addr).await,
        401,
        "B accepts it (and caches it)"
    );
    let alice = mcp_auth_core::UserId::new("spotify:alice").unwrap();

    assert_eq!(a.revoke_everything().await.unwrap(), 1);
    // Within the bound (a token verified just before stays cached for
    // the cache's TTL, here and there).
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(mcp_status(a_addr).await, 401);
    assert_eq!(mcp_status(b_addr).await, 401);
    let refreshed = http
        .post(format!("http://{b_addr}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400, "the refresh token is dead");
    assert!(b.auth_server.grants(&alice).await.unwrap().is_empty());
    assert_eq!(
        a.auth_server.jwks(),
        b.auth_server.jwks(),
        "one new key ring"
    );

    // The command, on the same stores: nothing left to revoke, new keys.
    let before = a.auth_server.jwks();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spotify-mcp"))
        .args(["admin", "revoke-everything"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MCP_PUBLIC_URL", &origin)
        .env("MCP_VAULT_KEY", key)
        .env("REDIS_URL", redis.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("revoked 0 grants"), "{stdout}");
    assert!(
        a.auth_server.reload_keys().await.unwrap(),
        "the command replaced the keys"
    );
    assert_ne!(a.auth_server.jwks(), before);
}

/// A refused, reset or closed connection (not an HTTP answer).
fn connection_level(e: &reqwest::Error) -> bool {
    if e.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        // hyper's "connection closed before message completed".
        if format!("{err:?}").contains("IncompleteMessage") {
            return true;
        }
        source = err.source();
    }
    false
}

/// `MCP_ADMIN_LISTEN`: after a sign-in, tool calls (one after Spotify's
/// access token expired, so the server refreshed it upstream) and a call
/// without a token, the admin listener's `/metrics` counts them in the
/// Prometheus text format; the public listener has no `/metrics`; no user
/// id, token or client id is in a label. (Counters are process-wide: other
/// tests of this binary add to them, so each is checked to be at least 1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_listener_serves_metrics_and_the_public_one_does_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = start_with(
        &settings(&[("MCP_LISTEN", &addr), ("MCP_ADMIN_LISTEN", "127.0.0.1:0")]),
        listener,
        None,
    )
    .await
    .unwrap();
    let admin = s.admin_addr.expect("the admin listener is on");
    let alice = client(&s, "alice", &ALL).await;
    ok(&call(&alice, "now_playing", json!({})).await);
    double(&s).state.expire_access_tokens();
    ok(&call(&alice, "now_playing", json!({})).await);
    let http = reqwest::Client::new();
    let refused = http
        .post(&s.url)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // A sign-in refused: an unknown client.
    let unknown = http
        .get(format!(
            "{}/authorize?client_id=nobody&response_type=code",
            s.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    // The tool tier: 60 calls a minute per user and tool; the 61st is refused.
    for _ in 0..58 {
        ok(&call(&alice, "now_playing", json!({})).await);
    }
    let params = CallToolRequestParams::new("now_playing").with_arguments(serde_json::Map::new());
    assert!(
        alice.call_tool(params).await.is_err(),
        "the 61st call is refused"
    );

    let public = http
        .get(format!("{}/metrics", s.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "no metrics on the public listener");
    let scrape = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = scrape.text().await.unwrap();
    let at_least_one = |name: &str, labels: &[&str]| {
        let found = text.lines().any(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels.iter().all(|l| line.contains(l))
                && line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)
        });
        assert!(found, "no {name} with {labels:?} in:\n{text}");
    };
    at_least_one(
        "mcp_auth_requests_total",
        &[r#"route="/mcp""#, r#"outcome="401""#],
    );
    at_least_one(
        "mcp_auth_requests_total",
        &[r#"route="/mcp""#, r#"outcome="2xx""#],
    );
    at_least_one("mcp_auth_requests_total", &[r#"route="/token""#]);
    at_least_one("mcp_auth_sign_ins_total", &[r#"event="started""#]);
    at_least_one("mcp_auth_sign_ins_total", &[r#"event="completed""#]);
    at_least_one(
        "mcp_auth_sign_ins_total",
        &[r#"event="refused""#, r#"reason="unknown_client""#],
    );
    at_least_one("mcp_auth_rate_limited_total", &[r#"tier="tool""#]);
    at_least_one(
        "mcp_auth_requests_total",
        &[r#"route="/mcp""#, r#"outcome="429""#],
    );
    at_least_one("mcp_auth_consents_total", &[r#"decision="approved""#]);
    at_least_one(
        "mcp_auth_token_grants_total",
        &[r#"grant="authorization_code""#, r#"outcome="issued""#],
    );
    at_least_one(
        "mcp_auth_upstream_refresh_total",
        &[r#"provider="Spotify""#, r#"outcome="ok""#],
    );
    at_least_one(
        "mcp_auth_token_verification_seconds_count",
        &[r#"path="full""#],
    );
    at_least_one(
        "mcp_auth_token_verification_seconds_count",
        &[r#"path="cache""#],
    );
    assert!(
        text.contains(r#"mcp_auth_token_verification_seconds_bucket{path="cache",le="0.0001"}"#),
        "buckets, not a summary:\n{text}"
    );
    for secret in ["alice", "sp-at-", "sp-rt-", "Bearer", "client_id"] {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }
    // Readiness is on the admin listener too.
    let ready = http
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// A fleet in no-account mode: the first process runs the Spotify double
/// on `MCP_DOUBLE_LISTEN`, the second starts none and uses that one through
/// `MCP_DOUBLE_URL`; both share Redis behind one origin. A person signs in
/// through the second process (at the first one's double), calls a tool
/// there, and after Spotify's access token expired the second process
/// refreshes it at the shared double. A wrong setting is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn a_no_account_fleet_shares_one_double() {
    let redis = mcp_auth_testkit::RedisServer::start("spotify-mcp no-account fleet");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (origin, to_second) = balancer(
        a_listener.local_addr().unwrap(),
        b_listener.local_addr().unwrap(),
    )
    .await;
    let double_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{double_port}");
    let shared = format!("http://127.0.0.1:{double_port}/");
    let redis_url = redis.url();
    let with = |extra: (&'static str, &str)| {
        settings(&[
            ("MCP_PUBLIC_URL", &origin),
            ("MCP_VAULT_KEY", key),
            ("REDIS_URL", &redis_url),
            extra,
        ])
    };
    let a = start_with(&with(("MCP_DOUBLE_LISTEN", &listen)), a_listener, None)
        .await
        .unwrap();
    assert_eq!(double(&a).base, format!("http://{listen}"));
    let b = start_with(&with(("MCP_DOUBLE_URL", &shared)), b_listener, None)
        .await
        .unwrap();
    assert!(b.double.is_none(), "the second process runs no double");

    to_second.store(true, Ordering::SeqCst);
    let alice = client(&b, "alice", &ALL).await;
    let now = ok(&call(&alice, "now_playing", json!({})).await);
    assert_eq!(now["track"]["name"], "Lifetimes");
    let refreshes = double(&a).state.refreshes.load(Ordering::SeqCst);
    double(&a).state.expire_access_tokens();
    ok(&call(&alice, "now_playing", json!({})).await);
    assert_eq!(
        double(&a).state.refreshes.load(Ordering::SeqCst),
        refreshes + 1,
        "the second process refreshed at the shared double"
    );

    for (setting, value) in [
        ("MCP_DOUBLE_URL", "ftp://127.0.0.1:1"),
        ("MCP_DOUBLE_LISTEN", "nowhere"),
        ("MCP_DOUBLE_LISTEN", listen.as_str()),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = start_with(&with((setting, value)), listener, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(setting) || error.contains("double"),
            "{setting}={value}: {error}"
        );
    }
}
