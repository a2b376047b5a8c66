//! Per-decision cost of the three-tier in-memory limiter against bare
//! governor doing the same three checks (a direct limiter for the global
//! tier, keyed ones for the user and the (user, tool) pair, keys built
//! beforehand), in one run, ratio printed; and
//! decisions per second against a local Redis, one at a time and with 32
//! concurrent requests pipelined on the multiplexed connection.
//! Figures are recorded in docs/ratelimit.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use mcp_auth_benches::{bench_mode, join_all, time_per_op};
use mcp_auth_core::UserId;
use mcp_auth_ratelimit::{Limit, Limits, MemoryRateLimiter, RedisRateLimiter};
use mcp_auth_testkit::RedisServer;

const USERS: usize = 1_000;

/// Generous enough that every decision is "allowed" (the common path),
/// even at criterion's millions of iterations: a billion-request burst.
fn limits() -> Limits {
    let wide = || {
        Limit::per_second(1_000_000)
            .and_then(|l| l.with_burst(1_000_000_000))
            .expect("limit")
    };
    Limits::none()
        .global(Some(wide()))
        .per_user(Some(wide()))
        .per_tool(Some(wide()))
        .known_tools(["search", "play", "queue"])
}

fn main() {
    let measuring = bench_mode();
    let users: Vec<UserId> = (0..USERS)
        .map(|i| UserId::new(format!("user-{i:04}@example.com")).expect("user"))
        .collect();
    let user_keys: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
    let tools = ["search", "play", "queue"];

    let ours = MemoryRateLimiter::new(limits()).expect("limiter");
    let quota = governor::Quota::per_second(NonZeroU32::new(1_000_000).expect("nonzero"))
        .allow_burst(NonZeroU32::new(1_000_000_000).expect("nonzero"));
    let bare = governor::RateLimiter::<String, _, _>::keyed(quota);
    let bare_global = governor::RateLimiter::direct(quota);
    let bare_tool = governor::RateLimiter::<String, _, _>::keyed(quota);
    let tool_keys: Vec<String> = (0..USERS)
        .map(|i| format!("{}\n{}", user_keys[i], tools[i % 3]))
        .collect();
    // The same three checks our limiter makes, with governor's own stores.
    let three_bare = |i: usize| {
        let global = bare_global.check().is_ok();
        let user = bare.check_key(&user_keys[i]).is_ok();
        let tool = bare_tool.check_key(&tool_keys[i]).is_ok();
        global & user & tool
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::try_start("bench ratelimit (Redis limiter)");
    let redis = server.as_ref().map(|s| {
        rt.block_on(RedisRateLimiter::connect(
            mcp_auth_core::RedisConfig::new(
                s.url(),
                mcp_auth_ratelimit::RedisRateLimiter::DEFAULT_PREFIX,
            ),
            limits(),
            mcp_auth_ratelimit::RedisLimiterOptions::default(),
        ))
        .expect("redis")
    });

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("ratelimit/decision");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("mcp-auth three tiers (memory)", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(ours.check(&users[i], Some(tools[i % 3])))
        })
    });
    group.bench_function("governor keyed, one check", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(bare.check_key(&user_keys[i]).is_ok())
        })
    });
    group.bench_function("governor, the same three checks", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(three_bare(i))
        })
    });
    if let Some(redis) = &redis {
        group.bench_function("redis three tiers, one at a time", |b| {
            b.iter(|| {
                i = (i + 1) % USERS;
                black_box(rt.block_on(redis.check(&users[i], Some(tools[i % 3]))))
            })
        });
        group.throughput(Throughput::Elements(32));
        group.bench_function("redis three tiers, 32 concurrent", |b| {
            b.iter(|| {
                i = (i + 32) % USERS;
                let checks =
                    (0..32).map(|k| redis.check(&users[(i + k) % USERS], Some(tools[k % 3])));
                black_box(rt.block_on(join_all(checks)))
            })
        });
    }
    group.finish();
    c.final_summary();

    let iterations = if measuring { 1_000_000 } else { 10 };
    let (mut t_ours, mut t_bare) = (Duration::ZERO, Duration::ZERO);
    let mut k = 0usize;
    for _ in 0..5 {
        t_ours += time_per_op(iterations / 5, || {
            k = (k + 1) % USERS;
            black_box(ours.check(&users[k], Some(tools[k % 3])));
        });
        t_bare += time_per_op(iterations / 5, || {
            k = (k + 1) % USERS;
            black_box(three_bare(k));
        });
    }
    // The figures are for the allowed path: check nothing was refused.
    assert!(
        ours.check(&users[0], Some(tools[0])).is_allowed(),
        "the bench's limits were reached"
    );
    assert!(three_bare(0), "governor's limits were reached");
    println!(
        "ratio: three-tier decision {:?} vs three bare governor checks {:?} = {:.2}x ({:.0} vs {:.0} decisions/s, one thread)",
        t_ours / 5,
        t_bare / 5,
        t_ours.as_secs_f64() / t_bare.as_secs_f64(),
        5.0 / t_ours.as_secs_f64(),
        5.0 / t_bare.as_secs_f64()
    );
    // The scale curve: one decision's cost with 1,000 to 1,000,000 users
    // tracked (each user seen once before timing; decisions stride through
    // all of them).
    let sizes: &[usize] = if measuring {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    for &n in sizes {
        let wide = limits().max_tracked_keys(n * 2);
        let limiter = MemoryRateLimiter::new(wide).expect("limiter");
        let many: Vec<UserId> = (0..n)
            .map(|i| UserId::new(format!("user-{i:07}@example.com")).expect("user"))
            .collect();
        for (i, user) in many.iter().enumerate() {
            black_box(limiter.check(user, Some(tools[i % 3])));
        }
        let mut j = 0usize;
        let per = time_per_op(if measuring { 500_000 } else { 10 }, || {
            j = (j + 7_919) % n;
            black_box(limiter.check(&many[j], Some(tools[j % 3])));
        });
        assert!(limiter.check(&many[0], Some(tools[0])).is_allowed());
        // governor's three checks over the same number of keys: what the
        // memory itself costs at this size.
        let g_global = governor::RateLimiter::direct(quota);
        let g_user = governor::RateLimiter::<String, _, _>::keyed(quota);
        let g_tool = governor::RateLimiter::<String, _, _>::keyed(quota);
        let keys: Vec<(String, String)> = many
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    u.as_str().to_owned(),
                    format!("{}\n{}", u.as_str(), tools[i % 3]),
                )
            })
            .collect();
        for (user, tool) in &keys {
            black_box((
                g_user.check_key(user).is_ok(),
                g_tool.check_key(tool).is_ok(),
            ));
        }
        let mut j = 0usize;
        let bare_per = time_per_op(if measuring { 500_000 } else { 10 }, || {
            j = (j + 7_919) % n;
            let (user, tool) = &keys[j];
            black_box(
                g_global.check().is_ok()
                    & g_user.check_key(user).is_ok()
                    & g_tool.check_key(tool).is_ok(),
            );
        });
        println!(
            "scale: {n} users tracked: three-tier decision {per:?}, governor's three checks {bare_per:?} ({:.2}x)",
            per.as_secs_f64() / bare_per.as_secs_f64()
        );
    }

    if let Some(redis) = &redis {
        let n = if measuring { 20_000 } else { 10 };
        let sequential = time_per_op(n, || {
            k = (k + 1) % USERS;
            black_box(rt.block_on(redis.check(&users[k], Some(tools[k % 3]))));
        });
        let batch = time_per_op((n / 32).max(1), || {
            k = (k + 32) % USERS;
            let checks = (0..32).map(|j| redis.check(&users[(k + j) % USERS], Some(tools[j % 3])));
            black_box(rt.block_on(join_all(checks)));
        });
        // Kept in flight: a new decision starts as soon as one ends, as
        // requests arriving at a server would (no wait for a whole batch);
        // at 32, 64, 128 and 256 at once on the one multiplexed connection.
        let total = if measuring { 200_000 } else { 64 };
        let mut kept = Vec::new();
        for depth in [32usize, 64, 128, 256] {
            let started = std::time::Instant::now();
            rt.block_on(async {
                let mut in_flight = tokio::task::JoinSet::new();
                for n in 0..total {
                    if in_flight.len() >= depth {
                        black_box(in_flight.join_next().await);
                    }
                    let limiter = redis.clone();
                    let user = users[n % USERS].clone();
                    let tool = tools[n % 3];
                    in_flight.spawn(async move { limiter.check(&user, Some(tool)).await });
                }
                while in_flight.join_next().await.is_some() {}
            });
            kept.push((depth, total as f64 / started.elapsed().as_secs_f64()));
        }
        println!(
            "figure: redis three-tier decisions: {:.0}/s one at a time ({sequential:?} each), {:.0}/s with 32 in flight (pipelined on one connection, batch by batch)",
            1.0 / sequential.as_secs_f64(),
            32.0 / batch.as_secs_f64()
        );
        for (depth, rate) in kept {
            println!(
                "figure: redis three-tier decisions kept {depth} in flight on one connection: {rate:.0}/s (goal: at least 50,000)"
            );
        }
    }
}
