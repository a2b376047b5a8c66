//! `RedisPendingStore`: the fleet case (sign-in started on one process,
//! finished on another), single use, sealed contents, expiry, a dead Redis
//! and a corrupted entry. Each test starts its own `redis-server` (skipped
//! loudly when the binary is missing; CI requires it).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::sync::Arc;

use common::*;
use mcp_auth_core::ManualClock;
use mcp_auth_pkce::{
    OAuthClient, OAuthError, PendingAuthorization, PendingKey, RedirectUri, RedisPendingStore,
};
use mcp_auth_testkit::RedisServer;
use secrecy::{ExposeSecret, SecretString};

async fn store(redis: &RedisServer) -> Arc<RedisPendingStore> {
    Arc::new(
        RedisPendingStore::connect(redis.config(RedisPendingStore::DEFAULT_PREFIX))
            .await
            .unwrap(),
    )
}

async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis
        .config("raw:")
        .client()
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys(redis: &RedisServer) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw(redis).await)
        .await
        .unwrap()
}

fn client(d: &Double, store: Arc<RedisPendingStore>, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder(
        d.provider(),
        CLIENT_ID,
        RedirectUri::new("http://127.0.0.1:9/callback").unwrap(),
    )
    .client_secret(SecretString::from(CLIENT_SECRET))
    .pending_store(store)
    .clock(Arc::new(clock.clone()))
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_sign_in_started_on_one_process_finishes_on_another() {
    sign_in_across_two_processes(RedisServer::start("redis_pending::fleet")).await;
}

/// The same over TLS (`rediss://`, a private CA, a client certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_sign_in_started_on_one_process_finishes_on_another_over_tls() {
    let redis = RedisServer::start_tls(
        "redis_pending::fleet over TLS",
        mcp_auth_testkit::TlsOptions {
            password: None,
            client_auth: true,
        },
    );
    sign_in_across_two_processes(redis).await;
}

/// The same on a Redis Cluster of three primaries (`redis+cluster://`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_sign_in_started_on_one_process_finishes_on_another_on_a_cluster() {
    let cluster =
        mcp_auth_testkit::cluster::RedisCluster::start("redis_pending::fleet on a cluster");
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let store = || async {
        Arc::new(
            RedisPendingStore::connect(cluster.config(RedisPendingStore::DEFAULT_PREFIX))
                .await
                .unwrap(),
        )
    };
    let a = client(&d, store().await, &clock);
    let b = client(&d, store().await, &clock);
    let request = a.start(&alice(), &[], &[]).await.unwrap();
    assert_eq!(cluster.key_counts().iter().sum::<u64>(), 1);
    let query = approve(&request.url).await;
    let tokens = b.callback(&alice(), &query).await.unwrap();
    assert!(tokens.access_token.expose_secret().starts_with("access-"));
    assert_eq!(
        a.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    assert_eq!(cluster.key_counts().iter().sum::<u64>(), 0);
}

async fn sign_in_across_two_processes(redis: RedisServer) {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    // Two clients with their own connections, as two server processes.
    let a = client(&d, store(&redis).await, &clock);
    let b = client(&d, store(&redis).await, &clock);
    let request = a.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    let tokens = b.callback(&alice(), &query).await.unwrap();
    assert!(tokens.access_token.expose_secret().starts_with("access-"));
    // Single use across the fleet: the entry is gone for both.
    assert_eq!(
        a.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    assert!(keys(&redis).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn redis_holds_only_a_hashed_key_and_sealed_bytes_with_a_ttl() {
    let redis = RedisServer::start("redis_pending::sealed");
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let store = store(&redis).await;
    let client = client(&d, store.clone(), &clock);
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let state = url_param(&request.url, "state");
    let stored = keys(&redis).await;
    assert_eq!(stored.len(), 1);
    let key = &stored[0];
    assert!(key.starts_with("mcp-auth:pkce:p:"), "{key}");
    assert!(!key.contains(&state));
    let mut conn = raw(&redis).await;
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(alice().as_str()), "the user is sealed");
    assert!(!text.contains(&state));
    let ttl: i64 = redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=600).contains(&ttl), "TTL {ttl}");
    // The sealed bytes open only with the state.
    assert_eq!(
        PendingAuthorization::open(&PendingKey::for_state("another state"), &bytes).unwrap_err(),
        OAuthError::CorruptPending
    );
    let opened = PendingAuthorization::open(&PendingKey::for_state(&state), &bytes).unwrap();
    assert_eq!(opened.user, alice());
    assert_eq!(opened.created_at, 1_800_000_000);
    // And the flow still completes with them.
    let query = approve(&request.url).await;
    assert!(client.callback(&alice(), &query).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_dead_redis_is_a_typed_error_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start("redis_pending::outage");
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = client(&d, store(&redis).await, &clock);
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    redis.stop();
    assert!(matches!(
        client.start(&alice(), &[], &[]).await.unwrap_err(),
        OAuthError::PendingStoreUnavailable(_)
    ));
    let error = client.callback(&alice(), &query).await.unwrap_err();
    assert!(matches!(error, OAuthError::PendingStoreUnavailable(_)));
    assert!(!error.requires_sign_in(), "a retry may work");
    redis.restart();
    // This Redis keeps nothing across a restart (no persistence), so the
    // sign-in begun before the outage is unknown now; new ones work again
    // on the same store, which reconnected by itself.
    assert_eq!(
        client.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    assert!(client.callback(&alice(), &query).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_corrupted_entry_is_refused_and_dropped() {
    let redis = RedisServer::start("redis_pending::corrupt");
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = client(&d, store(&redis).await, &clock);
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let key = keys(&redis).await.remove(0);
    let mut conn = raw(&redis).await;
    let mut bytes: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
    let query = approve(&request.url).await;
    let error = client.callback(&alice(), &query).await.unwrap_err();
    assert_eq!(error, OAuthError::CorruptPending);
    assert!(error.requires_sign_in());
    assert!(keys(&redis).await.is_empty());
}

#[tokio::test]
async fn bad_settings_are_config_errors_without_the_url() {
    let error = RedisPendingStore::connect_lazy(mcp_auth_core::RedisConfig::new(
        "not a url with password hunter2",
        RedisPendingStore::DEFAULT_PREFIX,
    ))
    .unwrap_err();
    assert!(matches!(error, OAuthError::Config(_)));
    assert!(!error.to_string().contains("hunter2"));
    let error = RedisPendingStore::connect_lazy(
        mcp_auth_core::RedisConfig::new("redis://127.0.0.1:1/", "x").prefix(""),
    )
    .unwrap_err();
    assert!(matches!(error, OAuthError::Config(_)));
}

fn url_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}
