//! Session policy: timeouts, per-user limits and data size.

use std::num::NonZeroU32;
use std::time::Duration;

use mcp_auth_core::ConfigProblem;

use crate::SessionError;

/// What happens when a user who already has the maximum number of sessions
/// signs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserLimitPolicy {
    /// Revoke the user's oldest sessions (by creation time) to make room.
    /// The default: a user who lost a device can still sign in, and the
    /// number of live sessions stays bounded.
    #[default]
    EvictOldest,
    /// Refuse the new session with [`SessionError::UserLimitReached`].
    Refuse,
}

/// Timeouts as the store applies them, in whole seconds.
///
/// A session is live at time `now` when
/// `now < last_seen + idle` **and** `now < created + absolute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Idle timeout in seconds (≥ 1).
    pub idle_secs: u64,
    /// Absolute timeout in seconds (≥ idle).
    pub absolute_secs: u64,
}

impl Timeouts {
    /// Whether a session created at `created` and last seen at `last_seen`
    /// (unix seconds) is live at `now`.
    pub fn is_live(&self, created: u64, last_seen: u64, now: u64) -> bool {
        now < last_seen.saturating_add(self.idle_secs)
            && now < created.saturating_add(self.absolute_secs)
    }

    /// Unix second at which the session stops being live.
    pub fn expires_at(&self, created: u64, last_seen: u64) -> u64 {
        last_seen
            .saturating_add(self.idle_secs)
            .min(created.saturating_add(self.absolute_secs))
    }
}

/// Session policy. Defaults follow OWASP ASVS v4 §3.3 (see docs/session.md):
///
/// | setting | default |
/// |---|---|
/// | idle timeout | 1 hour |
/// | absolute timeout | 24 hours |
/// | sessions per user | 10 |
/// | when over the limit | evict the oldest |
/// | serialized data cap | 16 KiB |
#[derive(Debug, Clone)]
pub struct SessionConfig {
    idle_timeout: Duration,
    absolute_timeout: Duration,
    max_sessions_per_user: Option<NonZeroU32>,
    on_user_limit: UserLimitPolicy,
    max_data_bytes: usize,
}

/// Longest absolute timeout accepted (one year).
pub const MAX_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);
/// Largest data cap accepted (1 MiB).
pub const MAX_DATA_BYTES: usize = 1 << 20;

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(3600),
            absolute_timeout: Duration::from_secs(24 * 3600),
            max_sessions_per_user: NonZeroU32::new(10),
            on_user_limit: UserLimitPolicy::EvictOldest,
            max_data_bytes: 16 * 1024,
        }
    }
}

impl SessionConfig {
    /// Sessions unused for this long expire (whole seconds; default 1 hour).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sessions expire this long after creation however active (default 24 hours).
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// At most this many live sessions per user (default 10); `None` for no limit.
    pub fn max_sessions_per_user(mut self, max: Option<NonZeroU32>) -> Self {
        self.max_sessions_per_user = max;
        self
    }

    /// What to do when the per-user limit is reached (default: evict the oldest).
    pub fn on_user_limit(mut self, policy: UserLimitPolicy) -> Self {
        self.on_user_limit = policy;
        self
    }

    /// Cap on the serialized (JSON) size of session data (default 16 KiB).
    pub fn max_data_bytes(mut self, max: usize) -> Self {
        self.max_data_bytes = max;
        self
    }

    /// The idle timeout.
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
    /// The absolute timeout.
    pub fn get_absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }
    /// The per-user session limit.
    pub fn get_max_sessions_per_user(&self) -> Option<NonZeroU32> {
        self.max_sessions_per_user
    }
    /// The per-user limit policy.
    pub fn get_on_user_limit(&self) -> UserLimitPolicy {
        self.on_user_limit
    }
    /// The data cap.
    pub fn get_max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    /// The timeouts in the form stores apply them.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle_secs: self.idle_timeout.as_secs(),
            absolute_secs: self.absolute_timeout.as_secs(),
        }
    }

    /// Checks the configuration; [`SessionManager::new`](crate::SessionManager::new) calls this.
    pub fn validate(&self) -> Result<(), SessionError> {
        let bad = |setting: &'static str, reason: &'static str| {
            Err(SessionError::Config(ConfigProblem::new(setting, reason)))
        };
        if self.idle_timeout.as_secs() == 0 {
            return bad("idle_timeout", "must be at least one second");
        }
        if self.absolute_timeout < self.idle_timeout {
            return bad("absolute_timeout", "must be at least the idle timeout");
        }
        if self.absolute_timeout > MAX_ABSOLUTE_TIMEOUT {
            return bad("absolute_timeout", "must be at most one year");
        }
        if self.max_data_bytes == 0 || self.max_data_bytes > MAX_DATA_BYTES {
            return bad("max_data_bytes", "must be between 1 byte and 1 MiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_boundaries() {
        let t = Timeouts {
            idle_secs: 10,
            absolute_secs: 100,
        };
        assert!(t.is_live(0, 0, 9));
        assert!(!t.is_live(0, 0, 10));
        assert!(t.is_live(0, 95, 99));
        assert!(!t.is_live(0, 95, 100));
        assert_eq!(t.expires_at(0, 95), 100);
        assert_eq!(t.expires_at(0, 50), 60);
        assert!(!t.is_live(u64::MAX - 1, u64::MAX - 1, u64::MAX));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(SessionConfig::default().validate().is_ok());
        for config in [
            SessionConfig::default().idle_timeout(Duration::from_millis(500)),
            SessionConfig::default()
                .idle_timeout(Duration::from_secs(7200))
                .absolute_timeout(Duration::from_secs(3600)),
            SessionConfig::default().absolute_timeout(MAX_ABSOLUTE_TIMEOUT * 2),
            SessionConfig::default().max_data_bytes(0),
            SessionConfig::default().max_data_bytes(MAX_DATA_BYTES + 1),
        ] {
            assert!(
                matches!(config.validate(), Err(SessionError::Config(_))),
                "{config:?}"
            );
        }
    }
}
