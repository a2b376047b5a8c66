//! Interop with the official MCP TypeScript SDK (npm
//! `@modelcontextprotocol/sdk`, pinned by the committed `tests/ts/package-lock.json`):
//! it discovers the protected resource metadata from our 401 challenge with
//! its own functions and connects with a bearer token.
//!
//! Needs `node` and `npm`; the test installs the SDK with `npm ci` when
//! `tests/ts/node_modules` is missing. Ignored by a plain `cargo test`; run
//! by `scripts/test-all.sh` (which brings Node.js 22). Without node it fails.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use mcp_auth_demo::{BASE_SCOPE, DEMO_USER, DemoOptions, READ_SCOPE, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_discovers_metadata_from_the_challenge_and_connects() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts");
    mcp_auth_testkit::npm_ready(&dir, "@modelcontextprotocol/sdk", "typescript_sdk interop");
    let demo = start(DemoOptions::default()).await.unwrap();
    let token = demo.token(DEMO_USER, &[BASE_SCOPE, READ_SCOPE]);
    let output = tokio::process::Command::new("node")
        .arg("interop.mjs")
        .arg(&demo.url)
        .arg(&token)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "TS SDK interop failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("TS SDK interop: all checks passed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("path-aware well-known discovery"),
        "{stdout}"
    );
}
