//! The storage interface and the bounded in-memory store.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};

use mcp_auth_core::UserId;

use crate::{SessionError, SessionHandle, Timeouts, UserLimitPolicy};

/// The future a [`SessionStore`] method returns.
pub type StoreFuture<'a, T> = mcp_auth_core::BoxFuture<'a, Result<T, SessionError>>;

/// A session as a store keeps it: keyed by the hash of its id, never the id.
///
/// Not `#[non_exhaustive]`, on purpose: a [`SessionStore`] written outside
/// this crate builds it. A new field is a breaking change, listed as such.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// SHA-256 of the session id.
    pub handle: SessionHandle,
    /// Whose session it is.
    pub user: UserId,
    /// The OAuth client (MCP client) the session was created for.
    pub client_id: String,
    /// Scopes granted to the session.
    pub scopes: Vec<String>,
    /// Creation time, unix seconds.
    pub created_at: u64,
    /// Last access, unix seconds.
    pub last_seen: u64,
    /// Application data, serialized as JSON.
    pub data: String,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("handle", &self.handle)
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish()
    }
}

/// The rules an insert applies atomically. (Exhaustive for the same reason
/// as [`StoredSession`]: store implementations and their tests build it.)
#[derive(Debug, Clone, Copy)]
pub struct InsertRules {
    /// Current time (unix seconds) by the manager's clock.
    pub now: u64,
    /// The timeouts; dead sessions do not count towards the user limit.
    pub timeouts: Timeouts,
    /// Most live sessions per user, `None` for no limit.
    pub max_per_user: Option<NonZeroU32>,
    /// What to do at the limit.
    pub policy: UserLimitPolicy,
}

/// A change applied by [`SessionStore::update`]. (Exhaustive for the same
/// reason as [`StoredSession`].)
#[derive(Debug, Clone, Default)]
pub struct SessionChange {
    /// New scopes, if they change.
    pub scopes: Option<Vec<String>>,
    /// New serialized data, if it changes.
    pub data: Option<String>,
}

/// Where sessions live. Object safe; every method is one atomic step.
///
/// Every method that reads a session applies [`Timeouts::is_live`] with the
/// `now` it is given (the manager's clock, so tests never sleep) and treats a
/// dead session as absent, deleting it. A store that cannot answer returns
/// [`SessionError::StoreUnavailable`]; it must never report a session as live
/// when it does not know (fail closed).
///
/// Every implementation must pass the conformance suite in
/// `tests/conformance.rs`.
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Inserts a new session, first dropping the user's dead sessions and
    /// then applying the per-user limit. Returns the handles evicted to make
    /// room, or [`SessionError::UserLimitReached`] under the refuse policy.
    fn insert<'a>(
        &'a self,
        session: StoredSession,
        rules: InsertRules,
    ) -> StoreFuture<'a, Vec<SessionHandle>>;

    /// Returns the live session and sets its `last_seen` to `now`.
    fn load_and_touch<'a>(
        &'a self,
        handle: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>>;

    /// Applies `change` to a live session (which also counts as an access).
    fn update<'a>(
        &'a self,
        handle: &'a SessionHandle,
        change: SessionChange,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>>;

    /// Moves a live session from `old` to `new` atomically: afterwards `old`
    /// finds nothing. Creation time is kept; `last_seen` becomes `now`.
    fn rotate<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>>;

    /// The user's live sessions, oldest first.
    fn list_user<'a>(
        &'a self,
        user: &'a UserId,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Vec<StoredSession>>;

    /// Deletes one session; `true` if it existed.
    fn remove<'a>(&'a self, handle: &'a SessionHandle) -> StoreFuture<'a, bool>;

    /// Deletes all of a user's sessions; returns how many existed.
    fn remove_user<'a>(&'a self, user: &'a UserId) -> StoreFuture<'a, usize>;

    /// Invalidates every session at once (emergency).
    fn remove_all(&self) -> StoreFuture<'_, ()>;
}

/// Default capacity of [`MemorySessionStore`].
pub const DEFAULT_MEMORY_CAPACITY: usize = 100_000;

/// The in-memory store for a single process.
///
/// Bounded: it holds at most `capacity` sessions (default 100,000). Dead
/// sessions are swept when the store is full and, amortised, every
/// `max(1024, len / 2)` inserts, so a sweep costs O(1) per insert on average.
/// When it is full of live sessions, a new session is refused with
/// [`SessionError::StoreFull`] rather than evicting someone else's.
pub struct MemorySessionStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionHandle, StoredSession>,
    /// Each user's handles in creation order (rotation keeps the position).
    by_user: HashMap<UserId, Vec<SessionHandle>>,
    inserts_since_sweep: usize,
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySessionStore {
    /// A store with the default capacity (100,000 sessions).
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A store holding at most `capacity` sessions (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Number of sessions held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every dead session; returns how many.
    pub fn sweep(&self, now: u64, timeouts: Timeouts) -> usize {
        self.lock().sweep(now, timeouts)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (every method finishes its mutations before anything can panic),
        // so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert_now(
        &self,
        session: StoredSession,
        rules: InsertRules,
    ) -> Result<Vec<SessionHandle>, SessionError> {
        let mut inner = self.lock();
        let inner = &mut *inner;

        let mut evicted = Vec::new();
        if let Some(max) = rules.max_per_user {
            let max = max.get() as usize;
            // Dead sessions do not count; pruning only when the cap is in
            // reach keeps inserts O(1) for users below it.
            if inner.by_user.get(&session.user).map_or(0, Vec::len) >= max {
                inner.prune_user(&session.user, rules.now, rules.timeouts);
            }
            let count = inner.by_user.get(&session.user).map_or(0, Vec::len);
            if count >= max {
                if rules.policy == UserLimitPolicy::Refuse {
                    return Err(SessionError::UserLimitReached { max: max as u32 });
                }
                if let Some(list) = inner.by_user.get_mut(&session.user) {
                    evicted = list.drain(..=count - max).collect();
                }
                for handle in &evicted {
                    inner.sessions.remove(handle);
                }
            }
        }

        inner.inserts_since_sweep += 1;
        if inner.inserts_since_sweep >= (inner.sessions.len() / 2).max(1024) {
            inner.sweep(rules.now, rules.timeouts);
        }
        if inner.sessions.len() >= self.capacity {
            inner.sweep(rules.now, rules.timeouts);
            if inner.sessions.len() >= self.capacity {
                return Err(SessionError::StoreFull {
                    capacity: self.capacity,
                });
            }
        }
        inner
            .by_user
            .entry(session.user.clone())
            .or_default()
            .push(session.handle);
        inner.sessions.insert(session.handle, session);
        Ok(evicted)
    }

    /// Looks a session up and drops it if dead; the returned reference is live.
    fn live_mut<'i>(
        inner: &'i mut Inner,
        handle: &SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> Option<&'i mut StoredSession> {
        let live = match inner.sessions.get(handle) {
            None => return None,
            // The map lookup hashes a SHA-256 digest; the final equality
            // check on the digest is constant time.
            Some(s) => s.handle == *handle && timeouts.is_live(s.created_at, s.last_seen, now),
        };
        if !live {
            inner.remove(handle);
            return None;
        }
        inner.sessions.get_mut(handle)
    }
}

impl Inner {
    fn remove(&mut self, handle: &SessionHandle) -> Option<StoredSession> {
        let session = self.sessions.remove(handle)?;
        if let Some(list) = self.by_user.get_mut(&session.user) {
            list.retain(|h| h != handle);
            if list.is_empty() {
                self.by_user.remove(&session.user);
            }
        }
        Some(session)
    }

    fn prune_user(&mut self, user: &UserId, now: u64, timeouts: Timeouts) {
        let Some(list) = self.by_user.get_mut(user) else {
            return;
        };
        let sessions = &mut self.sessions;
        list.retain(|handle| match sessions.get(handle) {
            Some(s) if timeouts.is_live(s.created_at, s.last_seen, now) => true,
            _ => {
                sessions.remove(handle);
                false
            }
        });
        if list.is_empty() {
            self.by_user.remove(user);
        }
    }

    fn sweep(&mut self, now: u64, timeouts: Timeouts) -> usize {
        self.inserts_since_sweep = 0;
        let before = self.sessions.len();
        self.sessions
            .retain(|_, s| timeouts.is_live(s.created_at, s.last_seen, now));
        let sessions = &self.sessions;
        self.by_user.retain(|_, list| {
            list.retain(|h| sessions.contains_key(h));
            !list.is_empty()
        });
        before - self.sessions.len()
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, SessionError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl SessionStore for MemorySessionStore {
    fn insert<'a>(
        &'a self,
        session: StoredSession,
        rules: InsertRules,
    ) -> StoreFuture<'a, Vec<SessionHandle>> {
        ready(self.insert_now(session, rules))
    }

    fn load_and_touch<'a>(
        &'a self,
        handle: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        let mut inner = self.lock();
        let found = Self::live_mut(&mut inner, handle, now, timeouts).map(|s| {
            s.last_seen = s.last_seen.max(now);
            s.clone()
        });
        ready(Ok(found))
    }

    fn update<'a>(
        &'a self,
        handle: &'a SessionHandle,
        change: SessionChange,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        let mut inner = self.lock();
        let found = Self::live_mut(&mut inner, handle, now, timeouts).map(|s| {
            s.last_seen = s.last_seen.max(now);
            if let Some(scopes) = change.scopes {
                s.scopes = scopes;
            }
            if let Some(data) = change.data {
                s.data = data;
            }
            s.clone()
        });
        ready(Ok(found))
    }

    fn rotate<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if Self::live_mut(inner, old, now, timeouts).is_none() {
            return ready(Ok(None));
        }
        let Some(mut session) = inner.sessions.remove(old) else {
            return ready(Ok(None));
        };
        session.handle = *new;
        session.last_seen = session.last_seen.max(now);
        if let Some(list) = inner.by_user.get_mut(&session.user) {
            for h in list.iter_mut().filter(|h| **h == *old) {
                *h = *new;
            }
        }
        inner.sessions.insert(*new, session.clone());
        ready(Ok(Some(session)))
    }

    fn list_user<'a>(
        &'a self,
        user: &'a UserId,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Vec<StoredSession>> {
        let mut inner = self.lock();
        inner.prune_user(user, now, timeouts);
        let list = inner.by_user.get(user).map_or_else(Vec::new, |handles| {
            handles
                .iter()
                .filter_map(|h| inner.sessions.get(h).cloned())
                .collect()
        });
        ready(Ok(list))
    }

    fn remove<'a>(&'a self, handle: &'a SessionHandle) -> StoreFuture<'a, bool> {
        ready(Ok(self.lock().remove(handle).is_some()))
    }

    fn remove_user<'a>(&'a self, user: &'a UserId) -> StoreFuture<'a, usize> {
        let mut inner = self.lock();
        let handles = inner.by_user.remove(user).unwrap_or_default();
        for handle in &handles {
            inner.sessions.remove(handle);
        }
        ready(Ok(handles.len()))
    }

    fn remove_all(&self) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        inner.sessions = HashMap::new();
        inner.by_user = HashMap::new();
        ready(Ok(()))
    }
}
