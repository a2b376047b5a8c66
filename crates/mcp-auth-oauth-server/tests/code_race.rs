//! A replayed code that arrives between the first redemption and the
//! write of its grant (RFC 6749 section 4.1.2: a code used twice revokes
//! what it gave). A store that holds the grant write until the replay has
//! been answered makes the order certain: the first exchange must then
//! fail and leave no live grant, never hand out tokens the replay could not
//! revoke.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use mcp_auth_core::{BoxFuture, UserId};
use mcp_auth_oauth_server::{
    AuthStore, ClientInfo, CodeRecord, Grant, MemoryAuthStore, PendingSignIn, Redemption,
    RefreshRecord, Rotation, StoreError, StoreKey,
};
use mcp_auth_testkit::browser::Browser;
use tokio::sync::Notify;

/// The memory store, with `put_grant` held until the test lets it go.
#[derive(Debug)]
struct HeldGrants {
    inner: MemoryAuthStore,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl AuthStore for HeldGrants {
    fn put_pending(
        &self,
        key: StoreKey,
        pending: PendingSignIn,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_pending(key, pending)
    }
    fn pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        self.inner.pending(key, now)
    }
    fn take_pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        self.inner.take_pending(key, now)
    }
    fn put_code(&self, key: StoreKey, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_code(key, code)
    }
    fn redeem_code(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Redemption, StoreError>> {
        self.inner.redeem_code(key, now)
    }
    fn code_replayed(&self, key: StoreKey) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.code_replayed(key)
    }
    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.entered.notify_one();
            self.release.notified().await;
            self.inner.put_grant(grant).await
        })
    }
    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>> {
        self.inner.grant(id, now)
    }
    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.touch_grant(id, now)
    }
    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.revoke_grant(id)
    }
    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>> {
        self.inner.grants_of(user, now)
    }
    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.inner.revoke_all()
    }
    fn put_refresh(
        &self,
        key: StoreKey,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_refresh(key, record)
    }
    fn refresh(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>> {
        self.inner.refresh(key)
    }
    fn rotate_refresh(
        &self,
        old: StoreKey,
        new: StoreKey,
        record: RefreshRecord,
        now: u64,
        grace: u64,
        sealed_successor: Vec<u8>,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>> {
        self.inner
            .rotate_refresh(old, new, record, now, grace, sealed_successor)
    }
    fn put_consent(&self, key: StoreKey, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_consent(key, until)
    }
    fn consent(&self, key: StoreKey, now: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.consent(key, now)
    }
    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_client(client)
    }
    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>> {
        self.inner.client(id)
    }
    fn try_lock(
        &self,
        name: StoreKey,
        holder: &str,
        now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.try_lock(name, holder, now, ttl)
    }
    fn unlock(&self, name: StoreKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.unlock(name, holder)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_before_the_grant_is_written_still_revokes_it() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let store = Arc::new(HeldGrants {
        inner: MemoryAuthStore::default(),
        entered: entered.clone(),
        release: release.clone(),
    });
    let env = env_custom(true, move |b| b.store(store)).await;
    let env = Arc::new(env);
    let client_id = register(&env, "Race").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "bob").await);
    let code = q["code"].clone();

    // The first exchange redeems the code and stops before its grant is
    // written.
    let first = {
        let (env, client_id, code, verifier) = (
            env.clone(),
            client_id.clone(),
            code.clone(),
            pkce.verifier.clone(),
        );
        tokio::spawn(async move { exchange(&env, &client_id, &code, &verifier).await })
    };
    entered.notified().await;
    // The replay: refused, and it finds no grant to revoke yet.
    let (status, again) = exchange(&env, &client_id, &code, &pkce.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    // Now the first exchange writes its grant: it must not hand out tokens.
    release.notify_one();
    let (status, tokens) = first.await.unwrap();
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the first exchange handed out tokens after a replay: {tokens}"
    );
    assert_eq!(tokens["error"], "invalid_grant");
    let bob = UserId::new("bob").unwrap();
    assert!(
        env.server.grants(&bob).await.unwrap().is_empty(),
        "no live grant is left"
    );
}
