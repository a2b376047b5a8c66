//! The storage interface (the in-memory store is in `memory.rs`).

use std::fmt;
use std::num::NonZeroU32;

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
