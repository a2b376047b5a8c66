//! One suite, two limiters: every case runs against the in-memory limiter
//! and, when a `redis-server` binary exists, against the Redis limiter (with
//! the same manual clock sent as client time; ignored unless run with
//! `--include-ignored`, as `scripts/test-all.sh` does).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::time::Duration;

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_ratelimit::{Decision, DeniedBy, Limit, Limits, MemoryRateLimiter, OVERFLOW_TOOL};

#[allow(dead_code, clippy::large_enum_variant)] // test-only, one per test
enum Subject {
    Memory(MemoryRateLimiter),
    #[cfg(feature = "redis")]
    Redis(
        mcp_auth_ratelimit::RedisRateLimiter,
        // What the limiter runs on (a server, a cluster), kept alive.
        Box<dyn std::any::Any + Send>,
    ),
}

impl Subject {
    async fn check(&self, user: &UserId, tool: Option<&str>) -> Decision {
        match self {
            Self::Memory(l) => l.check(user, tool),
            #[cfg(feature = "redis")]
            Self::Redis(l, _) => l.check(user, tool).await,
        }
    }

    async fn check_calls(&self, user: &UserId, tools: &[&str]) -> Decision {
        match self {
            Self::Memory(l) => l.check_calls(user, tools),
            #[cfg(feature = "redis")]
            Self::Redis(l, _) => l.check_calls(user, tools).await,
        }
    }

    async fn admitted(&self, user: &UserId, tool: Option<&str>, attempts: usize) -> usize {
        let mut n = 0;
        for _ in 0..attempts {
            if self.check(user, tool).await.is_allowed() {
                n += 1;
            }
        }
        n
    }
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn denied_by(d: Decision) -> Option<DeniedBy> {
    match d {
        Decision::Denied { by, .. } => Some(by),
        Decision::Allowed => None,
    }
}

mod cases {
    use super::*;

    pub(crate) fn limits_burst() -> Limits {
        Limits::none().per_user(Some(Limit::per_minute(60).unwrap().with_burst(3).unwrap()))
    }
    pub(crate) async fn burst_then_exact_retry_after(s: Subject, clock: ManualClock) {
        let alice = user("alice");
        assert_eq!(s.admitted(&alice, None, 3).await, 3);
        // Burst used: the next conforming time is one emission interval (1 s) away.
        match s.check(&alice, None).await {
            Decision::Denied {
                by: DeniedBy::User,
                retry_after,
            } => {
                assert_eq!(retry_after, Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_millis(999));
        assert!(!s.check(&alice, None).await.is_allowed());
        clock.advance(Duration::from_millis(1));
        assert!(s.check(&alice, None).await.is_allowed());
        assert!(!s.check(&alice, None).await.is_allowed());
        // Long idle refills the whole burst, never more.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(s.admitted(&alice, None, 10).await, 3);
        // Another user has their own budget.
        assert_eq!(s.admitted(&user("bob"), None, 10).await, 3);
    }

    pub(crate) fn limits_tiers() -> Limits {
        Limits::none()
            .global(Some(Limit::per_hour(8).unwrap()))
            .per_user(Some(Limit::per_hour(5).unwrap()))
            .per_tool(Some(Limit::per_hour(2).unwrap()))
    }
    pub(crate) async fn each_tier_denies_and_names_itself(s: Subject, _clock: ManualClock) {
        let (alice, bob) = (user("alice"), user("bob"));
        assert_eq!(s.admitted(&alice, Some("search"), 2).await, 2);
        assert_eq!(
            denied_by(s.check(&alice, Some("search")).await),
            Some(DeniedBy::Tool)
        );
        assert_eq!(s.admitted(&alice, Some("play"), 2).await, 2);
        assert_eq!(s.admitted(&alice, None, 1).await, 1);
        assert_eq!(
            denied_by(s.check(&alice, Some("queue")).await),
            Some(DeniedBy::User)
        );
        assert_eq!(s.admitted(&bob, Some("search"), 2).await, 2);
        assert_eq!(s.admitted(&bob, None, 1).await, 1);
        // 8 admitted in all: the global tier is spent.
        assert_eq!(denied_by(s.check(&bob, None).await), Some(DeniedBy::Global));
        assert_eq!(
            denied_by(s.check(&user("carol"), Some("x")).await),
            Some(DeniedBy::Global)
        );
    }

    pub(crate) fn limits_no_spend() -> Limits {
        Limits::none()
            .global(Some(Limit::per_hour(100).unwrap()))
            .per_user(Some(Limit::per_hour(5).unwrap()))
            .per_tool(Some(Limit::per_hour(2).unwrap()))
    }
    pub(crate) async fn a_denied_request_spends_no_budget(s: Subject, _clock: ManualClock) {
        let alice = user("alice");
        assert_eq!(s.admitted(&alice, Some("search"), 2).await, 2);
        // 50 denials by the tool tier must charge neither the user nor the global tier.
        for _ in 0..50 {
            assert_eq!(
                denied_by(s.check(&alice, Some("search")).await),
                Some(DeniedBy::Tool)
            );
        }
        assert_eq!(s.admitted(&alice, Some("play"), 2).await, 2);
        assert_eq!(s.admitted(&alice, Some("queue"), 2).await, 1);
        // User tier now spent; its denials must not charge the global tier either.
        for _ in 0..50 {
            assert_eq!(
                denied_by(s.check(&alice, Some("other")).await),
                Some(DeniedBy::User)
            );
        }
        // Global: 5 spent of 100, so 19 more users × 5 = 95 fit exactly.
        let mut admitted = 0;
        for i in 0..20 {
            admitted += s.admitted(&user(&format!("u{i}")), None, 5).await;
        }
        assert_eq!(admitted, 95);
    }

    pub(crate) fn limits_overrides() -> Limits {
        Limits::none()
            .per_tool(Some(Limit::per_minute(100).unwrap()))
            .tool_limit("send_email", Limit::per_hour(1).unwrap())
            .known_tools(["search", "send_email"])
    }
    pub(crate) async fn overrides_and_the_overflow_bucket(s: Subject, _clock: ManualClock) {
        let alice = user("alice");
        assert_eq!(s.admitted(&alice, Some("send_email"), 5).await, 1);
        assert_eq!(s.admitted(&alice, Some("search"), 150).await, 100);
        // Unknown, malformed and overlong names share one bucket of the default size.
        let long = "x".repeat(300);
        let mut names: Vec<String> = (0..60).map(|i| format!("made_up_{i}")).collect();
        names.extend([long, "a b".into(), OVERFLOW_TOOL.into(), String::new()]);
        let mut admitted = 0;
        for name in names.iter().cycle().take(200) {
            admitted += s.admitted(&alice, Some(name), 1).await;
        }
        assert_eq!(admitted, 100);
    }
}

use cases::*;

mod batches {
    use super::*;

    pub(crate) fn limits_batch() -> Limits {
        Limits::none()
            .per_user(Some(Limit::per_hour(6).unwrap()))
            .per_tool(Some(Limit::per_hour(2).unwrap()))
    }
    pub(crate) async fn a_batch_is_charged_all_or_nothing(s: Subject, _clock: ManualClock) {
        let alice = user("alice");
        // Two calls of one tool in one batch use both of its charges.
        assert!(
            s.check_calls(&alice, &["search", "search"])
                .await
                .is_allowed()
        );
        // search is spent: a batch with it is refused, and keeps none of
        // the charges of its other calls.
        for _ in 0..5 {
            assert_eq!(
                denied_by(s.check_calls(&alice, &["play", "queue", "search"]).await),
                Some(DeniedBy::Tool)
            );
        }
        assert_eq!(s.admitted(&alice, Some("play"), 3).await, 2);
        assert_eq!(s.admitted(&alice, Some("queue"), 3).await, 2);
        // The user tier: 2 + 2 + 2 of 6 spent by the admitted requests only.
        assert_eq!(denied_by(s.check(&alice, None).await), Some(DeniedBy::User));
        // An empty batch is one request that calls no tool.
        let bob = user("bob");
        assert!(s.check_calls(&bob, &[]).await.is_allowed());
        assert_eq!(s.admitted(&bob, None, 10).await, 5);
    }

    pub(crate) fn limits_long_batch() -> Limits {
        Limits::none()
            .per_user(Some(Limit::per_hour(100).unwrap()))
            .per_tool(Some(Limit::per_hour(30).unwrap()))
    }
    /// A batch of more charges than the short script takes (Redis: the
    /// script with per-key tables) decides the same.
    pub(crate) async fn a_long_batch_is_charged_all_or_nothing(s: Subject, _clock: ManualClock) {
        let alice = user("alice");
        let thirty = ["search"; 30];
        assert!(s.check_calls(&alice, &thirty).await.is_allowed());
        let mut mixed = vec!["play"; 29];
        mixed.push("search");
        assert_eq!(
            denied_by(s.check_calls(&alice, &mixed).await),
            Some(DeniedBy::Tool)
        );
        // Nothing of the refused batch was kept: play has its 30.
        assert!(s.check_calls(&alice, &["play"; 30]).await.is_allowed());
        // 60 of the user's 100 spent: a batch of 41 is refused by the user tier.
        let tools: Vec<String> = (0..41).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = tools.iter().map(String::as_str).collect();
        assert_eq!(
            denied_by(s.check_calls(&alice, &names).await),
            Some(DeniedBy::User)
        );
        assert!(s.check_calls(&alice, &names[..40]).await.is_allowed());
    }
}
use batches::*;

macro_rules! shared_suite {
    ($($case:ident => $limits:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let clock = ManualClock::at_unix(1_800_000_000);
                    let limiter = MemoryRateLimiter::new(super::$limits()).map(|limiter| limiter.clock(clock.clone())).unwrap();
                    super::$case(Subject::Memory(limiter), clock).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            use super::*;
            use mcp_auth_ratelimit::{RedisConfig, RedisLimiterOptions, RedisRateLimiter, TimeSource};
            use std::sync::Arc;
            $(
                #[tokio::test]
                #[ignore = "needs redis-server"]
                async fn $case() {
                    let server = mcp_auth_testkit::RedisServer::start(
                        concat!("ratelimit shared_suite redis::", stringify!($case)),
                    );
                    let clock = ManualClock::at_unix(1_800_000_000);
                    let mut options = RedisLimiterOptions::default();
                    options.time = TimeSource::Client(Arc::new(clock.clone()));
                    let redis = RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX);
                    let limiter = RedisRateLimiter::connect(redis, super::$limits(), options)
                        .await
                        .unwrap();
                    super::$case(Subject::Redis(limiter, Box::new(server)), clock).await;
                }
            )*
        }

        /// The same cases over TLS (`rediss://`, a private CA).
        #[cfg(feature = "redis")]
        mod redis_tls {
            use super::*;
            use mcp_auth_ratelimit::{RedisLimiterOptions, RedisRateLimiter, TimeSource};
            use std::sync::Arc;
            $(
                #[tokio::test]
                #[ignore = "needs redis-server"]
                async fn $case() {
                    let server = mcp_auth_testkit::RedisServer::start_tls(
                        concat!("ratelimit shared_suite redis_tls::", stringify!($case)),
                        mcp_auth_testkit::TlsOptions::default(),
                    );
                    let clock = ManualClock::at_unix(1_800_000_000);
                    let mut options = RedisLimiterOptions::default();
                    options.time = TimeSource::Client(Arc::new(clock.clone()));
                    let redis = server.config(RedisRateLimiter::DEFAULT_PREFIX);
                    let limiter = RedisRateLimiter::connect(redis, super::$limits(), options)
                        .await
                        .unwrap();
                    super::$case(Subject::Redis(limiter, Box::new(server)), clock).await;
                }
            )*
        }

        /// On a Redis Cluster of three primaries (`redis+cluster://`).
        #[cfg(feature = "redis")]
        mod redis_cluster {
            use super::*;
            use mcp_auth_ratelimit::{RedisLimiterOptions, RedisRateLimiter, TimeSource};
            use std::sync::Arc;
            $(
                #[tokio::test]
                #[ignore = "needs redis-server"]
                async fn $case() {
                    let cluster = mcp_auth_testkit::cluster::RedisCluster::start(
                        concat!("ratelimit shared_suite redis_cluster::", stringify!($case)),
                    );
                    let clock = ManualClock::at_unix(1_800_000_000);
                    let mut options = RedisLimiterOptions::default();
                    options.time = TimeSource::Client(Arc::new(clock.clone()));
                    let redis = cluster.config(RedisRateLimiter::DEFAULT_PREFIX);
                    let limiter = RedisRateLimiter::connect(redis, super::$limits(), options)
                        .await
                        .unwrap();
                    super::$case(Subject::Redis(limiter, Box::new(cluster)), clock).await;
                }
            )*
        }
    };
}

shared_suite! {
    burst_then_exact_retry_after => limits_burst,
    each_tier_denies_and_names_itself => limits_tiers,
    a_denied_request_spends_no_budget => limits_no_spend,
    overrides_and_the_overflow_bucket => limits_overrides,
    a_batch_is_charged_all_or_nothing => limits_batch,
    a_long_batch_is_charged_all_or_nothing => limits_long_batch,
}

/// The in-process limiter runs on monotonic time: a wall-clock step (NTP,
/// an operator) neither grants a burst nor starves clients.
#[test]
fn a_wall_clock_step_neither_grants_a_burst_nor_starves() {
    let clock = ManualClock::at_unix(1_800_000_000);
    let limits = Limits::none().per_user(Some(Limit::per_hour(2).unwrap()));
    let limiter = MemoryRateLimiter::new(limits)
        .map(|limiter| limiter.clock(clock.clone()))
        .unwrap();
    let alice = user("alice");
    assert!(limiter.check(&alice, None).is_allowed());
    assert!(limiter.check(&alice, None).is_allowed());
    assert!(!limiter.check(&alice, None).is_allowed());
    // The wall clock jumps a day ahead: no new budget.
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 86_400));
    assert!(!limiter.check(&alice, None).is_allowed());
    // It jumps back a day: real time still refills the budget as usual.
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 - 86_400));
    clock.advance(Duration::from_secs(30 * 60));
    assert!(limiter.check(&alice, None).is_allowed());
    assert!(!limiter.check(&alice, None).is_allowed());
}
