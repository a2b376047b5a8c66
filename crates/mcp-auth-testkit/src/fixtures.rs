//! What popular MCP clients send when they sign in, read from their public
//! sources, replayed against a server: the registration request each
//! makes, the redirect URI it waits on, whether it sends `resource` and
//! which scopes it asks for. [`exercise`] registers, authorizes (the
//! person's part scripted), redeems the code, calls a tool, refreshes,
//! revokes, and checks the revoked refresh token is refused.
//!
//! Only what a source shows is here. Clients whose source is not public
//! (Claude on the web and desktop, ChatGPT, Cursor, Windsurf) have no
//! fixture: docs/oauth-server.md's "Clients" table says what is known of
//! them and from where. The official SDKs and the Inspector are also run
//! for real by [`crate::clients`].

use serde_json::{Value, json};

use crate::browser::{Browser, Pkce, query_of};

/// One client's sign-in, as its source shows it.
#[derive(Debug, Clone)]
pub struct ClientFixture {
    /// The client and the version read.
    pub client: &'static str,
    /// Where the shape was read.
    pub source: &'static str,
    /// The registration request (RFC 7591) it sends.
    pub registration: Value,
    /// The redirect URI it sends to `/authorize` and `/token`.
    pub redirect_uri: String,
    /// Whether it sends `resource` (RFC 8707).
    pub sends_resource: bool,
    /// Whether it adds `offline_access` to the scopes it asks for when the
    /// authorization server lists it (the newer TypeScript SDK does, when
    /// the client registered the refresh grant).
    pub asks_offline_access: bool,
}

/// A free loopback port, as the clients that listen on one pick it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(48_999, |a| a.port())
}

/// The clients whose sign-in shape their sources show. `server` is the
/// name the person gave the server (Claude Code puts it in its
/// `client_name`), `scope` what the server's challenge names.
pub fn known_clients(server: &str, scope: &str) -> Vec<ClientFixture> {
    let claude_port = free_port();
    let claude_redirect = format!("http://localhost:{claude_port}/callback");
    let goose_redirect = format!("http://127.0.0.1:{}/oauth_callback", free_port());
    vec![
        ClientFixture {
            client: "Claude Code 2.1.332",
            source: "npm @anthropic-ai/claude-code-linux-x64 2.1.332, the bundled client's \
                     `clientMetadata` (built on the TypeScript SDK): one loopback redirect on a \
                     free port (`http://localhost:<port>/callback`), refresh grant, public client; \
                     it uses its metadata document (https://claude.ai/oauth/claude-code-client-metadata) \
                     only when its redirect is the document's; the document is not in the package",
            registration: json!({
                "client_name": format!("Claude Code ({server})"),
                "redirect_uris": [claude_redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": scope,
            }),
            redirect_uri: claude_redirect,
            sends_resource: true,
            asks_offline_access: true,
        },
        ClientFixture {
            client: "Visual Studio Code (1.1xx, main)",
            source: "microsoft/vscode src/vs/base/common/oauth.ts `fetchDynamicRegistration` \
                     (four redirect URIs, grant types filtered by the server's, native) and the \
                     authorization URL of its dynamic auth provider (`resource` when the \
                     resource metadata names one, redirect https://vscode.dev/redirect)",
            registration: json!({
                "client_name": "Visual Studio Code",
                "client_uri": "https://code.visualstudio.com",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "redirect_uris": [
                    "https://insiders.vscode.dev/redirect",
                    "https://vscode.dev/redirect",
                    "http://127.0.0.1/",
                    "http://127.0.0.1:33418/",
                ],
                "scope": scope,
                "token_endpoint_auth_method": "none",
                "application_type": "native",
            }),
            redirect_uri: "https://vscode.dev/redirect".to_owned(),
            sends_resource: true,
            asks_offline_access: false,
        },
        ClientFixture {
            client: "Goose (block/goose main) through rmcp 3.11",
            source: "block/goose crates/goose/src/oauth/mod.rs (client name `goose`, loopback \
                     `http://127.0.0.1:<port>/oauth_callback`) and rmcp 3.11 \
                     `AuthorizationManager::register_client` (the request body); Goose offers its \
                     metadata document https://goose-docs.ai/oauth/client-metadata.json first, \
                     whose content is not in the repository: this is its registration path",
            registration: json!({
                "client_name": "goose",
                "redirect_uris": [goose_redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "response_types": ["code"],
                "scope": scope,
            }),
            redirect_uri: goose_redirect,
            sends_resource: true,
            asks_offline_access: false,
        },
        ClientFixture {
            client: "MCP Inspector 2.12.0 (CLI and web)",
            source: "npm @modelcontextprotocol/inspector 2.12.0, clients/cli/build/index.js \
                     `clientMetadata` (an empty `scope`, native, the runner's callback \
                     http://127.0.0.1:6276/oauth/callback); the CLI itself is run by \
                     mcp_auth_testkit::clients",
            registration: json!({
                "redirect_uris": ["http://127.0.0.1:6276/oauth/callback"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "MCP Inspector",
                "client_uri": "https://github.com/modelcontextprotocol/inspector",
                "scope": "",
                "application_type": "native",
            }),
            redirect_uri: "http://127.0.0.1:6276/oauth/callback".to_owned(),
            sends_resource: true,
            asks_offline_access: true,
        },
    ]
}

/// The server a fixture is replayed against.
#[derive(Debug, Clone)]
pub struct FixtureTarget {
    /// The protected MCP endpoint (the `resource`).
    pub mcp_url: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Who signs in (our development login or a provider double's).
    pub user: &'static str,
    /// The scope the server's challenge names.
    pub scope: &'static str,
    /// A tool that scope allows.
    pub tool: &'static str,
}

fn step(what: &str, detail: impl std::fmt::Display) -> String {
    format!("{what}: {detail}")
}

/// Replays `fixture` against `target`: registration accepted with its
/// redirect URI kept, authorization through the person's pages back to
/// that redirect URI (with `state` and `iss`), code exchange, a tool call,
/// refresh (rotated), revocation (RFC 7009), and the revoked refresh
/// token refused. The steps passed, or the first that failed.
pub async fn exercise(
    fixture: &ClientFixture,
    target: &FixtureTarget,
) -> Result<Vec<String>, String> {
    let http = reqwest::Client::new();
    let mut passed = Vec::new();

    let registered = http
        .post(format!("{}/register", target.issuer))
        .json(&fixture.registration)
        .send()
        .await
        .map_err(|e| step("registration", e))?;
    let status = registered.status();
    let client: Value = registered
        .json()
        .await
        .map_err(|e| step("registration", e))?;
    if status != reqwest::StatusCode::CREATED {
        return Err(step("registration", format!("{status}: {client}")));
    }
    let kept: Vec<&str> = client["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !kept.contains(&fixture.redirect_uri.as_str()) {
        return Err(step(
            "registration",
            format!("{} was not kept: {client}", fixture.redirect_uri),
        ));
    }
    let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
    passed.push(format!(
        "registration accepted (redirect URIs kept: {kept:?})"
    ));

    let metadata: Value = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            target.issuer
        ))
        .send()
        .await
        .map_err(|e| step("discovery", e))?
        .json()
        .await
        .map_err(|e| step("discovery", e))?;
    let lists_offline = metadata["scopes_supported"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == "offline_access"));
    let pkce = Pkce::new();
    let mut scope = target.scope.to_owned();
    if fixture.asks_offline_access && lists_offline {
        scope.push_str(" offline_access");
    }
    let mut authorize = url::Url::parse(&format!("{}/authorize", target.issuer))
        .map_err(|e| step("authorize", e))?;
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &fixture.redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "fixture-state")
            .append_pair("scope", &scope);
        if fixture.sends_resource {
            q.append_pair("resource", &target.mcp_url);
        }
    }
    let mut browser = Browser::new();
    let callback = browser
        .sign_in_through(authorize.as_str(), target.user, &fixture.redirect_uri)
        .await
        .map_err(|e| step("authorize", e))?
        .map_err(|page| {
            step(
                "authorize",
                format!(
                    "stopped at {}: {}",
                    page.status,
                    page.body
                        .split("<body>")
                        .nth(1)
                        .unwrap_or(&page.body)
                        .chars()
                        .take(400)
                        .collect::<String>()
                ),
            )
        })?;
    let answer = query_of(&callback);
    if answer.get("state").map(String::as_str) != Some("fixture-state")
        || answer.get("iss").map(String::as_str) != Some(target.issuer.as_str())
    {
        // The callback carries the code: the message names what came back,
        // never the code itself.
        let mut names: Vec<&String> = answer.keys().collect();
        names.sort();
        return Err(step(
            "authorize",
            format!("state or iss missing or wrong; the callback had {names:?}"),
        ));
    }
    let code = answer
        .get("code")
        .ok_or_else(|| step("authorize", "no code in the callback"))?;
    passed.push(format!(
        "authorized, back at {} with code, state and iss",
        fixture.redirect_uri
    ));

    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", fixture.redirect_uri.clone()),
        ("client_id", client_id.clone()),
        ("code_verifier", pkce.verifier.clone()),
    ];
    if fixture.sends_resource {
        form.push(("resource", target.mcp_url.clone()));
    }
    let tokens = token(&http, &target.issuer, &form)
        .await
        .map_err(|e| step("code exchange", e))?;
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .ok_or_else(|| {
            let fields: Vec<&String> = tokens
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            step(
                "code exchange",
                format!("no refresh token; the answer had {fields:?}"),
            )
        })?
        .to_owned();
    passed.push(format!("code exchanged (scope {:?})", tokens["scope"]));

    tool_call(&http, &target.mcp_url, &access, target.tool)
        .await
        .map_err(|e| step("tool call", e))?;
    passed.push(format!("{} answered", target.tool));

    let refreshed = token(
        &http,
        &target.issuer,
        &[
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.clone()),
            ("client_id", client_id.clone()),
        ],
    )
    .await
    .map_err(|e| step("refresh", e))?;
    let rotated = refreshed["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if rotated.is_empty() || rotated == refresh {
        return Err(step("refresh", "the refresh token was not rotated"));
    }
    tool_call(
        &http,
        &target.mcp_url,
        refreshed["access_token"].as_str().unwrap_or_default(),
        target.tool,
    )
    .await
    .map_err(|e| step("refresh", e))?;
    passed.push("refreshed (rotated) and called again".to_owned());

    let revoked = http
        .post(format!("{}/revoke", target.issuer))
        .form(&[
            ("token", rotated.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .map_err(|e| step("revocation", e))?;
    if !revoked.status().is_success() {
        return Err(step("revocation", revoked.status()));
    }
    let after = token(
        &http,
        &target.issuer,
        &[
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rotated),
            ("client_id", client_id),
        ],
    )
    .await;
    match after {
        Err(e) if e.contains("invalid_grant") => {}
        other => {
            return Err(step(
                "revocation",
                format!("the revoked refresh token: {other:?}"),
            ));
        }
    }
    passed.push("revoked; the refresh token is refused".to_owned());
    Ok(passed)
}

async fn token(
    http: &reqwest::Client,
    issuer: &str,
    form: &[(&str, String)],
) -> Result<Value, String> {
    let response = http
        .post(format!("{issuer}/token"))
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// One MCP `tools/call` over streamable HTTP with a bearer token:
/// initialize, initialized, call; the result must not be an error.
async fn tool_call(
    http: &reqwest::Client,
    mcp_url: &str,
    token: &str,
    tool: &str,
) -> Result<(), String> {
    let post = |body: Value, session: Option<String>| {
        let mut request = http
            .post(mcp_url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "fixture", "version": "1"}}}),
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !init.status().is_success() {
        return Err(format!("initialize: {}", init.status()));
    }
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = init.text().await;
    let _ = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        session.clone(),
    )
    .await;
    let called = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}}),
        session,
    )
    .await
    .map_err(|e| e.to_string())?;
    let status = called.status();
    let text = called.text().await.map_err(|e| e.to_string())?;
    // A JSON body, or server-sent events whose `data:` line is the answer.
    let body = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .rfind(|d| d.starts_with('{'))
        .unwrap_or(text.trim());
    let answer: Value = serde_json::from_str(body).map_err(|_| format!("{status}: {text}"))?;
    if !status.is_success() || answer["result"]["isError"] != json!(false) {
        return Err(format!("{status}: {answer}"));
    }
    Ok(())
}

/// Replays every fixture of [`known_clients`] against `target`; panics with
/// the client, the server and the step that failed. `server` names it in
/// Claude Code's `client_name` and in the message.
///
/// # Panics
/// When a client's sign-in fails at any step.
#[allow(clippy::panic)]
pub async fn every_known_client(target: &FixtureTarget, server: &str) {
    for fixture in known_clients(server, target.scope) {
        match exercise(&fixture, target).await {
            Ok(steps) => println!("{}: {}", fixture.client, steps.join("; ")),
            Err(step) => panic!(
                "{} on {server}, {step}\n(source: {})",
                fixture.client, fixture.source
            ),
        }
    }
}
