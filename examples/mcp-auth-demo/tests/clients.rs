//! The client interop suite on the demo (`mcp_auth_testkit::clients`): the
//! official TypeScript SDK, the official Python SDK and the MCP Inspector
//! CLI (pinned in `crates/mcp-auth-testkit/clients/`) each sign in through
//! headless Chromium (development login, consent), call `whoami`, step up
//! for `read_note` (notes:read), refresh, and are revoked on the
//! connected-apps page. A failure names the client and the step.
//!
//! Needs node, npm, python3 and chromium: ignored by a plain `cargo test`,
//! run by `scripts/test-all.sh`.
#![allow(clippy::unwrap_used)]

use mcp_auth_demo::{DemoOptions, start};
use mcp_auth_testkit::clients::{self, Call, McpClient, Target};
use mcp_auth_testkit::fixtures::{FixtureTarget, every_known_client};
use serde_json::json;

async fn suite(client: McpClient) {
    let demo = start(DemoOptions::default()).await.unwrap();
    let origin = demo.url.trim_end_matches("/mcp").to_owned();
    let target = Target {
        name: "the demo",
        mcp_url: demo.url.clone(),
        origin,
        user: "interop@example.com",
        first: Call {
            tool: "whoami",
            args: json!({}),
        },
        step_up: Call {
            tool: "read_note",
            args: json!({}),
        },
        first_scope: "mcp:tools",
    };
    clients::suite(client, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node, npm and chromium"]
async fn the_typescript_sdk_signs_in_steps_up_refreshes_and_is_revoked() {
    suite(McpClient::TypeScriptSdk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3, node, npm and chromium"]
async fn the_python_sdk_signs_in_steps_up_refreshes_and_is_revoked() {
    suite(McpClient::PythonSdk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node, npm and chromium"]
async fn the_inspector_cli_signs_in_steps_up_refreshes_and_is_revoked() {
    suite(McpClient::InspectorCli).await;
}

/// The sign-in each popular client makes, as its source shows it
/// (`mcp_auth_testkit::fixtures`): registered, authorized, redeemed, a tool
/// called, refreshed and revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_client_registers_signs_in_refreshes_and_is_revoked() {
    let demo = start(DemoOptions::default()).await.unwrap();
    let target = FixtureTarget {
        mcp_url: demo.url.clone(),
        issuer: demo.url.trim_end_matches("/mcp").to_owned(),
        user: "fixture@example.com",
        scope: "mcp:tools",
        tool: "whoami",
    };
    every_known_client(&target, "demo").await;
}
