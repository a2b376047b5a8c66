//! What the server keeps between requests, behind one trait: pending
//! authorizations, codes, grants, refresh tokens, consents and registered
//! clients. Codes, refresh tokens and pending ids are keyed by their
//! SHA-256 ([`Key`]); the store never sees them in clear.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use mcp_auth_core::{BoxFuture, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The SHA-256 of a secret (a code, a refresh token, a pending id), as the
/// store's key: a leaked store gives no usable secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The key of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Where a client's registration came from (shown on the consent page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientOrigin {
    /// Configured by the operator.
    Configured,
    /// Registered through RFC 7591 dynamic registration.
    Registered,
    /// A client ID metadata document, fetched from this host.
    MetadataDocument {
        /// The document URL's host.
        host: String,
    },
}

/// A client as the server knows it. `Debug` leaves the secret's hash out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientInfo {
    /// `client_id`.
    pub client_id: String,
    /// The name shown on the consent page (client-supplied: escaped).
    pub name: String,
    /// Accepted redirect URIs (already checked).
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the client secret, for confidential clients.
    pub secret_hash: Option<[u8; 32]>,
    /// Whether refresh tokens are issued to it.
    pub refresh: bool,
    /// Where it came from.
    pub origin: ClientOrigin,
    /// Registered clients: when unused this long after `last_used`, gone.
    pub last_used: u64,
}

/// An authorization request between `/authorize` and the code: bound to
/// the browser that started it. `Debug` leaves the CSRF token and the
/// browser binding out.
#[derive(Clone)]
#[non_exhaustive]
pub struct Pending {
    /// The client.
    pub client: ClientInfo,
    /// The redirect URI, as requested (validated).
    pub redirect_uri: String,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource (token audience).
    pub resource: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// SHA-256 of the browser's flow cookie.
    pub browser: [u8; 32],
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    /// Who signed in, once the login step is done.
    pub subject: Option<UserId>,
    /// Whether the person approved the consent page before the login
    /// (a login that leaves for an upstream provider asks first).
    pub consented: bool,
    /// When it stops being usable.
    pub expires_at: u64,
}

impl std::fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInfo")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_hash.is_some())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("client", &self.client.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .field("subject", &self.subject)
            .field("consented", &self.consented)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An authorization code's binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CodeRecord {
    /// The grant it starts.
    pub grant: Grant,
    /// The redirect URI it was issued to.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When it expires (at most 60 s after issue).
    pub expires_at: u64,
}

/// A user's grant to a client: what refresh tokens continue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Random id.
    pub id: String,
    /// The user.
    pub subject: UserId,
    /// The client.
    pub client_id: String,
    /// Its name when granted.
    pub client_name: String,
    /// Where the client came from (shown to the user).
    pub client_origin: ClientOrigin,
    /// The resource (token audience).
    pub resource: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When granted.
    pub created_at: u64,
    /// Last token issued from it.
    pub last_used: u64,
    /// Absolute end of the grant.
    pub expires_at: u64,
    /// The consent it was given under (revoked with it).
    pub consent: Key,
}

/// What a refresh token continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The grant.
    pub grant_id: String,
    /// Scopes of this token (a refresh may narrow them).
    pub scopes: Vec<String>,
}

impl ClientInfo {
    /// A public client (PKCE, no secret) that gets refresh tokens.
    pub fn public(
        client_id: impl Into<String>,
        name: impl Into<String>,
        redirect_uris: Vec<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            name: name.into(),
            redirect_uris,
            secret_hash: None,
            refresh: true,
            origin: ClientOrigin::Registered,
            last_used: 0,
        }
    }
}

impl Pending {
    /// A pending authorization (for stores and their tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: ClientInfo,
        redirect_uri: impl Into<String>,
        state: Option<String>,
        code_challenge: impl Into<String>,
        resource: impl Into<String>,
        scopes: Vec<String>,
        browser: [u8; 32],
        csrf: String,
        expires_at: u64,
    ) -> Self {
        Self {
            client,
            redirect_uri: redirect_uri.into(),
            state,
            code_challenge: code_challenge.into(),
            resource: resource.into(),
            scopes,
            browser,
            csrf,
            subject: None,
            consented: false,
            expires_at,
        }
    }
}

impl CodeRecord {
    /// A code's binding.
    pub fn new(
        grant: Grant,
        redirect_uri: impl Into<String>,
        code_challenge: impl Into<String>,
        expires_at: u64,
    ) -> Self {
        Self {
            grant,
            redirect_uri: redirect_uri.into(),
            code_challenge: code_challenge.into(),
            expires_at,
        }
    }
}

impl Grant {
    /// A grant created at `created_at`, ending at `expires_at`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        subject: UserId,
        client_id: impl Into<String>,
        client_name: impl Into<String>,
        resource: impl Into<String>,
        scopes: Vec<String>,
        created_at: u64,
        expires_at: u64,
        consent: Key,
    ) -> Self {
        Self {
            id: id.into(),
            subject,
            client_id: client_id.into(),
            client_name: client_name.into(),
            client_origin: ClientOrigin::Registered,
            resource: resource.into(),
            scopes,
            created_at,
            last_used: created_at,
            expires_at,
            consent,
        }
    }
}

impl RefreshRecord {
    /// A refresh token of `grant_id` with `scopes`.
    pub fn new(grant_id: impl Into<String>, scopes: Vec<String>) -> Self {
        Self {
            grant_id: grant_id.into(),
            scopes,
        }
    }
}

/// The outcome of redeeming a code.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Redemption {
    /// First use: the code's binding.
    Fresh(Box<CodeRecord>),
    /// Used before: the grant it started (to revoke).
    Replayed {
        /// The grant.
        grant_id: String,
    },
    /// No such code.
    Unknown,
}

/// The outcome of rotating a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// Rotated: the old token's record; the new one is stored.
    Rotated(RefreshRecord),
    /// The token was rotated before, outside the grace window: the grant
    /// has been revoked (RFC 9700 section 4.14.2).
    Reused {
        /// The revoked grant.
        grant_id: String,
    },
    /// No such token (or its grant is gone).
    Unknown,
}

/// The server's storage. Implementations must make `redeem_code` and
/// `rotate_refresh` atomic: two callers never both get `Fresh` for one code
/// or both rotate one token.
pub trait AuthStore: Send + Sync + std::fmt::Debug {
    /// Stores a pending authorization.
    fn put_pending(&self, key: Key, pending: Pending) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A pending authorization, if live at `now`.
    fn pending(&self, key: Key, now: u64) -> BoxFuture<'_, Result<Option<Pending>, StoreError>>;
    /// Removes and returns a pending authorization (single use).
    fn take_pending(
        &self,
        key: Key,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<Pending>, StoreError>>;
    /// Stores a code.
    fn put_code(&self, key: Key, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Redeems a code: `Fresh` once, `Replayed` after.
    fn redeem_code(&self, key: Key, now: u64) -> BoxFuture<'_, Result<Redemption, StoreError>>;
    /// Stores a grant.
    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A live grant.
    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>>;
    /// Marks a grant used at `now`.
    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Revokes a grant, its refresh tokens and its consent. Whether it existed.
    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// A user's live grants.
    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>>;
    /// Revokes every grant (emergency). How many.
    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Stores a refresh token.
    fn put_refresh(&self, key: Key, record: RefreshRecord)
    -> BoxFuture<'_, Result<(), StoreError>>;
    /// A refresh token's record, if active.
    fn refresh(&self, key: Key) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>>;
    /// Rotates `old` to `new` (storing `record` under it) atomically;
    /// presenting an already-rotated token within `grace` seconds of its
    /// rotation rotates again (the previous successor dies), later it
    /// revokes the grant.
    fn rotate_refresh(
        &self,
        old: Key,
        new: Key,
        record: RefreshRecord,
        now: u64,
        grace: u64,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>>;
    /// Remembers consent until `until`.
    fn put_consent(&self, key: Key, until: u64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Whether consent is remembered at `now`.
    fn consent(&self, key: Key, now: u64) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Stores a registered client.
    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A registered client.
    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>>;
    /// Takes the short lock `name` for `holder` until `now + ttl` unless
    /// another holder has it: whether it was taken. Shared by every process
    /// using the store (one upstream refresh per user across a fleet).
    fn try_lock(
        &self,
        name: Key,
        holder: &str,
        now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Releases `name` if `holder` still has it.
    fn unlock(&self, name: Key, holder: &str) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[derive(Debug)]
enum CodeState {
    Fresh(Box<CodeRecord>),
    Used { grant_id: String, until: u64 },
}

#[derive(Debug)]
enum RefreshState {
    Active(RefreshRecord),
    Rotated {
        record: RefreshRecord,
        at: u64,
        successor: Key,
    },
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<Key, Pending>,
    codes: HashMap<Key, CodeState>,
    grants: HashMap<String, Grant>,
    refresh: HashMap<Key, RefreshState>,
    consents: HashMap<Key, u64>,
    clients: HashMap<String, ClientInfo>,
    locks: HashMap<Key, (String, u64)>,
}

/// The in-process store, bounded: each table holds at most `capacity`
/// entries (expired ones are dropped first; then a write is refused with
/// [`StoreError::Full`]).
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

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn revoke(state: &mut State, id: &str) -> bool {
    let Some(grant) = state.grants.remove(id) else {
        return false;
    };
    state.refresh.retain(|_, r| match r {
        RefreshState::Active(rec) | RefreshState::Rotated { record: rec, .. } => rec.grant_id != id,
    });
    state.consents.remove(&grant.consent);
    true
}

impl AuthStore for MemoryAuthStore {
    fn put_pending(&self, key: Key, pending: Pending) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.pending.len() >= capacity {
                let now = pending.expires_at.saturating_sub(600);
                s.pending.retain(|_, p| p.expires_at > now);
                if s.pending.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.pending.insert(key, pending);
            Ok(())
        }))
    }

    fn pending(&self, key: Key, now: u64) -> BoxFuture<'_, Result<Option<Pending>, StoreError>> {
        ready(Ok(self.with(|s| {
            s.pending.get(&key).filter(|p| p.expires_at > now).cloned()
        })))
    }

    fn take_pending(
        &self,
        key: Key,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<Pending>, StoreError>> {
        ready(Ok(self.with(|s| {
            s.pending.remove(&key).filter(|p| p.expires_at > now)
        })))
    }

    fn put_code(&self, key: Key, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
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

    fn redeem_code(&self, key: Key, now: u64) -> BoxFuture<'_, Result<Redemption, StoreError>> {
        ready(Ok(self.with(|s| match s.codes.get(&key) {
            None => Redemption::Unknown,
            Some(CodeState::Used { grant_id, .. }) => Redemption::Replayed {
                grant_id: grant_id.clone(),
            },
            Some(CodeState::Fresh(record)) => {
                let record = record.clone();
                // Remembered long enough to catch a replay of this code.
                let used = CodeState::Used {
                    grant_id: record.grant.id.clone(),
                    until: now + 3600,
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
            s.grants.insert(grant.id.clone(), grant);
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

    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>> {
        ready(Ok(self.with(|s| {
            let mut grants: Vec<Grant> = s
                .grants
                .values()
                .filter(|g| &g.subject == user && g.expires_at > now)
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
            s.refresh.clear();
            s.consents.clear();
            n
        })))
    }

    fn put_refresh(
        &self,
        key: Key,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.refresh.len() >= capacity {
                let live = s
                    .grants
                    .keys()
                    .cloned()
                    .collect::<std::collections::HashSet<_>>();
                s.refresh.retain(|_, r| match r {
                    RefreshState::Active(rec) => live.contains(&rec.grant_id),
                    RefreshState::Rotated { record, .. } => live.contains(&record.grant_id),
                });
                if s.refresh.len() >= capacity {
                    return Err(StoreError::Full);
                }
            }
            s.refresh.insert(key, RefreshState::Active(record));
            Ok(())
        }))
    }

    fn refresh(&self, key: Key) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>> {
        ready(Ok(self.with(|s| match s.refresh.get(&key) {
            Some(RefreshState::Active(record)) | Some(RefreshState::Rotated { record, .. }) => {
                Some(record.clone())
            }
            None => None,
        })))
    }

    fn rotate_refresh(
        &self,
        old: Key,
        new: Key,
        record: RefreshRecord,
        now: u64,
        grace: u64,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>> {
        ready(Ok(self.with(|s| {
            let (previous, kill) = match s.refresh.get(&old) {
                None => return Rotation::Unknown,
                Some(RefreshState::Active(previous)) => (previous.clone(), None),
                Some(RefreshState::Rotated {
                    record: previous,
                    at,
                    successor,
                }) => {
                    if now > at.saturating_add(grace) || grace == 0 {
                        let grant_id = previous.grant_id.clone();
                        revoke(s, &grant_id);
                        return Rotation::Reused { grant_id };
                    }
                    (previous.clone(), Some(*successor))
                }
            };
            if !s.grants.contains_key(&previous.grant_id) {
                return Rotation::Unknown;
            }
            if let Some(successor) = kill {
                s.refresh.remove(&successor);
            }
            s.refresh.insert(
                old,
                RefreshState::Rotated {
                    record: previous.clone(),
                    at: now,
                    successor: new,
                },
            );
            s.refresh.insert(new, RefreshState::Active(record));
            Rotation::Rotated(previous)
        })))
    }

    fn put_consent(&self, key: Key, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.consents.len() >= capacity && !s.consents.contains_key(&key) {
                return Err(StoreError::Full);
            }
            s.consents.insert(key, until);
            Ok(())
        }))
    }

    fn consent(&self, key: Key, now: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        ready(Ok(self.with(|s| {
            s.consents.get(&key).is_some_and(|until| *until > now)
        })))
    }

    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>> {
        let capacity = self.capacity;
        ready(self.with(|s| {
            if s.clients.len() >= capacity && !s.clients.contains_key(&client.client_id) {
                return Err(StoreError::Full);
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
        name: Key,
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

    fn unlock(&self, name: Key, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.with(|state| {
            if state.locks.get(&name).is_some_and(|(h, _)| h == holder) {
                state.locks.remove(&name);
            }
        });
        ready(Ok(()))
    }
}
