//! Drives `N` authenticated `tools/call` requests over loopback (16
//! keep-alive clients, 2 runtime workers, client and server in this
//! process) against the bare rmcp server, the floor (the bare server behind
//! the least work the stack's guarantees need: `axum_stack::floor_app`) or
//! the full mcp-auth-axum stack,
//! for counting instructions under valgrind: `benches/callgrind-axum.sh`
//! runs it and prints instructions per request, which unlike time do not
//! move with the machine's load.
//!
//! `cargo run --release -p mcp-auth-benches --example axum_instructions -- <bare|floor|full> <N>`
//! (or `sha <N>`: the time of one SHA-256 of the bench's token, natively).

use std::sync::Arc;

use mcp_auth_benches::axum_stack::{bare_app, call_over_http, floor_app, protected_app, serve};

const CLIENTS: u64 = 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1600);
    if mode == "sha" {
        sha_time(n);
        return;
    }
    if !["bare", "floor", "full"].contains(&mode.as_str()) {
        eprintln!("usage: axum_instructions <bare|floor|full|sha> <N>");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = std::time::Instant::now();
    runtime.block_on(async {
        let mut token = None;
        let url = serve(|url| {
            let (protected, minted) = protected_app(url, true);
            // The bare server gets the same bearer header and ignores it.
            token = Some(minted);
            match mode.as_str() {
                "bare" => bare_app(),
                "floor" => {
                    let (floor, minted) = floor_app(url);
                    token = Some(minted);
                    floor
                }
                _ => protected,
            }
        })
        .await;
        let (url, token) = (Arc::new(url), Arc::new(token));
        let mut tasks = Vec::new();
        for worker in 0..CLIENTS {
            let (url, token) = (url.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..n / CLIENTS {
                    call_over_http(&client, &url, token.as_deref(), (worker << 32) + i).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
    });
    eprintln!(
        "{mode}: {} requests, {:.1} µs each (wall time; meaningless under valgrind)",
        n / CLIENTS * CLIENTS,
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn sha_time(n: u64) {
    use sha2::Digest;
    let (_, token) = protected_app("http://127.0.0.1:1/mcp", true);
    let start = std::time::Instant::now();
    let mut fold = 0u8;
    for _ in 0..n {
        fold ^= sha2::Sha256::digest(std::hint::black_box(token.as_bytes()))[0];
    }
    println!(
        "SHA-256 of the {}-byte bench token: {:.3} µs (natively; fold {fold})",
        token.len(),
        start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
    );
}
