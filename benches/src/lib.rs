//! Helpers shared by the benches in `benches/benches/` and the examples in
//! `benches/examples/`.

pub mod axum_stack;
pub mod load;
pub mod signin;

use std::time::{Duration, Instant};

/// Whether the bench runs for measurement (`cargo bench`) rather than as a
/// smoke test (`cargo test --benches`, which runs each bench once).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Mean time of one call of `op` over `iterations` calls, after a warm-up of
/// a tenth as many.
pub fn time_per_op(iterations: u32, mut op: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 + 1 {
        op();
    }
    let start = Instant::now();
    for _ in 0..iterations.max(1) {
        op();
    }
    start.elapsed() / iterations.max(1)
}

/// The process's resident set size in bytes (Linux `/proc/self/statm`), or
/// `None` where that is not available.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Runs futures concurrently on the current task (no extra dependency).
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in outputs.iter_mut().zip(set.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// CPU time this process has used, in nanoseconds: the sum over its threads
/// of `/proc/self/task/*/schedstat` (time on CPU, not counting time the
/// hypervisor stole). `None` where that is not available.
pub fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Runs `work` on each item as its own tokio task (concurrent clients
/// spread over the runtime's workers, as independent clients are, rather
/// than polled from one task) and gives the items back in order.
///
/// # Panics
/// When a task panics.
#[allow(clippy::expect_used)]
pub async fn spawn_each<T, F, Fut>(items: Vec<T>, work: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| tokio::spawn(work(i, item)))
        .collect();
    let mut items = Vec::with_capacity(tasks.len());
    for task in tasks {
        items.push(task.await.expect("a client task"));
    }
    items
}
