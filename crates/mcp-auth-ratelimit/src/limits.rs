//! Quotas, tiers and the rules that turn untrusted tool names into keys.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_core::ConfigProblem;

use crate::RateLimitError;

/// Longest burst tolerance accepted (ten years), which keeps every figure
/// exact in Redis' Lua (doubles) and in u64 nanoseconds.
const MAX_TOLERANCE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// One quota: `count` requests per `period`, with bursts of up to `burst`.
///
/// GCRA terms: the *emission interval* `T = period / count` (rounded up to a
/// whole microsecond, so Redis and memory agree exactly) and the *tolerance*
/// `τ = T × (burst − 1)`. Over any span of time `Δ`, at most
/// `burst + Δ / T` requests are admitted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    count: u32,
    period: Duration,
    burst: u32,
    emission_us: u64,
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Limit({} per {:?}, burst {})",
            self.count, self.period, self.burst
        )
    }
}

impl Limit {
    /// `count` requests per `period`; the burst defaults to `count` (the
    /// whole period's budget may be used at once, as a fixed window would).
    pub fn new(count: u32, period: Duration) -> Result<Self, RateLimitError> {
        if count == 0 {
            return Err(RateLimitError::InvalidLimit(
                "a limit of zero requests admits nothing; disable the tier instead",
            ));
        }
        if period.is_zero() {
            return Err(RateLimitError::InvalidLimit("the period must be positive"));
        }
        let emission_ns = period.as_nanos().div_ceil(u128::from(count));
        let emission_us = u64::try_from(emission_ns.div_ceil(1000))
            .map_err(|_| RateLimitError::InvalidLimit("the period is too long"))?;
        if emission_ns < 1000 {
            return Err(RateLimitError::InvalidLimit(
                "finer than one request per microsecond",
            ));
        }
        Self {
            count,
            period,
            burst: count,
            emission_us,
        }
        .checked()
    }

    /// `count` per second.
    pub fn per_second(count: u32) -> Result<Self, RateLimitError> {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Result<Self, RateLimitError> {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Result<Self, RateLimitError> {
        Self::new(count, Duration::from_secs(3600))
    }

    /// Sets the largest burst (at least 1).
    pub fn with_burst(mut self, burst: u32) -> Result<Self, RateLimitError> {
        if burst == 0 {
            return Err(RateLimitError::InvalidLimit(
                "a burst of zero admits nothing",
            ));
        }
        self.burst = burst;
        self.checked()
    }

    fn checked(self) -> Result<Self, RateLimitError> {
        let tolerance_us = self
            .emission_us
            .checked_mul(u64::from(self.burst - 1))
            .filter(|us| *us <= MAX_TOLERANCE.as_micros() as u64);
        match tolerance_us {
            Some(_) => Ok(self),
            None => Err(RateLimitError::InvalidLimit(
                "the burst at this rate overflows (tolerance over ten years)",
            )),
        }
    }

    /// Requests per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The largest burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// GCRA emission interval `T`: one request's share of time.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.emission_us)
    }

    /// GCRA tolerance `τ = T × (burst − 1)`.
    pub fn tolerance(&self) -> Duration {
        Duration::from_micros(self.tolerance_us())
    }

    pub(crate) fn emission_us(&self) -> u64 {
        self.emission_us
    }

    pub(crate) fn tolerance_us(&self) -> u64 {
        self.emission_us * u64::from(self.burst - 1)
    }
}

/// Which tier denied a request (or why none could decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeniedBy {
    /// The whole server's budget.
    Global,
    /// The user's budget across all tools.
    User,
    /// The user's budget for this tool.
    Tool,
    /// The limiter tracks its maximum number of keys and none is idle
    /// (a flood of distinct users or tools); see `Limits::max_tracked_keys`.
    TooManyKeys,
    /// The Redis backend is unreachable and the failure mode is fail-closed.
    StoreUnavailable,
}

impl DeniedBy {
    /// A short stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::User => "user",
            Self::Tool => "tool",
            Self::TooManyKeys => "too_many_keys",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl fmt::Display for DeniedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; every tier's budget was charged once.
    Allowed,
    /// Refused; no tier's budget was charged.
    Denied {
        /// The tier that refused.
        by: DeniedBy,
        /// When the same request could next be admitted.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed)
    }

    /// The `Retry-After` header value in whole seconds (rounded up, at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Allowed => None,
            Self::Denied { retry_after, .. } => {
                Some(retry_after.as_micros().div_ceil(1_000_000).max(1) as u64)
            }
        }
    }
}

/// The tiers and the bounds on what untrusted input can make the limiter track.
///
/// | setting | default |
/// |---|---|
/// | global | off: a server-wide cap is a capacity decision (see docs/ratelimit.md) |
/// | per user | 120 per minute (burst 120): 2 a second sustained, any 120 at once |
/// | per (user, tool) | 60 per minute (burst 60) |
/// | tool name | ≤ 64 bytes of `[A-Za-z0-9_.-/]`; others share one overflow bucket |
/// | distinct tools | 256 (or the `known_tools` list); the rest share the overflow bucket |
/// | tracked keys per tier | 100,000 |
#[derive(Debug, Clone)]
pub struct Limits {
    pub(crate) global: Option<Limit>,
    pub(crate) per_user: Option<Limit>,
    pub(crate) per_tool: Option<Limit>,
    pub(crate) tool_overrides: BTreeMap<String, Limit>,
    pub(crate) known_tools: Option<BTreeSet<String>>,
    pub(crate) max_tool_name_len: usize,
    pub(crate) max_distinct_tools: usize,
    pub(crate) max_tracked_keys: usize,
}

impl Default for Limits {
    /// Limits a public server for thousands of users does not hit in normal
    /// use, while one client cannot take more than its share: no global
    /// cap, 120 requests a minute per user, 60 calls a minute per (user,
    /// tool), each usable at once as a burst. The reasoning is in
    /// docs/ratelimit.md.
    #[allow(clippy::unwrap_used)] // constant, valid quotas
    fn default() -> Self {
        Self {
            global: None,
            per_user: Some(Limit::per_minute(120).unwrap()),
            per_tool: Some(Limit::per_minute(60).unwrap()),
            tool_overrides: BTreeMap::new(),
            known_tools: None,
            max_tool_name_len: 64,
            max_distinct_tools: 256,
            max_tracked_keys: 100_000,
        }
    }
}

/// Marks the shared bucket of tool names that are unknown, overlong or
/// beyond the distinct-tool cap. `*` is not a valid tool-name character.
pub const OVERFLOW_TOOL: &str = "*";

impl Limits {
    /// No tier at all (every request admitted); add tiers with the setters.
    pub fn none() -> Self {
        Self {
            global: None,
            per_user: None,
            per_tool: None,
            ..Self::default()
        }
    }

    /// The whole server's limit (`None` disables the tier).
    pub fn global(mut self, limit: Option<Limit>) -> Self {
        self.global = limit;
        self
    }

    /// Each user's limit across tools.
    pub fn per_user(mut self, limit: Option<Limit>) -> Self {
        self.per_user = limit;
        self
    }

    /// Each user's limit per tool.
    pub fn per_tool(mut self, limit: Option<Limit>) -> Self {
        self.per_tool = limit;
        self
    }

    /// A specific tool's per-user limit, replacing the per-tool default.
    pub fn tool_limit(mut self, tool: impl Into<String>, limit: Limit) -> Self {
        self.tool_overrides.insert(tool.into(), limit);
        self
    }

    /// The server's tool names: any other name is charged to the shared
    /// overflow bucket. Recommended; without it, the first
    /// `max_distinct_tools` names seen get their own buckets.
    pub fn known_tools<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.known_tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// Longest tool name given its own bucket (default 64).
    pub fn max_tool_name_len(mut self, len: usize) -> Self {
        self.max_tool_name_len = len;
        self
    }

    /// Most distinct tool names tracked when `known_tools` is not set (default 256).
    pub fn max_distinct_tools(mut self, n: usize) -> Self {
        self.max_distinct_tools = n;
        self
    }

    /// Most keys each tier tracks in memory (default 100,000).
    pub fn max_tracked_keys(mut self, n: usize) -> Self {
        self.max_tracked_keys = n;
        self
    }

    /// The `known_tools` list, when one was given.
    pub fn tool_names(&self) -> Option<&BTreeSet<String>> {
        self.known_tools.as_ref()
    }

    /// Whether any per-(user, tool) limit is on (the default one or a
    /// tool's own).
    pub fn has_tool_tier(&self) -> bool {
        self.per_tool.is_some() || !self.tool_overrides.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), RateLimitError> {
        if self.max_tracked_keys == 0 {
            return Err(RateLimitError::Config(ConfigProblem::new(
                "max_tracked_keys",
                "must be at least 1",
            )));
        }
        if self.max_tool_name_len == 0 || self.max_tool_name_len > 1024 {
            return Err(RateLimitError::Config(ConfigProblem::new(
                "max_tool_name_len",
                "must be 1..=1024",
            )));
        }
        for name in self
            .tool_overrides
            .keys()
            .chain(self.known_tools.iter().flatten())
        {
            if !valid_tool_name(name, self.max_tool_name_len) {
                return Err(RateLimitError::InvalidToolName {
                    name: name.clone(),
                    max_len: self.max_tool_name_len,
                });
            }
        }
        Ok(())
    }

    /// The limit applying to `tool` (an override, or the per-tool default).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn tool_limit_for(&self, tool: &str) -> Option<Limit> {
        self.tool_overrides.get(tool).copied().or(self.per_tool)
    }
}

fn valid_tool_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
}

/// Maps untrusted tool names to bounded keys.
#[derive(Debug)]
pub(crate) struct ToolNames {
    max_len: usize,
    max_distinct: usize,
    /// The known tools and the overridden ones, each name held once, when
    /// the tools are listed (a lookup hands out the shared name: no
    /// allocation per decision).
    known: Option<HashMap<Box<str>, Arc<str>>>,
    overrides: BTreeSet<String>,
    seen: Mutex<HashSet<Arc<str>>>,
    overflow: Arc<str>,
}

impl ToolNames {
    pub(crate) fn new(limits: &Limits) -> Self {
        let overrides: BTreeSet<String> = limits.tool_overrides.keys().cloned().collect();
        let known = limits.known_tools.as_ref().map(|known| {
            known
                .iter()
                .chain(&overrides)
                .map(|name| (Box::from(name.as_str()), Arc::from(name.as_str())))
                .collect()
        });
        Self {
            max_len: limits.max_tool_name_len,
            max_distinct: limits.max_distinct_tools,
            known,
            overrides,
            seen: Mutex::new(HashSet::new()),
            overflow: Arc::from(OVERFLOW_TOOL),
        }
    }

    /// The bucket name for `tool`: itself, or [`OVERFLOW_TOOL`].
    pub(crate) fn resolve(&self, tool: &str) -> Arc<str> {
        let overflow = || Arc::clone(&self.overflow);
        if !valid_tool_name(tool, self.max_len) {
            return overflow();
        }
        if let Some(known) = &self.known {
            return known.get(tool).map_or_else(overflow, Arc::clone);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(name) = seen.get(tool) {
            return Arc::clone(name);
        }
        if self.overrides.contains(tool) || seen.len() < self.max_distinct {
            let name: Arc<str> = Arc::from(tool);
            seen.insert(Arc::clone(&name));
            return name;
        }
        overflow()
    }

    #[cfg(test)]
    pub(crate) fn distinct(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inexpressible_limits_are_rejected() {
        assert!(Limit::new(0, Duration::from_secs(1)).is_err());
        assert!(Limit::new(1, Duration::ZERO).is_err());
        assert!(Limit::per_second(2_000_000).is_err()); // finer than 1/µs
        assert!(Limit::per_second(1).unwrap().with_burst(0).is_err());
        assert!(
            Limit::new(1, Duration::from_secs(3600 * 24 * 365))
                .unwrap()
                .with_burst(u32::MAX)
                .is_err()
        );
        assert!(Limit::new(1, Duration::MAX).is_err());
    }

    #[test]
    fn gcra_parameters() {
        let l = Limit::per_minute(100).unwrap();
        assert_eq!(l.emission_interval(), Duration::from_millis(600));
        assert_eq!(l.burst(), 100);
        assert_eq!(l.tolerance(), Duration::from_millis(600 * 99));
        let l = Limit::per_hour(7).unwrap();
        // 3600 s / 7 rounded up to a whole microsecond.
        assert_eq!(l.emission_interval(), Duration::from_micros(514_285_715));
        assert_eq!(l.tolerance(), Duration::from_micros(514_285_715 * 6));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let d = |ms| Decision::Denied {
            by: DeniedBy::User,
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(d(0).retry_after_secs(), Some(1));
        assert_eq!(d(1).retry_after_secs(), Some(1));
        assert_eq!(d(1000).retry_after_secs(), Some(1));
        assert_eq!(d(1001).retry_after_secs(), Some(2));
        assert_eq!(Decision::Allowed.retry_after_secs(), None);
    }

    #[test]
    fn tool_names_are_bounded() {
        let limits = Limits::default().max_distinct_tools(3);
        let names = ToolNames::new(&limits);
        for i in 0..1000 {
            names.resolve(&format!("tool{i}"));
        }
        assert_eq!(names.distinct(), 3);
        assert_eq!(&*names.resolve("tool1"), "tool1");
        assert_eq!(&*names.resolve("tool999"), OVERFLOW_TOOL);
        assert_eq!(&*names.resolve(&"x".repeat(65)), OVERFLOW_TOOL);
        assert_eq!(&*names.resolve("a b"), OVERFLOW_TOOL);
        assert_eq!(&*names.resolve(""), OVERFLOW_TOOL);
        assert_eq!(&*names.resolve("*"), OVERFLOW_TOOL);

        let known = ToolNames::new(&Limits::default().known_tools(["search", "play"]));
        assert_eq!(&*known.resolve("search"), "search");
        assert_eq!(&*known.resolve("delete_all"), OVERFLOW_TOOL);
        assert_eq!(known.distinct(), 0);
    }

    #[test]
    fn bad_tool_names_in_configuration_are_rejected() {
        assert!(
            Limits::default()
                .known_tools(["ok", "not ok"])
                .validate()
                .is_err()
        );
        assert!(
            Limits::default()
                .tool_limit("*", Limit::per_minute(1).unwrap())
                .validate()
                .is_err()
        );
        assert!(Limits::default().max_tracked_keys(0).validate().is_err());
        assert!(Limits::default().validate().is_ok());
    }
}
