//! The session manager: policy on top of a [`SessionStore`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_auth_core::{Clock, SystemClock, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{InsertRules, SessionChange, SessionStore, StoredSession};
use crate::{SessionConfig, SessionError, SessionHandle, SessionId};

/// Longest client id accepted.
pub const MAX_CLIENT_ID_LEN: usize = 256;
/// Longest scope accepted.
pub const MAX_SCOPE_LEN: usize = 256;
/// Most scopes per session.
pub const MAX_SCOPES: usize = 64;

/// What a new session is made of.
#[derive(Clone)]
#[non_exhaustive]
pub struct NewSession<D> {
    /// The signed-in user.
    pub user: UserId,
    /// The OAuth / MCP client the session belongs to.
    pub client_id: String,
    /// Scopes granted (RFC 6749 §3.3 scope tokens).
    pub scopes: Vec<String>,
    /// Application data.
    pub data: D,
}

impl<D> fmt::Debug for NewSession<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl NewSession<()> {
    /// A session with no application data.
    pub fn new(user: UserId, client_id: impl Into<String>) -> Self {
        Self {
            user,
            client_id: client_id.into(),
            scopes: Vec::new(),
            data: (),
        }
    }
}

impl<D> NewSession<D> {
    /// Sets the granted scopes.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the application data.
    pub fn with_data<E>(self, data: E) -> NewSession<E> {
        NewSession {
            user: self.user,
            client_id: self.client_id,
            scopes: self.scopes,
            data,
        }
    }
}

/// A live session as the manager returns it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Session<D> {
    /// The session's handle (hash of its id): safe to log, list and revoke by.
    pub handle: SessionHandle,
    /// Whose session it is.
    pub user: UserId,
    /// The client it belongs to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was last used (this access included).
    pub last_seen: SystemTime,
    /// When it expires unless used again (idle) or at the latest (absolute).
    pub expires_at: SystemTime,
    /// Application data.
    pub data: D,
}

impl<D> Session<D> {
    /// Whether the session was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

impl<D> fmt::Debug for Session<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("handle", &self.handle)
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A newly created session and its id.
#[derive(Debug)]
#[non_exhaustive]
pub struct Created<D> {
    /// The id to hand to the client (the only copy: stores keep its hash).
    pub id: SessionId,
    /// The session.
    pub session: Session<D>,
    /// The user's sessions evicted to stay within the per-user limit.
    pub evicted: Vec<SessionHandle>,
}

/// Creates, loads, rotates and revokes sessions in a [`SessionStore`].
///
/// `D` is the application's session data type (any serde type; `()` for
/// none). Cheap to clone; clones share the store.
pub struct SessionManager<D = ()> {
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
    _data: PhantomData<fn() -> D>,
}

impl<D> Clone for SessionManager<D> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            config: self.config.clone(),
            clock: Arc::clone(&self.clock),
            _data: PhantomData,
        }
    }
}

impl<D> fmt::Debug for SessionManager<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish()
    }
}

fn unix_to_system(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn validate_client_id(client_id: &str) -> Result<(), SessionError> {
    let bad = |reason| {
        Err(SessionError::InvalidField {
            field: "client id",
            reason,
        })
    };
    if client_id.is_empty() {
        return bad("empty");
    }
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return bad("longer than 256 bytes");
    }
    if client_id.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    Ok(())
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn validate_scopes(scopes: &[String]) -> Result<(), SessionError> {
    let bad = |reason| {
        Err(SessionError::InvalidField {
            field: "scope",
            reason,
        })
    };
    if scopes.len() > MAX_SCOPES {
        return bad("more than 64 scopes");
    }
    for scope in scopes {
        if scope.is_empty() {
            return bad("empty");
        }
        if scope.len() > MAX_SCOPE_LEN {
            return bad("longer than 256 bytes");
        }
        if !scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return bad("not an RFC 6749 scope token");
        }
    }
    Ok(())
}

impl<D: Serialize + DeserializeOwned> SessionManager<D> {
    /// A manager over `store` with `config`, on the system clock.
    pub fn new(
        store: impl SessionStore + 'static,
        config: SessionConfig,
    ) -> Result<Self, SessionError> {
        Self::with_shared_store(Arc::new(store), config)
    }

    /// A manager over a store shared with other managers.
    pub fn with_shared_store(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
    ) -> Result<Self, SessionError> {
        config.validate()?;
        Ok(Self {
            store,
            config,
            clock: Arc::new(SystemClock),
            _data: PhantomData,
        })
    }

    /// Reads time from `clock` (a [`mcp_auth_core::ManualClock`] in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    fn encode(&self, data: &D) -> Result<String, SessionError> {
        let text = serde_json::to_string(data).map_err(|e| SessionError::data(&e))?;
        if text.len() > self.config.get_max_data_bytes() {
            return Err(SessionError::DataTooLarge {
                len: text.len(),
                max: self.config.get_max_data_bytes(),
            });
        }
        Ok(text)
    }

    fn decode(&self, stored: StoredSession) -> Result<Session<D>, SessionError> {
        let data = serde_json::from_str(&stored.data).map_err(|e| SessionError::data(&e))?;
        let expires = self
            .config
            .timeouts()
            .expires_at(stored.created_at, stored.last_seen);
        Ok(Session {
            handle: stored.handle,
            user: stored.user,
            client_id: stored.client_id,
            scopes: stored.scopes,
            created_at: unix_to_system(stored.created_at),
            last_seen: unix_to_system(stored.last_seen),
            expires_at: unix_to_system(expires),
            data,
        })
    }

    /// Creates a session with a fresh id. Call on sign-in; never reuse an id
    /// the client proposed (session fixation).
    pub async fn create(&self, new: NewSession<D>) -> Result<Created<D>, SessionError> {
        validate_client_id(&new.client_id)?;
        validate_scopes(&new.scopes)?;
        let data = self.encode(&new.data)?;
        let id = SessionId::generate()?;
        let now = self.now();
        let stored = StoredSession {
            handle: id.handle(),
            user: new.user,
            client_id: new.client_id,
            scopes: new.scopes,
            created_at: now,
            last_seen: now,
            data,
        };
        let rules = InsertRules {
            now,
            timeouts: self.config.timeouts(),
            max_per_user: self.config.get_max_sessions_per_user(),
            policy: self.config.get_on_user_limit(),
        };
        let evicted = match self.store.insert(stored.clone(), rules).await {
            Ok(evicted) => evicted,
            Err(e) => {
                tracing::warn!(target: "mcp_auth::audit", user = %stored.user, error = %e, "session not created");
                return Err(e);
            }
        };
        for handle in &evicted {
            tracing::info!(target: "mcp_auth::audit", user = %stored.user, session = %handle.short(), "session evicted: per-user limit");
        }
        tracing::info!(target: "mcp_auth::audit", user = %stored.user, client_id = %stored.client_id, session = %stored.handle.short(), "session created");
        Ok(Created {
            id,
            session: self.decode(stored)?,
            evicted,
        })
    }

    /// Loads a live session and records the access (load-and-touch). Fails
    /// with [`SessionError::NotFound`] for an unknown, expired, rotated or
    /// revoked id, and with [`SessionError::StoreUnavailable`] when the store
    /// cannot answer: never a session it cannot vouch for.
    pub async fn load(&self, id: &SessionId) -> Result<Session<D>, SessionError> {
        let handle = id.handle();
        let found = self
            .store
            .load_and_touch(&handle, self.now(), self.config.timeouts())
            .await?;
        self.found(found, &handle)
    }

    /// Parses a client-supplied id and loads it.
    pub async fn load_str(&self, id: &str) -> Result<Session<D>, SessionError> {
        self.load(&SessionId::parse(id)?).await
    }

    fn found(
        &self,
        found: Option<StoredSession>,
        handle: &SessionHandle,
    ) -> Result<Session<D>, SessionError> {
        match found {
            Some(stored) if stored.handle == *handle => self.decode(stored),
            Some(_) => Err(SessionError::StoreCorrupt("record under another handle")),
            None => Err(SessionError::NotFound),
        }
    }

    /// Replaces the session's data.
    pub async fn update_data(&self, id: &SessionId, data: &D) -> Result<Session<D>, SessionError> {
        let change = SessionChange {
            data: Some(self.encode(data)?),
            scopes: None,
        };
        self.update(id, change).await
    }

    /// Replaces the session's scopes. A change of privilege: also
    /// [`rotate`](Self::rotate) the id.
    pub async fn set_scopes<S: Into<String>>(
        &self,
        id: &SessionId,
        scopes: impl IntoIterator<Item = S>,
    ) -> Result<Session<D>, SessionError> {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        validate_scopes(&scopes)?;
        let change = SessionChange {
            scopes: Some(scopes),
            data: None,
        };
        self.update(id, change).await
    }

    async fn update(
        &self,
        id: &SessionId,
        change: SessionChange,
    ) -> Result<Session<D>, SessionError> {
        let handle = id.handle();
        let found = self
            .store
            .update(&handle, change, self.now(), self.config.timeouts())
            .await?;
        self.found(found, &handle)
    }

    /// Issues a new id for the same session and invalidates the old one
    /// (session fixation defence: call on sign-in and privilege change).
    pub async fn rotate(&self, id: &SessionId) -> Result<(SessionId, Session<D>), SessionError> {
        let old = id.handle();
        let new_id = SessionId::generate()?;
        let new = new_id.handle();
        let found = self
            .store
            .rotate(&old, &new, self.now(), self.config.timeouts())
            .await?;
        let session = self.found(found, &new)?;
        tracing::info!(target: "mcp_auth::audit", user = %session.user, from = %old.short(), to = %new.short(), "session rotated");
        Ok((new_id, session))
    }

    /// The user's live sessions, oldest first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Session<D>>, SessionError> {
        let stored = self
            .store
            .list_user(user, self.now(), self.config.timeouts())
            .await?;
        stored.into_iter().map(|s| self.decode(s)).collect()
    }

    /// Revokes the session with this id (sign-out); `true` if it existed.
    pub async fn revoke(&self, id: &SessionId) -> Result<bool, SessionError> {
        self.revoke_handle(&id.handle()).await
    }

    /// Revokes a session by handle (e.g. from [`list`](Self::list)).
    pub async fn revoke_handle(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let existed = self.store.remove(handle).await?;
        tracing::info!(target: "mcp_auth::audit", session = %handle.short(), existed, "session revoked");
        Ok(existed)
    }

    /// Revokes all of a user's sessions (account disabled, credentials
    /// changed); returns how many there were.
    pub async fn revoke_user(&self, user: &UserId) -> Result<usize, SessionError> {
        let count = self.store.remove_user(user).await?;
        tracing::info!(target: "mcp_auth::audit", user = %user, count, "all sessions of user revoked");
        Ok(count)
    }

    /// Revokes every session of every user at once (emergency).
    pub async fn revoke_everything(&self) -> Result<(), SessionError> {
        self.store.remove_all().await?;
        tracing::warn!(target: "mcp_auth::audit", "every session revoked");
        Ok(())
    }
}
