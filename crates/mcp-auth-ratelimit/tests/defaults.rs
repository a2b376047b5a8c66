//! The defaults against the traffic they are meant for: many users, each
//! with an assistant that sends bursts of tool calls. Nobody in normal use
//! is refused; one client far beyond normal use is.

use std::time::Duration;

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_ratelimit::{Decision, DeniedBy, Limits, MemoryRateLimiter};

fn limiter(clock: &ManualClock) -> MemoryRateLimiter {
    MemoryRateLimiter::new(Limits::default())
        .expect("the defaults are valid")
        .clock(clock.clone())
}

#[test]
fn the_defaults_have_no_global_cap_so_many_users_at_once_are_all_served() {
    // The old default (10,000 an hour for the whole server) refused all but
    // 105 of 150,389 requests in a 3 s load test. 20,000 users sending 5
    // requests each in the same second are all served now.
    let clock = ManualClock::at_unix(1_800_000_000);
    let limiter = limiter(&clock);
    let users: Vec<UserId> = (0..20_000)
        .map(|i| UserId::new(format!("user-{i}")).unwrap())
        .collect();
    let mut refused = 0;
    for round in 0..5 {
        for user in &users {
            let tool = ["search", "play"][round % 2];
            if !limiter.check(user, Some(tool)).is_allowed() {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 0);
}

#[test]
fn an_assistants_bursts_of_tool_calls_are_never_refused() {
    // 300 users over 10 minutes; every 15 s each one's assistant sends a
    // burst: a tools/list, then 12 calls over 4 tools (3 each), then a
    // notification. That is 56 requests a minute per user and 12 calls a
    // minute per tool: heavy use, well inside the defaults.
    let clock = ManualClock::at_unix(1_800_000_000);
    let limiter = limiter(&clock);
    let users: Vec<UserId> = (0..300)
        .map(|i| UserId::new(format!("user-{i}")).unwrap())
        .collect();
    let tools = ["search", "play", "queue", "playlists"];
    let mut served = 0u64;
    for _tick in 0..40 {
        for user in &users {
            assert!(limiter.check(user, None).is_allowed(), "tools/list");
            for tool in tools {
                for _ in 0..3 {
                    let decision = limiter.check(user, Some(tool));
                    assert!(decision.is_allowed(), "{user:?} {tool}: {decision:?}");
                    served += 1;
                }
            }
            assert!(limiter.check(user, None).is_allowed(), "notification");
        }
        clock.advance(Duration::from_secs(15));
    }
    assert_eq!(served, 300 * 40 * 12);

    // One burst of 50 parallel calls of one tool (an assistant fanning out
    // a search) also passes.
    let burst_user = UserId::new("fan-out").unwrap();
    for _ in 0..50 {
        assert!(limiter.check(&burst_user, Some("search")).is_allowed());
    }
}

#[test]
fn one_client_far_beyond_normal_use_is_held_to_its_share() {
    let clock = ManualClock::at_unix(1_800_000_000);
    let limiter = limiter(&clock);
    let user = UserId::new("runaway-loop").unwrap();
    // 500 requests in one instant, spread over many tools: the user tier
    // admits its burst of 120, then refuses.
    let admitted = (0..500)
        .filter(|i| {
            limiter
                .check(&user, Some(&format!("tool-{}", i % 50)))
                .is_allowed()
        })
        .count();
    assert_eq!(admitted, 120);
    // 100 calls of one tool: the tool tier stops it at 60.
    let other = UserId::new("one-tool-loop").unwrap();
    let admitted = (0..100)
        .take_while(|_| limiter.check(&other, Some("search")).is_allowed())
        .count();
    assert_eq!(admitted, 60);
    assert!(matches!(
        limiter.check(&other, Some("search")),
        Decision::Denied {
            by: DeniedBy::Tool,
            ..
        }
    ));
    // Two a second is the sustained rate: after 30 s, 60 more requests.
    clock.advance(Duration::from_secs(30));
    let admitted = (0..100)
        .take_while(|_| limiter.check(&user, None).is_allowed())
        .count();
    assert_eq!(admitted, 60);
}
