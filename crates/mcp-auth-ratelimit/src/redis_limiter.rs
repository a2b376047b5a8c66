//! The fleet limiter: every tier of a request decided by one Lua script.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mcp_auth_core::RedisConfig;
use mcp_auth_core::RedisConnection;
use mcp_auth_core::redis_conn::{RedisSetupError, describe, ping, redis_problem};
use mcp_auth_core::{Clock, UserId};
use redis::Script;

use crate::limits::{Limit, ToolNames};
use crate::{Decision, DeniedBy, Limits, RateLimitError};

/// What a decision is when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Deny with [`DeniedBy::StoreUnavailable`] (retry after 1 s). The
    /// default: limits protect upstream quotas and cost, and a fleet whose
    /// Redis is down cannot confirm sessions either.
    #[default]
    FailClosed,
    /// Allow, logging a warning per decision: availability over limits.
    FailOpen,
}

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum TimeSource {
    /// Redis' own `TIME`: one clock for the whole fleet (the default).
    #[default]
    RedisServer,
    /// The given clock, sent with each request (tests, or a fleet with
    /// well-synchronised clocks).
    Client(Arc<dyn Clock>),
}

/// How [`RedisRateLimiter`] decides, beyond where Redis is (a
/// [`RedisConfig`]). Start from `default()` and change fields
/// (`options.failure_mode = FailureMode::FailOpen`): new settings may be
/// added without a breaking change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisLimiterOptions {
    /// Behaviour when Redis is unreachable (default fail closed).
    pub failure_mode: FailureMode,
    /// The clock (default Redis' `TIME`).
    pub time: TimeSource,
    /// Name users in keys by pseudonym instead of storage key, so no key
    /// reveals a user id (default `None`; `mcp-auth-app` sets the vault's
    /// `Vault::user_pseudonyms().derive("rate limits")`). Every process of a
    /// fleet must use the same. Turning it on starts each user's buckets
    /// afresh once.
    pub user_pseudonyms: Option<mcp_auth_core::UserPseudonyms>,
}

impl Default for RedisLimiterOptions {
    fn default() -> Self {
        Self {
            failure_mode: FailureMode::FailClosed,
            time: TimeSource::RedisServer,
            user_pseudonyms: None,
        }
    }
}

/// GCRA over every tier of every call of a request, all or nothing, one
/// round trip.
///
/// KEYS: one per charge, in order (a key may repeat: a batch charges the
/// user tier once per call). ARGV[1]: now in µs, or "" for Redis `TIME`;
/// then per charge i: ARGV[2i] = emission interval T (µs), ARGV[2i+1] =
/// tolerance τ (µs). The rule of the in-memory limiter: with `tat` the
/// arrival time (the one this request already moved it to, else the stored
/// one, else now), the charge conforms iff `now >= tat - τ`; then
/// `tat = max(tat, now) + T`. Every charge is tested before anything is
/// written, so a refusal writes nothing. Returns {0, 0} when allowed,
/// {i, µs to wait} when charge i is refused. Written for Redis's time: one
/// MGET for every key, no tables per key (a repeated key is found by a
/// scan of the few before it), one SET per distinct key.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local n = #KEYS
local stored = redis.call('MGET', unpack(KEYS))
local tats = {}
for i = 1, n do
  local tat
  for j = i - 1, 1, -1 do
    if KEYS[j] == KEYS[i] then tat = tats[j] break end
  end
  tat = tat or tonumber(stored[i]) or now
  local tau = ARGV[2 * i + 1] + 0
  if now < tat - tau then
    return {i, tat - tau - now}
  end
  if tat < now then tat = now end
  tats[i] = tat + ARGV[2 * i]
end
for i = 1, n do
  local last = true
  for j = i + 1, n do
    if KEYS[j] == KEYS[i] then last = false break end
  end
  if last then
    -- The key expires when its arrival time passes: then it is idle, and an
    -- absent key means exactly the same to GCRA.
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1)
  end
end
return {0, 0}
";

/// The same rule for a request of more than [`SHORT`] charges: per-key
/// tables instead of scans, and one GET per key (an unbounded MGET could
/// overflow Lua's stack).
const GCRA_TABLES: &str = r"
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local new = {}
local order = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local tat = new[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key) or now)
  end
  if now < tat - tau then
    return {i, tat - tau - now}
  end
  if new[key] == nil then
    order[#order + 1] = key
  end
  new[key] = math.max(tat, now) + t
end
for _, key in ipairs(order) do
  -- The key expires when its arrival time passes: then it is idle, and an
  -- absent key means exactly the same to GCRA.
  redis.call('SET', key, string.format('%d', new[key]), 'PX', math.floor((new[key] - now) / 1000) + 1)
end
return {0, 0}
";

/// The most charges [`GCRA`] takes; larger batches go to [`GCRA_TABLES`].
const SHORT: usize = 64;

static SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(GCRA));
static SCRIPT_TABLES: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(GCRA_TABLES));

/// Global, per-user and per-(user, tool) limits shared by a fleet through Redis.
///
/// Same limits and semantics as [`MemoryRateLimiter`](crate::MemoryRateLimiter)
/// (both pass `tests/shared_suite.rs`). Keys (prefix `P`): `P g`,
/// `P u:<user>`, `P t:<user>:<tool bucket>`, the user named by its
/// pseudonym ([`RedisLimiterOptions::user_pseudonyms`]) or storage key, each a
/// string holding the arrival time in µs with a TTL until it is idle, so
/// Redis memory is bounded by the number of recently active keys.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: RedisConnection,
    limits: Arc<Limits>,
    tools: Arc<ToolNames>,
    prefix: String,
    failure_mode: FailureMode,
    time: TimeSource,
    users: Option<mcp_auth_core::UserPseudonyms>,
}

impl fmt::Debug for RedisRateLimiter {
    // Not derived: the connection's Debug would print the URL, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("limits", &self.limits)
            .field("prefix", &self.prefix)
            .field("failure_mode", &self.failure_mode)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// The default key prefix, `mcp-auth:rl:`.
    pub const DEFAULT_PREFIX: &'static str = "mcp-auth:rl:";

    /// How long one decision should wait for Redis: 500 ms (a
    /// [`RedisConfig`]'s `response_timeout`; its default is 2 s).
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

    /// Connects to `redis` and checks the connection with `PING`.
    pub async fn connect(
        redis: RedisConfig,
        limits: Limits,
        options: RedisLimiterOptions,
    ) -> Result<Self, RateLimitError> {
        let limiter = Self::connect_lazy(redis, limits, options)?;
        ping(&limiter.conn).await.map_err(|e| match e {
            RedisSetupError::Unavailable(what) => RateLimitError::StoreUnavailable(what),
            _ => RateLimitError::StoreUnavailable("unreachable"),
        })?;
        Ok(limiter)
    }

    /// Builds the limiter without connecting; the first decision connects,
    /// so a server can start while Redis is down (decisions then follow the
    /// failure mode until it is up). Must be called within a Tokio runtime.
    pub fn connect_lazy(
        redis: RedisConfig,
        limits: Limits,
        options: RedisLimiterOptions,
    ) -> Result<Self, RateLimitError> {
        limits.validate()?;
        let conn = redis.connect_lazy().map_err(|e| match e {
            RedisSetupError::Unavailable(what) => RateLimitError::StoreUnavailable(what),
            other => RateLimitError::Config(redis_problem(&other)),
        })?;
        let (prefix, config) = (redis.key_prefix(), options);
        Ok(Self {
            conn,
            tools: Arc::new(ToolNames::new(&limits)),
            limits: Arc::new(limits),
            prefix,
            failure_mode: config.failure_mode,
            time: config.time,
            users: config.user_pseudonyms,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decides one request by `user`, for `tool` when it is a tool call.
    pub async fn check(&self, user: &UserId, tool: Option<&str>) -> Decision {
        match tool {
            Some(tool) => self.check_calls(user, &[tool]).await,
            None => self.check_calls(user, &[]).await,
        }
    }

    /// Decides one request by `user` that calls each of `tools` (a JSON-RPC
    /// batch; empty for a request that calls no tool), all or nothing, in
    /// one script run: a refused request spends nothing.
    pub async fn check_calls(&self, user: &UserId, tools: &[&str]) -> Decision {
        let user_key = match &self.users {
            Some(p) => p.name(user).as_str().to_owned(),
            None => user.storage_key().as_str().to_owned(),
        };
        let buckets: Vec<std::sync::Arc<str>> =
            tools.iter().map(|t| self.tools.resolve(t)).collect();
        let mut tiers: Vec<(DeniedBy, String, Limit)> = Vec::with_capacity(3 * tools.len().max(1));
        for call in 0..tools.len().max(1) {
            if let Some(limit) = self.limits.global {
                tiers.push((DeniedBy::Global, format!("{}g", self.prefix), limit));
            }
            if let Some(limit) = self.limits.per_user {
                tiers.push((
                    DeniedBy::User,
                    format!("{}u:{}", self.prefix, user_key),
                    limit,
                ));
            }
            if let Some(bucket) = buckets.get(call)
                && let Some(limit) = self.limits.tool_limit_for(bucket)
            {
                tiers.push((
                    DeniedBy::Tool,
                    format!("{}t:{}:{}", self.prefix, user_key, bucket),
                    limit,
                ));
            }
        }
        if tiers.is_empty() {
            return Decision::Allowed;
        }
        let now = match &self.time {
            TimeSource::RedisServer => String::new(),
            TimeSource::Client(clock) => {
                let since = clock.now().duration_since(UNIX_EPOCH).unwrap_or_default();
                since.as_micros().to_string()
            }
        };
        let script = if tiers.len() <= SHORT {
            &*SCRIPT
        } else {
            &*SCRIPT_TABLES
        };
        let mut invocation = script.prepare_invoke();
        invocation.arg(now);
        for (_, key, limit) in &tiers {
            invocation
                .key(key)
                .arg(limit.emission_us())
                .arg(limit.tolerance_us());
        }
        let reply: Result<(u64, u64), _> = invocation.invoke_async(&mut self.conn.clone()).await;
        let decision = match reply {
            Ok((0, _)) => return Decision::Allowed,
            Ok((index, wait_us)) => match tiers.get((index as usize).wrapping_sub(1)) {
                Some((by, _, _)) => Decision::Denied {
                    by: *by,
                    retry_after: Duration::from_micros(wait_us),
                },
                None => self.unavailable("unexpected script reply"),
            },
            Err(e) => self.unavailable(describe(&e)),
        };
        if let Decision::Denied { by, retry_after } = decision {
            let tool = match &buckets[..] {
                [] => "-".to_owned(),
                [one] => one.to_string(),
                many => many.join(","),
            };
            tracing::info!(target: "mcp_auth::audit", user = %user, tool = %tool, denied_by = by.as_str(), retry_after_ms = retry_after.as_millis() as u64, "rate limit hit");
        }
        decision
    }

    fn unavailable(&self, what: &str) -> Decision {
        match self.failure_mode {
            FailureMode::FailOpen => {
                tracing::warn!(target: "mcp_auth::audit", error = what, "rate-limit store unavailable: failing open");
                Decision::Allowed
            }
            FailureMode::FailClosed => {
                tracing::warn!(target: "mcp_auth::audit", error = what, "rate-limit store unavailable: failing closed");
                Decision::Denied {
                    by: DeniedBy::StoreUnavailable,
                    retry_after: Duration::from_secs(1),
                }
            }
        }
    }
}
