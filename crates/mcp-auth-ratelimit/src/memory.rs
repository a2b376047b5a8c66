//! The in-process limiter: the three tiers' GCRA state under one lock, a
//! user's tiers in one map entry.
//!
//! One decision reads the clock once, takes one lock, looks the user up
//! once (the user tier's arrival time and the user's per-tool arrival
//! times live in the same entry; the global tier is one number), decides
//! every tier first and writes only when all conform, so a refusal spends
//! nothing and needs no undo. No allocation unless the user or the
//! (user, tool) pair is new. The rule is the one the Redis script applies
//! (docs/ratelimit.md, "GCRA in two paragraphs"), in nanoseconds of the
//! clock's monotonic time: a wall-clock step neither grants a burst nor
//! starves anyone, and the state never leaves the process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_auth_core::{Clock, SystemClock, UserId};

use crate::limits::{Limit, ToolNames};
use crate::{Decision, DeniedBy, Limits, RateLimitError};

/// One tier's rule: emission interval `t` and tolerance `tau`, in ns.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    t: u64,
    tau: u64,
}

impl Gcra {
    fn of(limit: Limit) -> Self {
        Self {
            t: limit.emission_us().saturating_mul(1_000),
            tau: limit.tolerance_us().saturating_mul(1_000),
        }
    }

    /// The arrival time after a request at `now` when it conforms (an
    /// absent key behaves as `tat = now`), or how long until it would.
    fn charge(self, tat: Option<u64>, now: u64) -> Result<u64, u64> {
        let tat = tat.unwrap_or(now);
        let earliest = tat.saturating_sub(self.tau);
        if now < earliest {
            Err(earliest - now)
        } else {
            Ok(tat.max(now).saturating_add(self.t))
        }
    }
}

/// A user's state: the user tier's arrival time, and one per tool bucket
/// (a handful per user; a short list beats a second hash).
#[derive(Default)]
struct UserState {
    tat: Option<u64>,
    tools: Vec<(Arc<str>, u64)>,
}

impl UserState {
    fn tool(&self, bucket: &str) -> Option<u64> {
        self.tools
            .iter()
            .find(|(b, _)| &**b == bucket)
            .map(|(_, tat)| *tat)
    }
}

struct State {
    global: Option<u64>,
    users: HashMap<Box<str>, UserState>,
    /// Users with a user-tier arrival time.
    user_keys: usize,
    /// (user, tool) arrival times, every tool tier together.
    tool_keys: usize,
    /// No sweep can free anything before this time.
    no_sweep_before: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            global: None,
            users: HashMap::new(),
            user_keys: 0,
            tool_keys: 0,
            // Nothing to sweep yet: every arrival time written lowers it.
            no_sweep_before: u64::MAX,
        }
    }
}

impl State {
    /// Drops every idle arrival time (one that has passed: GCRA treats it
    /// exactly like an absent key, so no decision changes), and the users
    /// left with none.
    fn sweep(&mut self, now: u64) {
        if now < self.no_sweep_before {
            return;
        }
        let mut earliest = u64::MAX;
        let (mut user_keys, mut tool_keys) = (0, 0);
        self.users.retain(|_, user| {
            if user.tat.is_some_and(|tat| tat <= now) {
                user.tat = None;
            }
            user.tools.retain(|(_, tat)| *tat > now);
            if let Some(tat) = user.tat {
                earliest = earliest.min(tat);
                user_keys += 1;
            }
            for (_, tat) in &user.tools {
                earliest = earliest.min(*tat);
            }
            tool_keys += user.tools.len();
            user.tat.is_some() || !user.tools.is_empty()
        });
        self.user_keys = user_keys;
        self.tool_keys = tool_keys;
        self.no_sweep_before = earliest;
    }
}

/// The user's arrival time and `bucket`'s, as held now: one lookup.
fn lookup(state: &State, user: &UserId, bucket: Option<&str>) -> (Option<u64>, Option<u64>) {
    match state.users.get(user.as_str()) {
        Some(entry) => (entry.tat, bucket.and_then(|b| entry.tool(b))),
        None => (None, None),
    }
}

/// Refused for want of room: the wait until the earliest key goes idle.
fn too_many_keys(state: &State, now: u64) -> (DeniedBy, u64) {
    (
        DeniedBy::TooManyKeys,
        state.no_sweep_before.saturating_sub(now),
    )
}

/// Global, per-user and per-(user, tool) limits for one process.
///
/// A request is checked against its tiers in the order global, user, tool,
/// at one instant under one lock, and charged only when every tier
/// conforms: a denied request spends no budget anywhere. Each tier is GCRA
/// (the rule of docs/ratelimit.md), the same decisions the Redis limiter
/// makes. Memory is bounded by `Limits::max_tracked_keys` per tier; idle
/// keys are dropped to make room.
pub struct MemoryRateLimiter {
    limits: Limits,
    clock: Arc<dyn Clock>,
    /// The clock's monotonic time when the limiter was built.
    start: Duration,
    global: Option<Gcra>,
    user: Option<Gcra>,
    tool: Option<Gcra>,
    /// Per-tool limits, few: a short list.
    tool_overrides: Vec<(String, Gcra)>,
    tools: ToolNames,
    state: Mutex<State>,
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("limits", &self.limits)
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

/// The charges of one request, decided before any is written.
struct Plan<'a> {
    global: Option<u64>,
    user: Option<u64>,
    /// (bucket, new arrival time) per tool tier touched, in call order;
    /// a bucket called twice appears once with its last value. The first
    /// inline, so a single call allocates nothing.
    first_tool: Option<(&'a Arc<str>, u64)>,
    more_tools: Vec<(&'a Arc<str>, u64)>,
}

impl<'a> Plan<'a> {
    fn tool_mut(&mut self, bucket: &Arc<str>) -> Option<&mut u64> {
        match &mut self.first_tool {
            Some((b, tat)) if *b == bucket => Some(tat),
            _ => self
                .more_tools
                .iter_mut()
                .find(|(b, _)| *b == bucket)
                .map(|(_, tat)| tat),
        }
    }

    fn add_tool(&mut self, bucket: &'a Arc<str>, tat: u64) {
        if self.first_tool.is_none() {
            self.first_tool = Some((bucket, tat));
        } else {
            self.more_tools.push((bucket, tat));
        }
    }
}

impl MemoryRateLimiter {
    /// A limiter on the system clock.
    pub fn new(limits: Limits) -> Result<Self, RateLimitError> {
        limits.validate()?;
        Ok(Self::build(limits, Arc::new(SystemClock)))
    }

    /// The same limiter reading time from `clock` (a `ManualClock` in
    /// tests), with nothing tracked yet.
    #[must_use]
    pub fn clock(self, clock: impl Clock + 'static) -> Self {
        Self::build(self.limits, Arc::new(clock))
    }

    /// The tiers for `limits` (already validated) on `clock`.
    fn build(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        Self {
            start: clock.monotonic(),
            clock,
            global: limits.global.map(Gcra::of),
            user: limits.per_user.map(Gcra::of),
            tool: limits.per_tool.map(Gcra::of),
            tool_overrides: limits
                .tool_overrides
                .iter()
                .map(|(name, limit)| (name.clone(), Gcra::of(*limit)))
                .collect(),
            tools: ToolNames::new(&limits),
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every decision writes its charges after deciding: a panic cannot
        // leave a half-made decision behind, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys tracked per tier: (global, user, tool incl. overrides). Bounded
    /// by `Limits::max_tracked_keys` per tier.
    pub fn tracked_keys(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (
            usize::from(state.global.is_some()),
            state.user_keys,
            state.tool_keys,
        )
    }

    /// Nanoseconds since the limiter was built, by the clock's monotonic time.
    fn now(&self) -> u64 {
        let elapsed = self.clock.monotonic().saturating_sub(self.start);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The rule for a tool bucket: its own limit, or the per-tool tier's.
    fn tool_rule(&self, bucket: &str) -> Option<Gcra> {
        self.tool_overrides
            .iter()
            .find(|(name, _)| name == bucket)
            .map(|(_, rule)| *rule)
            .or(self.tool)
    }

    /// Decides one request by `user`, for `tool` when it is a tool call.
    pub fn check(&self, user: &UserId, tool: Option<&str>) -> Decision {
        match tool {
            Some(tool) => {
                let bucket = [self.tools.resolve(tool)];
                self.decide(user, &bucket)
            }
            None => self.decide(user, &[]),
        }
    }

    /// Decides one request by `user` that calls each of `tools` (a JSON-RPC
    /// batch; empty for a request that calls no tool), all or nothing: each
    /// call is charged to the global, user and (user, tool) tiers, and when
    /// any charge is refused none is made, so a refused request spends
    /// nothing.
    pub fn check_calls(&self, user: &UserId, tools: &[&str]) -> Decision {
        let buckets: Vec<Arc<str>> = tools.iter().map(|name| self.tools.resolve(name)).collect();
        self.decide(user, &buckets)
    }

    fn decide(&self, user: &UserId, buckets: &[Arc<str>]) -> Decision {
        let mut state = self.lock();
        let now = self.now();
        let plan = match self.plan(&mut state, user, buckets, now) {
            Ok(plan) => plan,
            Err((by, wait)) => {
                drop(state);
                let retry_after = Duration::from_nanos(wait);
                let tools = if buckets.is_empty() {
                    "-".to_owned()
                } else {
                    buckets.join(",")
                };
                tracing::info!(target: "mcp_auth::audit", user = %user, tool = %tools, denied_by = by.as_str(), retry_after_ms = retry_after.as_millis() as u64, "rate limit hit");
                return Decision::Denied { by, retry_after };
            }
        };
        self.commit(&mut state, user, plan);
        Decision::Allowed
    }

    /// Every charge of the request, decided at `now` without writing: the
    /// new arrival times, or the first tier that refuses and its wait. The
    /// tiers are judged in order (global, user, tool) call by call; a key
    /// the request would add first needs room in its tier.
    fn plan<'b>(
        &self,
        state: &mut State,
        user: &UserId,
        buckets: &'b [Arc<str>],
        now: u64,
    ) -> Result<Plan<'b>, (DeniedBy, u64)> {
        let cap = self.limits.max_tracked_keys;
        let (mut user_tat, mut first_known) = lookup(state, user, buckets.first().map(|b| &**b));
        let mut plan = Plan {
            global: state.global,
            user: None,
            first_tool: None,
            more_tools: Vec::new(),
        };
        let mut new_tools = 0;
        for call in 0..buckets.len().max(1) {
            if let Some(rule) = self.global {
                plan.global = Some(
                    rule.charge(plan.global, now)
                        .map_err(|w| (DeniedBy::Global, w))?,
                );
            }
            if let Some(rule) = self.user {
                if call == 0 && user_tat.is_none() && state.user_keys >= cap {
                    state.sweep(now);
                    (user_tat, first_known) = lookup(state, user, buckets.first().map(|b| &**b));
                    if user_tat.is_none() && state.user_keys >= cap {
                        return Err(too_many_keys(state, now));
                    }
                }
                user_tat = Some(
                    rule.charge(user_tat, now)
                        .map_err(|w| (DeniedBy::User, w))?,
                );
            }
            let Some(bucket) = buckets.get(call) else {
                continue;
            };
            let Some(rule) = self.tool_rule(bucket) else {
                continue;
            };
            let planned = plan.tool_mut(bucket).map(|tat| *tat);
            let mut tat = match (planned, call) {
                (Some(tat), _) => Some(tat),
                (None, 0) => first_known,
                (None, _) => lookup(state, user, Some(bucket)).1,
            };
            if tat.is_none() {
                if state.tool_keys + new_tools >= cap {
                    state.sweep(now);
                    tat = lookup(state, user, Some(bucket)).1;
                    if tat.is_none() && state.tool_keys + new_tools >= cap {
                        return Err(too_many_keys(state, now));
                    }
                }
                if tat.is_none() {
                    new_tools += 1;
                }
            }
            let next = rule.charge(tat, now).map_err(|w| (DeniedBy::Tool, w))?;
            match plan.tool_mut(bucket) {
                Some(slot) => *slot = next,
                None => plan.add_tool(bucket, next),
            }
        }
        plan.user = user_tat;
        Ok(plan)
    }

    /// Writes a decided plan.
    fn commit(&self, state: &mut State, user: &UserId, plan: Plan<'_>) {
        if self.global.is_some() {
            state.global = plan.global;
        }
        let mut earliest = state.no_sweep_before;
        let State {
            users,
            user_keys,
            tool_keys,
            ..
        } = state;
        let entry = match users.get_mut(user.as_str()) {
            Some(entry) => entry,
            None => users.entry(Box::from(user.as_str())).or_default(),
        };
        if self.user.is_some() {
            if entry.tat.is_none() {
                *user_keys += 1;
            }
            entry.tat = plan.user;
            if let Some(tat) = plan.user {
                earliest = earliest.min(tat);
            }
        }
        for (bucket, tat) in plan.first_tool.into_iter().chain(plan.more_tools) {
            earliest = earliest.min(tat);
            match entry.tools.iter_mut().find(|(b, _)| b == bucket) {
                Some(slot) => slot.1 = tat,
                None => {
                    entry.tools.push((Arc::clone(bucket), tat));
                    *tool_keys += 1;
                }
            }
        }
        if entry.tat.is_none() && entry.tools.is_empty() {
            users.remove(user.as_str());
        }
        state.no_sweep_before = earliest;
    }
}
