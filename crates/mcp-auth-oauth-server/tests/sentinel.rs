//! Failover behind Redis Sentinel: a primary, a replica and three
//! sentinels on loopback. Under a steady load of sign-ins and refresh
//! rotations the primary is killed: while the sentinels switch, every
//! operation either succeeds or fails closed (`Unavailable`), never
//! answers wrongly; afterwards the store carries on by itself (no
//! restart), no acknowledged rotation is lost and no rotated-out token
//! comes back (`wait_for_replicas`).
#![allow(clippy::unwrap_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcp_auth_core::{RedisConfig, UserId};
use mcp_auth_oauth_server::{
    AuthStore, Grant, RedisAuthStore, RefreshRecord, Rotation, StoreError, StoreKey,
};
use mcp_auth_testkit::sentinel::SentinelSet;

const NOW: u64 = 1_800_000_000;

fn grant(id: &str) -> Grant {
    Grant::new(
        id,
        UserId::new("failover-user").unwrap(),
        "client-1",
        "Client",
        "https://mcp.example.com/mcp",
        vec!["mcp:tools".into()],
        NOW,
        u64::from(u32::MAX),
        StoreKey::of(&format!("consent-{id}")),
    )
}

/// One client's chain of refresh tokens: the token it holds, the one it
/// held before (rotated out), and whether its last answer was lost.
#[derive(Debug)]
struct Chain {
    grant: String,
    held: StoreKey,
    before: Option<StoreKey>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server and redis-sentinel"]
async fn the_stores_follow_a_failover_and_fail_closed_meanwhile() {
    let mut set = SentinelSet::start("oauth-server sentinel failover");
    let config = RedisConfig::new(set.url(), RedisAuthStore::DEFAULT_PREFIX)
        .connection_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(800));
    let store = Arc::new(
        RedisAuthStore::connect(config)
            .await
            .unwrap()
            .wait_for_replicas(1, Duration::from_millis(300)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, stop, ok, refused) = (store.clone(), stop.clone(), ok.clone(), refused.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut chains: Vec<Chain> = Vec::new();
            let mut current: Option<Chain> = None;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let Some(chain) = current.as_mut() else {
                    // A sign-in: a grant and its first refresh token.
                    let id = format!("g-{w}-{n}");
                    let first = StoreKey::of(&format!("{id}-0"));
                    let made = async {
                        store.put_grant(grant(&id)).await?;
                        store
                            .put_refresh(first, RefreshRecord::new(id.clone(), vec![]))
                            .await
                    }
                    .await;
                    match made {
                        Ok(()) => {
                            current = Some(Chain {
                                grant: id,
                                held: first,
                                before: None,
                            });
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(StoreError::Unavailable(_)) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("a sign-in failed open: {e}"),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let next = StoreKey::of(&format!("{}-{n}", chain.grant));
                let record = RefreshRecord::new(chain.grant.clone(), vec![]);
                match store
                    .rotate_refresh(chain.held, next, record, NOW, 0, b"sealed".to_vec())
                    .await
                {
                    Ok(Rotation::Rotated(_)) => {
                        chain.before = Some(chain.held);
                        chain.held = next;
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(other) => panic!("an acknowledged token was not found: {other:?}"),
                    Err(StoreError::Unavailable(_)) => {
                        // The answer was lost: this client's chain ends
                        // here (it signs in again), as a real one would
                        // without a grace window.
                        refused.fetch_add(1, Ordering::SeqCst);
                        current = None;
                    }
                    Err(e) => panic!("a rotation failed open: {e}"),
                }
                if let Some(done) = current.take_if(|c| c.before.is_some() && n.is_multiple_of(7)) {
                    chains.push(done);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            chains.extend(current);
            chains
        }));
    }
    // The vault (synchronous, its own connections) behind the same sentinels.
    let vault_config =
        RedisConfig::new(set.url(), mcp_auth_vault::store::RedisStore::DEFAULT_PREFIX)
            .connection_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_millis(800));
    let vault = Arc::new(
        mcp_auth_vault::Vault::builder_with_store(
            mcp_auth_vault::store::RedisStore::open(vault_config).unwrap(),
        )
        .key(mcp_auth_vault::KeyMaterial::raw([3; 32]))
        .open()
        .unwrap(),
    );
    let user = UserId::new("vault-user").unwrap();
    let v = vault.clone();
    let u = user.clone();
    tokio::task::spawn_blocking(move || v.put_bytes(&u, "before", b"kept"))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = ok.load(Ordering::SeqCst);
    assert!(before_kill > 20, "the load runs: {before_kill}");

    set.kill_primary();
    let killed = Instant::now();
    assert!(
        set.await_failover(Duration::from_secs(30)),
        "the sentinels promoted the replica"
    );
    let switched = killed.elapsed();
    // Recovery without a restart: operations succeed again.
    let at_switch = ok.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok.load(Ordering::SeqCst) < at_switch + 50 {
        assert!(
            Instant::now() < deadline,
            "the store did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The vault follows too: what it had is there, and it writes again.
    let (v, u) = (vault.clone(), user.clone());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match v.put_bytes(&u, "after", b"written") {
                Ok(()) => break,
                Err(e) => assert!(Instant::now() < deadline, "the vault did not recover: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let kept = v.get_bytes(&u, "before").unwrap().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&kept), b"kept");
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut chains = Vec::new();
    for worker in workers {
        chains.extend(worker.await.unwrap());
    }
    eprintln!(
        "failover in {switched:?}; {} operations succeeded, {} refused (fail closed)",
        ok.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst)
    );

    // On the new primary: every token a client holds after an acknowledged
    // rotation still rotates, and the token it rotated out is a reuse.
    let mut checked = 0;
    for chain in &chains {
        let Some(before) = chain.before else { continue };
        let fresh = StoreKey::of(&format!("{}-check", chain.grant));
        let record = RefreshRecord::new(chain.grant.clone(), vec![]);
        let rotated = store
            .rotate_refresh(
                chain.held,
                fresh,
                record.clone(),
                NOW + 1,
                0,
                b"sealed".to_vec(),
            )
            .await
            .unwrap();
        assert!(
            matches!(rotated, Rotation::Rotated(_)),
            "{chain:?}: {rotated:?}"
        );
        let reused = store
            .rotate_refresh(
                before,
                StoreKey::of("x"),
                record,
                NOW + 2,
                0,
                b"sealed".to_vec(),
            )
            .await
            .unwrap();
        assert!(
            matches!(reused, Rotation::Reused { .. }),
            "a rotated-out token came back: {chain:?}: {reused:?}"
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked} chains checked");
}
