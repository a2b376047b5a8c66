//! One interface over the memory and Redis limiters, for code (such as the
//! HTTP layer in `mcp-auth-axum`) that should not care which one it holds.

use mcp_auth_core::UserId;

use crate::{Decision, Limits, MemoryRateLimiter};

/// A boxed future returned by [`RateLimiter::decide`].
pub type DecisionFuture<'a> = mcp_auth_core::BoxFuture<'a, Decision>;

/// A limiter that decides one request: the global, per-user and (when `tool`
/// is given) per-(user, tool) tiers together, spending nothing on a denial.
///
/// Object safe, so a server can hold an `Arc<dyn RateLimiter>` and choose the
/// backend from configuration.
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Decides one request by `user`, optionally calling `tool`.
    fn decide<'a>(&'a self, user: &'a UserId, tool: Option<&'a str>) -> DecisionFuture<'a>;

    /// Decides one request by `user` that calls each of `tools` (a JSON-RPC
    /// batch), all or nothing: when one call is refused, the charges of the
    /// others are not kept either.
    fn decide_calls<'a>(&'a self, user: &'a UserId, tools: &'a [&'a str]) -> DecisionFuture<'a>;

    /// The limits this limiter enforces.
    fn limits(&self) -> &Limits;
}

impl RateLimiter for MemoryRateLimiter {
    fn decide<'a>(&'a self, user: &'a UserId, tool: Option<&'a str>) -> DecisionFuture<'a> {
        let decision = self.check(user, tool);
        Box::pin(std::future::ready(decision))
    }

    fn decide_calls<'a>(&'a self, user: &'a UserId, tools: &'a [&'a str]) -> DecisionFuture<'a> {
        let decision = self.check_calls(user, tools);
        Box::pin(std::future::ready(decision))
    }

    fn limits(&self) -> &Limits {
        MemoryRateLimiter::limits(self)
    }
}

#[cfg(feature = "redis")]
impl RateLimiter for crate::RedisRateLimiter {
    fn decide<'a>(&'a self, user: &'a UserId, tool: Option<&'a str>) -> DecisionFuture<'a> {
        Box::pin(self.check(user, tool))
    }

    fn decide_calls<'a>(&'a self, user: &'a UserId, tools: &'a [&'a str]) -> DecisionFuture<'a> {
        Box::pin(self.check_calls(user, tools))
    }

    fn limits(&self) -> &Limits {
        crate::RedisRateLimiter::limits(self)
    }
}
