//! Redis-store specifics: the fleet case, fail-closed outages with automatic
//! recovery, and what a dump of Redis reveals. Each test starts its own
//! `redis-server` (ignored unless run with `--include-ignored`, as
//! `scripts/test-all.sh` does; then a missing binary fails them).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::time::{Duration, Instant};

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_session::{
    NewSession, RedisSessionStore, SessionConfig, SessionError, SessionManager,
};
use mcp_auth_testkit::RedisServer;

async fn manager(redis: &RedisServer, clock: &ManualClock) -> SessionManager {
    let store = RedisSessionStore::connect(mcp_auth_core::RedisConfig::new(
        redis.url(),
        RedisSessionStore::DEFAULT_PREFIX,
    ))
    .await
    .unwrap();
    SessionManager::new(store, SessionConfig::default())
        .unwrap()
        .clock(clock.clone())
}

fn alice() -> UserId {
    UserId::new("alice@example.com").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn two_managers_on_one_redis_see_each_other_at_once() {
    let redis = RedisServer::start("redis_store::fleet");
    let clock = ManualClock::at_unix(1_800_000_000);
    // Two managers with their own connections, as two server processes would have.
    let a = manager(&redis, &clock).await;
    let b = manager(&redis, &clock).await;

    let id = a.create(NewSession::new(alice(), "c")).await.unwrap().id;
    assert_eq!(b.load(&id).await.unwrap().user, alice());

    let (rotated, _) = b.rotate(&id).await.unwrap();
    assert!(matches!(a.load(&id).await, Err(SessionError::NotFound)));
    a.load(&rotated).await.unwrap();

    let second = b.create(NewSession::new(alice(), "c")).await.unwrap().id;
    assert_eq!(a.list(&alice()).await.unwrap().len(), 2);
    assert_eq!(a.revoke_user(&alice()).await.unwrap(), 2);
    assert!(matches!(
        b.load(&rotated).await,
        Err(SessionError::NotFound)
    ));
    assert!(matches!(b.load(&second).await, Err(SessionError::NotFound)));

    let bob = UserId::new("bob").unwrap();
    let bob_id = a.create(NewSession::new(bob, "c")).await.unwrap().id;
    b.revoke_everything().await.unwrap();
    assert!(matches!(a.load(&bob_id).await, Err(SessionError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn redis_outage_fails_closed_and_recovers_without_restart() {
    let mut redis = RedisServer::start("redis_store::outage");
    let clock = ManualClock::at_unix(1_800_000_000);
    let sessions = manager(&redis, &clock).await;
    let id = sessions
        .create(NewSession::new(alice(), "c"))
        .await
        .unwrap()
        .id;
    sessions.load(&id).await.unwrap();

    redis.stop();
    // Every operation fails with a typed error; none reports a session as valid.
    for _ in 0..3 {
        let err = sessions.load(&id).await.unwrap_err();
        assert!(matches!(err, SessionError::StoreUnavailable(_)), "{err:?}");
        assert!(!err.to_string().contains(&redis.url()), "{err}");
    }
    assert!(matches!(
        sessions.create(NewSession::new(alice(), "c")).await,
        Err(SessionError::StoreUnavailable(_))
    ));
    assert!(matches!(
        sessions.revoke(&id).await,
        Err(SessionError::StoreUnavailable(_))
    ));

    redis.restart();
    // Same manager, same process: it reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        match sessions.create(NewSession::new(alice(), "c")).await {
            Ok(created) => break created.id,
            Err(SessionError::StoreUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery after Redis came back: {e:?}"),
        }
    };
    sessions.load(&fresh).await.unwrap();
    // The restarted Redis kept nothing (no persistence here): the old id is gone, not revived.
    assert!(matches!(
        sessions.load(&id).await,
        Err(SessionError::NotFound)
    ));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn starting_while_redis_is_down_fails_closed_then_works() {
    let mut redis = RedisServer::start("redis_store::lazy");
    redis.stop();
    assert!(matches!(
        RedisSessionStore::connect(mcp_auth_core::RedisConfig::new(
            redis.url(),
            RedisSessionStore::DEFAULT_PREFIX
        ))
        .await,
        Err(SessionError::StoreUnavailable(_))
    ));
    let store = RedisSessionStore::connect_lazy(mcp_auth_core::RedisConfig::new(
        redis.url(),
        RedisSessionStore::DEFAULT_PREFIX,
    ))
    .unwrap();
    let sessions: SessionManager = SessionManager::new(store, SessionConfig::default()).unwrap();
    assert!(matches!(
        sessions.create(NewSession::new(alice(), "c")).await,
        Err(SessionError::StoreUnavailable(_))
    ));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match sessions.create(NewSession::new(alice(), "c")).await {
            Ok(_) => break,
            Err(SessionError::StoreUnavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_dump_of_redis_holds_no_usable_session_id() {
    let redis = RedisServer::start("redis_store::dump");
    let clock = ManualClock::at_unix(1_800_000_000);
    let sessions = manager(&redis, &clock).await;
    let ids: Vec<_> = [alice(), UserId::new("bob").unwrap()]
        .into_iter()
        .map(|u| NewSession::new(u, "c"))
        .collect::<Vec<_>>();
    let mut created = Vec::new();
    for new in ids {
        created.push(sessions.create(new).await.unwrap().id);
    }

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut dump = String::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let value: Vec<String> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            _ => vec![
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
        };
        dump.push_str(&format!("{key} {kind} {value:?}\n"));
    }
    for id in &created {
        assert!(
            !dump.contains(id.expose()),
            "session id found in Redis:\n{dump}"
        );
        assert!(dump.contains(&id.handle().to_hex()), "{dump}");
    }
    // Every session key carries a TTL, so nothing outlives its deadline by much.
    for key in keys.iter().filter(|k| k.contains(":s:")) {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((3600..=3660).contains(&ttl), "{key} TTL {ttl}");
    }
}

/// With pseudonyms (what `mcp-auth-app` sets), no key and no field names a
/// user; sessions created before they were turned on stay usable, listed
/// and revocable.
#[tokio::test]
#[ignore = "needs redis-server"]
async fn with_pseudonyms_redis_names_no_user_and_older_sessions_stay_usable() {
    let redis = RedisServer::start("redis_store::pseudonyms");
    let clock = ManualClock::at_unix(1_800_000_000);
    let config = mcp_auth_core::RedisConfig::new(redis.url(), RedisSessionStore::DEFAULT_PREFIX);
    let before = manager(&redis, &clock).await;
    let old = before
        .create(NewSession::new(alice(), "c"))
        .await
        .unwrap()
        .id;
    let store = RedisSessionStore::connect(config)
        .await
        .unwrap()
        .user_pseudonyms(mcp_auth_core::UserPseudonyms::from_key([5; 32]));
    let after: SessionManager = SessionManager::new(store, SessionConfig::default())
        .unwrap()
        .clock(clock.clone());
    let new = after
        .create(NewSession::new(alice(), "c"))
        .await
        .unwrap()
        .id;
    assert_eq!(after.load(&old).await.unwrap().user, alice());
    assert_eq!(after.load(&new).await.unwrap().user, alice());
    assert_eq!(after.list(&alice()).await.unwrap().len(), 2);
    let (rotated, session) = after.rotate(&new).await.unwrap();
    assert_eq!(session.user, alice());
    // Only the session created before pseudonyms names alice in Redis.
    let everything = mcp_auth_testkit::everything_in(redis.port());
    let storage_key = alice().storage_key().as_str().to_owned();
    assert_eq!(
        everything.matches(&storage_key).count(),
        2,
        "its field and its index: {everything}"
    );
    assert_eq!(after.revoke_user(&alice()).await.unwrap(), 2);
    assert!(after.load(&rotated).await.is_err());
    let everything = mcp_auth_testkit::everything_in(redis.port());
    assert!(
        !everything.contains(&storage_key) && !everything.contains("alice"),
        "{everything}"
    );
}
