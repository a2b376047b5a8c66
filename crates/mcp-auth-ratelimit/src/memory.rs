//! The in-process limiter: one governor `RateLimiter` per tier, over a
//! bounded state store that can undo a charge.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Reference;
use governor::nanos::Nanos;
use governor::state::StateStore;
use mcp_auth_core::{Clock, SystemClock, UserId};

use crate::limits::{Limit, ToolNames};
use crate::{Decision, DeniedBy, Limits, RateLimitError};

/// governor's view of an `mcp_auth_core::Clock`: its monotonic time, so a
/// wall-clock step (NTP, an operator) neither grants a burst nor starves
/// clients. The limiter's state never leaves the process, so no instant in
/// it needs to mean anything outside.
#[derive(Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.monotonic())
    }
}

/// One tier's state: key → GCRA theoretical arrival time (relative to the
/// limiter's start), at most `cap` keys, and the value each key had before
/// the last charge so a charge can be undone.
struct BoundedState {
    inner: Mutex<StateInner>,
    cap: usize,
}

struct StateInner {
    map: HashMap<String, Nanos>,
    /// The value the last charged key had before it (None = absent).
    before_last: Option<Nanos>,
    /// No sweep can free anything before this time (relative nanos).
    no_sweep_before: Nanos,
}

impl BoundedState {
    fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(StateInner {
                map: HashMap::new(),
                before_last: None,
                no_sweep_before: Nanos::new(0),
            }),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, StateInner> {
        // The map is consistent between statements; a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for `key` if it is new. A key whose arrival time has passed
    /// is idle: GCRA treats it exactly like an absent key, so dropping it
    /// changes no decision. Returns how long until room frees up otherwise.
    fn ensure_room(&self, key: &str, now: Nanos) -> Result<(), Duration> {
        let mut inner = self.lock();
        if inner.map.len() < self.cap || inner.map.contains_key(key) {
            return Ok(());
        }
        if now >= inner.no_sweep_before {
            inner.map.retain(|_, tat| *tat > now);
            let earliest = inner.map.values().min().copied().unwrap_or(now);
            inner.no_sweep_before = earliest;
            if inner.map.len() < self.cap {
                return Ok(());
            }
        }
        Err(inner.no_sweep_before.duration_since(now).into())
    }

    /// The value the key of the last charge had before it (`None`: absent).
    fn take_before_last(&self) -> Option<Nanos> {
        self.lock().before_last.take()
    }

    /// Puts `key` back to `before` (`None`: absent), undoing a charge.
    fn restore(&self, key: &str, before: Option<Nanos>) {
        let mut inner = self.lock();
        match before {
            Some(previous) => {
                if let Some(tat) = inner.map.get_mut(key) {
                    *tat = previous;
                }
            }
            None => {
                inner.map.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

/// The handle governor owns; the tier keeps another to sweep and undo.
struct SharedState(Arc<BoundedState>);

impl StateStore for SharedState {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut inner = self.0.lock();
        let StateInner {
            map, before_last, ..
        } = &mut *inner;
        // One lookup on the hot path (the key is known); a new key is hashed
        // again to insert it.
        match map.get_mut(key) {
            Some(tat) => {
                let old = *tat;
                let (outcome, new) = f(Some(old))?;
                *before_last = Some(old);
                *tat = new;
                Ok(outcome)
            }
            None => {
                let (outcome, new) = f(None)?;
                *before_last = None;
                map.insert(key.clone(), new);
                Ok(outcome)
            }
        }
    }
}

type GovernorLimiter = governor::RateLimiter<
    String,
    SharedState,
    GovernorClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

struct Tier {
    limiter: GovernorLimiter,
    state: Arc<BoundedState>,
    /// Read after the limiter was built, so never earlier than governor's own
    /// start: "idle" is never judged early.
    start: Nanos,
}

impl Tier {
    fn new(limit: Limit, cap: usize, clock: &GovernorClock) -> Self {
        let state = Arc::new(BoundedState::new(cap));
        let limiter = governor::RateLimiter::new(
            limit.quota(),
            SharedState(Arc::clone(&state)),
            clock.clone(),
        );
        let start = governor::clock::Clock::now(clock);
        Self {
            limiter,
            state,
            start,
        }
    }
}

/// Global, per-user and per-(user, tool) limits for one process.
///
/// Each tier is a governor keyed `RateLimiter` (GCRA). A request is checked
/// against its tiers in the order global, user, tool, under one lock; if a
/// tier denies, the charges already made by earlier tiers are undone
/// (the state store keeps each key's previous arrival time), so a denied
/// request spends no budget anywhere. See docs/ratelimit.md.
pub struct MemoryRateLimiter {
    limits: Limits,
    clock: GovernorClock,
    global: Option<Tier>,
    user: Option<Tier>,
    tool: Option<Tier>,
    tool_overrides: HashMap<String, Tier>,
    tools: ToolNames,
    decision: Mutex<()>,
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("limits", &self.limits)
            .field("tracked_keys", &self.tracked_keys())
            .finish()
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
        let clock = GovernorClock(clock);
        let cap = limits.max_tracked_keys;
        let tier = |limit: Option<Limit>| limit.map(|l| Tier::new(l, cap, &clock));
        Self {
            global: tier(limits.global),
            user: tier(limits.per_user),
            tool: tier(limits.per_tool),
            tool_overrides: limits
                .tool_overrides
                .iter()
                .map(|(name, limit)| (name.clone(), Tier::new(*limit, cap, &clock)))
                .collect(),
            tools: ToolNames::new(&limits),
            limits,
            clock,
            decision: Mutex::new(()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Keys tracked per tier: (global, user, tool incl. overrides). Bounded
    /// by `Limits::max_tracked_keys` per tier.
    pub fn tracked_keys(&self) -> (usize, usize, usize) {
        let len = |t: &Option<Tier>| t.as_ref().map_or(0, |t| t.limiter_state_len());
        (
            len(&self.global),
            len(&self.user),
            len(&self.tool)
                + self
                    .tool_overrides
                    .values()
                    .map(Tier::limiter_state_len)
                    .sum::<usize>(),
        )
    }

    /// Decides one request by `user`, for `tool` when it is a tool call.
    pub fn check(&self, user: &UserId, tool: Option<&str>) -> Decision {
        match tool {
            Some(tool) => self.check_calls(user, &[tool]),
            None => self.check_calls(user, &[]),
        }
    }

    /// Decides one request by `user` that calls each of `tools` (a JSON-RPC
    /// batch; empty for a request that calls no tool), all or nothing: each
    /// call is charged to the global, user and (user, tool) tiers, and when
    /// any charge is refused every charge already made for this request is
    /// undone, so a refused request spends nothing.
    pub fn check_calls(&self, user: &UserId, tools: &[&str]) -> Decision {
        match tools {
            // The common case: no heap allocation beyond the keys.
            [] | [_] => {
                let bucket = tools.first().map(|name| self.tools.resolve(name));
                let plan = self.plan(user, bucket.as_ref());
                let mut charged = [None, None, None];
                self.settle(user, &plan, &mut charged, || {
                    bucket.as_deref().unwrap_or("-").to_owned()
                })
            }
            _ => {
                let buckets: Vec<Arc<str>> =
                    tools.iter().map(|name| self.tools.resolve(name)).collect();
                let plan: Vec<_> = buckets
                    .iter()
                    .flat_map(|bucket| self.plan(user, Some(bucket)))
                    .collect();
                let mut charged = vec![None; plan.len()];
                self.settle(user, &plan, &mut charged, || buckets.join(","))
            }
        }
    }

    /// The charges one call makes, in order: global, user, (user, tool).
    /// Keys are the user id itself (no encoding: these maps never leave the
    /// process). A user id has no control characters, so "user \n bucket"
    /// names each (user, tool) pair exactly once.
    fn plan(&self, user: &UserId, bucket: Option<&Arc<str>>) -> [Charge<'_>; 3] {
        let tool = bucket.and_then(|bucket| match self.tool_overrides.get(&**bucket) {
            Some(tier) => Some((tier, user.as_str().to_owned(), DeniedBy::Tool)),
            None => self
                .tool
                .as_ref()
                .map(|tier| (tier, format!("{}\n{bucket}", user.as_str()), DeniedBy::Tool)),
        });
        [
            self.global
                .as_ref()
                .map(|t| (t, String::new(), DeniedBy::Global)),
            self.user
                .as_ref()
                .map(|t| (t, user.as_str().to_owned(), DeniedBy::User)),
            tool,
        ]
    }

    /// Makes the charges of `plan` under one lock, at one instant; on a
    /// refusal undoes those already made. `charged` has `plan`'s length.
    fn settle<'p>(
        &self,
        user: &UserId,
        plan: &'p [Charge<'p>],
        charged: &mut [Option<(&'p Tier, &'p str, Option<Nanos>)>],
        tools: impl FnOnce() -> String,
    ) -> Decision {
        let decision_guard = self.decision.lock().unwrap_or_else(|p| p.into_inner());
        // Read once for every tier: the tiers judge the same instant.
        let now = governor::clock::Clock::now(&self.clock);
        let mut denial = None;
        for (slot, (tier, key, by)) in plan
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
        {
            if let Err(retry_after) = tier
                .limiter_state()
                .ensure_room(key, now.duration_since(tier.start))
            {
                denial = Some((DeniedBy::TooManyKeys, retry_after));
                break;
            }
            match tier.limiter.check_key(key) {
                Ok(_) => {
                    charged[slot] =
                        Some((*tier, key.as_str(), tier.limiter_state().take_before_last()));
                }
                Err(not_until) => {
                    let retry = not_until.wait_time_from(now);
                    denial = Some((*by, retry));
                    break;
                }
            }
        }
        let Some((by, retry_after)) = denial else {
            return Decision::Allowed;
        };
        // Undo in reverse order, so a key charged twice ends at the value
        // it had before the first charge.
        for (tier, key, before) in charged.iter().rev().flatten() {
            tier.limiter_state().restore(key, *before);
        }
        drop(decision_guard);
        tracing::info!(target: "mcp_auth::audit", user = %user, tool = %tools(), denied_by = by.as_str(), retry_after_ms = retry_after.as_millis() as u64, "rate limit hit");
        Decision::Denied { by, retry_after }
    }
}

/// One planned charge: the tier, the key, and who refuses if it does.
type Charge<'a> = Option<(&'a Tier, String, DeniedBy)>;

impl Tier {
    fn limiter_state(&self) -> &BoundedState {
        &self.state
    }

    fn limiter_state_len(&self) -> usize {
        self.limiter_state().len()
    }
}
