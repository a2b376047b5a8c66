//! The self-refreshing key-set cache.
//!
//! ```text
//!            fetch ok                    now ≥ fresh_until            now ≥ usable_until
//!   Empty ───────────▶ Fresh ─────────────────────────▶ Stale ─────────────────────────▶ Failed
//!     ▲  fetch failed    │  ▲   refresh ok (background)   │  serves last good set        │ no keys served;
//!     └──(backoff)───────┘  └─────────────────────────────┘  while refreshing             │ inline refetch
//!                                                                                        ▼ after backoff
//! ```
//!
//! * A bad response (error status, garbage, an empty or invalid key set)
//!   never replaces a good key set.
//! * An unknown `kid` triggers at most one refetch per cooldown period, and
//!   concurrent requests share one fetch (single flight). Unknown kids are not
//!   remembered, so a flood of random kids costs no memory and no fetches.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use mcp_auth_core::{Clock, SystemClock};

use crate::error::{FetchError, ValidationError};
use crate::fetch::{DEFAULT_MAX_RESPONSE, default_client, fetch};
use crate::keys::KeySet;
use mcp_auth_http::HttpClient;

/// Cache timing. Defaults in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Freshness when the response has no `Cache-Control: max-age` (1 h).
    pub default_ttl: Duration,
    /// Lower bound on `max-age` (60 s): a `no-store` endpoint is not refetched per request.
    pub min_ttl: Duration,
    /// Upper bound on `max-age` (24 h): key removals are noticed within a day.
    pub max_ttl: Duration,
    /// Refresh in the background this long before the set goes stale (5 min,
    /// capped at half the TTL).
    pub refresh_ahead: Duration,
    /// How long past freshness the last good set keeps serving while the
    /// endpoint fails (6 h).
    pub max_staleness: Duration,
    /// An unknown `kid` causes a refetch only if the last fetch is older than
    /// this (60 s).
    pub unknown_kid_cooldown: Duration,
    /// Minimum interval between attempts after a failed fetch (10 s).
    pub failure_backoff: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(3600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refresh_ahead: Duration::from_secs(300),
            max_staleness: Duration::from_secs(6 * 3600),
            unknown_kid_cooldown: Duration::from_secs(60),
            failure_backoff: Duration::from_secs(10),
        }
    }
}

/// Where the cache is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheState {
    /// No key set yet (never fetched successfully).
    Empty,
    /// A key set within its TTL.
    Fresh,
    /// Past its TTL but within the maximum staleness: still served while a
    /// refresh is attempted.
    Stale,
    /// Past the maximum staleness: no keys are served until a fetch succeeds.
    Failed,
}

#[derive(Debug)]
struct State {
    keys: Option<Arc<KeySet>>,
    fresh_until: SystemTime,
    usable_until: SystemTime,
    /// Incremented on every fetch attempt (success or failure).
    attempts: u64,
    successes: u64,
    last_attempt: Option<SystemTime>,
    last_failure: Option<(SystemTime, FetchError)>,
}

#[derive(Debug)]
struct Inner {
    jwks_uri: String,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
    state: RwLock<State>,
    flight: tokio::sync::Mutex<()>,
}

/// A cached, self-refreshing JWKS. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

/// Builds a [`JwksCache`].
#[derive(Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct JwksCacheBuilder {
    jwks_uri: String,
    http: Option<Arc<dyn HttpClient>>,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
}

impl JwksCacheBuilder {
    /// Fetches through `http` instead of the default client
    /// ([`crate::fetch::default_client`]: 5 s, 256 KiB).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Uses `clock` for freshness decisions (tests use a manual clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Overrides the timing.
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the cache. Nothing is fetched until the first validation or
    /// [`JwksCache::refresh`].
    pub fn build(self) -> Result<JwksCache, FetchError> {
        crate::fetch::check_url(&self.jwks_uri)?;
        let http = match self.http {
            Some(http) => http,
            None => default_client()?,
        };
        let epoch = SystemTime::UNIX_EPOCH;
        Ok(JwksCache {
            inner: Arc::new(Inner {
                jwks_uri: self.jwks_uri,
                http,
                clock: self.clock,
                config: self.config,
                state: RwLock::new(State {
                    keys: None,
                    fresh_until: epoch,
                    usable_until: epoch,
                    attempts: 0,
                    successes: 0,
                    last_attempt: None,
                    last_failure: None,
                }),
                flight: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl JwksCache {
    /// Starts building a cache for `jwks_uri`.
    pub fn builder(jwks_uri: impl Into<String>) -> JwksCacheBuilder {
        JwksCacheBuilder {
            jwks_uri: jwks_uri.into(),
            http: None,
            clock: Arc::new(SystemClock),
            config: CacheConfig::default(),
        }
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// The current state.
    pub fn state(&self) -> CacheState {
        let now = self.inner.clock.now();
        let state = self.read();
        match &state.keys {
            None => CacheState::Empty,
            Some(_) if now < state.fresh_until => CacheState::Fresh,
            Some(_) if now < state.usable_until => CacheState::Stale,
            Some(_) => CacheState::Failed,
        }
    }

    /// How many fetches have been attempted (for tests and metrics).
    pub fn fetch_attempts(&self) -> u64 {
        self.read().attempts
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The key set to verify a token with `kid`, fetching or refetching as
    /// the state machine allows.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, ValidationError> {
        let now = self.inner.clock.now();
        let (keys, state, attempts) = {
            let s = self.read();
            let state = match &s.keys {
                None => CacheState::Empty,
                Some(_) if now < s.fresh_until => CacheState::Fresh,
                Some(_) if now < s.usable_until => CacheState::Stale,
                Some(_) => CacheState::Failed,
            };
            let refresh_due = s.keys.is_some()
                && now + self.refresh_ahead(&s) >= s.fresh_until
                && !self.backing_off(&s, now);
            if refresh_due && state != CacheState::Failed {
                self.spawn_refresh();
            }
            (s.keys.clone(), state, s.attempts)
        };
        let keys = match (keys, state) {
            (Some(keys), CacheState::Fresh | CacheState::Stale) => keys,
            _ => self.refresh_shared(attempts).await?,
        };
        match kid {
            Some(kid) if !keys.contains_kid(kid) => {
                self.refetch_for_unknown_kid(keys, attempts).await
            }
            _ => Ok(keys),
        }
    }

    fn refresh_ahead(&self, state: &State) -> Duration {
        let ttl = state
            .fresh_until
            .duration_since(state.last_attempt.unwrap_or(state.fresh_until))
            .unwrap_or_default();
        self.inner.config.refresh_ahead.min(ttl / 2)
    }

    fn backing_off(&self, state: &State, now: SystemTime) -> bool {
        state.last_failure.as_ref().is_some_and(|(at, _)| {
            now.duration_since(*at).unwrap_or_default() < self.inner.config.failure_backoff
        })
    }

    async fn refetch_for_unknown_kid(
        &self,
        current: Arc<KeySet>,
        attempts_seen: u64,
    ) -> Result<Arc<KeySet>, ValidationError> {
        let now = self.inner.clock.now();
        {
            // The cooldown runs from the last fetch of any kind: a set fetched
            // moments ago is as current as a refetch would be.
            let s = self.read();
            let cooling = s.last_attempt.is_some_and(|at| {
                now.duration_since(at).unwrap_or_default() < self.inner.config.unknown_kid_cooldown
            });
            if cooling || self.backing_off(&s, now) {
                return Ok(current);
            }
        }
        match self.refresh_shared(attempts_seen).await {
            Ok(keys) => Ok(keys),
            // The refetch failed, but the current (good) set still answers.
            Err(_) => Ok(current),
        }
    }

    /// Fetches unless another caller fetched since `attempts_seen` (single
    /// flight: callers queue on one lock and reuse the result).
    async fn refresh_shared(&self, attempts_seen: u64) -> Result<Arc<KeySet>, ValidationError> {
        let _flight = self.inner.flight.lock().await;
        let now = self.inner.clock.now();
        {
            let s = self.read();
            if s.attempts != attempts_seen || self.backing_off(&s, now) {
                return self.usable_keys(&s, now);
            }
        }
        self.fetch_now().await
    }

    fn usable_keys(&self, s: &State, now: SystemTime) -> Result<Arc<KeySet>, ValidationError> {
        match &s.keys {
            Some(keys) if now < s.usable_until => Ok(keys.clone()),
            _ => Err(ValidationError::KeysUnavailable(
                s.last_failure.as_ref().map(|(_, why)| why.clone()),
            )),
        }
    }

    /// Fetches now; must be called with the flight lock held.
    async fn fetch_now(&self) -> Result<Arc<KeySet>, ValidationError> {
        let started = self.inner.clock.now();
        {
            let mut s = self.write();
            s.attempts += 1;
            s.last_attempt = Some(started);
        }
        let fetched = fetch(
            self.inner.http.as_ref(),
            &self.inner.jwks_uri,
            DEFAULT_MAX_RESPONSE,
        )
        .await;
        let result = match fetched {
            Ok(fetched) => KeySet::from_jwks(&fetched.body)
                .map(|keys| (keys, fetched.max_age))
                .map_err(|error| FetchError::UnusableKeySet {
                    url: self.inner.jwks_uri.clone(),
                    error,
                }),
            Err(e) => Err(e),
        };
        let now = self.inner.clock.now();
        let mut s = self.write();
        match result {
            Ok((keys, max_age)) => {
                let c = &self.inner.config;
                let ttl = max_age.unwrap_or(c.default_ttl).clamp(c.min_ttl, c.max_ttl);
                let keys = Arc::new(keys);
                s.keys = Some(keys.clone());
                s.fresh_until = now + ttl;
                s.usable_until = now + ttl + c.max_staleness;
                s.successes += 1;
                s.last_failure = None;
                tracing::debug!(uri = %self.inner.jwks_uri, keys = keys.keys().len(), ttl = ?ttl, "JWKS refreshed");
                Ok(keys)
            }
            Err(why) => {
                tracing::warn!(uri = %self.inner.jwks_uri, error = %why, "JWKS fetch failed; keeping the last good key set");
                s.last_failure = Some((now, why));
                self.usable_keys(&s, now)
            }
        }
    }

    /// Fetches the key set now (single flight), e.g. at start-up to log
    /// problems early. A failure leaves any previous good set in place.
    pub async fn refresh(&self) -> Result<(), ValidationError> {
        let attempts = self.read().attempts;
        self.refresh_shared(attempts).await.map(|_| ())
    }

    /// Refreshes if the set is due (within `refresh_ahead` of going stale, or
    /// stale, or empty) and not backing off after a failure. What the
    /// background task runs on every tick.
    pub async fn refresh_if_due(&self) {
        let now = self.inner.clock.now();
        let due = {
            let s = self.read();
            !self.backing_off(&s, now)
                && (s.keys.is_none() || now + self.refresh_ahead(&s) >= s.fresh_until)
        };
        if due {
            let _ = self.refresh().await;
        }
    }

    fn spawn_refresh(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.clone();
        handle.spawn(async move {
            // Skip if a fetch is already in flight.
            let Ok(_flight) = cache.inner.flight.try_lock() else {
                return;
            };
            let _ = cache.fetch_now().await;
        });
    }

    /// Spawns a task that calls [`JwksCache::refresh_if_due`] every `tick`.
    /// The task holds only a weak reference and ends when the cache is dropped.
    pub fn spawn_background_refresh(&self, tick: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                JwksCache { inner }.refresh_if_due().await;
            }
        })
    }
}
