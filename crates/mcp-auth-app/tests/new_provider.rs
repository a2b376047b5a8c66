//! docs/new-provider.md's server, run: npm `oidc-provider` (OpenID
//! Certified) is the identity provider, found by discovery; rmcp's OAuth
//! client registers and signs in, the person's part done in headless
//! Chromium (our consent, the provider's login and consent); the tool
//! answers with the provider's userinfo, fetched with the person's
//! provider token. The server is `tests/new_provider/server.rs`, which is
//! the document's code block to the byte (checked here).
//!
//! Needs node, npm and chromium: ignored by a plain `cargo test`, run by
//! `scripts/test-all.sh`.
#![allow(clippy::unwrap_used)]

#[path = "new_provider/server.rs"]
#[allow(dead_code, unreachable_pub)]
mod server;

use std::path::PathBuf;

use mcp_auth_app::Settings;
use mcp_auth_testkit::webdriver::Chromium;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_document_shows_this_server_to_the_byte() {
    let doc = std::fs::read_to_string(root().join("docs/new-provider.md")).unwrap();
    let start = doc.find("```rust,no_run\n").unwrap() + "```rust,no_run\n".len();
    let end = start + doc[start..].find("\n```").unwrap() + 1;
    let file =
        std::fs::read_to_string(root().join("crates/mcp-auth-app/tests/new_provider/server.rs"))
            .unwrap();
    assert_eq!(
        &doc[start..end],
        file,
        "docs/new-provider.md and server.rs differ"
    );
    // The wiring: the scope table, the profile, `start` and `main`, in
    // lines of code (no blank line, no comment).
    let wiring = file
        .split("// ------------------------------------------------------------ the wiring")
        .nth(1)
        .unwrap()
        .split("// ------------------------------------------------------------ the tools")
        .next()
        .unwrap();
    let lines = wiring
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    assert!(lines <= 40, "the wiring is {lines} lines of code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs node, npm and chromium"]
async fn the_documented_server_signs_a_person_in_through_oidc_provider() {
    let dir = root().join("crates/mcp-auth-oauth-server/tests/upstream_e2e");
    mcp_auth_testkit::npm_ready(&dir, "oidc-provider", "the new-provider test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    // The MCP client's own redirect target.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/callback", site.local_addr().unwrap());
    let back = axum::Router::new().route(
        "/callback",
        axum::routing::get(|| async { axum::response::Html("<title>back at the client</title>") }),
    );
    tokio::spawn(async move { axum::serve(site, back).await.unwrap() });

    // The identity provider, our /login registered as its redirect URI.
    let (op_issuer, mut op) =
        mcp_auth_testkit::oidc_provider(&dir, &format!("{origin}/login")).await;

    // The documented server, configured as an operator would.
    let vault = tempfile::tempdir().unwrap();
    let vault_dir = vault.path().join("vault");
    let data_dir = vault.path().join("data");
    let pairs = [
        ("MCP_PUBLIC_URL", origin.as_str()),
        (
            "MCP_VAULT_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("MCP_VAULT_DIR", vault_dir.to_str().unwrap()),
        ("MCP_DATA_DIR", data_dir.to_str().unwrap()),
        ("OIDC_CLIENT_ID", "mcp-proxy"),
        ("OIDC_CLIENT_SECRET", "mcp-proxy-client-secret"),
    ];
    let names = server::profile(&op_issuer).setting_names();
    let settings = Settings::from_sources(
        &names,
        |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        },
        None,
    )
    .unwrap();
    let running = server::start(&op_issuer, &settings, listener)
        .await
        .unwrap();

    // rmcp's OAuth client: discovery, registration, the authorization URL.
    let mut state = OAuthState::new(running.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(&callback).with_client_name("rmcp via the new-provider doc"),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();

    // The person, in Chromium: our consent, then the provider's pages.
    let browser = Chromium::start("the new-provider test").await;
    browser.open(&url).await.unwrap();
    browser.wait_for_text("h1", "Allow").await.unwrap();
    let consent = browser.text("body").await.unwrap();
    assert!(
        consent.contains("After you approve, you sign in with OIDC."),
        "{consent}"
    );
    browser.click("button[value=approve]").await.unwrap();
    browser
        .wait_for_text("button[type=submit]", "Sign-in")
        .await
        .unwrap();
    browser
        .type_into("input[name=login]", "alice")
        .await
        .unwrap();
    browser
        .type_into("input[name=password]", "any")
        .await
        .unwrap();
    browser.click("button[type=submit]").await.unwrap();
    // The provider's own consent for our client, then back to us, then to
    // the MCP client.
    browser
        .wait_for_text("button[type=submit]", "Continue")
        .await
        .unwrap();
    browser.click("button[type=submit]").await.unwrap();
    let back = browser.wait_for_url(&callback).await.unwrap();
    state.handle_callback_url(&back).await.unwrap();
    let manager = state.into_authorization_manager().unwrap();

    // The tool, with the person's provider token.
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(running.url.clone()),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    let answer = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert_ne!(answer.is_error, Some(true), "{answer:?}");
    let me = answer.structured_content.unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    let alice = mcp_auth_core::UserId::new("oidc:alice").unwrap();
    assert_eq!(running.auth_server.grants(&alice).await.unwrap().len(), 1);
    let _ = op.kill().await;
}
