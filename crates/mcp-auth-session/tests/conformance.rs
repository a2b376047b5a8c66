//! One conformance suite, run against every `SessionStore`: the memory store
//! always, the Redis store when a `redis-server` binary is available (the
//! tests start their own; see `mcp-auth-testkit`).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::{Clock, ManualClock, UserId};
use mcp_auth_session::{
    MemorySessionStore, NewSession, SessionConfig, SessionError, SessionId, SessionManager,
    SessionStore, UserLimitPolicy,
};
use serde::{Deserialize, Serialize};

#[allow(dead_code)]
struct Harness {
    store: Arc<dyn SessionStore>,
    clock: ManualClock,
    /// What the store runs on (a server, a cluster), kept alive.
    redis: Option<Box<dyn std::any::Any + Send>>,
}

impl Harness {
    fn manager<D: Serialize + serde::de::DeserializeOwned>(
        &self,
        config: SessionConfig,
    ) -> SessionManager<D> {
        SessionManager::with_shared_store(Arc::clone(&self.store), config)
            .unwrap()
            .clock(self.clock.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Data {
    upstream: String,
    counter: u32,
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn new_session(name: &str) -> NewSession<Data> {
    NewSession::new(user(name), "client-1")
        .with_scopes(["mcp:tools", "files:read"])
        .with_data(Data {
            upstream: "spotify".into(),
            counter: 1,
        })
}

const HOUR: Duration = Duration::from_secs(3600);

mod cases {
    use super::*;

    pub(crate) async fn create_and_load(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let created = sessions
            .create(new_session("alice@example.com"))
            .await
            .unwrap();
        assert_eq!(created.id.expose().len(), 43);
        assert_eq!(created.session.handle, created.id.handle());
        assert!(created.evicted.is_empty());
        h.clock.advance(Duration::from_secs(10));
        let s = sessions.load(&created.id).await.unwrap();
        assert_eq!(s.user, user("alice@example.com"));
        assert_eq!(s.client_id, "client-1");
        assert_eq!(s.scopes, vec!["mcp:tools", "files:read"]);
        assert!(s.has_scope("files:read") && !s.has_scope("admin"));
        assert_eq!(s.data.counter, 1);
        assert_eq!(s.created_at, created.session.created_at);
        assert_eq!(
            s.last_seen,
            created.session.created_at + Duration::from_secs(10)
        );
        assert_eq!(s.expires_at, s.last_seen + HOUR);
        // Load by text, as an id arrives from a client.
        let again = sessions.load_str(created.id.expose()).await.unwrap();
        assert_eq!(again.handle, s.handle);
    }

    pub(crate) async fn unknown_and_malformed_ids(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        sessions.create(new_session("alice")).await.unwrap();
        let stranger = SessionId::generate().unwrap();
        assert!(matches!(
            sessions.load(&stranger).await,
            Err(SessionError::NotFound)
        ));
        assert!(matches!(
            sessions.load_str("nope").await,
            Err(SessionError::MalformedId)
        ));
        assert!(matches!(
            sessions.rotate(&stranger).await,
            Err(SessionError::NotFound)
        ));
        assert!(matches!(
            sessions
                .update_data(
                    &stranger,
                    &Data {
                        upstream: "x".into(),
                        counter: 0
                    }
                )
                .await,
            Err(SessionError::NotFound)
        ));
        assert!(!sessions.revoke(&stranger).await.unwrap());
    }

    pub(crate) async fn idle_timeout_is_enforced_and_reset_by_access(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let id = sessions.create(new_session("alice")).await.unwrap().id;
        for _ in 0..3 {
            h.clock.advance(HOUR - Duration::from_secs(1));
            sessions.load(&id).await.unwrap();
        }
        h.clock.advance(HOUR);
        assert!(matches!(
            sessions.load(&id).await,
            Err(SessionError::NotFound)
        ));
        // Expired means gone: going back in time does not revive it.
        h.clock.set(h.clock.now() - HOUR);
        assert!(matches!(
            sessions.load(&id).await,
            Err(SessionError::NotFound)
        ));
    }

    pub(crate) async fn absolute_timeout_ends_even_an_active_session(h: Harness) {
        let config = SessionConfig::default()
            .idle_timeout(HOUR)
            .absolute_timeout(3 * HOUR);
        let sessions = h.manager::<Data>(config);
        let id = sessions.create(new_session("alice")).await.unwrap().id;
        for _ in 0..5 {
            h.clock.advance(Duration::from_secs(30 * 60));
            sessions.load(&id).await.unwrap();
        }
        h.clock.advance(Duration::from_secs(29 * 60));
        let s = sessions.load(&id).await.unwrap();
        assert_eq!(s.expires_at, s.created_at + 3 * HOUR);
        h.clock.advance(Duration::from_secs(60));
        assert!(matches!(
            sessions.load(&id).await,
            Err(SessionError::NotFound)
        ));
    }

    pub(crate) async fn rotate_issues_new_id_and_kills_old(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let created = sessions.create(new_session("alice")).await.unwrap();
        h.clock.advance(Duration::from_secs(5));
        let (new_id, s) = sessions.rotate(&created.id).await.unwrap();
        assert_ne!(new_id, created.id);
        assert_eq!(s.handle, new_id.handle());
        assert_eq!(s.created_at, created.session.created_at);
        assert_eq!(s.data.counter, 1);
        assert!(matches!(
            sessions.load(&created.id).await,
            Err(SessionError::NotFound)
        ));
        assert!(matches!(
            sessions.rotate(&created.id).await,
            Err(SessionError::NotFound)
        ));
        assert_eq!(sessions.load(&new_id).await.unwrap().user, user("alice"));
        let listed = sessions.list(&user("alice")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].handle, new_id.handle());
        // Revoking by the new id works; the old id never comes back.
        assert!(sessions.revoke(&new_id).await.unwrap());
        assert!(sessions.list(&user("alice")).await.unwrap().is_empty());
    }

    pub(crate) async fn rotation_does_not_extend_absolute_lifetime(h: Harness) {
        let config = SessionConfig::default().absolute_timeout(2 * HOUR);
        let sessions = h.manager::<Data>(config);
        let mut id = sessions.create(new_session("alice")).await.unwrap().id;
        for _ in 0..3 {
            h.clock.advance(Duration::from_secs(35 * 60));
            id = sessions.rotate(&id).await.unwrap().0;
        }
        h.clock.advance(Duration::from_secs(14 * 60));
        sessions.load(&id).await.unwrap();
        h.clock.advance(Duration::from_secs(60));
        assert!(matches!(
            sessions.load(&id).await,
            Err(SessionError::NotFound)
        ));
    }

    pub(crate) async fn per_user_limit_evicts_oldest(h: Harness) {
        let config = SessionConfig::default().max_sessions_per_user(NonZeroU32::new(3));
        let sessions = h.manager::<Data>(config);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(sessions.create(new_session("alice")).await.unwrap().id);
            h.clock.advance(Duration::from_secs(1));
        }
        let bob = sessions.create(new_session("bob")).await.unwrap().id;
        let fourth = sessions.create(new_session("alice")).await.unwrap();
        assert_eq!(fourth.evicted, vec![ids[0].handle()]);
        assert!(matches!(
            sessions.load(&ids[0]).await,
            Err(SessionError::NotFound)
        ));
        for id in &ids[1..] {
            sessions.load(id).await.unwrap();
        }
        sessions.load(&bob).await.unwrap();
        let listed: Vec<_> = sessions
            .list(&user("alice"))
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.handle)
            .collect();
        assert_eq!(
            listed,
            vec![ids[1].handle(), ids[2].handle(), fourth.id.handle()]
        );
    }

    pub(crate) async fn per_user_limit_refuse_policy(h: Harness) {
        let config = SessionConfig::default()
            .max_sessions_per_user(NonZeroU32::new(2))
            .on_user_limit(UserLimitPolicy::Refuse);
        let sessions = h.manager::<Data>(config);
        let first = sessions.create(new_session("alice")).await.unwrap().id;
        h.clock.advance(Duration::from_secs(1));
        sessions.create(new_session("alice")).await.unwrap();
        assert!(matches!(
            sessions.create(new_session("alice")).await,
            Err(SessionError::UserLimitReached { max: 2 })
        ));
        // Another user is unaffected; freeing a slot makes room.
        sessions.create(new_session("bob")).await.unwrap();
        sessions.revoke(&first).await.unwrap();
        sessions.create(new_session("alice")).await.unwrap();
        // Expired sessions do not count.
        h.clock.advance(2 * HOUR);
        sessions.create(new_session("alice")).await.unwrap();
        sessions.create(new_session("alice")).await.unwrap();
        assert_eq!(sessions.list(&user("alice")).await.unwrap().len(), 2);
    }

    pub(crate) async fn update_data_and_scopes(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default().max_data_bytes(100));
        let id = sessions.create(new_session("alice")).await.unwrap().id;
        h.clock.advance(Duration::from_secs(7));
        let updated = sessions
            .update_data(
                &id,
                &Data {
                    upstream: "google".into(),
                    counter: 2,
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.data.counter, 2);
        assert_eq!(
            updated.last_seen,
            updated.created_at + Duration::from_secs(7)
        );
        let scoped = sessions.set_scopes(&id, ["mcp:admin"]).await.unwrap();
        assert_eq!(scoped.scopes, vec!["mcp:admin"]);
        assert_eq!(scoped.data.upstream, "google");
        let loaded = sessions.load(&id).await.unwrap();
        assert_eq!((loaded.data.counter, loaded.scopes.len()), (2, 1));

        let big = Data {
            upstream: "x".repeat(200),
            counter: 0,
        };
        assert!(matches!(
            sessions.update_data(&id, &big).await,
            Err(SessionError::DataTooLarge { max: 100, .. })
        ));
        assert!(matches!(
            sessions.create(new_session("alice").with_data(big)).await,
            Err(SessionError::DataTooLarge { .. })
        ));
        assert!(matches!(
            sessions.set_scopes(&id, ["has space"]).await,
            Err(SessionError::InvalidField { field: "scope", .. })
        ));
        assert!(matches!(
            sessions
                .create(NewSession::new(user("a"), "").with_data(loaded.data.clone()))
                .await,
            Err(SessionError::InvalidField {
                field: "client id",
                ..
            })
        ));
        // The failed updates left the session as it was.
        assert_eq!(sessions.load(&id).await.unwrap().data.upstream, "google");
    }

    pub(crate) async fn data_of_another_type_is_a_typed_error(h: Harness) {
        #[derive(Debug, Serialize, Deserialize)]
        struct Other {
            number: u64,
        }
        let writer = h.manager::<Data>(SessionConfig::default());
        let reader = h.manager::<Other>(SessionConfig::default());
        let id = writer.create(new_session("alice")).await.unwrap().id;
        let err = reader.load(&id).await.unwrap_err();
        assert!(
            matches!(
                err,
                SessionError::Data {
                    category: "data",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("spotify"), "{err}");
    }

    pub(crate) async fn list_is_per_user_and_oldest_first(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let mut alice = Vec::new();
        for _ in 0..3 {
            alice.push(
                sessions
                    .create(new_session("alice"))
                    .await
                    .unwrap()
                    .id
                    .handle(),
            );
            sessions.create(new_session("bob")).await.unwrap();
            h.clock.advance(Duration::from_secs(1));
        }
        let listed: Vec<_> = sessions
            .list(&user("alice"))
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                assert_eq!(s.user, user("alice"));
                s.handle
            })
            .collect();
        assert_eq!(listed, alice);
        assert!(sessions.list(&user("carol")).await.unwrap().is_empty());
        // Listing does not count as an access.
        h.clock.advance(HOUR);
        assert!(sessions.list(&user("alice")).await.unwrap().is_empty());
    }

    pub(crate) async fn revoke_one_by_handle_and_all_of_a_user(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let a1 = sessions.create(new_session("alice")).await.unwrap().id;
        let a2 = sessions.create(new_session("alice")).await.unwrap().id;
        let b1 = sessions.create(new_session("bob")).await.unwrap().id;
        assert!(sessions.revoke_handle(&a1.handle()).await.unwrap());
        assert!(!sessions.revoke_handle(&a1.handle()).await.unwrap());
        assert!(matches!(
            sessions.load(&a1).await,
            Err(SessionError::NotFound)
        ));
        sessions.load(&a2).await.unwrap();
        sessions.create(new_session("alice")).await.unwrap();
        assert_eq!(sessions.revoke_user(&user("alice")).await.unwrap(), 2);
        assert!(matches!(
            sessions.load(&a2).await,
            Err(SessionError::NotFound)
        ));
        assert!(sessions.list(&user("alice")).await.unwrap().is_empty());
        sessions.load(&b1).await.unwrap();
        assert_eq!(sessions.revoke_user(&user("alice")).await.unwrap(), 0);
    }

    pub(crate) async fn revoke_everything(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        let ids = [
            sessions.create(new_session("alice")).await.unwrap().id,
            sessions.create(new_session("bob")).await.unwrap().id,
        ];
        sessions.revoke_everything().await.unwrap();
        for id in &ids {
            assert!(matches!(
                sessions.load(id).await,
                Err(SessionError::NotFound)
            ));
            assert!(matches!(
                sessions.rotate(id).await,
                Err(SessionError::NotFound)
            ));
        }
        assert!(sessions.list(&user("alice")).await.unwrap().is_empty());
        // Business as usual afterwards.
        let fresh = sessions.create(new_session("alice")).await.unwrap().id;
        sessions.load(&fresh).await.unwrap();
        assert_eq!(sessions.list(&user("alice")).await.unwrap().len(), 1);
    }

    pub(crate) async fn user_ids_that_sanitize_alike_stay_apart(h: Harness) {
        let sessions = h.manager::<Data>(SessionConfig::default());
        sessions.create(new_session("a.b")).await.unwrap();
        sessions.create(new_session("a_b")).await.unwrap();
        sessions.create(new_session("A.B")).await.unwrap();
        assert_eq!(sessions.revoke_user(&user("a.b")).await.unwrap(), 1);
        assert_eq!(sessions.list(&user("a_b")).await.unwrap().len(), 1);
        assert_eq!(sessions.list(&user("A.B")).await.unwrap().len(), 1);
    }
}

macro_rules! conformance {
    ($store:ident, $harness:path, #[$attr:meta]; $($case:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test]
                #[$attr]
                async fn $case() {
                    let Some(h) = $harness(concat!(stringify!($store), "::", stringify!($case))).await
                    else {
                        return;
                    };
                    super::cases::$case(h).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($store:ident, $harness:path, #[$attr:meta]) => {
        conformance!($store, $harness, #[$attr];
            create_and_load,
            unknown_and_malformed_ids,
            idle_timeout_is_enforced_and_reset_by_access,
            absolute_timeout_ends_even_an_active_session,
            rotate_issues_new_id_and_kills_old,
            rotation_does_not_extend_absolute_lifetime,
            per_user_limit_evicts_oldest,
            per_user_limit_refuse_policy,
            update_data_and_scopes,
            data_of_another_type_is_a_typed_error,
            list_is_per_user_and_oldest_first,
            revoke_one_by_handle_and_all_of_a_user,
            revoke_everything,
            user_ids_that_sanitize_alike_stay_apart,
        );
    };
}

async fn memory_harness(_name: &str) -> Option<Harness> {
    Some(Harness {
        store: Arc::new(MemorySessionStore::new()),
        clock: ManualClock::at_unix(1_800_000_000),
        redis: None,
    })
}

// The memory store needs nothing: an attribute that ignores nothing.
all_cases!(memory, crate::memory_harness, #[cfg_attr(any(), ignore)]);

#[cfg(feature = "redis")]
async fn redis_harness(name: &str) -> Option<Harness> {
    use mcp_auth_session::RedisSessionStore;
    let redis = mcp_auth_testkit::RedisServer::start(name);
    let store = RedisSessionStore::connect(mcp_auth_core::RedisConfig::new(
        redis.url(),
        RedisSessionStore::DEFAULT_PREFIX,
    ))
    .await
    .unwrap();
    Some(Harness {
        store: Arc::new(store),
        clock: ManualClock::at_unix(1_800_000_000),
        redis: Some(Box::new(redis)),
    })
}

#[cfg(feature = "redis")]
all_cases!(redis, crate::redis_harness, #[ignore = "needs redis-server"]);

/// The same contract over TLS (`rediss://`), with a password and a client
/// certificate the server demands.
#[cfg(feature = "redis")]
async fn redis_tls_harness(name: &str) -> Option<Harness> {
    use mcp_auth_session::RedisSessionStore;
    let redis = mcp_auth_testkit::RedisServer::start_tls(
        name,
        mcp_auth_testkit::TlsOptions {
            password: Some("session-suite-pass".to_owned()),
            client_auth: true,
        },
    );
    // With pseudonyms here (the plain run has none): what the app runs.
    let store = RedisSessionStore::connect(redis.config(RedisSessionStore::DEFAULT_PREFIX))
        .await
        .unwrap()
        .user_pseudonyms(mcp_auth_core::UserPseudonyms::from_key([5; 32]));
    Some(Harness {
        store: Arc::new(store),
        clock: ManualClock::at_unix(1_800_000_000),
        redis: Some(Box::new(redis)),
    })
}

#[cfg(feature = "redis")]
all_cases!(redis_tls, crate::redis_tls_harness, #[ignore = "needs redis-server"]);

/// The same contract on a Redis Cluster of three primaries
/// (`redis+cluster://`): the store's keys share one hash tag.
#[cfg(feature = "redis")]
async fn redis_cluster_harness(name: &str) -> Option<Harness> {
    use mcp_auth_session::RedisSessionStore;
    let cluster = mcp_auth_testkit::cluster::RedisCluster::start(name);
    let store = RedisSessionStore::connect(cluster.config(RedisSessionStore::DEFAULT_PREFIX))
        .await
        .unwrap()
        .user_pseudonyms(mcp_auth_core::UserPseudonyms::from_key([5; 32]));
    Some(Harness {
        store: Arc::new(store),
        clock: ManualClock::at_unix(1_800_000_000),
        redis: Some(Box::new(cluster)),
    })
}

#[cfg(feature = "redis")]
all_cases!(redis_cluster, crate::redis_cluster_harness, #[ignore = "needs redis-server"]);
