//! Interop with rmcp's own streamable-HTTP client (a client no one here
//! wrote): it lists and calls tools on the demo server with a bearer token,
//! and without one it cannot even initialize.
#![allow(clippy::unwrap_used)]

use mcp_auth_demo::{BASE_SCOPE, DEMO_USER, DemoOptions, READ_SCOPE, start};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

fn text(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_lists_and_calls_tools_with_a_bearer_token() {
    let demo = start(DemoOptions::default()).await.unwrap();
    let token = demo.token(DEMO_USER, &[BASE_SCOPE, READ_SCOPE]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(demo.url.clone()).auth_header(token),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["echo", "read_note", "save_note", "whoami"]);

    let args = serde_json::json!({"text": "interop"})
        .as_object()
        .unwrap()
        .clone();
    let echoed = client
        .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "interop");

    let who = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert!(text(&who).contains(DEMO_USER), "{}", text(&who));

    let note = client
        .call_tool(CallToolRequestParams::new("read_note"))
        .await
        .unwrap();
    assert!(text(&note).starts_with("Hello Alice"), "{}", text(&note));

    // A tool needing a scope the token lacks is refused (HTTP 403 upstream).
    let args = serde_json::json!({"text": "x"})
        .as_object()
        .unwrap()
        .clone();
    let refused = client
        .call_tool(CallToolRequestParams::new("save_note").with_arguments(args))
        .await;
    assert!(refused.is_err(), "save_note without notes:write must fail");
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_without_a_token_cannot_connect() {
    let demo = start(DemoOptions::default()).await.unwrap();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(demo.url.clone()),
    );
    let connected = ClientConfig::default().serve(transport).await;
    assert!(connected.is_err());
}

/// rmcp's own OAuth client (feature `auth`) signs in through the demo's
/// authorization server: discovery from the MCP URL, dynamic registration,
/// the authorization URL with PKCE, a scripted browser step (development
/// login and consent), the callback with RFC 9207 `iss` checked, the code
/// exchange, a refresh (rotated), then tool calls with its `AuthClient`
/// carrying the refreshed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_oauth_client_signs_in_and_calls_tools() {
    use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
    let demo = start(DemoOptions::default()).await.unwrap();
    let mut state = OAuthState::new(demo.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new("http://localhost:48777/callback")
                .with_client_name("rmcp OAuth interop")
                .with_scopes([BASE_SCOPE, READ_SCOPE]),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let mut browser = mcp_auth_testkit::browser::Browser::new();
    let callback = browser
        .sign_in(demo.auth_server.issuer(), &url, "rmcp-user@example.com")
        .await
        .unwrap()
        .unwrap_or_else(|page| panic!("the sign-in stopped: {} {}", page.status, page.body));
    state.handle_callback_url(&callback).await.unwrap();
    let manager = state.into_authorization_manager().unwrap();
    // rmcp's own refresh: our server rotates the refresh token.
    let (_, before) = manager.get_credentials().await.unwrap();
    let before = serde_json::to_value(before.unwrap()).unwrap();
    let refreshed = serde_json::to_value(manager.refresh_token().await.unwrap()).unwrap();
    assert!(refreshed["refresh_token"].is_string());
    assert_ne!(
        refreshed["refresh_token"], before["refresh_token"],
        "rotated"
    );
    assert_ne!(refreshed["access_token"], before["access_token"]);
    let client = AuthClient::new(reqwest::Client::default(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(demo.url.clone()),
    );
    let service = ClientConfig::default().serve(transport).await.unwrap();
    let who = service
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert!(
        text(&who).contains("rmcp-user@example.com"),
        "{}",
        text(&who)
    );
    let read = service
        .call_tool(CallToolRequestParams::new("read_note"))
        .await
        .unwrap();
    assert!(!text(&read).is_empty());
}
