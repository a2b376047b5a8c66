//! Memory-store specifics: capacity bound, sweeping, no ids in the store.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_session::{
    MemorySessionStore, NewSession, SessionConfig, SessionError, SessionManager, SessionStore,
};

fn manager(store: &Arc<MemorySessionStore>, clock: &ManualClock) -> SessionManager {
    let shared: Arc<dyn SessionStore> = store.clone();
    SessionManager::with_shared_store(shared, SessionConfig::default())
        .unwrap()
        .clock(clock.clone())
}

#[tokio::test]
async fn full_store_refuses_new_sessions_until_dead_ones_are_swept() {
    let store = Arc::new(MemorySessionStore::with_capacity(3));
    let clock = ManualClock::at_unix(1_800_000_000);
    let sessions = manager(&store, &clock);
    let mut live = Vec::new();
    for i in 0..3 {
        let user = UserId::new(format!("user{i}")).unwrap();
        live.push(
            sessions
                .create(NewSession::new(user, "c"))
                .await
                .unwrap()
                .id,
        );
    }
    let err = sessions
        .create(NewSession::new(UserId::new("late").unwrap(), "c"))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::StoreFull { capacity: 3 }));
    // Nobody else's session was evicted to make room.
    for id in &live {
        sessions.load(id).await.unwrap();
    }
    clock.advance(Duration::from_secs(3600));
    sessions
        .create(NewSession::new(UserId::new("late").unwrap(), "c"))
        .await
        .unwrap();
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn dead_sessions_are_swept_amortised_without_reads() {
    let store = Arc::new(MemorySessionStore::new());
    let clock = ManualClock::at_unix(1_800_000_000);
    let sessions = manager(&store, &clock);
    for i in 0..2000 {
        let user = UserId::new(format!("flood{i}")).unwrap();
        sessions.create(NewSession::new(user, "c")).await.unwrap();
    }
    assert_eq!(store.len(), 2000);
    clock.advance(Duration::from_secs(2 * 3600));
    for i in 0..1100 {
        let user = UserId::new(format!("later{i}")).unwrap();
        sessions.create(NewSession::new(user, "c")).await.unwrap();
    }
    // The 2000 dead sessions went in an amortised sweep, never read again.
    assert!(store.len() <= 1100, "{} sessions held", store.len());
    clock.advance(Duration::from_secs(2 * 3600));
    let before = store.len();
    assert_eq!(
        store.sweep(clock_secs(&clock), sessions.config().timeouts()),
        before
    );
    assert!(store.is_empty());
}

fn clock_secs(clock: &ManualClock) -> u64 {
    use mcp_auth_core::Clock;
    clock.unix_seconds()
}

#[tokio::test]
async fn the_store_holds_hashes_not_ids() {
    let store = Arc::new(MemorySessionStore::new());
    let clock = ManualClock::at_unix(1_800_000_000);
    let sessions = manager(&store, &clock);
    let user = UserId::new("alice").unwrap();
    let id = sessions
        .create(NewSession::new(user.clone(), "c"))
        .await
        .unwrap()
        .id;
    let dump = format!(
        "{store:?} {:?}",
        store
            .list_user(&user, clock_secs(&clock), sessions.config().timeouts())
            .await
            .unwrap()
    );
    assert!(!dump.contains(id.expose()), "{dump}");
    assert!(dump.contains(&id.handle().short()), "{dump}");
}
