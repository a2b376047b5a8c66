//! Signing keys across a fleet: two `AuthServer`s, each with its own
//! connections to one Redis (the vault holding the key ring, the store),
//! as two processes would have. Rotations on one are seen by the other;
//! every token either signs validates at both throughout; a retired key is
//! refused once its tokens have expired; a scheduled rotation runs once
//! per fleet.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::{ManualClock, RedisConfig};
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin, RedisAuthStore};
use mcp_auth_testkit::RedisServer;
use mcp_auth_testkit::browser::Browser;
use mcp_auth_vault::store::RedisStore;
use mcp_auth_vault::{KeyMaterial, Vault};
use serde_json::Value;

mod common;

const ISSUER: &str = "http://127.0.0.1:1";
const TTL: u64 = 600;

struct Process {
    server: AuthServer,
    origin: String,
}

impl Process {
    /// The shared helpers' view: requests go to this process.
    fn env(&self) -> common::Env {
        common::Env::new(
            self.server.clone(),
            self.origin.clone(),
            format!("{ISSUER}/mcp"),
        )
    }
}

async fn process(
    redis: &RedisServer,
    clock: &ManualClock,
    reload: Duration,
    rotate_every: Option<u64>,
) -> Process {
    let vault = Vault::builder_with_store(
        RedisStore::open(RedisConfig::new(redis.url(), RedisStore::DEFAULT_PREFIX)).unwrap(),
    )
    .key(KeyMaterial::raw([7; 32]))
    .open()
    .unwrap();
    let store = RedisAuthStore::connect(RedisConfig::new(
        redis.url(),
        RedisAuthStore::DEFAULT_PREFIX,
    ))
    .await
    .unwrap();
    let mut builder = AuthServer::builder(ISSUER, format!("{ISSUER}/mcp"))
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dynamic_registration(true)
        .store(Arc::new(store))
        .keys_in_vault(Arc::new(vault))
        .access_token_ttl(Duration::from_secs(TTL))
        .key_reload_every(reload)
        .clock(clock.clone());
    if let Some(every) = rotate_every {
        builder = builder.key_rotation_every(Duration::from_secs(every));
    }
    let server = builder.build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Process { server, origin }
}

/// Signs a user in at `p` (the shared test helpers); the client id and
/// the refresh token.
async fn sign_in(p: &Process) -> (String, String) {
    let env = p.env();
    let client_id = common::register(&env, "Fleet keys").await;
    let pkce = common::new_pkce();
    let callback = common::sign_in(&env, &mut Browser::new(), &client_id, &pkce, "key-user").await;
    let code = common::query(&callback)["code"].clone();
    let (_, tokens) = common::exchange(&env, &client_id, &code, &pkce.verifier).await;
    (
        client_id,
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// A refresh at `p`: the new access token (signed there) and refresh token.
async fn refresh(p: &Process, client_id: &str, token: &str) -> (String, String) {
    let (_, answer) = common::refresh(&p.env(), client_id, token).await;
    (
        answer["access_token"].as_str().unwrap().to_owned(),
        answer["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn valid_at(p: &Process, token: &str) -> bool {
    let config = p.server.resource_config().build().unwrap();
    p.server
        .token_verifier(&config)
        .validate(token)
        .await
        .is_ok()
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(header.as_bytes())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn published(p: &Process) -> Vec<String> {
    p.server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn three_rotations_on_one_process_keep_every_token_valid_at_both() {
    let redis = RedisServer::start("oauth-server fleet keys");
    let clock = ManualClock::at_unix(1_800_000_000);
    // No scheduled reload within the test: B learns of A's rotations from
    // the tokens A signs (a key it does not know makes it reload).
    let slow = Duration::from_secs(3600);
    let a = process(&redis, &clock, slow, None).await;
    let b = process(&redis, &clock, slow, None).await;
    assert_eq!(published(&a), published(&b), "one ring for the fleet");
    let (client_id, mut refresh_token) = sign_in(&a).await;

    let mut tokens = Vec::new();
    for round in 0..3 {
        a.server.rotate_keys().unwrap();
        // At once, before B's reload: a token from each process.
        for at in [&a, &b] {
            let (access, next) = refresh(at, &client_id, &refresh_token).await;
            refresh_token = next;
            tokens.push(access);
        }
        for token in &tokens {
            assert!(
                valid_at(&a, token).await,
                "round {round}: {} at A",
                kid(token)
            );
            assert!(
                valid_at(&b, token).await,
                "round {round}: {} at B",
                kid(token)
            );
        }
        clock.advance(Duration::from_secs(1));
    }
    // B publishes the key A signs with (it was B's "next", or B reloaded
    // on meeting it), and B's rotation below starts from A's ring.
    assert!(published(&b).contains(&published(&a)[0]));

    // One access-token lifetime later, and one rotation after it, the keys
    // of the first round are retired at both, and their tokens refused.
    let first = tokens[0].clone();
    clock.advance(Duration::from_secs(TTL + 1));
    b.server.rotate_keys().unwrap();
    // A learns of it from a token B signs.
    let (access, next) = refresh(&b, &client_id, &refresh_token).await;
    refresh_token = next;
    assert!(valid_at(&a, &access).await);
    // Within the reload bound A reloads (here: now).
    a.server.reload_keys().await.unwrap();
    assert_eq!(published(&a), published(&b));
    for p in [&a, &b] {
        assert!(!published(p).contains(&kid(&first)), "retired at both");
        assert!(!valid_at(p, &first).await);
    }
    // The newest tokens still validate at both.
    let (access, _) = refresh(&b, &client_id, &refresh_token).await;
    assert!(valid_at(&a, &access).await && valid_at(&b, &access).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn a_scheduled_rotation_runs_once_per_fleet() {
    let redis = RedisServer::start("oauth-server scheduled rotation");
    let clock = ManualClock::at_unix(1_800_000_000);
    let fast = Duration::from_millis(100);
    let a = process(&redis, &clock, fast, Some(3600)).await;
    let b = process(&redis, &clock, fast, Some(3600)).await;
    let before = published(&a);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(published(&a), before, "not due yet");

    clock.advance(Duration::from_secs(3601));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = published(&a);
    assert_eq!(published(&b), after, "both see the rotation");
    // One rotation: the old next key signs, the old current is retired,
    // and one new next key was made (two rotations would have made two).
    assert_eq!(after[0], before[1], "the published next key signs");
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains(&before[0]));
    assert_eq!(after.iter().filter(|k| !before.contains(k)).count(), 1);
}
