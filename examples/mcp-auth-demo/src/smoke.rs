//! `--smoke`: a scripted client session against a running demo, over plain
//! HTTP, checking each step's status code and body.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::{BASE_SCOPE, BoxError, DEMO_USER, Demo, READ_SCOPE, WRITE_SCOPE};

/// The protocol revision the scripted client speaks.
const PROTOCOL: &str = "2025-06-18";

/// One scripted HTTP exchange's outcome.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    /// The JSON-RPC message in the body: plain JSON, or the last `data:`
    /// line of an SSE stream that parses as a JSON-RPC message.
    fn message(&self) -> Option<Value> {
        if let Ok(v) = serde_json::from_str::<Value>(&self.body) {
            return Some(v);
        }
        self.body
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("jsonrpc").is_some())
    }

    fn header(&self, name: impl reqwest::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

struct Script<'a> {
    demo: &'a Demo,
    http: Client,
    session: Option<String>,
    steps: usize,
}

impl Script<'_> {
    async fn send(
        &self,
        method: Method,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, BoxError> {
        let mut request = self
            .http
            .request(method, &self.demo.url)
            .header(ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn post(&self, token: &str, body: &Value) -> Result<Answer, BoxError> {
        self.send(Method::POST, Some(token), Some(body)).await
    }

    /// A POST outside the session, with one extra header.
    async fn post_with(
        &self,
        token: &str,
        (name, value): (&str, &str),
        body: &Value,
    ) -> Result<Answer, BoxError> {
        let response = self
            .http
            .post(&self.demo.url)
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(name, value)
            .body(body.to_string())
            .send()
            .await?;
        Ok(Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    }

    fn check(&mut self, ok: bool, what: &str, answer: Option<&Answer>) -> Result<(), BoxError> {
        self.steps += 1;
        if ok {
            println!("   ok {:>2}: {what}", self.steps);
            Ok(())
        } else {
            let detail = answer
                .map(|a| {
                    format!(
                        " (got {} {})",
                        a.status,
                        a.body.chars().take(300).collect::<String>()
                    )
                })
                .unwrap_or_default();
            Err(format!("step {} failed: {what}{detail}", self.steps).into())
        }
    }
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

fn result_text(message: &Option<Value>) -> String {
    message
        .as_ref()
        .and_then(|m| m.pointer("/result/content/0/text"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// Opens a connection, sends half a request head, and waits (up to 30 s) for
/// the server to close it.
async fn stalled_connection_is_closed(addr: std::net::SocketAddr) -> Result<bool, BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"POST /mcp HTTP/1.1\r\nhost: x\r\n")
        .await?;
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut sink)).await;
    Ok(closed.is_ok())
}

/// Runs the scripted session; `Err` names the first step that misbehaved.
pub async fn run(demo: &Demo) -> Result<(), BoxError> {
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut s = Script {
        demo,
        http,
        session: None,
        steps: 0,
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "mcp-auth-smoke", "version": "1"}}});

    // 1. No token: 401 and a challenge pointing at the metadata.
    let a = s.send(Method::POST, None, Some(&initialize)).await?;
    let challenge = a.header(WWW_AUTHENTICATE).to_owned();
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_owned();
    s.check(
        a.status == StatusCode::UNAUTHORIZED && !metadata_url.is_empty(),
        "no token: 401 with WWW-Authenticate: Bearer resource_metadata=...",
        Some(&a),
    )?;
    let metadata: Value = s.http.get(&metadata_url).send().await?.json().await?;
    s.check(
        metadata["resource"] == demo.url.as_str()
            && metadata["authorization_servers"][0] == demo.auth_server.issuer()
            && metadata["bearer_methods_supported"] == json!(["header"]),
        "the metadata names this resource, the sign-in server, header-only tokens",
        None,
    )?;

    // 2. A bad token: 401 invalid_token.
    let forged = mcp_auth_testkit::DevIssuer::new(demo.issuer.issuer(), &demo.url)
        .access_token(DEMO_USER, &[BASE_SCOPE]);
    for (what, token) in [
        ("a garbage token", "not.a.token"),
        ("a token signed by another key", &forged),
    ] {
        let a = s.post(token, &initialize).await?;
        s.check(
            a.status == StatusCode::UNAUTHORIZED
                && a.header(WWW_AUTHENTICATE)
                    .contains("error=\"invalid_token\""),
            &format!("{what}: 401 invalid_token"),
            Some(&a),
        )?;
    }

    // 3. A good token: initialize, tools/list, tools/call.
    let token = demo.token(DEMO_USER, &[BASE_SCOPE, READ_SCOPE]);
    let a = s.post(&token, &initialize).await?;
    let session = a.header("mcp-session-id").to_owned();
    s.check(
        a.status == StatusCode::OK
            && session.len() == 43
            && a.message().is_some_and(|m| m.get("result").is_some()),
        "good token: initialize succeeds and opens a session bound to the user",
        Some(&a),
    )?;
    s.session = Some(session);
    let a = s
        .post(
            &token,
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
    s.check(
        a.status.is_success(),
        "initialized notification accepted",
        Some(&a),
    )?;

    let a = s
        .post(
            &token,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await?;
    let names: Vec<String> = a
        .message()
        .and_then(|m| m.pointer("/result/tools").cloned())
        .and_then(|t| t.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    s.check(
        a.status == StatusCode::OK
            && ["whoami", "echo", "read_note", "save_note"]
                .iter()
                .all(|n| names.iter().any(|m| m == n)),
        &format!("tools/list: {}", names.join(", ")),
        Some(&a),
    )?;

    let a = s.post(&token, &call(3, "whoami", json!({}))).await?;
    let who = result_text(&a.message());
    s.check(
        a.status == StatusCode::OK && who.contains(DEMO_USER),
        &format!("tools/call whoami: {who}"),
        Some(&a),
    )?;
    let a = s.post(&token, &call(4, "read_note", json!({}))).await?;
    let note = result_text(&a.message());
    s.check(
        a.status == StatusCode::OK && note.starts_with("Hello Alice"),
        &format!("tools/call read_note (from the encrypted vault): {note:?}"),
        Some(&a),
    )?;

    // Tool results are private: never cacheable.
    s.check(
        a.header("cache-control") == "no-store",
        "tool results carry Cache-Control: no-store",
        Some(&a),
    )?;

    // A browser page from another origin, even with a good token: 403.
    let a = s
        .post_with(
            &token,
            ("origin", "http://evil.example"),
            &call(40, "whoami", json!({})),
        )
        .await?;
    s.check(
        a.status == StatusCode::FORBIDDEN,
        "a request from Origin http://evil.example: 403",
        Some(&a),
    )?;

    // A Mcp-Name header naming another tool than the body: JSON-RPC -32020.
    let a = s
        .post_with(&token, ("mcp-name", "echo"), &call(41, "whoami", json!({})))
        .await?;
    let error = a.message().unwrap_or_default();
    s.check(
        a.status == StatusCode::BAD_REQUEST
            && error.pointer("/error/code") == Some(&json!(-32020))
            && error["id"] == 41,
        "a Mcp-Name header that disagrees with the body: 400, JSON-RPC -32020 with the id",
        Some(&a),
    )?;

    // A connection that sends half a request head and stalls is closed.
    let stalled = stalled_connection_is_closed(demo.addr).await?;
    s.check(
        stalled,
        "a connection that stalls in its request head is closed by the server",
        None,
    )?;

    // 4. A tool needing a scope the token lacks: 403 insufficient_scope.
    let a = s
        .post(&token, &call(5, "save_note", json!({"text": "x"})))
        .await?;
    let c = a.header(WWW_AUTHENTICATE);
    s.check(
        a.status == StatusCode::FORBIDDEN
            && c.contains("error=\"insufficient_scope\"")
            && c.contains(&format!("scope=\"{BASE_SCOPE} {WRITE_SCOPE} {READ_SCOPE}\"")),
        "save_note without notes:write: 403 insufficient_scope naming the scopes it needs, then notes:read it has",
        Some(&a),
    )?;

    // 5. Another user replaying this session id: refused.
    let mallory = demo.token("mallory@example.com", &[BASE_SCOPE, READ_SCOPE]);
    let a = s.post(&mallory, &call(6, "read_note", json!({}))).await?;
    s.check(
        a.status == StatusCode::NOT_FOUND,
        "another user's token with this session id: 404",
        Some(&a),
    )?;

    // 6. A burst over the per-tool limit: 429 with Retry-After.
    let mut allowed = 0;
    let mut limited = None;
    for i in 0..60 {
        let a = s
            .post(&token, &call(100 + i, "echo", json!({"text": "hi"})))
            .await?;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
        if a.status != StatusCode::OK {
            return s.check(false, "burst: calls below the limit succeed", Some(&a));
        }
        allowed += 1;
    }
    let retry = limited
        .as_ref()
        .map(|a| a.header("retry-after").to_owned())
        .unwrap_or_default();
    s.check(
        limited.is_some() && retry.parse::<u64>().is_ok_and(|r| r >= 1),
        &format!("burst of echo calls: {allowed} allowed, then 429 with Retry-After: {retry}"),
        limited.as_ref(),
    )?;

    // 7. Closing the session.
    let a = s.send(Method::DELETE, Some(&token), None).await?;
    s.check(a.status.is_success(), "DELETE closes the session", Some(&a))?;
    let a = s.post(&token, &call(7, "whoami", json!({}))).await?;
    s.check(
        a.status == StatusCode::NOT_FOUND,
        "the closed session is gone: 404",
        Some(&a),
    )?;
    sign_in(&mut s).await?;
    Ok(())
}

async fn token_request(
    s: &Script<'_>,
    form: &[(&str, &str)],
) -> Result<(StatusCode, Value), BoxError> {
    let url = format!("{}/token", s.demo.auth_server.issuer());
    let response = s.http.post(url).form(form).send().await?;
    Ok((
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    ))
}

/// 8-14. An MCP client's sign-in, as a real client does it: from the
/// resource metadata to the authorization server's, registration, authorize
/// with PKCE, the (development) login and the consent page, the code
/// exchange, a tool call with our own token, refresh with rotation, reuse
/// detection and revocation.
async fn sign_in(s: &mut Script<'_>) -> Result<(), BoxError> {
    use mcp_auth_testkit::browser::{Browser, Pkce, query_of};
    let issuer = s.demo.auth_server.issuer().to_owned();
    let metadata: Value = s
        .http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    s.check(
        metadata["issuer"] == issuer.as_str()
            && metadata["code_challenge_methods_supported"] == json!(["S256"])
            && metadata["authorization_response_iss_parameter_supported"] == true,
        "the authorization server's metadata: S256 only, RFC 9207 iss",
        None,
    )?;
    let registration = metadata["registration_endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client: Value = s
        .http
        .post(&registration)
        .json(
            &json!({"client_name": "mcp-auth smoke", "redirect_uris": ["http://localhost/callback"],
                      "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
    s.check(!client_id.is_empty(), "dynamic client registration", None)?;

    let mut browser = Browser::new();
    let grant = |pkce: &Pkce| {
        let mut url = url::Url::parse(
            metadata["authorization_endpoint"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_else(|_| url::Url::parse("http://invalid/").expect("a URL"));
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", "http://localhost:48123/callback")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "smoke-state")
            .append_pair("resource", &s.demo.url)
            .append_pair("scope", &format!("{BASE_SCOPE} {READ_SCOPE}"));
        url.to_string()
    };
    let pkce = Pkce::new();
    let callback = browser.sign_in(&issuer, &grant(&pkce), DEMO_USER).await?;
    let code = match &callback {
        Ok(url) => {
            let q = query_of(url);
            (q.get("state").map(String::as_str) == Some("smoke-state")
                && q.get("iss") == Some(&issuer))
            .then(|| q.get("code").cloned())
            .flatten()
        }
        Err(_) => None,
    };
    s.check(
        code.is_some(),
        "authorize with PKCE, development login, consent: the code comes back with state and iss",
        None,
    )?;
    let code = code.unwrap_or_default();
    let redirect = "http://localhost:48123/callback";
    let (status, tokens) = token_request(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await?;
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.check(
        status == StatusCode::OK && !access.is_empty() && !refresh.is_empty(),
        "code exchange: an access token (RFC 9068 JWT) and a refresh token",
        None,
    )?;

    // Our own token opens the resource: a new MCP session, a tool call.
    s.session = None;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "mcp-auth-smoke-signed-in", "version": "1"}}});
    let a = s.post(&access, &initialize).await?;
    s.session = a
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = s
        .post(
            &access,
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
    let a = s.post(&access, &call(200, "whoami", json!({}))).await?;
    s.check(
        a.status == StatusCode::OK && result_text(&a.message()).contains(DEMO_USER),
        "tools/call whoami with the signed-in token",
        Some(&a),
    )?;

    // Refresh rotates; the old refresh token again revokes the grant.
    let (status, rotated) = token_request(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await?;
    let next = rotated["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.check(
        status == StatusCode::OK && !next.is_empty() && next != refresh,
        "refresh: a new access token and a rotated refresh token",
        None,
    )?;
    let (status, reused) = token_request(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await?;
    let (after, _) = token_request(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &client_id),
        ],
    )
    .await?;
    s.check(
        status == StatusCode::BAD_REQUEST
            && reused["error"] == "invalid_grant"
            && after == StatusCode::BAD_REQUEST,
        "a rotated refresh token used again: invalid_grant, and the whole grant is revoked",
        None,
    )?;

    // Revocation (RFC 7009) ends a fresh grant.
    let pkce = Pkce::new();
    let code = match browser.sign_in(&issuer, &grant(&pkce), DEMO_USER).await? {
        Ok(url) => query_of(&url).get("code").cloned().unwrap_or_default(),
        Err(_) => String::new(),
    };
    let (_, tokens) = token_request(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await?;
    let refresh = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let revoked = s
        .http
        .post(metadata["revocation_endpoint"].as_str().unwrap_or_default())
        .form(&[("token", refresh.as_str()), ("client_id", &client_id)])
        .send()
        .await?
        .status();
    let (status, _) = token_request(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await?;
    s.check(
        !refresh.is_empty() && revoked == StatusCode::OK && status == StatusCode::BAD_REQUEST,
        "revocation: the revoked refresh token no longer works",
        None,
    )?;
    Ok(())
}
