//! Sessions for multi-user MCP servers: who is signed in, with which client
//! and scopes, until when.
//!
//! * **Ids**: 256 bits from the OS CSPRNG, base64url ([`SessionId`]). Stores
//!   keep only the SHA-256 ([`SessionHandle`]), so a dump of the store yields
//!   no usable session id.
//! * **Timeouts**: idle (default 1 hour) and absolute (default 24 hours),
//!   enforced on every access by the manager's [`Clock`](mcp_auth_core::Clock).
//! * **Fixation defence**: [`SessionManager::rotate`] issues a new id for the
//!   same session and kills the old one; call it on sign-in and privilege change.
//! * **Per-user limit** (default 10) with a policy: evict the oldest (default)
//!   or refuse.
//! * **Revocation**: one session, all of a user's, or everything at once.
//! * **Stores**: [`MemorySessionStore`] (bounded, swept) for one process, and
//!   `RedisSessionStore` (feature `redis`) for a fleet behind a load balancer.
//!   Both pass one conformance suite.
//! * [`SessionCookie`]: `__Host-` cookie, Secure, HttpOnly, SameSite=Lax, Path=/.
//!
//! ```
//! use mcp_auth_core::UserId;
//! use mcp_auth_session::{MemorySessionStore, NewSession, SessionConfig, SessionError, SessionManager};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sessions: SessionManager = SessionManager::new(MemorySessionStore::new(), SessionConfig::default())?;
//!
//! let user = UserId::new("alice@example.com").unwrap();
//! let created = sessions
//!     .create(NewSession::new(user.clone(), "claude-desktop").with_scopes(["mcp:tools"]))
//!     .await?;
//! // Hand `created.id.expose()` to the client; the store only has its hash.
//!
//! let session = sessions.load(&created.id).await?;
//! assert_eq!(session.user, user);
//! assert!(session.has_scope("mcp:tools"));
//!
//! // Privilege change: new id, old one dead.
//! let (new_id, _) = sessions.rotate(&created.id).await?;
//! assert!(matches!(sessions.load(&created.id).await, Err(SessionError::NotFound)));
//! sessions.revoke(&new_id).await?;
//! # Ok::<(), SessionError>(())
//! # }).unwrap();
//! ```
//!
//! # Security considerations
//!
//! * A [`SessionError::StoreUnavailable`] must be treated as "not signed in":
//!   the manager never returns a session the store could not confirm.
//! * [`SessionError::NotFound`] does not say whether an id was unknown,
//!   expired or revoked, so clients learn nothing from it; the audit log
//!   (`tracing` target `mcp_auth::audit`) records creations, rotations,
//!   evictions and revocations by handle prefix and user, never by id.
//! * Session data is serialized JSON capped at 16 KiB by default; store
//!   upstream tokens in `mcp-auth-vault`, not in session data, which is not
//!   encrypted at rest (Redis dumps).
//! * Session ids are compared only through their SHA-256 and with
//!   constant-time equality.
//! * For the Redis store, give Redis a `maxmemory-policy` that never evicts
//!   keys without a TTL (`noeviction` or a `volatile-*` policy): the
//!   revoke-everything epoch is such a key.

mod config;
mod cookie;
mod error;
mod id;
mod manager;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

pub use config::{MAX_ABSOLUTE_TIMEOUT, MAX_DATA_BYTES, SessionConfig, Timeouts, UserLimitPolicy};
pub use cookie::SessionCookie;
pub use error::SessionError;
pub use id::{SESSION_ID_LEN, SessionHandle, SessionId};
pub use manager::{
    Created, MAX_CLIENT_ID_LEN, MAX_SCOPE_LEN, MAX_SCOPES, NewSession, Session, SessionManager,
};
pub use memory::{DEFAULT_MEMORY_CAPACITY, MemorySessionStore};
#[cfg(feature = "redis")]
pub use redis_store::RedisSessionStore;
pub use store::{InsertRules, SessionChange, SessionStore, StoreFuture, StoredSession};
