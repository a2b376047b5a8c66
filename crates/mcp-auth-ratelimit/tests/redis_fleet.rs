//! The fleet case and outages, against a private `redis-server`.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::time::{Duration, Instant};

use mcp_auth_core::UserId;
use mcp_auth_ratelimit::{
    Decision, DeniedBy, FailureMode, Limit, Limits, RedisConfig, RedisLimiterOptions,
    RedisRateLimiter,
};
use mcp_auth_testkit::RedisServer;

fn limits() -> Limits {
    Limits::none()
        .global(Some(Limit::per_hour(120).unwrap()))
        .per_user(Some(Limit::per_hour(50).unwrap()))
        .per_tool(Some(Limit::per_hour(20).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
#[ignore = "needs redis-server"]
async fn three_instances_never_admit_more_than_the_limit_together() {
    let server = RedisServer::start("ratelimit::fleet");
    // Three limiters, three connections, as three server processes; Redis'
    // clock; users named by pseudonym under one key, as the app does.
    let mut instances = Vec::new();
    for _ in 0..3 {
        let mut options = RedisLimiterOptions::default();
        options.user_pseudonyms = Some(mcp_auth_core::UserPseudonyms::from_key([6; 32]));
        instances.push(
            RedisRateLimiter::connect(
                RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX),
                limits(),
                options,
            )
            .await
            .unwrap(),
        );
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, limiter) in instances.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut admitted = [0u32; 3]; // per user
            let mut tool_admitted = 0u32; // user 0 on "search"
            for i in 0..300 {
                let u = (i + n) % 3;
                let user = UserId::new(format!("user{u}")).unwrap();
                let tool = if i % 2 == 0 { "search" } else { "play" };
                if limiter.check(&user, Some(tool)).await.is_allowed() {
                    admitted[u] += 1;
                    if u == 0 && tool == "search" {
                        tool_admitted += 1;
                    }
                }
            }
            (admitted, tool_admitted)
        }));
    }
    let mut per_user = [0u32; 3];
    let mut search_user0 = 0;
    for task in tasks {
        let (admitted, tool) = task.await.unwrap();
        for u in 0..3 {
            per_user[u] += admitted[u];
        }
        search_user0 += tool;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Bound: burst + rate × elapsed (elapsed is a second or two: < 1 extra).
    let extra = |per_hour: f64| (per_hour * elapsed / 3600.0).floor() as u32;
    let total: u32 = per_user.iter().sum();
    assert!(total <= 120 + extra(120.0), "global: {total}");
    assert!(
        total >= 120,
        "the fleet should use the whole global budget: {total}"
    );
    for admitted in per_user {
        assert!(admitted <= 50 + extra(50.0), "per user: {per_user:?}");
    }
    assert!(search_user0 <= 20 + extra(20.0), "per tool: {search_user0}");
    // The keys name users by pseudonym only.
    let everything = mcp_auth_testkit::everything_in(server.port());
    assert!(everything.contains(":u:p-"), "{everything}");
    for u in 0..3 {
        let id = UserId::new(format!("user{u}")).unwrap();
        assert!(
            !everything.contains(id.storage_key().as_str()),
            "{everything}"
        );
        assert!(!everything.contains(id.as_str()), "{everything}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn redis_stopped_and_restarted_mid_run() {
    let mut server = RedisServer::start("ratelimit::outage");
    let closed = RedisRateLimiter::connect(
        RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX),
        limits(),
        RedisLimiterOptions::default(),
    )
    .await
    .unwrap();
    let open = RedisRateLimiter::connect(
        RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX),
        limits(),
        {
            let mut options = RedisLimiterOptions::default();
            options.failure_mode = FailureMode::FailOpen;
            options
        },
    )
    .await
    .unwrap();
    let alice = UserId::new("alice").unwrap();
    assert!(closed.check(&alice, Some("search")).await.is_allowed());

    server.stop();
    for _ in 0..3 {
        assert_eq!(
            closed.check(&alice, Some("search")).await,
            Decision::Denied {
                by: DeniedBy::StoreUnavailable,
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(open.check(&alice, Some("search")).await, Decision::Allowed);
    }

    server.restart();
    // Same limiter objects: they reconnect by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match closed.check(&alice, Some("search")).await {
            Decision::Allowed => break,
            Decision::Denied {
                by: DeniedBy::StoreUnavailable,
                ..
            } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("no recovery after Redis came back: {other:?}"),
        }
    }
    // Limits apply again (the restarted Redis kept nothing: a fresh budget of 20).
    let mut admitted = 1;
    for _ in 0..30 {
        if closed.check(&alice, Some("search")).await.is_allowed() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 20);
    assert_eq!(
        match open.check(&alice, Some("search")).await {
            Decision::Denied { by, .. } => Some(by),
            Decision::Allowed => None,
        },
        Some(DeniedBy::Tool)
    );
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_limiter_built_while_redis_is_down_fails_closed_then_works() {
    let mut server = RedisServer::start("ratelimit::lazy");
    server.stop();
    assert!(
        RedisRateLimiter::connect(
            RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX),
            limits(),
            RedisLimiterOptions::default()
        )
        .await
        .is_err()
    );
    let limiter = RedisRateLimiter::connect_lazy(
        RedisConfig::new(server.url(), RedisRateLimiter::DEFAULT_PREFIX),
        limits(),
        RedisLimiterOptions::default(),
    )
    .unwrap();
    let alice = UserId::new("alice").unwrap();
    assert!(matches!(
        limiter.check(&alice, None).await,
        Decision::Denied {
            by: DeniedBy::StoreUnavailable,
            ..
        }
    ));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !limiter.check(&alice, None).await.is_allowed() {
        assert!(Instant::now() < deadline, "no recovery after Redis came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
