//! The `AuthStore` contract, run against every store: the memory store
//! always, the embedded store with `--features embedded`, the Redis store with `--features redis` (it starts its own
//! `redis-server`; ignored by a plain `cargo test`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mcp_auth_core::UserId;
use mcp_auth_oauth_server::{
    AuthStore, ClientInfo, CodeRecord, Grant, MemoryAuthStore, PendingSignIn, Redemption,
    RefreshRecord, Rotation, StoreKey,
};

const NOW: u64 = 1_800_000_000;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn grant(id: &str, who: &str) -> Grant {
    Grant::new(
        id,
        user(who),
        "client-1",
        "Client",
        "https://mcp.example.com/mcp",
        vec!["mcp:tools".into()],
        NOW,
        NOW + 3600,
        StoreKey::of(&format!("consent-{id}")),
    )
}

fn client() -> ClientInfo {
    ClientInfo::public("client-1", "Client", vec!["http://localhost/cb".into()])
}

async fn pending_is_single_use_and_expires(store: &dyn AuthStore) {
    let pending = PendingSignIn::new(
        client(),
        "http://localhost/cb",
        Some("s".into()),
        "c".repeat(43),
        "https://mcp.example.com/mcp",
        vec!["mcp:tools".into()],
        [7; 32],
        "csrf".into(),
        NOW + 600,
    );
    let key = StoreKey::of("pending-1");
    let mut pending = pending;
    pending.subject = Some(user("alice"));
    pending.consented = true;
    store.put_pending(key, pending).await.unwrap();
    let read = store.pending(key, NOW).await.unwrap().unwrap();
    assert!(read.consented && read.subject == Some(user("alice")));
    assert!(store.pending(key, NOW).await.unwrap().is_some());
    assert!(
        store.pending(key, NOW + 600).await.unwrap().is_none(),
        "expired"
    );
    let taken = store.take_pending(key, NOW).await.unwrap().unwrap();
    assert_eq!(taken.csrf, "csrf");
    assert_eq!(taken.browser, [7; 32]);
    assert_eq!(taken.client.client_id, "client-1");
    assert!(
        store.take_pending(key, NOW).await.unwrap().is_none(),
        "single use"
    );
}

async fn a_code_redeems_once(store: &dyn AuthStore) {
    let key = StoreKey::of("code-1");
    let record = CodeRecord::new(
        grant("g-code", "alice"),
        "http://localhost/cb",
        "c".repeat(43),
        NOW + 60,
    );
    store.put_code(key, record).await.unwrap();
    match store.redeem_code(key, NOW).await.unwrap() {
        Redemption::Fresh(record) => assert_eq!(record.grant.subject, user("alice")),
        other => panic!("{other:?}"),
    }
    assert!(!store.code_replayed(key).await.unwrap(), "redeemed once");
    assert!(
        matches!(store.redeem_code(key, NOW).await.unwrap(), Redemption::Replayed { grant_id } if grant_id == "g-code")
    );
    assert!(store.code_replayed(key).await.unwrap(), "presented again");
    assert!(
        matches!(store.redeem_code(key, NOW).await.unwrap(), Redemption::Replayed { grant_id } if grant_id == "g-code"),
        "still a replay after the mark"
    );
    assert!(!store.code_replayed(StoreKey::of("nope")).await.unwrap());
    assert!(matches!(
        store.redeem_code(StoreKey::of("nope"), NOW).await.unwrap(),
        Redemption::Unknown
    ));
    let late = StoreKey::of("code-late");
    store
        .put_code(
            late,
            CodeRecord::new(
                grant("g-late", "alice"),
                "http://localhost/cb",
                "c".repeat(43),
                NOW + 60,
            ),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            store.redeem_code(late, NOW + 61).await.unwrap(),
            Redemption::Unknown
        ),
        "expired"
    );
}

async fn one_of_many_concurrent_redemptions_wins(store: Arc<dyn AuthStore>) {
    let key = StoreKey::of("code-race");
    store
        .put_code(
            key,
            CodeRecord::new(
                grant("g-race", "bob"),
                "http://localhost/cb",
                "c".repeat(43),
                NOW + 60,
            ),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_code(key, NOW).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Redemption::Fresh(_)) {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
    // The fifteen others marked the code as replayed: the redemption that
    // won sees it after writing its grant (and revokes it).
    assert!(store.code_replayed(key).await.unwrap());
}

async fn grants_list_touch_and_revoke_with_their_tokens_and_consent(store: &dyn AuthStore) {
    let mut first = grant("g-1", "carol");
    first.created_at = NOW;
    let mut second = grant("g-2", "carol");
    second.created_at = NOW + 1;
    store.put_grant(first.clone()).await.unwrap();
    store.put_grant(second.clone()).await.unwrap();
    store.put_grant(grant("g-3", "dave")).await.unwrap();
    let ids: Vec<String> = store
        .grants_of(&user("carol"), NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, ["g-1", "g-2"]);
    // The cheap bound the per-user cap reads: at least the live grants.
    assert!(store.grant_count_bound(&user("carol")).await.unwrap() >= 2);
    assert!(store.grant_count_bound(&user("dave")).await.unwrap() >= 1);
    store.touch_grant("g-1", NOW + 5).await.unwrap();
    assert_eq!(
        store.grant("g-1", NOW).await.unwrap().unwrap().last_used,
        NOW + 5
    );
    assert!(
        store.grant("g-1", NOW + 3600).await.unwrap().is_none(),
        "past its end"
    );
    let token = StoreKey::of("refresh-g-1");
    store
        .put_refresh(token, RefreshRecord::new("g-1", vec!["mcp:tools".into()]))
        .await
        .unwrap();
    store.put_consent(first.consent, NOW + 100).await.unwrap();
    assert!(store.consent(first.consent, NOW).await.unwrap());
    assert!(
        !store.consent(first.consent, NOW + 100).await.unwrap(),
        "consent expires"
    );
    store.put_consent(first.consent, NOW + 100).await.unwrap();
    assert!(store.revoke_grant("g-1").await.unwrap());
    assert!(!store.revoke_grant("g-1").await.unwrap());
    assert!(store.grant("g-1", NOW).await.unwrap().is_none());
    assert!(
        store.refresh(token).await.unwrap().is_none(),
        "its refresh token went with it"
    );
    assert!(
        !store.consent(first.consent, NOW).await.unwrap(),
        "its consent went with it"
    );
    assert_eq!(store.grants_of(&user("carol"), NOW).await.unwrap().len(), 1);
    assert!(store.grant_count_bound(&user("carol")).await.unwrap() >= 1);
    assert_eq!(store.revoke_all().await.unwrap(), 2);
    assert!(
        store
            .grants_of(&user("dave"), NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_grant(store: &dyn AuthStore) {
    store.put_grant(grant("g-r", "erin")).await.unwrap();
    let (t0, t1, t2) = (StoreKey::of("t0"), StoreKey::of("t1"), StoreKey::of("t2"));
    let record = RefreshRecord::new("g-r", vec!["mcp:tools".into()]);
    store.put_refresh(t0, record.clone()).await.unwrap();
    assert_eq!(
        store
            .rotate_refresh(t0, t1, record.clone(), NOW, 0, b"sealed".to_vec())
            .await
            .unwrap(),
        Rotation::Rotated(record.clone())
    );
    assert_eq!(store.refresh(t1).await.unwrap(), Some(record.clone()));
    // Read together with its grant (the refresh grant's first step): the
    // active token, the rotated one (its reuse is decided by the rotation),
    // and neither grant once past its end; an unknown token is `None`.
    for token in [t1, t0] {
        let (read, live) = store.refresh_and_grant(token, NOW).await.unwrap().unwrap();
        assert_eq!(read, record);
        assert_eq!(live.map(|g| g.id).as_deref(), Some("g-r"));
        let (_, ended) = store
            .refresh_and_grant(token, NOW + 3600)
            .await
            .unwrap()
            .unwrap();
        assert!(ended.is_none(), "past the grant's end");
    }
    assert!(
        store
            .refresh_and_grant(StoreKey::of("never"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    // t0 again, no grace: reuse, the grant and every token of it revoked.
    assert_eq!(
        store
            .rotate_refresh(t0, t2, record.clone(), NOW + 1, 0, b"sealed".to_vec())
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "g-r".into()
        }
    );
    assert!(store.grant("g-r", NOW).await.unwrap().is_none());
    assert!(store.refresh(t1).await.unwrap().is_none());
    assert!(store.refresh_and_grant(t1, NOW).await.unwrap().is_none());
    assert_eq!(
        store
            .rotate_refresh(t1, t2, record.clone(), NOW + 2, 0, b"sealed".to_vec())
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        store
            .rotate_refresh(
                StoreKey::of("never"),
                t2,
                record,
                NOW,
                0,
                b"sealed".to_vec()
            )
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

async fn within_grace_a_retry_gets_the_same_successor_never_a_second(store: &dyn AuthStore) {
    store.put_grant(grant("g-grace", "fay")).await.unwrap();
    let (t0, s1, other) = (
        StoreKey::of("g0"),
        StoreKey::of("g-s1"),
        StoreKey::of("g-other"),
    );
    let record = RefreshRecord::new("g-grace", vec!["mcp:tools".into()]);
    store.put_refresh(t0, record.clone()).await.unwrap();
    let rotate = |old, new, at, sealed: &str| {
        store.rotate_refresh(old, new, record.clone(), at, 30, sealed.as_bytes().to_vec())
    };
    assert!(matches!(
        rotate(t0, s1, NOW, "sealed s1").await.unwrap(),
        Rotation::Rotated(_)
    ));
    // A retry of t0 within the window, s1 unused: the same successor, and
    // nothing changes (no second successor, s1 alive).
    for _ in 0..2 {
        assert_eq!(
            rotate(t0, other, NOW + 10, "sealed other").await.unwrap(),
            Rotation::Retried {
                record: record.clone(),
                sealed_successor: b"sealed s1".to_vec(),
            }
        );
    }
    assert!(
        store.refresh(other).await.unwrap().is_none(),
        "no second successor"
    );
    assert!(
        store.refresh(s1).await.unwrap().is_some(),
        "the successor lives"
    );
    // Once s1 is used, t0 again (even within the window) is reuse.
    assert!(matches!(
        rotate(s1, StoreKey::of("g-s2"), NOW + 11, "sealed s2")
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        rotate(t0, other, NOW + 12, "x").await.unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(store.grant("g-grace", NOW).await.unwrap().is_none());

    // After the window: reuse.
    store.put_grant(grant("g-late", "fay")).await.unwrap();
    let record = RefreshRecord::new("g-late", vec!["mcp:tools".into()]);
    let (l0, l1) = (StoreKey::of("l0"), StoreKey::of("l1"));
    store.put_refresh(l0, record.clone()).await.unwrap();
    assert!(matches!(
        store
            .rotate_refresh(l0, l1, record.clone(), NOW, 30, b"s".to_vec())
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        store
            .rotate_refresh(
                l0,
                StoreKey::of("late"),
                record,
                NOW + 31,
                30,
                b"s".to_vec()
            )
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
}

async fn one_of_many_concurrent_rotations_wins(store: Arc<dyn AuthStore>) {
    store.put_grant(grant("g-rr", "gus")).await.unwrap();
    let record = RefreshRecord::new("g-rr", vec!["mcp:tools".into()]);
    store
        .put_refresh(StoreKey::of("rr"), record.clone())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, record) = (store.clone(), record.clone());
            tokio::spawn(async move {
                store
                    .rotate_refresh(
                        StoreKey::of("rr"),
                        StoreKey::of(&format!("rr-{i}")),
                        record,
                        NOW,
                        0,
                        b"sealed".to_vec(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Rotation::Rotated(_)) {
            rotated += 1;
        }
    }
    assert_eq!(
        rotated, 1,
        "a token rotates once; racing presentations are reuse"
    );
}

async fn clients_are_stored(store: &dyn AuthStore) {
    assert!(store.client("client-1").await.unwrap().is_none());
    store.put_client(client()).await.unwrap();
    assert_eq!(store.client("client-1").await.unwrap(), Some(client()));
}

async fn a_lock_has_one_holder_until_released_or_expired(store: &dyn AuthStore) {
    let name = StoreKey::of("refresh:alice");
    assert!(store.try_lock(name, "a", NOW, 10).await.unwrap());
    assert!(!store.try_lock(name, "b", NOW, 10).await.unwrap(), "held");
    store.unlock(name, "b").await.unwrap();
    assert!(
        !store.try_lock(name, "b", NOW, 10).await.unwrap(),
        "only the holder releases it"
    );
    store.unlock(name, "a").await.unwrap();
    assert!(store.try_lock(name, "b", NOW, 1).await.unwrap(), "released");
    assert!(
        store
            .try_lock(StoreKey::of("other"), "a", NOW, 10)
            .await
            .unwrap()
    );
    store.unlock(name, "b").await.unwrap();
}

async fn suite(store: Arc<dyn AuthStore>) {
    a_lock_has_one_holder_until_released_or_expired(store.as_ref()).await;
    pending_is_single_use_and_expires(store.as_ref()).await;
    a_code_redeems_once(store.as_ref()).await;
    one_of_many_concurrent_redemptions_wins(store.clone()).await;
    grants_list_touch_and_revoke_with_their_tokens_and_consent(store.as_ref()).await;
    refresh_tokens_rotate_and_reuse_revokes_the_grant(store.as_ref()).await;
    within_grace_a_retry_gets_the_same_successor_never_a_second(store.as_ref()).await;
    one_of_many_concurrent_rotations_wins(store.clone()).await;
    clients_are_stored(store.as_ref()).await;
}

/// The keys the app gives the persistent stores (from the vault's).
fn pseudonyms() -> mcp_auth_core::UserPseudonyms {
    mcp_auth_core::UserPseudonyms::from_key([9; 32]).derive("oauth-server")
}

/// A grant written before pseudonyms were turned on (`before`) is still
/// listed by user and revocable through a store that has them (`after`,
/// the same data), beside one written with them.
#[cfg(any(feature = "redis", feature = "embedded"))]
async fn put_a_grant_before_pseudonyms(before: &dyn AuthStore) {
    before.put_grant(grant("g-old", "alice")).await.unwrap();
}

#[cfg(any(feature = "redis", feature = "embedded"))]
async fn grants_written_before_pseudonyms_stay_listed_and_revocable(after: &dyn AuthStore) {
    let alice = user("alice");
    after.put_grant(grant("g-new", "alice")).await.unwrap();
    let ids = |grants: Vec<Grant>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(
        ids(after.grants_of(&alice, NOW).await.unwrap()),
        ["g-new", "g-old"]
    );
    assert_eq!(
        after.grant("g-old", NOW).await.unwrap().unwrap().subject,
        alice
    );
    assert!(after.revoke_grant("g-old").await.unwrap());
    assert_eq!(ids(after.grants_of(&alice, NOW).await.unwrap()), ["g-new"]);
    assert!(after.revoke_grant("g-new").await.unwrap());
    assert!(after.grants_of(&alice, NOW).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_keeps_the_contract() {
    suite(Arc::new(MemoryAuthStore::default())).await;
}

/// A grant refreshed for months does not grow the memory store without
/// end: it keeps the last 32 rotated tokens (presenting one revokes the
/// grant, as reuse); an older one is forgotten, so it is refused like any
/// unknown token and the grant lives on. Revoking a grant takes all of
/// what it kept, and a person's other grants stay.
#[tokio::test]
async fn the_memory_store_keeps_a_grants_last_rotated_tokens_and_forgets_older_ones() {
    let store = MemoryAuthStore::new(1_000);
    store.put_grant(grant("g-long", "mia")).await.unwrap();
    store.put_grant(grant("g-other", "mia")).await.unwrap();
    let record = RefreshRecord::new("g-long", vec!["mcp:tools".into()]);
    let key = |i: usize| StoreKey::of(&format!("long-{i}"));
    store.put_refresh(key(0), record.clone()).await.unwrap();
    // 2,000 rotations: more than the store's capacity of 1,000 per table.
    for i in 0..2_000 {
        assert_eq!(
            store
                .rotate_refresh(key(i), key(i + 1), record.clone(), NOW, 0, Vec::new())
                .await
                .unwrap(),
            Rotation::Rotated(record.clone()),
            "rotation {i}"
        );
    }
    let rotate =
        |old: usize| store.rotate_refresh(key(old), key(9_999), record.clone(), NOW, 0, Vec::new());
    assert_eq!(
        rotate(2_000 - 33).await.unwrap(),
        Rotation::Unknown,
        "33 rotations back: forgotten"
    );
    assert!(store.grant("g-long", NOW).await.unwrap().is_some());
    assert_eq!(
        rotate(2_000 - 32).await.unwrap(),
        Rotation::Reused {
            grant_id: "g-long".into()
        },
        "32 rotations back: still known, and its reuse revokes the grant"
    );
    assert!(store.grant("g-long", NOW).await.unwrap().is_none());
    assert!(store.refresh(key(2_000)).await.unwrap().is_none());
    let left: Vec<String> = store
        .grants_of(&user("mia"), NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, ["g-other"]);
    assert_eq!(store.grant_count_bound(&user("mia")).await.unwrap(), 1);
}

#[cfg(feature = "embedded")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = mcp_auth_oauth_server::EmbeddedAuthStore::open(dir.path()).unwrap();
    suite(Arc::new(store)).await;
}

/// With pseudonyms (no user id in the file): the same contract, and the
/// user id is nowhere in the file's bytes.
#[cfg(feature = "embedded")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_with_pseudonyms_keeps_the_contract_and_no_user_id() {
    use mcp_auth_oauth_server::EmbeddedAuthStore;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .user_pseudonyms(pseudonyms());
    suite(Arc::new(store)).await;
    let store = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .user_pseudonyms(pseudonyms());
    store.put_grant(grant("g-kept", "alice")).await.unwrap();
    drop(store);
    let bytes = std::fs::read(dir.path().join(EmbeddedAuthStore::FILE)).unwrap();
    for needle in ["alice", user("alice").storage_key().as_str()] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in the file"
        );
    }
    // Another key cannot read the sealed subject: a clear error, not a wrong user.
    let other = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .user_pseudonyms(mcp_auth_core::UserPseudonyms::from_key([8; 32]));
    assert!(other.grant("g-kept", NOW).await.is_err());
    drop(other);

    let dir = tempfile::tempdir().unwrap();
    put_a_grant_before_pseudonyms(&EmbeddedAuthStore::open(dir.path()).unwrap()).await;
    let after = EmbeddedAuthStore::open(dir.path())
        .unwrap()
        .user_pseudonyms(pseudonyms());
    grants_written_before_pseudonyms_stay_listed_and_revocable(&after).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn redis_store_keeps_the_contract() {
    use mcp_auth_oauth_server::RedisAuthStore;
    let server = mcp_auth_testkit::RedisServer::start("oauth-server store suite");
    let store = RedisAuthStore::connect(mcp_auth_core::RedisConfig::new(
        server.url(),
        RedisAuthStore::DEFAULT_PREFIX,
    ))
    .await
    .unwrap();
    suite(Arc::new(store)).await;
}

/// The same contract over TLS (`rediss://`, a private CA, a password).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn redis_store_keeps_the_contract_over_tls() {
    use mcp_auth_oauth_server::RedisAuthStore;
    let server = mcp_auth_testkit::RedisServer::start_tls(
        "oauth-server store suite over TLS",
        mcp_auth_testkit::TlsOptions {
            password: Some("store-suite-pass".to_owned()),
            client_auth: false,
        },
    );
    assert!(server.url().starts_with("rediss://"));
    // With pseudonyms here (the plain run above has none): what the app runs.
    let store = RedisAuthStore::connect(server.config(RedisAuthStore::DEFAULT_PREFIX))
        .await
        .unwrap()
        .user_pseudonyms(pseudonyms());
    suite(Arc::new(store)).await;
}

/// A grant written before pseudonyms stays listed and revocable after.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn redis_grants_written_before_pseudonyms_stay_listed_and_revocable() {
    use mcp_auth_oauth_server::RedisAuthStore;
    let server = mcp_auth_testkit::RedisServer::start("oauth-server pseudonym upgrade");
    let config = mcp_auth_core::RedisConfig::new(server.url(), RedisAuthStore::DEFAULT_PREFIX);
    put_a_grant_before_pseudonyms(&RedisAuthStore::connect(config.clone()).await.unwrap()).await;
    let after = RedisAuthStore::connect(config)
        .await
        .unwrap()
        .user_pseudonyms(pseudonyms());
    grants_written_before_pseudonyms_stay_listed_and_revocable(&after).await;
    let everything = mcp_auth_testkit::everything_in(server.port());
    assert!(!everything.contains("alice"), "{everything}");
}

/// The same contract on a Redis Cluster of three primaries
/// (`redis+cluster://`): every key under the prefix's hash tag, so the
/// scripts (which derive key names) and the emergency switch's `SCAN` run
/// on the one primary holding them.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn redis_store_keeps_the_contract_on_a_cluster() {
    use mcp_auth_oauth_server::RedisAuthStore;
    let cluster =
        mcp_auth_testkit::cluster::RedisCluster::start("oauth-server store suite on a cluster");
    let store = RedisAuthStore::connect(cluster.config(RedisAuthStore::DEFAULT_PREFIX))
        .await
        .unwrap()
        .user_pseudonyms(pseudonyms());
    suite(Arc::new(store)).await;
    let counts = cluster.key_counts();
    assert_eq!(counts.iter().filter(|n| **n > 0).count(), 1, "{counts:?}");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_dead_redis_fails_closed_and_the_store_recovers_when_it_returns() {
    use mcp_auth_oauth_server::{RedisAuthStore, StoreError};
    let mut server = mcp_auth_testkit::RedisServer::start("oauth-server dead redis");
    let store = RedisAuthStore::connect(mcp_auth_core::RedisConfig::new(
        server.url(),
        RedisAuthStore::DEFAULT_PREFIX,
    ))
    .await
    .unwrap();
    store.put_grant(grant("g-kept", "hal")).await.unwrap();
    server.stop();
    assert!(matches!(
        store.grant("g-kept", NOW).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.redeem_code(StoreKey::of("any"), NOW).await,
        Err(StoreError::Unavailable(_))
    ));
    // The test server keeps nothing on disk (persistence is Redis's own
    // configuration); what matters here is that the same store works again
    // without a restart of the application.
    server.restart();
    let mut back = false;
    for _ in 0..50 {
        if store.put_grant(grant("g-after", "hal")).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the store reconnects by itself");
    assert_eq!(
        store.grant("g-after", NOW).await.unwrap().map(|g| g.id),
        Some("g-after".to_owned())
    );
}

/// Redis stays bounded: after a churn of 10,000 sign-ins (pending request,
/// code, grant, refresh token and its rotation, consent, lock) whose
/// grants then end, every key has a TTL and nothing but the registered
/// client and the codes' replay tombstones (one hour) is left.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn redis_keys_stay_bounded_through_a_churn_of_10000_sign_ins() {
    use mcp_auth_oauth_server::RedisAuthStore;
    const SIGN_INS: usize = 10_000;
    let server = mcp_auth_testkit::RedisServer::start("oauth-server bounded redis");
    let store = Arc::new(
        RedisAuthStore::connect(mcp_auth_core::RedisConfig::new(
            server.url(),
            RedisAuthStore::DEFAULT_PREFIX,
        ))
        .await
        .unwrap(),
    );
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let now = unix_now();
    let mut registered = client();
    registered.last_used = now;
    store.put_client(registered).await.unwrap();
    let sign_in = |i: usize| {
        let store = store.clone();
        async move {
            let now = unix_now();
            let tag = format!("churn-{i}");
            let pending = PendingSignIn::new(
                client(),
                "http://localhost/cb",
                None,
                "c".repeat(43),
                "https://mcp.example.com/mcp",
                vec!["mcp:tools".into()],
                [1; 32],
                "csrf".into(),
                now + 2,
            );
            let key = StoreKey::of(&format!("{tag}-pending"));
            store.put_pending(key, pending).await.unwrap();
            store.take_pending(key, now).await.unwrap().unwrap();
            let mut g = grant(&tag, &format!("user-{}", i % 500));
            g.created_at = now;
            g.expires_at = now + 3;
            let code = StoreKey::of(&format!("{tag}-code"));
            store
                .put_code(
                    code,
                    CodeRecord::new(g.clone(), "http://localhost/cb", "c", now + 2),
                )
                .await
                .unwrap();
            assert!(matches!(
                store.redeem_code(code, now).await.unwrap(),
                Redemption::Fresh(_)
            ));
            store.put_grant(g.clone()).await.unwrap();
            store.put_consent(g.consent, now + 3).await.unwrap();
            let first = StoreKey::of(&format!("{tag}-r0"));
            let record = RefreshRecord::new(tag.clone(), vec!["mcp:tools".into()]);
            store.put_refresh(first, record.clone()).await.unwrap();
            let second = StoreKey::of(&format!("{tag}-r1"));
            store
                .rotate_refresh(first, second, record, now, 0, b"sealed".to_vec())
                .await
                .unwrap();
            let lock = StoreKey::of(&format!("{tag}-lock"));
            assert!(store.try_lock(lock, "me", now, 1).await.unwrap());
            store.unlock(lock, "me").await.unwrap();
        }
    };
    for wave in 0..SIGN_INS / 200 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            tasks.spawn(sign_in(wave * 200 + i));
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
    // Every grant (and with it its tokens, consent and index) has ended.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;

    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut left = Vec::new();
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        if !key.contains(":code:") {
            left.push(key.clone());
        } else {
            assert!(ttl <= 3600, "{key}: a tombstone lives one hour");
        }
    }
    assert_eq!(
        left,
        ["mcp-auth:as:client:client-1"],
        "{} keys in all",
        keys.len()
    );
    assert!(keys.len() <= SIGN_INS + 1, "{} keys", keys.len());
}
