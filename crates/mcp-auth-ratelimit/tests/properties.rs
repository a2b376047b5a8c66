//! Limiter math and memory bounds for the in-memory limiter.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::time::Duration;

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_ratelimit::{Decision, DeniedBy, Limit, Limits, MemoryRateLimiter};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any sequence of request times, each tier admits at most
    /// `burst + elapsed / T` requests in any window [t_i, t_j] between two of
    /// its admitted requests (the GCRA guarantee), per key.
    #[test]
    fn each_tier_admits_at_most_burst_plus_rate_times_elapsed(
        steps in proptest::collection::vec((0u64..4_000, 0usize..3, 0usize..3), 1..250),
        global in 3u32..40, per_user in 2u32..20, per_tool in 1u32..10,
        burst_g in 1u32..10, burst_u in 1u32..6, burst_t in 1u32..4,
    ) {
        let g = Limit::per_minute(global).unwrap().with_burst(burst_g).unwrap();
        let u = Limit::per_minute(per_user).unwrap().with_burst(burst_u).unwrap();
        let t = Limit::per_minute(per_tool).unwrap().with_burst(burst_t).unwrap();
        let clock = ManualClock::at_unix(1_800_000_000);
        let limiter = MemoryRateLimiter::new(Limits::none().global(Some(g)).per_user(Some(u)).per_tool(Some(t))).map(|limiter| limiter.clock(clock.clone())).unwrap();
        let users: Vec<UserId> = (0..3).map(|i| UserId::new(format!("u{i}")).unwrap()).collect();
        let tools = ["a", "b", "c"];

        let mut elapsed = Duration::ZERO;
        // Admitted request times, per key of each tier.
        let mut admitted: std::collections::HashMap<String, Vec<Duration>> = Default::default();
        for (advance_ms, ui, ti) in steps {
            clock.advance(Duration::from_millis(advance_ms));
            elapsed += Duration::from_millis(advance_ms);
            let decision = limiter.check(&users[ui], Some(tools[ti]));
            if decision.is_allowed() {
                admitted.entry("g".into()).or_default().push(elapsed);
                admitted.entry(format!("u{ui}")).or_default().push(elapsed);
                admitted.entry(format!("t{ui}{ti}")).or_default().push(elapsed);
            } else if let Decision::Denied { retry_after, by } = decision {
                prop_assert!(matches!(by, DeniedBy::Global | DeniedBy::User | DeniedBy::Tool));
                prop_assert!(retry_after > Duration::ZERO);
            }
        }
        for (key, times) in &admitted {
            let limit = match key.as_bytes()[0] { b'g' => g, b'u' => u, _ => t };
            for i in 0..times.len() {
                for j in i..times.len() {
                    let window = times[j] - times[i];
                    let bound = u128::from(limit.burst())
                        + window.as_micros() / limit.emission_interval().as_micros();
                    prop_assert!(
                        (j - i + 1) as u128 <= bound,
                        "{key}: {} admitted in {:?}, bound {}", j - i + 1, window, bound
                    );
                }
            }
        }
    }

    /// A denial comes with a Retry-After that is exact: one microsecond
    /// before it the same request is still denied, at it admitted.
    #[test]
    fn retry_after_is_exact(count in 1u32..50, burst in 1u32..5, extra in 1usize..5) {
        let clock = ManualClock::at_unix(1_800_000_000);
        let limit = Limit::per_minute(count).unwrap().with_burst(burst).unwrap();
        let limiter = MemoryRateLimiter::new(Limits::none().per_user(Some(limit))).map(|limiter| limiter.clock(clock.clone())).unwrap();
        let alice = UserId::new("alice").unwrap();
        for _ in 0..burst { prop_assert!(limiter.check(&alice, None).is_allowed()); }
        for _ in 0..extra {
            let Decision::Denied { retry_after, .. } = limiter.check(&alice, None) else {
                return Err(TestCaseError::fail("expected a denial"));
            };
            clock.advance(retry_after - Duration::from_micros(1));
            prop_assert!(!limiter.check(&alice, None).is_allowed());
            clock.advance(Duration::from_micros(1));
            prop_assert!(limiter.check(&alice, None).is_allowed());
        }
    }
}

#[test]
fn memory_stays_bounded_under_a_flood_of_distinct_users_and_tools() {
    let clock = ManualClock::at_unix(1_800_000_000);
    let limits = Limits::none()
        .per_user(Some(Limit::per_minute(60).unwrap()))
        .per_tool(Some(Limit::per_minute(60).unwrap()))
        .max_tracked_keys(1_000)
        .max_distinct_tools(16);
    let limiter = MemoryRateLimiter::new(limits)
        .map(|limiter| limiter.clock(clock.clone()))
        .unwrap();
    let mut too_many = 0;
    for i in 0..50_000 {
        let user = UserId::new(format!("flood-{i}")).unwrap();
        let tool = format!("tool-{i}");
        match limiter.check(&user, Some(&tool)) {
            Decision::Allowed => {}
            Decision::Denied {
                by: DeniedBy::TooManyKeys,
                retry_after,
            } => {
                too_many += 1;
                // Room frees when the oldest entry goes idle: one emission interval.
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        let (_, users, tools) = limiter.tracked_keys();
        assert!(users <= 1_000 && tools <= 1_000, "{users} {tools}");
    }
    assert_eq!(too_many, 49_000);
    // Once the tracked keys are idle they make room again, with nothing lost.
    clock.advance(Duration::from_secs(1));
    let late = UserId::new("late").unwrap();
    assert!(limiter.check(&late, Some("tool-1")).is_allowed());
    let (_, users, tools) = limiter.tracked_keys();
    assert!(users <= 1_000 && tools <= 1_000);
}

#[test]
fn a_tracked_user_is_never_forgotten_while_not_idle() {
    let clock = ManualClock::at_unix(1_800_000_000);
    let limits = Limits::none()
        .per_user(Some(Limit::per_hour(2).unwrap()))
        .max_tracked_keys(10);
    let limiter = MemoryRateLimiter::new(limits)
        .map(|limiter| limiter.clock(clock.clone()))
        .unwrap();
    let alice = UserId::new("alice").unwrap();
    assert!(limiter.check(&alice, None).is_allowed());
    assert!(limiter.check(&alice, None).is_allowed());
    for i in 0..1000 {
        clock.advance(Duration::from_millis(10));
        let _ = limiter.check(&UserId::new(format!("f{i}")).unwrap(), None);
    }
    // Alice's state survived the flood: she is still limited.
    assert!(!limiter.check(&alice, None).is_allowed());
}
