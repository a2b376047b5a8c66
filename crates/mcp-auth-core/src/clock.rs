use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// Every expiry decision in the `mcp-auth` crates reads the time through this
/// trait, so tests can move time with [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

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
}

/// A clock that only moves when told to. Clones share the same time, so a
/// test can keep one handle and give another to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch.
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(secs.saturating_mul(1_000_000_000))),
        }
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Self {
        let clock = Self::at_unix(0);
        clock.set(SystemTime::now());
        clock
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(add))
            })
            .ok();
    }

    /// Sets the clock to `at` (times before the epoch clamp to the epoch).
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
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
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
    fn system_clock_is_after_2024() {
        assert!(SystemClock.unix_seconds() > 1_700_000_000);
    }
}
