//! Session load-and-touch throughput (memory and Redis stores) and memory
//! used per session in the memory store at 100,000 and 1,000,000 sessions.
//! Figures are recorded in docs/session.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use mcp_auth_benches::{bench_mode, join_all, resident_bytes, time_per_op};
use mcp_auth_core::UserId;
use mcp_auth_session::{
    MemorySessionStore, NewSession, RedisSessionStore, SessionConfig, SessionId, SessionManager,
};
use mcp_auth_testkit::RedisServer;
use tokio::runtime::Runtime;

const USERS: usize = 1_000;

fn new_session(i: usize) -> NewSession<()> {
    let user = UserId::new(format!("user-{:06}@example.com", i % USERS)).expect("user");
    NewSession::new(user, "claude-desktop").with_scopes(["mcp:tools", "files:read"])
}

fn config() -> SessionConfig {
    // No per-user cap: the memory figure is per session, not per user.
    SessionConfig::default().max_sessions_per_user(None)
}

fn populate(rt: &Runtime, sessions: &SessionManager, n: usize) -> Vec<SessionId> {
    (0..n)
        .map(|i| {
            rt.block_on(sessions.create(new_session(i)))
                .expect("create")
                .id
        })
        .collect()
}

fn memory_per_session(rt: &Runtime, n: usize) {
    let before = resident_bytes();
    let sessions: SessionManager =
        SessionManager::new(MemorySessionStore::with_capacity(n), config()).expect("manager");
    let start = Instant::now();
    let ids = populate(rt, &sessions, n);
    let took = start.elapsed();
    let after = resident_bytes();
    // The ids are held by the bench, not the store: subtract them.
    let id_bytes = ids.len() * (std::mem::size_of::<SessionId>() + 43);
    match (before, after) {
        (Some(before), Some(after)) => println!(
            "figure: memory store, {n} sessions: {:.0} bytes/session resident ({:.1} MiB in all), created in {:?} ({:.0}/s)",
            (after.saturating_sub(before) as f64 - id_bytes as f64) / n as f64,
            (after.saturating_sub(before) as f64 - id_bytes as f64) / (1024.0 * 1024.0),
            took,
            n as f64 / took.as_secs_f64()
        ),
        _ => println!("figure: memory store, {n} sessions: resident size not available here"),
    }
    scale_point(rt, &sessions, &ids);
    drop(ids);
    drop(sessions);
}

/// One point of the scale curve: load-and-touch of a session picked across
/// the whole store (a stride through the ids, so the caches see a store of
/// this size, not the same few entries).
fn scale_point(rt: &Runtime, sessions: &SessionManager, ids: &[SessionId]) {
    let n = ids.len();
    let mut k = 0usize;
    let per = time_per_op(200_000, || {
        k = (k + 7_919) % n;
        black_box(rt.block_on(sessions.load(&ids[k])).expect("live"));
    });
    println!("scale: memory store, load-and-touch with {n} live sessions: {per:?}");
}

fn main() {
    let measuring = bench_mode();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Memory first, on a fresh heap.
    let sizes: &[usize] = if measuring {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000, 10_000]
    };
    for &n in sizes {
        memory_per_session(&rt, n);
    }

    let memory: SessionManager =
        SessionManager::new(MemorySessionStore::new(), config()).expect("manager");
    let memory_ids = populate(&rt, &memory, 10_000);

    let redis = RedisServer::try_start("bench session (Redis store)");
    let redis_manager: Option<SessionManager> = redis.as_ref().map(|server| {
        let store = rt
            .block_on(RedisSessionStore::connect(mcp_auth_core::RedisConfig::new(
                server.url(),
                RedisSessionStore::DEFAULT_PREFIX,
            )))
            .expect("redis");
        SessionManager::new(store, config()).expect("manager")
    });
    let redis_ids = redis_manager
        .as_ref()
        .map(|m| populate(&rt, m, 1_000))
        .unwrap_or_default();

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("session/load-and-touch");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("memory store", |b| {
        b.iter(|| {
            i = (i + 1) % memory_ids.len();
            black_box(rt.block_on(memory.load(&memory_ids[i])).expect("live"))
        })
    });
    if let Some(m) = &redis_manager {
        group.bench_function("redis store (one at a time)", |b| {
            b.iter(|| {
                i = (i + 1) % redis_ids.len();
                black_box(rt.block_on(m.load(&redis_ids[i])).expect("live"))
            })
        });
        group.throughput(Throughput::Elements(32));
        group.bench_function("redis store (32 concurrent, multiplexed)", |b| {
            b.iter(|| {
                i = (i + 32) % redis_ids.len();
                let loads = (0..32).map(|k| m.load(&redis_ids[(i + k) % redis_ids.len()]));
                black_box(rt.block_on(join_all(loads)))
            })
        });
    }
    group.finish();
    c.final_summary();

    let iterations = if measuring { 200_000 } else { 10 };
    let mut k = 0usize;
    let per_memory = time_per_op(iterations, || {
        k = (k + 1) % memory_ids.len();
        black_box(rt.block_on(memory.load(&memory_ids[k])).expect("live"));
    });
    println!(
        "figure: memory store load-and-touch {per_memory:?}/op = {:.0}/s (one thread)",
        1.0 / per_memory.as_secs_f64()
    );
    if let Some(m) = &redis_manager {
        let per_redis = time_per_op(iterations / 20, || {
            k = (k + 1) % redis_ids.len();
            black_box(rt.block_on(m.load(&redis_ids[k])).expect("live"));
        });
        let batches = (iterations / 200).max(1);
        let per_batch = time_per_op(batches, || {
            k = (k + 32) % redis_ids.len();
            let loads = (0..32).map(|j| m.load(&redis_ids[(k + j) % redis_ids.len()]));
            for r in rt.block_on(join_all(loads)) {
                black_box(r.expect("live"));
            }
        });
        println!(
            "figure: redis store load-and-touch {per_redis:?}/op = {:.0}/s sequential, {:.0}/s with 32 in flight; redis/memory time per op = {:.1}x",
            1.0 / per_redis.as_secs_f64(),
            32.0 / per_batch.as_secs_f64(),
            per_redis.as_secs_f64() / per_memory.as_secs_f64()
        );
    }
}
