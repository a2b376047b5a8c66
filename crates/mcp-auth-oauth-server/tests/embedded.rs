//! The embedded store keeps what a restart must keep, survives `kill -9`
//! mid-write without losing an acknowledged rotation or reviving a
//! rotated-out token, and refuses a file that is not its own without
//! touching it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mcp_auth_core::UserId;
use mcp_auth_oauth_server::{
    AuthStore, ClientInfo, EmbeddedAuthStore, EmbeddedStoreError, Grant, RefreshRecord, Rotation,
    StoreKey,
};

const NOW: u64 = 1_800_000_000;
const CHILD_DIR: &str = "MCP_EMBEDDED_CHILD_DIR";
const CHAINS: usize = 50;
const STEPS: usize = 20;

fn grant(id: &str) -> Grant {
    Grant::new(
        id,
        UserId::new("alice").unwrap(),
        "client-1",
        "Client",
        "https://mcp.example.com/mcp",
        vec!["mcp:tools".into()],
        NOW,
        NOW + 86_400,
        StoreKey::of(&format!("consent-{id}")),
    )
}

fn token(chain: usize, step: usize) -> StoreKey {
    StoreKey::of(&format!("refresh-{chain}-{step}"))
}

fn record(chain: usize) -> RefreshRecord {
    RefreshRecord::new(format!("grant-{chain}"), vec!["mcp:tools".into()])
}

#[tokio::test]
async fn a_restart_keeps_grants_refresh_tokens_consents_and_clients() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedAuthStore::open(dir.path()).unwrap();
        let client = ClientInfo::public("client-1", "Client", vec!["http://localhost/cb".into()]);
        store.put_client(client).await.unwrap();
        store.put_grant(grant("grant-0")).await.unwrap();
        store
            .put_consent(StoreKey::of("consent-grant-0"), NOW + 60)
            .await
            .unwrap();
        store.put_refresh(token(0, 0), record(0)).await.unwrap();
        let rotated = store
            .rotate_refresh(
                token(0, 0),
                token(0, 1),
                record(0),
                NOW,
                0,
                b"sealed".to_vec(),
            )
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated(_)));
    }
    let store = EmbeddedAuthStore::open(dir.path()).unwrap();
    assert_eq!(
        store.client("client-1").await.unwrap().unwrap().name,
        "Client"
    );
    let alice = UserId::new("alice").unwrap();
    assert_eq!(store.grants_of(&alice, NOW).await.unwrap().len(), 1);
    assert!(
        store
            .consent(StoreKey::of("consent-grant-0"), NOW)
            .await
            .unwrap()
    );
    // The client can still refresh with the token it holds ...
    assert!(matches!(
        store
            .rotate_refresh(
                token(0, 1),
                token(0, 2),
                record(0),
                NOW + 1,
                0,
                b"sealed".to_vec()
            )
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    // ... and the token rotated out before the restart is still dead: its
    // reuse revokes the grant.
    assert!(matches!(
        store
            .rotate_refresh(
                token(0, 0),
                token(0, 9),
                record(0),
                NOW + 2,
                0,
                b"sealed".to_vec()
            )
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(store.grants_of(&alice, NOW).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_damaged_or_foreign_file_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(EmbeddedAuthStore::FILE);
    let junk = b"not a database, and not to be overwritten".repeat(100);
    std::fs::write(&file, &junk).unwrap();
    let err = EmbeddedAuthStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, EmbeddedStoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("auth.redb"), "{err}");
    assert!(
        std::fs::read(&file).unwrap() == junk,
        "the damaged file was changed"
    );

    // A redb file of some other program.
    let other = tempfile::tempdir().unwrap();
    let foreign = other.path().join(EmbeddedAuthStore::FILE);
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("theirs");
            txn.open_table(table).unwrap().insert("k", "v").unwrap();
        }
        txn.commit().unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let err = EmbeddedAuthStore::open(other.path()).unwrap_err();
    assert!(matches!(err, EmbeddedStoreError::Foreign(_)), "{err}");
    assert!(
        std::fs::read(&foreign).unwrap() == before,
        "the foreign file was changed"
    );
}

#[tokio::test]
async fn a_second_open_of_a_file_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedAuthStore::open(dir.path()).unwrap();
    let err = EmbeddedAuthStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, EmbeddedStoreError::InUse(_)), "{err}");
}

/// The child: `CHAINS` grants, each with a refresh token, then `CHAINS`
/// chains of `STEPS` rotations run concurrently (1,000 in all); each
/// acknowledged rotation is printed as `ack <chain> <step>` at once.
#[test]
fn child_rotations_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return; // not the child
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Arc::new(EmbeddedAuthStore::open(&dir).unwrap());
        for chain in 0..CHAINS {
            store
                .put_grant(grant(&format!("grant-{chain}")))
                .await
                .unwrap();
            store
                .put_refresh(token(chain, 0), record(chain))
                .await
                .unwrap();
        }
        println!("ready");
        let tasks: Vec<_> = (0..CHAINS)
            .map(|chain| {
                let store = store.clone();
                tokio::spawn(async move {
                    for step in 0..STEPS {
                        let rotated = store
                            .rotate_refresh(
                                token(chain, step),
                                token(chain, step + 1),
                                record(chain),
                                NOW + step as u64,
                                0,
                                b"sealed".to_vec(),
                            )
                            .await
                            .unwrap();
                        assert!(matches!(rotated, Rotation::Rotated(_)));
                        println!("ack {chain} {step}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// `kill -9` while 1,000 rotations run in another process: after it, every
/// acknowledged rotation is there (its new token refreshes), and no token
/// rotated out comes back (presenting it is a reuse).
#[tokio::test]
async fn kill_9_during_1000_concurrent_rotations_loses_no_acknowledged_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_rotations_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut acked = vec![None::<usize>; CHAINS];
    let mut count = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        if words.next() != Some("ack") {
            continue;
        }
        let chain: usize = words.next().unwrap().parse().unwrap();
        let step: usize = words.next().unwrap().parse().unwrap();
        acked[chain] = Some(acked[chain].map_or(step, |s: usize| s.max(step)));
        count += 1;
        if count == 300 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(count, 300, "the child stopped before the kill");

    let store = EmbeddedAuthStore::open(dir.path()).unwrap();
    for (chain, acked) in acked.iter().enumerate() {
        // The newest token that still has a record.
        let frontier = (0..=STEPS)
            .rev()
            .find(|step| futures_ready(store.refresh(token(chain, *step))).is_some())
            .expect("the chain's first token at least");
        if let Some(step) = acked {
            assert!(
                frontier > *step,
                "chain {chain}: rotation {step} was acknowledged, frontier {frontier}"
            );
        }
        // The frontier refreshes; a token before it is a reuse.
        let next = StoreKey::of(&format!("after-{chain}"));
        let rotated = store
            .rotate_refresh(
                token(chain, frontier),
                next,
                record(chain),
                NOW + 100,
                0,
                b"sealed".to_vec(),
            )
            .await
            .unwrap();
        assert!(
            matches!(rotated, Rotation::Rotated(_)),
            "chain {chain}: {rotated:?}"
        );
        if frontier > 0 {
            let reused = store
                .rotate_refresh(
                    token(chain, frontier - 1),
                    StoreKey::of("x"),
                    record(chain),
                    NOW + 101,
                    0,
                    b"sealed".to_vec(),
                )
                .await
                .unwrap();
            assert!(
                matches!(reused, Rotation::Reused { .. }),
                "chain {chain}: {reused:?}"
            );
        }
    }
}

/// The embedded store answers reads at once: its futures are ready.
fn futures_ready<T>(
    future: mcp_auth_core::BoxFuture<'_, Result<Option<T>, mcp_auth_oauth_server::StoreError>>,
) -> Option<T> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = future;
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(result) => result.unwrap(),
        std::task::Poll::Pending => panic!("a read was not ready"),
    }
}

/// The file stays bounded: ended grants (with their tokens) and clients
/// unused for the client TTL are swept on grant writes.
#[tokio::test]
async fn ended_grants_and_unused_clients_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .client_ttl(std::time::Duration::from_secs(3600));
    let mut stale = ClientInfo::public("stale", "Stale", vec!["http://localhost/cb".into()]);
    stale.last_used = NOW - 3601;
    let mut fresh = ClientInfo::public("fresh", "Fresh", vec!["http://localhost/cb".into()]);
    fresh.last_used = NOW - 60;
    store.put_client(stale).await.unwrap();
    store.put_client(fresh).await.unwrap();
    let mut ended = grant("grant-ended");
    ended.expires_at = NOW - 1;
    ended.created_at = NOW - 100;
    // The first grant write sweeps (then one in 1,024).
    store.put_grant(ended).await.unwrap();
    store
        .put_refresh(token(9, 0), RefreshRecord::new("grant-ended", vec![]))
        .await
        .unwrap();
    let mut next = grant("grant-next");
    next.created_at = NOW;
    for _ in 0..1024 {
        store.put_grant(next.clone()).await.unwrap();
    }
    assert!(store.client("stale").await.unwrap().is_none());
    assert!(store.client("fresh").await.unwrap().is_some());
    assert!(
        store.refresh(token(9, 0)).await.unwrap().is_none(),
        "swept with its grant"
    );
    assert!(store.grant("grant-next", NOW).await.unwrap().is_some());
}

/// A registration flood cannot grow the file without bound: past
/// `max_clients`, the registered clients no grant uses go, least recently
/// used first; a client a grant uses stays. Ended consents are swept.
#[tokio::test]
async fn the_clients_table_is_capped_and_ended_consents_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .max_clients(128);
    let mut used = ClientInfo::public("client-1", "In use", vec!["http://localhost/cb".into()]);
    used.last_used = NOW - 1_000_000;
    store.put_client(used).await.unwrap();
    store.put_grant(grant("grant-uses-client-1")).await.unwrap();
    for n in 0..1_000u64 {
        let mut client = ClientInfo::public(
            format!("flood-{n}"),
            "Flood",
            vec!["http://localhost/cb".into()],
        );
        client.last_used = NOW + n;
        store.put_client(client).await.unwrap();
    }
    let mut kept = 0;
    for n in 0..1_000u64 {
        kept += usize::from(store.client(&format!("flood-{n}")).await.unwrap().is_some());
    }
    assert!(kept <= 128, "{kept} clients kept");
    assert!(
        store.client("flood-999").await.unwrap().is_some(),
        "the newest stay"
    );
    assert!(
        store.client("flood-0").await.unwrap().is_none(),
        "the oldest go"
    );
    assert!(
        store.client("client-1").await.unwrap().is_some(),
        "a client in use stays, however old"
    );

    let (ended, live) = (StoreKey::of("consent-ended"), StoreKey::of("consent-live"));
    store.put_consent(ended, NOW - 1).await.unwrap();
    store.put_consent(live, NOW + 3600).await.unwrap();
    // The first grant write sweeps (then one in 1,024): ended consents go.
    drop(store);
    let store = EmbeddedAuthStore::open(dir.path()).unwrap();
    store.put_grant(grant("grant-sweeps")).await.unwrap();
    assert!(!store.consent(ended, 0).await.unwrap(), "swept");
    assert!(store.consent(live, NOW).await.unwrap());
}
