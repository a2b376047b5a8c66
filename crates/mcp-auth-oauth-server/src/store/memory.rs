//! The in-process store: bounded tables behind one mutex.
#[allow(clippy::wildcard_imports)]
use super::*;
use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
enum CodeState {
    Fresh(Box<CodeRecord>),
    Used {
        grant_id: String,
        until: u64,
        /// Presented again after its redemption.
        replayed: bool,
    },
}

#[derive(Debug)]
enum RefreshState {
    Active(RefreshRecord),
    Rotated {
        record: RefreshRecord,
        at: u64,
        successor: StoreKey,
        /// The successor, sealed under the rotated token.
        sealed: Vec<u8>,
    },
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<StoreKey, PendingSignIn>,
    codes: HashMap<StoreKey, CodeState>,
    grants: HashMap<String, Grant>,
    /// The ids of the `grants` each user holds (ended ones included until
    /// they are dropped): a person's grants listed, counted and revoked
    /// without a pass over everyone's.
    user_grants: HashMap<UserId, HashSet<String>>,
    refresh: HashMap<StoreKey, RefreshState>,
    /// The keys of each grant's refresh tokens in `refresh`, oldest first:
    /// a revocation removes them without a pass over the table, and a
    /// rotation forgets the oldest rotated ones past
    /// [`ROTATED_KEPT`].
    grant_tokens: HashMap<String, VecDeque<StoreKey>>,
    consents: HashMap<StoreKey, u64>,
    clients: HashMap<String, ClientInfo>,
    locks: HashMap<StoreKey, (String, u64)>,
}

/// The in-process store, bounded: each table holds at most `capacity`
/// entries. When a table is full, expired entries are dropped first; then,
/// where that is safe, the oldest entries go, a batch of 1/64 of the table
/// at a time: pending authorizations no one has signed in to yet (an
/// anonymous flood of `/authorize` cannot lock out sign-ins in progress),
/// remembered consents (the person is asked again), registered clients
/// nothing uses (no grant, no sign-in in progress, no unredeemed code;
/// least recently used first; configured clients never). Only what cannot go (grants, live refresh tokens, codes) makes a
/// write fail with [`StoreError::Full`].
#[derive(Debug)]
pub struct MemoryAuthStore {
    state: Mutex<State>,
    capacity: usize,
}

impl Default for MemoryAuthStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryAuthStore {
    /// A store holding at most `capacity` entries per table.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }
}

/// How many rotated refresh tokens of one grant the memory store keeps for
/// reuse detection: presenting one of them revokes the grant. Older ones
/// are forgotten (presenting one is `invalid_grant` like any unknown
/// token), so a grant refreshed for months does not grow without end.
const ROTATED_KEPT: usize = 32;

/// How many entries one eviction removes from a full table of `capacity`.
fn batch(capacity: usize) -> usize {
    (capacity / 64).max(1)
}

/// The keys of the (at most) `n` entries of `map` that `eligible` allows,
/// smallest `age` first.
fn oldest<K: Clone, V>(
    map: &HashMap<K, V>,
    n: usize,
    eligible: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> u64,
) -> Vec<K> {
    let mut candidates: Vec<(u64, &K)> = map
        .iter()
        .filter(|(_, v)| eligible(v))
        .map(|(k, v)| (age(v), k))
        .collect();
    if candidates.len() > n {
        candidates.select_nth_unstable_by_key(n, |(age, _)| *age);
        candidates.truncate(n);
    }
    candidates.into_iter().map(|(_, k)| k.clone()).collect()
}

/// Drops the refresh tokens of grants no longer stored (ended and swept),
/// and their index entries.
fn drop_tokens_of_ended_grants(state: &mut State) {
    let State {
        grants,
        refresh,
        grant_tokens,
        ..
    } = state;
    grant_tokens.retain(|grant_id, keys| {
        if grants.contains_key(grant_id) {
            return true;
        }
        for key in keys.iter() {
            refresh.remove(key);
        }
        false
    });
    // Tokens stored for a grant that was never stored (not indexed above).
    refresh.retain(|_, r| match r {
        RefreshState::Active(rec) | RefreshState::Rotated { record: rec, .. } => {
            grants.contains_key(&rec.grant_id)
        }
    });
}

/// Indexes `key` under its grant; past [`ROTATED_KEPT`] rotated tokens,
/// forgets the oldest.
fn index_token(state: &mut State, grant_id: &str, key: StoreKey) {
    let keys = state.grant_tokens.entry(grant_id.to_owned()).or_default();
    keys.push_back(key);
    while keys.len() > ROTATED_KEPT + 1 {
        let Some(oldest) = keys.front().copied() else {
            break;
        };
        if matches!(state.refresh.get(&oldest), Some(RefreshState::Active(_))) {
            // Never forget a live token (a grant with several chains).
            break;
        }
        keys.pop_front();
        state.refresh.remove(&oldest);
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn revoke(state: &mut State, id: &str) -> bool {
    let Some(grant) = state.grants.remove(id) else {
        return false;
    };
    if let Some(ids) = state.user_grants.get_mut(&grant.subject) {
        ids.remove(id);
        if ids.is_empty() {
            state.user_grants.remove(&grant.subject);
        }
    }
    for key in state.grant_tokens.remove(id).unwrap_or_default() {
        state.refresh.remove(&key);
    }
    state.consents.remove(&grant.consent);
    true
}

impl AuthStore for MemoryAuthStore {
    fn put_pending(
        &self,
        key: StoreKey,
        pending: PendingSignIn,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.pending.len() >= capacity {
                let now = pending.expires_at.saturating_sub(600);
                s.pending.retain(|_, p| p.expires_at > now);
            }
            if s.pending.len() >= capacity {
                // The oldest that no one has signed in to or approved.
                let doomed = oldest(
                    &s.pending,
                    batch(capacity),
                    |p| p.subject.is_none() && !p.consented,
                    |p| p.expires_at,
                );
                for key in doomed {
                    s.pending.remove(&key);
                }
                if s.pending.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.pending.insert(key, pending);
            Ok(())
        }))
    }

    fn pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        ready(Ok(self.with(|s| {
            s.pending.get(&key).filter(|p| p.expires_at > now).cloned()
        })))
    }

    fn take_pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        ready(Ok(self.with(|s| {
            s.pending.remove(&key).filter(|p| p.expires_at > now)
        })))
    }

    fn put_code(&self, key: StoreKey, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.codes.len() >= capacity {
                let now = code.expires_at.saturating_sub(60);
                s.codes.retain(|_, c| match c {
                    CodeState::Fresh(r) => r.expires_at > now,
                    CodeState::Used { until, .. } => *until > now,
                });
                if s.codes.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.codes.insert(key, CodeState::Fresh(Box::new(code)));
            Ok(())
        }))
    }

    fn redeem_code(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Redemption, StoreError>> {
        ready(Ok(self.with(|s| match s.codes.get_mut(&key) {
            None => Redemption::Unknown,
            Some(CodeState::Used {
                grant_id, replayed, ..
            }) => {
                *replayed = true;
                Redemption::Replayed {
                    grant_id: grant_id.clone(),
                }
            }
            Some(CodeState::Fresh(record)) => {
                let record = record.clone();
                // Remembered long enough to catch a replay of this code.
                let used = CodeState::Used {
                    grant_id: record.grant.id.clone(),
                    until: now + 3600,
                    replayed: false,
                };
                s.codes.insert(key, used);
                if record.expires_at <= now {
                    Redemption::Unknown
                } else {
                    Redemption::Fresh(record)
                }
            }
        })))
    }

    fn code_replayed(&self, key: StoreKey) -> BoxFuture<'_, Result<bool, StoreError>> {
        ready(Ok(self.with(|s| {
            matches!(
                s.codes.get(&key),
                Some(CodeState::Used { replayed: true, .. })
            )
        })))
    }

    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.grants.len() >= capacity && !s.grants.contains_key(&grant.id) {
                let now = grant.created_at;
                let dead: Vec<String> = s
                    .grants
                    .values()
                    .filter(|g| g.expires_at <= now)
                    .map(|g| g.id.clone())
                    .collect();
                for id in dead {
                    revoke(s, &id);
                }
                if s.grants.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            let (subject, id) = (grant.subject.clone(), grant.id.clone());
            if s.grants.insert(grant.id.clone(), grant).is_none() {
                s.user_grants.entry(subject).or_default().insert(id);
            }
            Ok(())
        }))
    }

    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>> {
        ready(Ok(self.with(|s| {
            s.grants.get(id).filter(|g| g.expires_at > now).cloned()
        })))
    }

    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(|s| {
            if let Some(grant) = s.grants.get_mut(id) {
                grant.last_used = now;
            }
        });
        ready(Ok(()))
    }

    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        ready(Ok(self.with(|s| revoke(s, id))))
    }

    fn grant_count_bound<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        ready(Ok(
            self.with(|s| s.user_grants.get(user).map_or(0, HashSet::len))
        ))
    }

    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>> {
        ready(Ok(self.with(|s| {
            let mut grants: Vec<Grant> = s
                .user_grants
                .get(user)
                .into_iter()
                .flatten()
                .filter_map(|id| s.grants.get(id))
                .filter(|g| g.expires_at > now)
                .cloned()
                .collect();
            grants.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            grants
        })))
    }

    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        ready(Ok(self.with(|s| {
            let n = s.grants.len();
            s.grants.clear();
            s.user_grants.clear();
            s.refresh.clear();
            s.grant_tokens.clear();
            s.consents.clear();
            n
        })))
    }

    fn put_refresh(
        &self,
        key: StoreKey,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.refresh.len() >= capacity {
                drop_tokens_of_ended_grants(s);
                if s.refresh.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            let grant_id = record.grant_id.clone();
            if s.refresh
                .insert(key, RefreshState::Active(record))
                .is_none()
            {
                index_token(s, &grant_id, key);
            }
            Ok(())
        }))
    }

    fn refresh(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>> {
        ready(Ok(self.with(|s| match s.refresh.get(&key) {
            Some(RefreshState::Active(record)) | Some(RefreshState::Rotated { record, .. }) => {
                Some(record.clone())
            }
            None => None,
        })))
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
        let capacity = self.capacity;
        ready(self.with(|s| {
            let previous = match s.refresh.get(&old) {
                None => return Ok(Rotation::Unknown),
                Some(RefreshState::Active(previous)) => previous.clone(),
                Some(RefreshState::Rotated {
                    record: previous,
                    at,
                    successor,
                    sealed,
                }) => {
                    let unused = matches!(s.refresh.get(successor), Some(RefreshState::Active(_)));
                    if grace > 0 && now <= at.saturating_add(grace) && unused && !sealed.is_empty()
                    {
                        return Ok(Rotation::Retried {
                            record: previous.clone(),
                            sealed_successor: sealed.clone(),
                        });
                    }
                    let grant_id = previous.grant_id.clone();
                    revoke(s, &grant_id);
                    return Ok(Rotation::Reused { grant_id });
                }
            };
            if !s.grants.contains_key(&previous.grant_id) {
                return Ok(Rotation::Unknown);
            }
            if s.refresh.len() >= capacity {
                // Rotation adds an entry too: tokens of ended grants go first.
                drop_tokens_of_ended_grants(s);
                if s.refresh.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.refresh.insert(
                old,
                RefreshState::Rotated {
                    record: previous.clone(),
                    at: now,
                    successor: new,
                    sealed: sealed_successor,
                },
            );
            let grant_id = record.grant_id.clone();
            if s.refresh
                .insert(new, RefreshState::Active(record))
                .is_none()
            {
                index_token(s, &grant_id, new);
            }
            Ok(Rotation::Rotated(previous))
        }))
    }

    fn put_consent(&self, key: StoreKey, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.consents.len() >= capacity && !s.consents.contains_key(&key) {
                // The ones that end first (the person is asked again).
                for key in oldest(&s.consents, batch(capacity), |_| true, |u| *u) {
                    s.consents.remove(&key);
                }
            }
            s.consents.insert(key, until);
            Ok(())
        }))
    }

    fn consent(&self, key: StoreKey, now: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        ready(Ok(self.with(|s| {
            s.consents.get(&key).is_some_and(|until| *until > now)
        })))
    }

    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.clients.len() >= capacity && !s.clients.contains_key(&client.client_id) {
                // Registered clients nothing uses (no grant, no sign-in in
                // progress, no unredeemed code), least recently used first;
                // a configured client is never evicted.
                let in_use: std::collections::HashSet<&str> = s
                    .grants
                    .values()
                    .map(|g| g.client_id.as_str())
                    .chain(s.pending.values().map(|p| p.client.client_id.as_str()))
                    .chain(s.codes.values().filter_map(|c| match c {
                        CodeState::Fresh(code) => Some(code.grant.client_id.as_str()),
                        CodeState::Used { .. } => None,
                    }))
                    .collect();
                let doomed = oldest(
                    &s.clients,
                    batch(capacity),
                    |c| {
                        c.origin != ClientOrigin::Configured
                            && !in_use.contains(c.client_id.as_str())
                    },
                    |c| c.last_used,
                );
                for id in doomed {
                    s.clients.remove(&id);
                }
                if s.clients.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.clients.insert(client.client_id.clone(), client);
            Ok(())
        }))
    }

    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>> {
        ready(Ok(self.with(|s| s.clients.get(id).cloned())))
    }

    fn try_lock(
        &self,
        name: StoreKey,
        holder: &str,
        now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let taken = self.with(|state| {
            state.locks.retain(|_, (_, until)| *until > now);
            if state.locks.contains_key(&name) {
                return false;
            }
            state
                .locks
                .insert(name, (holder.to_owned(), now + ttl.max(1)));
            true
        });
        ready(Ok(taken))
    }

    fn unlock(&self, name: StoreKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(|state| {
            if state.locks.get(&name).is_some_and(|(h, _)| h == holder) {
                state.locks.remove(&name);
            }
        });
        ready(Ok(()))
    }
}
