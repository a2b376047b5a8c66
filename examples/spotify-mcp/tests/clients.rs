//! The client interop suite on spotify-mcp, an app built with
//! `mcp-auth-app` (`mcp_auth_testkit::clients`): the official TypeScript
//! SDK, the official Python SDK and the MCP Inspector CLI (pinned in
//! `crates/mcp-auth-testkit/clients/`) each sign in through headless
//! Chromium (our consent, then the Spotify double's login), call
//! `now_playing` (spotify:read), step up for `pause` (spotify:playback),
//! refresh, and are revoked on the connected-apps page. A failure names the
//! client and the step.
//!
//! Needs node, npm, python3 and chromium: ignored by a plain `cargo test`,
//! run by `scripts/test-all.sh`.
#![allow(clippy::unwrap_used)]

use mcp_auth_app::Settings;
use mcp_auth_testkit::clients::{self, Call, McpClient, Target};
use mcp_auth_testkit::fixtures::{FixtureTarget, every_known_client};
use serde_json::json;
use spotify_mcp::start_with;

/// spotify-mcp on a free loopback port, no accounts (its Spotify double).
async fn server() -> spotify_mcp::Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings = Settings::from_sources(
        &spotify_mcp::setting_names(),
        |k| (k == "MCP_LISTEN").then(|| addr.clone()),
        None,
    )
    .unwrap();
    start_with(&settings, listener, None).await.unwrap()
}

async fn suite(client: McpClient) {
    let server = server().await;
    let target = Target {
        name: "spotify-mcp",
        mcp_url: server.url.clone(),
        origin: server.issuer.clone(),
        user: "bob",
        first: Call {
            tool: "now_playing",
            args: json!({}),
        },
        step_up: Call {
            tool: "pause",
            args: json!({}),
        },
        first_scope: "spotify:read",
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
/// (`mcp_auth_testkit::fixtures`), through our consent and the Spotify
/// double: registered, authorized, redeemed, a tool called, refreshed and
/// revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_client_registers_signs_in_refreshes_and_is_revoked() {
    let server = server().await;
    let target = FixtureTarget {
        mcp_url: server.url.clone(),
        issuer: server.issuer.clone(),
        user: "bob",
        scope: "spotify:read",
        tool: "now_playing",
    };
    every_known_client(&target, "spotify").await;
}
