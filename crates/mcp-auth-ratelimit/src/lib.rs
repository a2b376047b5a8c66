//! Rate limits for a public MCP server, at three tiers checked together for
//! each request: the whole server, each user, and each user on each tool.
//!
//! * [`MemoryRateLimiter`]: one process, GCRA, every tier under one lock.
//! * `RedisRateLimiter` (feature `redis`): a fleet sharing one budget; all
//!   tiers of a request decided by one Lua script in one round trip, with the
//!   same GCRA arithmetic (one shared test suite).
//!
//! A [`Decision`] is either allowed (each tier charged once) or denied, with
//! the tier that denied and the `Retry-After`; a denied request charges no
//! tier at all.
//!
//! ```
//! use mcp_auth_core::UserId;
//! use mcp_auth_ratelimit::{Decision, DeniedBy, Limit, Limits, MemoryRateLimiter};
//!
//! let limits = Limits::default()                       // 120/min per user, 60/min per tool, no global cap
//!     .tool_limit("send_email", Limit::per_minute(2)?); // a costly tool gets less
//! let limiter = MemoryRateLimiter::new(limits)?;
//! let alice = UserId::new("alice@example.com").unwrap();
//!
//! assert!(limiter.check(&alice, Some("send_email")).is_allowed());
//! assert!(limiter.check(&alice, Some("send_email")).is_allowed());
//! match limiter.check(&alice, Some("send_email")) {
//!     Decision::Denied { by: DeniedBy::Tool, retry_after } => assert!(retry_after.as_secs() <= 30),
//!     other => panic!("{other:?}"),
//! }
//! assert!(limiter.check(&alice, Some("search")).is_allowed()); // other tools unaffected
//! # Ok::<(), mcp_auth_ratelimit::RateLimitError>(())
//! ```
//!
//! # Security considerations
//!
//! * Keys come from untrusted input. Memory stays bounded: each tier tracks
//!   at most `max_tracked_keys` keys (idle ones are dropped, which changes no
//!   decision), and tool names that are unknown, overlong, malformed or beyond
//!   `max_distinct_tools` all share one overflow bucket.
//! * Key users by an authenticated subject, never by something the client
//!   chooses freely before authentication (use an IP-keyed limit in front
//!   for unauthenticated traffic).
//! * The Redis limiter's behaviour when Redis is unreachable is explicit
//!   (`FailureMode`); the default is fail closed.

mod error;
mod limiter;
mod limits;
mod memory;
#[cfg(feature = "redis")]
mod redis_limiter;

pub use error::RateLimitError;
pub use limiter::{DecisionFuture, RateLimiter};
pub use limits::{Decision, DeniedBy, Limit, Limits, OVERFLOW_TOOL};
#[cfg(feature = "redis")]
pub use mcp_auth_core::RedisConfig;
pub use memory::MemoryRateLimiter;
#[cfg(feature = "redis")]
pub use redis_limiter::{FailureMode, RedisLimiterOptions, RedisRateLimiter, TimeSource};
