//! Authorizations started and not yet completed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use mcp_auth_core::UserId;
use sha2::{Digest, Sha256};

use crate::{CodeVerifier, Nonce, OAuthError};

/// Default number of pending authorizations the memory store holds.
pub const DEFAULT_PENDING_CAPACITY: usize = 10_000;

/// What is remembered between the redirect to the provider and the callback.
#[derive(Debug)]
#[non_exhaustive]
pub struct PendingAuthorization {
    /// Who started the sign-in (a local user or session key).
    pub user: UserId,
    /// The PKCE verifier for the token exchange.
    pub verifier: CodeVerifier,
    /// The OIDC nonce the ID token must carry.
    pub nonce: Option<Nonce>,
    /// The issuer the callback and the ID token must name.
    pub expected_issuer: Option<String>,
    /// Seconds since the Unix epoch when the sign-in started.
    pub created_at: u64,
}

/// The key a pending authorization is stored under: the SHA-256 of its
/// `state`, so a store never holds the state itself.
pub type StateKey = [u8; 32];

/// The key for `state`.
pub fn state_key(state: &str) -> StateKey {
    Sha256::digest(state.as_bytes()).into()
}

/// A boxed future for [`PendingStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where pending authorizations live until their callback. Entries are
/// single use: [`PendingStore::take`] removes what it returns.
pub trait PendingStore: Send + Sync + std::fmt::Debug {
    /// Remembers `pending` under `key`; `lifetime_secs` lets the store drop
    /// stale entries when it needs room.
    fn insert(
        &self,
        key: StateKey,
        pending: PendingAuthorization,
        now: u64,
        lifetime_secs: u64,
    ) -> StoreFuture<'_, Result<(), OAuthError>>;

    /// Removes and returns the entry for `key`, if any.
    fn take(&self, key: StateKey) -> StoreFuture<'_, Option<PendingAuthorization>>;
}

/// The in-memory default: bounded, single process.
#[derive(Debug)]
pub struct MemoryPendingStore {
    entries: Mutex<HashMap<StateKey, PendingAuthorization>>,
    capacity: usize,
}

impl Default for MemoryPendingStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_PENDING_CAPACITY)
    }
}

impl MemoryPendingStore {
    /// A store for at most `capacity` pending sign-ins (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Number of pending entries (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether no sign-in is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PendingStore for MemoryPendingStore {
    fn insert(
        &self,
        key: StateKey,
        pending: PendingAuthorization,
        now: u64,
        lifetime_secs: u64,
    ) -> StoreFuture<'_, Result<(), OAuthError>> {
        let result = match self.entries.lock() {
            Ok(mut entries) => {
                if entries.len() >= self.capacity {
                    entries.retain(|_, p| now < p.created_at.saturating_add(lifetime_secs));
                }
                if entries.len() >= self.capacity {
                    Err(OAuthError::TooManyPending)
                } else {
                    entries.insert(key, pending);
                    Ok(())
                }
            }
            Err(_) => Err(OAuthError::TooManyPending),
        };
        Box::pin(std::future::ready(result))
    }

    fn take(&self, key: StateKey) -> StoreFuture<'_, Option<PendingAuthorization>> {
        let taken = self.entries.lock().ok().and_then(|mut e| e.remove(&key));
        Box::pin(std::future::ready(taken))
    }
}
