use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time: the wall clock, and a monotonic one.
///
/// Every expiry decision in the `mcp-auth` crates reads the time through this
/// trait, so tests can move time with [`ManualClock`] instead of sleeping.
///
/// Use [`Clock::now`] for instants that mean something outside the process
/// (a token's `exp`, a session's absolute lifetime, a time stored in Redis)
/// and [`Clock::monotonic`] for durations measured inside one process (rate
/// limits): the wall clock can jump when NTP or an operator sets it, the
/// monotonic one never goes back.
pub trait Clock: Send + Sync + Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Time elapsed since a fixed, arbitrary origin of this clock; never
    /// decreases, and does not follow changes to the wall clock.
    fn monotonic(&self) -> Duration;

    /// The current time as whole seconds since the Unix epoch (0 for times
    /// before the epoch).
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        ORIGIN.elapsed()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a
/// test can keep one handle and give another to the code under test.
///
/// [`ManualClock::advance`] moves both the wall clock and the monotonic one;
/// [`ManualClock::set`] moves only the wall clock, as NTP or an operator
/// setting the system time would.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Wall clock: nanoseconds since the Unix epoch.
    nanos: Arc<AtomicU64>,
    /// Monotonic clock: nanoseconds since the clock was made.
    elapsed: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(secs.saturating_mul(1_000_000_000))),
            elapsed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Self {
        let clock = Self::at_unix(0);
        clock.set(SystemTime::now());
        clock
    }

    /// Moves the clock forward by `by` (wall and monotonic time alike).
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        for counter in [&self.nanos, &self.elapsed] {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_add(add))
                })
                .ok();
        }
    }

    /// Sets the wall clock to `at` (times before the epoch clamp to the
    /// epoch); the monotonic clock does not move.
    pub fn set(&self, at: SystemTime) {
        let nanos = at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn monotonic(&self) -> Duration {
        (**self).monotonic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::at_unix(100);
        let other = clock.clone();
        assert_eq!(clock.unix_seconds(), 100);
        other.advance(Duration::from_millis(2500));
        assert_eq!(clock.unix_seconds(), 102);
        assert_eq!(
            clock.now(),
            UNIX_EPOCH + Duration::from_millis(102_500),
            "sub-second precision is kept"
        );
        clock.set(UNIX_EPOCH + Duration::from_secs(7));
        assert_eq!(other.unix_seconds(), 7);
    }

    #[test]
    fn manual_clock_saturates_instead_of_overflowing() {
        let clock = ManualClock::at_unix(u64::MAX);
        clock.advance(Duration::from_secs(u64::MAX));
        assert!(clock.unix_seconds() >= 18_446_744_073);
    }

    #[test]
    fn setting_the_wall_clock_leaves_the_monotonic_clock_alone() {
        let clock = ManualClock::at_unix(1_000);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.monotonic(), Duration::from_secs(5));
        clock.set(UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(clock.monotonic(), Duration::from_secs(5));
        clock.set(UNIX_EPOCH + Duration::from_secs(10_000));
        assert_eq!(clock.monotonic(), Duration::from_secs(5));
        let system = SystemClock;
        let before = system.monotonic();
        assert!(system.monotonic() >= before);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.unix_seconds() > 1_700_000_000);
    }
}
