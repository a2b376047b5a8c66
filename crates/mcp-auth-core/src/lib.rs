//! Shared vocabulary for the `mcp-auth` crates.
//!
//! This crate is deliberately tiny: it holds only what two or more of the
//! `mcp-auth-*` crates need to agree on.
//!
//! * [`Clock`]: every time-dependent check (token expiry, session timeouts,
//!   pending-authorization lifetimes) reads time through this trait, so tests
//!   drive time with a [`ManualClock`] instead of sleeping.
//! * [`is_loopback_ip`] / [`is_loopback_host`]: the one definition of
//!   "loopback" behind every "https, or http only on loopback" rule.
//! * [`secret_string!`]: the one way to declare a secret type (redacted
//!   `Debug`, zeroized on drop, constant-time `matches`).
//! * [`UserId`]: a validated user identifier with an **injective** storage key:
//!   two different user ids never map to the same file name or Redis key.
//!
//! ```
//! use std::time::Duration;
//! use mcp_auth_core::{Clock, ManualClock, UserId};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(clock.unix_seconds(), 1_700_000_030);
//!
//! let a = UserId::new("a.b")?;
//! let b = UserId::new("a_b")?;
//! assert_ne!(a.storage_key(), b.storage_key());
//! assert_eq!(UserId::from_storage_key(a.storage_key().as_str())?, a);
//! # Ok::<(), mcp_auth_core::InvalidUserId>(())
//! ```
//!
//! # Security considerations
//!
//! * Storage keys are a reversible, single-case encoding (RFC 4648 base32,
//!   upper case, no padding) of the user id's UTF-8 bytes. Unlike
//!   "replace unsafe characters with `_` and truncate" schemes, the mapping is
//!   injective, so one user can never read or overwrite another user's
//!   storage, and it stays injective on case-insensitive file systems.
//! * Storage keys are *not* a secret and not a pseudonym: anyone who can list
//!   the storage directory can decode the user ids.
//! * User ids reject control characters, so they are safe to write in logs.

mod clock;
mod config_problem;
mod loopback;
mod pseudonym;
#[cfg(feature = "redis")]
pub mod redis_conn;
#[cfg(feature = "redis")]
pub use redis_conn::{RedisConfig, RedisConnection};
mod secret;
mod user_id;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config_problem::{ConfigProblem, ConfigProblems};
pub use loopback::{is_loopback_host, is_loopback_ip, is_public_ip};
pub use pseudonym::{PSEUDONYM_PREFIX, Pseudonym, RandomUnavailable, UserPseudonyms};
pub use secret::{REDACTED, Redacted, secrets_equal};

/// What [`secret_string!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use zeroize::{ZeroizeOnDrop, Zeroizing};
}

/// The boxed, `Send` future the `mcp-auth` crates' object-safe traits return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
pub use user_id::{InvalidUserId, StorageKey, UserId};
