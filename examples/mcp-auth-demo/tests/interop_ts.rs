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

/// Serves one https client metadata document (the SDK only offers https
/// URLs) to the demo's authorization server, through its HTTP seam.
#[derive(Debug)]
struct OneDocument {
    url: &'static str,
    document: serde_json::Value,
}

impl mcp_auth_http::HttpClient for OneDocument {
    fn send(
        &self,
        request: mcp_auth_http::HttpRequest,
    ) -> mcp_auth_core::BoxFuture<'_, Result<mcp_auth_http::HttpResponse, mcp_auth_http::HttpError>>
    {
        let (status, body) = if request.uri() == self.url {
            (200, self.document.to_string().into_bytes())
        } else {
            (404, Vec::new())
        };
        let response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        Box::pin(std::future::ready(Ok(response)))
    }
}

async fn sdk_signs_in(mode: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts");
    mcp_auth_testkit::npm_ready(&dir, "@modelcontextprotocol/sdk", "typescript_sdk oauth");
    const DOCUMENT: &str = "https://client.example/mcp-client.json";
    let options = DemoOptions {
        metadata_documents_http: Some(std::sync::Arc::new(OneDocument {
            url: DOCUMENT,
            document: serde_json::json!({
                "client_id": DOCUMENT,
                "client_name": "TS SDK interop",
                "redirect_uris": ["http://localhost:48999/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }),
        })),
        ..DemoOptions::default()
    };
    let demo = start(options).await.unwrap();
    let output = tokio::process::Command::new("node")
        .args(["signin.mjs", &demo.url, mode, DOCUMENT])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "TS SDK OAuth ({mode}) failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_signs_in_with_dynamic_registration() {
    sdk_signs_in("dcr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_signs_in_with_a_client_metadata_document() {
    sdk_signs_in("cimd").await;
}

/// The TypeScript SDK through read → write → read step-ups: without a
/// refresh token it re-authorizes with each challenge's scopes; with one it
/// refreshes first (its known behaviour) and the application's fallback
/// re-authorizes. Either way three consents, the last read needing none.
async fn sdk_steps_up(mode: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts");
    mcp_auth_testkit::npm_ready(&dir, "@modelcontextprotocol/sdk", "typescript_sdk step-up");
    let demo = start(DemoOptions::default()).await.unwrap();
    let output = tokio::process::Command::new("node")
        .args(["stepup.mjs", &demo.url, mode])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "TS SDK step-up ({mode}) failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_steps_up_without_a_refresh_token() {
    sdk_steps_up("norefresh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn typescript_sdk_steps_up_with_a_refresh_token() {
    sdk_steps_up("refresh").await;
}

/// The official Python SDK (`mcp`, pinned in `tests/py/requirements.txt`)
/// through the same read → write → read step-ups: it authorizes again on
/// each 403 with the challenge's scopes; the last read needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and PyPI"]
async fn python_sdk_steps_up() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let python = mcp_auth_testkit::pip_ready(&dir, "python_sdk step-up");
    let demo = start(DemoOptions::default()).await.unwrap();
    let output = tokio::process::Command::new(python)
        .args(["stepup.py", &demo.url])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Python SDK step-up failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
