//! The bounded in-memory store, laid out for size: about 180 bytes a
//! session at a million sessions (docs/session.md, "Figures").
//!
//! A session is one slot of a slab (`Vec<Option<Record>>`, freed slots
//! reused); the hash map takes a session handle to its slot number, and each
//! user's list holds slot numbers, not handles. What many sessions share is
//! held once and pointed to: the user id (the key of the per-user index),
//! the client id and the scope list (interned, dropped by the sweep when no
//! session uses them any more). So the per-session cost is the record (88
//! bytes), the map entry (36 bytes and a control byte, at the map's load
//! factor) and four bytes in the user's list.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_auth_core::UserId;

use crate::store::{InsertRules, SessionChange, SessionStore, StoreFuture, StoredSession};
use crate::{SessionError, SessionHandle, Timeouts, UserLimitPolicy};

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

/// One session, as the slab keeps it.
struct Record {
    handle: SessionHandle,
    user: Arc<UserId>,
    client_id: Arc<String>,
    scopes: Arc<Vec<String>>,
    created_at: u64,
    last_seen: u64,
    data: Box<str>,
}

impl Record {
    fn to_stored(&self) -> StoredSession {
        StoredSession {
            handle: self.handle,
            user: UserId::clone(&self.user),
            client_id: String::clone(&self.client_id),
            scopes: Vec::clone(&self.scopes),
            created_at: self.created_at,
            last_seen: self.last_seen,
            data: self.data.to_string(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Session handle → slot.
    index: HashMap<SessionHandle, u32>,
    slots: Vec<Option<Record>>,
    /// Slots freed, reused before the slab grows.
    free: Vec<u32>,
    /// Each user's slots in creation order (rotation keeps the position).
    by_user: HashMap<Arc<UserId>, Vec<u32>>,
    clients: HashSet<Arc<String>>,
    scope_lists: HashSet<Arc<Vec<String>>>,
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
            capacity: capacity.clamp(1, u32::MAX as usize),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Number of sessions held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.lock().index.len()
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
                let oldest: Vec<u32> = inner
                    .by_user
                    .get(&session.user)
                    .map(|list| list[..=count - max].to_vec())
                    .unwrap_or_default();
                for slot in oldest {
                    if let Some(record) = inner.remove_slot(slot) {
                        evicted.push(record.handle);
                    }
                }
            }
        }

        inner.inserts_since_sweep += 1;
        if inner.inserts_since_sweep >= (inner.index.len() / 2).max(1024) {
            inner.sweep(rules.now, rules.timeouts);
        }
        if inner.index.len() >= self.capacity {
            inner.sweep(rules.now, rules.timeouts);
            if inner.index.len() >= self.capacity {
                return Err(SessionError::StoreFull {
                    capacity: self.capacity,
                });
            }
        }
        inner.insert(session);
        Ok(evicted)
    }

    fn live_slot(
        inner: &mut Inner,
        handle: &SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> Option<u32> {
        let slot = *inner.index.get(handle)?;
        let live = inner.record(slot).is_some_and(|r| {
            // The map lookup hashes a SHA-256 digest; the final equality
            // check on the digest is constant time.
            r.handle == *handle && timeouts.is_live(r.created_at, r.last_seen, now)
        });
        if !live {
            inner.remove_slot(slot);
            return None;
        }
        Some(slot)
    }
}

/// The shared copy of `value` in `set`, added if missing.
fn intern<T: std::hash::Hash + Eq>(set: &mut HashSet<Arc<T>>, value: T) -> Arc<T> {
    if let Some(shared) = set.get(&value) {
        return shared.clone();
    }
    let shared = Arc::new(value);
    set.insert(shared.clone());
    shared
}

impl Inner {
    fn record(&self, slot: u32) -> Option<&Record> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn record_mut(&mut self, slot: u32) -> Option<&mut Record> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn insert(&mut self, session: StoredSession) {
        let user = match self.by_user.get_key_value(&session.user) {
            Some((user, _)) => user.clone(),
            None => Arc::new(session.user),
        };
        let record = Record {
            handle: session.handle,
            user: user.clone(),
            client_id: intern(&mut self.clients, session.client_id),
            scopes: intern(&mut self.scope_lists, session.scopes),
            created_at: session.created_at,
            last_seen: session.last_seen,
            data: session.data.into_boxed_str(),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(record);
                slot
            }
            None => {
                // The store's capacity fits in u32 (`with_capacity`), and
                // the slab never holds more slots than the store's peak.
                let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some(record));
                slot
            }
        };
        self.index.insert(session.handle, slot);
        self.by_user.entry(user).or_default().push(slot);
    }

    /// Takes the session out of `slot` and out of the index, leaving its
    /// user's list to the caller (bulk removals fix the lists in one pass).
    fn take_slot(&mut self, slot: u32) -> Option<Record> {
        let record = self.slots.get_mut(slot as usize)?.take()?;
        self.index.remove(&record.handle);
        self.free.push(slot);
        Some(record)
    }

    /// Takes the session out of `slot`, and out of the index and its
    /// user's list.
    fn remove_slot(&mut self, slot: u32) -> Option<Record> {
        let record = self.take_slot(slot)?;
        if let Some(list) = self.by_user.get_mut(&record.user) {
            list.retain(|s| *s != slot);
            if list.is_empty() {
                self.by_user.remove(&record.user);
            }
        }
        Some(record)
    }

    fn is_live(&self, slot: u32, now: u64, timeouts: Timeouts) -> bool {
        self.record(slot)
            .is_some_and(|r| timeouts.is_live(r.created_at, r.last_seen, now))
    }

    fn prune_user(&mut self, user: &UserId, now: u64, timeouts: Timeouts) {
        let Some(list) = self.by_user.get(user) else {
            return;
        };
        let (live, dead): (Vec<u32>, Vec<u32>) = list
            .iter()
            .partition(|&&slot| self.is_live(slot, now, timeouts));
        for slot in dead {
            self.take_slot(slot);
        }
        if live.is_empty() {
            self.by_user.remove(user);
        } else if let Some(list) = self.by_user.get_mut(user) {
            *list = live;
        }
    }

    fn sweep(&mut self, now: u64, timeouts: Timeouts) -> usize {
        self.inserts_since_sweep = 0;
        let dead: Vec<u32> = self
            .index
            .values()
            .copied()
            .filter(|&slot| !self.is_live(slot, now, timeouts))
            .collect();
        for &slot in &dead {
            self.take_slot(slot);
        }
        let slots = &self.slots;
        self.by_user.retain(|_, list| {
            list.retain(|&s| slots.get(s as usize).is_some_and(Option::is_some));
            !list.is_empty()
        });
        // Shared values no session points to any more.
        self.clients.retain(|c| Arc::strong_count(c) > 1);
        self.scope_lists.retain(|s| Arc::strong_count(s) > 1);
        dead.len()
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
        let found = Self::live_slot(&mut inner, handle, now, timeouts)
            .and_then(|slot| inner.record_mut(slot))
            .map(|r| {
                r.last_seen = r.last_seen.max(now);
                r.to_stored()
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
        let inner = &mut *inner;
        let Some(slot) = Self::live_slot(inner, handle, now, timeouts) else {
            return ready(Ok(None));
        };
        let scopes = change.scopes.map(|s| intern(&mut inner.scope_lists, s));
        let found = inner.record_mut(slot).map(|r| {
            r.last_seen = r.last_seen.max(now);
            if let Some(scopes) = scopes {
                r.scopes = scopes;
            }
            if let Some(data) = change.data {
                r.data = data.into_boxed_str();
            }
            r.to_stored()
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
        let Some(slot) = Self::live_slot(inner, old, now, timeouts) else {
            return ready(Ok(None));
        };
        // The slot stays: the user's list keeps its order untouched.
        inner.index.remove(old);
        inner.index.insert(*new, slot);
        let found = inner.record_mut(slot).map(|r| {
            r.handle = *new;
            r.last_seen = r.last_seen.max(now);
            r.to_stored()
        });
        ready(Ok(found))
    }

    fn list_user<'a>(
        &'a self,
        user: &'a UserId,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Vec<StoredSession>> {
        let mut inner = self.lock();
        inner.prune_user(user, now, timeouts);
        let list = inner.by_user.get(user).map_or_else(Vec::new, |slots| {
            slots
                .iter()
                .filter_map(|&slot| inner.record(slot).map(Record::to_stored))
                .collect()
        });
        ready(Ok(list))
    }

    fn remove<'a>(&'a self, handle: &'a SessionHandle) -> StoreFuture<'a, bool> {
        let mut inner = self.lock();
        let removed = match inner.index.get(handle).copied() {
            Some(slot) => inner.remove_slot(slot).is_some(),
            None => false,
        };
        ready(Ok(removed))
    }

    fn remove_user<'a>(&'a self, user: &'a UserId) -> StoreFuture<'a, usize> {
        let mut inner = self.lock();
        let slots = inner.by_user.remove(user).unwrap_or_default();
        let mut removed = 0;
        for slot in slots {
            removed += usize::from(inner.take_slot(slot).is_some());
        }
        ready(Ok(removed))
    }

    fn remove_all(&self) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        *inner = Inner::default();
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_small() {
        // The figure in the module docs; a change here changes the
        // bytes-per-session figure in docs/session.md.
        assert!(std::mem::size_of::<Record>() <= 88);
        assert_eq!(
            std::mem::size_of::<Option<Record>>(),
            std::mem::size_of::<Record>()
        );
    }
}
