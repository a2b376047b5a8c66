//! Builds `examples/minimal-server`, runs it against a development issuer,
//! and drives it as outside clients do: the official TypeScript SDK client
//! in the stateful mode, a plain HTTP client in the stateless JSON mode, and
//! a non-loopback resource (`https://mcp.example.com/mcp`) to show rmcp's
//! Host allow-list follows the resource URL.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mcp_auth_testkit::DevIssuer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Starts the example for `resource` and waits for its "MCP server" line.
async fn start(issuer: &str, resource: &str, listen: &str, stateless: bool) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minimal-server"))
        .env("MCP_ISSUER", issuer)
        .env("MCP_RESOURCE", resource)
        .env("MCP_LISTEN", listen)
        .env("MCP_STATELESS", if stateless { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("MCP server") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "minimal-server did not start");
    // Keep reading, so that the server's prints never meet a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        addr: listen.to_owned(),
    }
}

async fn dev_issuer(resource: &str) -> std::sync::Arc<DevIssuer> {
    DevIssuer::serve_loopback(resource).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn the_typescript_sdk_client_uses_the_stateful_server() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts");
    mcp_auth_testkit::npm_ready(
        &dir,
        "@modelcontextprotocol/sdk",
        "minimal-server TS client",
    );
    let listen = free_addr();
    let resource = format!("http://{listen}/mcp");
    let issuer = dev_issuer(&resource).await;
    let _server = start(issuer.issuer(), &resource, &listen, false).await;
    let token = issuer.access_token("alice", &["mcp:tools"]);
    let output = Command::new("node")
        .args(["client.mjs", &resource, &token])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

async fn post(
    http: &reqwest::Client,
    addr: &str,
    host: Option<&str>,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = http
        .post(format!("http://{addr}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(body);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn initialize() -> Value {
    rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "plain-http", "version": "1"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_client_uses_the_stateless_server() {
    let listen = free_addr();
    let resource = format!("http://{listen}/mcp");
    let issuer = dev_issuer(&resource).await;
    let server = start(issuer.issuer(), &resource, &listen, true).await;
    let http = reqwest::Client::new();
    let token = issuer.access_token("alice", &["mcp:tools"]);

    let refused = post(&http, &server.addr, None, None, &initialize()).await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata")
    );

    let init = post(&http, &server.addr, None, Some(&token), &initialize()).await;
    assert_eq!(init.status(), 200);
    assert!(
        !init.headers().contains_key("mcp-session-id"),
        "stateless: no session"
    );
    assert!(
        init.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let call = rpc(2, "tools/call", json!({"name": "whoami", "arguments": {}}));
    let answer = post(&http, &server.addr, None, Some(&token), &call).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["result"]["content"][0]["text"], "You are alice",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_deployed_at_a_public_host_accepts_that_host_only() {
    // rmcp accepts only loopback `Host`s by default: without the allow-list
    // from `ResourceConfig::allowed_hosts`, every request below would be a
    // 403 after every mcp-auth check passed.
    let listen = free_addr();
    let resource = "https://mcp.example.com/mcp";
    let issuer = dev_issuer(resource).await;
    let server = start(issuer.issuer(), resource, &listen, true).await;
    let http = reqwest::Client::new();
    let token = issuer.access_token("alice", &["mcp:tools"]);
    let host = Some("mcp.example.com");
    let call = rpc(2, "tools/call", json!({"name": "whoami", "arguments": {}}));
    let answer = post(&http, &server.addr, host, Some(&token), &call).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().contains_key("strict-transport-security"));
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["result"]["content"][0]["text"], "You are alice",
        "{body}"
    );
    // Another name for the same address (DNS rebinding): rmcp refuses it.
    let rebound = post(
        &http,
        &server.addr,
        Some("evil.example.net"),
        Some(&token),
        &call,
    )
    .await;
    assert_eq!(rebound.status(), 403);
}
