//! The Google MCP server against the embedded Google double, with rmcp's
//! own OAuth client (a client no one here wrote) signing in through the
//! whole flow: our consent, the double's Google sign-in with an ID token,
//! our callback, the code exchange. Then every tool, the ID token checks,
//! two users, the step-up for sending mail, revocation at Google, the
//! injection cases, the upstream failures, input checks and the per-tool
//! limit.
#![allow(clippy::unwrap_used)]

use data_encoding::{BASE64, BASE64URL_NOPAD};
use google_mcp::{Running, start_with};
use mcp_auth_app::Settings;
use mcp_auth_core::UserId;
use mcp_auth_testkit::browser::Browser;
use mcp_auth_testkit::google::{GMAIL_SEND, GoogleDouble, IdTokenMode};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const CALLBACK: &str = "http://localhost:48782/callback";
const READ: [&str; 3] = ["google:drive", "google:gmail", "google:calendar"];
const ALL: [&str; 4] = [
    "google:drive",
    "google:gmail",
    "google:calendar",
    "google:gmail.send",
];
const ALICE: &str = "google:10000000000000000001";

type Client = RunningService<RoleClient, ClientConfig>;

async fn server() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings = Settings::from_sources(
        &google_mcp::setting_names(),
        |k| (k == "MCP_LISTEN").then(|| addr.clone()),
        None,
    )
    .unwrap();
    start_with(&settings, listener, None).await.unwrap()
}

fn double(s: &Running) -> &GoogleDouble {
    s.double.as_ref().unwrap()
}

/// The sign-in as far as the browser goes: the callback URL, or the page
/// that stopped it.
async fn browse(s: &Running, user: &str, scopes: &[&str]) -> (OAuthState, Result<String, String>) {
    browse_in(&mut Browser::new(), s, user, scopes).await
}

/// The same in `browser` (its cookies: a person signed in here before).
async fn browse_in(
    browser: &mut Browser,
    s: &Running,
    user: &str,
    scopes: &[&str],
) -> (OAuthState, Result<String, String>) {
    let mut state = OAuthState::new(s.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(CALLBACK)
                .with_client_name("rmcp via google-mcp")
                .with_scopes(scopes.iter().copied()),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();
    let result = browser
        .sign_in_through(&url, user, CALLBACK)
        .await
        .unwrap()
        .map_err(|page| format!("{} {}", page.status, page.body));
    (state, result)
}

async fn client(s: &Running, user: &str, scopes: &[&str]) -> Client {
    client_in(&mut Browser::new(), s, user, scopes).await
}

async fn client_in(browser: &mut Browser, s: &Running, user: &str, scopes: &[&str]) -> Client {
    let (mut state, callback) = browse_in(browser, s, user, scopes).await;
    state.handle_callback_url(&callback.unwrap()).await.unwrap();
    let manager = state.into_authorization_manager().unwrap();
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(s.url.clone()),
    );
    ClientConfig::default().serve(transport).await.unwrap()
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await.unwrap()
}

fn text(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn ok(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    result.structured_content.clone().unwrap()
}

fn failed(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{}", text(result));
    let t = text(result);
    assert!(!t.contains("ya29") && !t.contains("1//refresh"), "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rmcps_oauth_client_signs_in_with_an_id_token_and_calls_every_tool() {
    let s = server().await;
    let alice = client(&s, "alice@example.com", &ALL).await;
    assert_eq!(alice.list_all_tools().await.unwrap().len(), 6);
    // The person is the verified ID token's subject, namespaced.
    assert_eq!(
        s.auth_server
            .grants(&UserId::new(ALICE).unwrap())
            .await
            .unwrap()
            .len(),
        1
    );

    let files = ok(&call(&alice, "drive_search", json!({"name_contains": "plan"})).await);
    assert_eq!(files["files"][0]["name"], "Quarterly plan");
    let doc = ok(&call(
        &alice,
        "drive_read",
        json!({"file_id": files["files"][0]["id"]}),
    )
    .await);
    assert!(
        doc["text"].as_str().unwrap().starts_with("Q1: ship"),
        "{doc}"
    );
    let notes = ok(&call(
        &alice,
        "drive_read",
        json!({"file_id": "1aTxtAliceNotesTxtXyz00001"}),
    )
    .await);
    assert_eq!(notes["text"], "Remember: tokens never leave the vault.");
    let t = failed(
        &call(
            &alice,
            "drive_read",
            json!({"file_id": "1aPngAlicePhotoPngXyz00001"}),
        )
        .await,
    );
    assert!(t.contains("image/png file, not text"), "{t}");

    let found = ok(&call(&alice, "gmail_search", json!({"text": "lunch"})).await);
    assert_eq!(found["message_ids"], json!(["m-alice-1"]));
    let lunch = ok(&call(&alice, "gmail_read", json!({"message_id": "m-alice-1"})).await);
    assert_eq!(lunch["subject"], "Lunch on Friday?");
    assert_eq!(lunch["text"], "Shall we have lunch on Friday at noon?");
    let digest = ok(&call(&alice, "gmail_read", json!({"message_id": "m-alice-2"})).await);
    assert_eq!(
        digest["text"], "Digest Rust 2026 & you.",
        "HTML reduced, script dropped"
    );

    let sent = ok(&call(
        &alice,
        "gmail_send",
        json!({"to": ["bob@example.com"], "cc": ["carol@example.com"],
        "subject": "Grüße aus Rust", "body": "Hello Bob,\nsee you Friday.\n"}),
    )
    .await);
    assert_eq!(sent["sent"], true);
    let (from, raw) = double(&s).state.sent.lock().unwrap()[0].clone();
    assert_eq!(from, "alice@example.com");
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("To: bob@example.com\r\nCc: carol@example.com\r\n"),
        "{head}"
    );
    assert!(head.contains("Subject: =?UTF-8?B?"), "{head}");
    assert!(head.contains("Content-Transfer-Encoding: base64"), "{head}");
    assert_eq!(
        BASE64.decode(body.replace("\r\n", "").as_bytes()).unwrap(),
        b"Hello Bob,\nsee you Friday.\n"
    );

    let events = ok(&call(
        &alice,
        "calendar_events",
        json!({"time_min": "2026-12-01T00:00:00Z", "time_max": "2026-12-08T00:00:00Z"}),
    )
    .await);
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Standup", "Rust meetup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_id_token_refuses_the_sign_in() {
    let s = server().await;
    for mode in [
        IdTokenMode::WrongAudience,
        IdTokenMode::WrongNonce,
        IdTokenMode::Expired,
        IdTokenMode::WrongIssuer,
    ] {
        *double(&s).state.id_token_mode.lock().unwrap() = mode;
        let (_, result) = browse(&s, "alice@example.com", &READ).await;
        let page = result.expect_err("no code for the client");
        assert!(
            page.starts_with("400") && page.contains("ID token was refused"),
            "{mode:?}: {page}"
        );
    }
    assert!(
        s.auth_server
            .grants(&UserId::new(ALICE).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    *double(&s).state.id_token_mode.lock().unwrap() = IdTokenMode::Good;
    client(&s, "alice@example.com", &READ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_people_see_only_their_own_account() {
    let s = server().await;
    let (alice, bob) = tokio::join!(
        client(&s, "alice@example.com", &READ),
        client(&s, "bob@example.com", &READ)
    );
    let (a, b) = tokio::join!(
        call(&alice, "drive_search", json!({"name_contains": "budget"})),
        call(&bob, "drive_search", json!({"name_contains": "budget"}))
    );
    assert_eq!(ok(&a)["files"], json!([]));
    assert_eq!(ok(&b)["files"][0]["name"], "Bob's budget");
    let t = failed(
        &call(
            &alice,
            "drive_read",
            json!({"file_id": "1bDocBobSecretBudgetXyz001"}),
        )
        .await,
    );
    assert!(t.contains("not found"), "{t}");
    let t = failed(&call(&alice, "gmail_read", json!({"message_id": "m-bob-1"})).await);
    assert!(t.contains("not found"), "{t}");
    let state = &double(&s).state;
    let calls = state.api_tokens();
    let bobs = calls
        .iter()
        .find(|(p, _)| p.contains("1bDocBobSecretBudgetXyz001"))
        .unwrap();
    assert_eq!(
        state.user_of(&bobs.1).as_deref(),
        Some("alice@example.com"),
        "Alice's token for Alice's call"
    );
    let owners: std::collections::HashSet<String> =
        calls.iter().filter_map(|(_, t)| state.user_of(t)).collect();
    assert_eq!(owners.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sending_mail_asks_google_for_that_one_scope_and_revoking_revokes_at_google() {
    let s = server().await;
    // One person, one browser: the second sign-in knows who they are.
    let mut browser = Browser::new();
    let reader = client_in(&mut browser, &s, "alice@example.com", &READ).await;
    ok(&call(&reader, "gmail_search", json!({"text": "lunch"})).await);
    let mut params = CallToolRequestParams::new("gmail_send");
    params = params.with_arguments(
        json!({"to": ["bob@example.com"], "subject": "x", "body": "y"})
            .as_object()
            .unwrap()
            .clone(),
    );
    assert!(
        reader.call_tool(params).await.is_err(),
        "403 insufficient_scope: the client must sign in again"
    );
    assert!(double(&s).state.sent.lock().unwrap().is_empty());

    let sender = client_in(
        &mut browser,
        &s,
        "alice@example.com",
        &["google:gmail.send"],
    )
    .await;
    let queries = double(&s).state.authorize_queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0]["access_type"], "offline");
    assert_eq!(
        queries[0]["prompt"], "consent",
        "no refresh token on file yet"
    );
    assert_eq!(queries[1]["include_granted_scopes"], "true");
    assert!(
        !queries[1].contains_key("prompt"),
        "a refresh token is on file"
    );
    let asked: Vec<&str> = queries[1]["scope"].split(' ').collect();
    assert_eq!(
        asked,
        ["email", GMAIL_SEND, "openid"],
        "only the added scope (and OIDC's)"
    );
    ok(&call(
        &sender,
        "gmail_send",
        json!({"to": ["bob@example.com"], "subject": "Hi", "body": "Sent after step-up."}),
    )
    .await);
    // The person kept what they had: the first client still reads.
    ok(&call(&reader, "gmail_search", json!({"text": "lunch"})).await);

    // Revoking our grants revokes Google's refresh token at Google.
    let alice = UserId::new(ALICE).unwrap();
    assert_eq!(s.auth_server.revoke_user(&alice).await.unwrap(), 2);
    let revoked = double(&s).state.revoked.lock().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].starts_with("1//refresh"), "{revoked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_text_is_escaped_never_spliced() {
    let s = server().await;
    let alice = client(&s, "alice@example.com", &ALL).await;
    let state = &double(&s).state;
    // Drive: a name that tries to close the literal and add a clause.
    let hostile = "x' or name contains '";
    let found = ok(&call(&alice, "drive_search", json!({"name_contains": hostile})).await);
    assert_eq!(
        found["files"],
        json!([]),
        "the whole text is one literal: nothing matches"
    );
    assert_eq!(
        state.drive_queries.lock().unwrap().last().unwrap(),
        "name contains 'x\\' or name contains \\'' and trashed = false"
    );
    let found = ok(&call(
        &alice,
        "drive_search",
        json!({"name_contains": "notes.txt"}),
    )
    .await);
    assert_eq!(found["files"][0]["name"], "notes.txt");
    // Gmail: operators inside the text stay a phrase.
    ok(&call(
        &alice,
        "gmail_search",
        json!({"text": "lunch OR in:anywhere", "from": "carol@example.com"}),
    )
    .await);
    assert_eq!(
        state.gmail_queries.lock().unwrap().last().unwrap(),
        "\"lunch OR in:anywhere\" from:carol@example.com"
    );
    let t = failed(&call(&alice, "gmail_search", json!({"text": "a\" OR \"b"})).await);
    assert!(t.contains("double quotes"), "{t}");
    let t = failed(
        &call(
            &alice,
            "gmail_search",
            json!({"text": "x", "from": "a@b.com in:spam"}),
        )
        .await,
    );
    assert!(t.contains("not an e-mail address"), "{t}");
    // Header injection: refused, nothing sent.
    for (to, subject) in [
        (json!(["bob@example.com"]), "Hi\r\nBcc: eve@example.com"),
        (json!(["bob@example.com\r\nBcc: eve@example.com"]), "Hi"),
        (json!(["Bob <bob@example.com>"]), "Hi"),
        (json!([]), "Hi"),
    ] {
        let t = failed(
            &call(
                &alice,
                "gmail_send",
                json!({"to": to, "subject": subject, "body": "x"}),
            )
            .await,
        );
        assert!(t.starts_with("invalid input"), "{t}");
    }
    assert!(state.sent.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_failures_and_bad_inputs() {
    let s = server().await;
    let alice = client(&s, "alice@example.com", &READ).await;
    let state = &double(&s).state;
    let refreshes = state.refreshes.load(std::sync::atomic::Ordering::SeqCst);
    state.fail_next("/drive/v3/files", 401, "authError");
    ok(&call(&alice, "drive_search", json!({"name_contains": "plan"})).await);
    assert_eq!(
        state.refreshes.load(std::sync::atomic::Ordering::SeqCst),
        refreshes + 1,
        "refreshed and retried once"
    );
    state.fail_next("/gmail", 429, "rateLimitExceeded");
    assert!(
        failed(&call(&alice, "gmail_search", json!({"text": "x"})).await).contains("retry in 1 s")
    );
    state.fail_next("/gmail", 403, "rateLimitExceeded");
    assert!(
        failed(&call(&alice, "gmail_search", json!({"text": "x"})).await).contains("rate limiting")
    );
    state.fail_next("/calendar", 403, "insufficientPermissions");
    let t = failed(
        &call(
            &alice,
            "calendar_events",
            json!({"time_min": "2026-12-01T00:00:00Z", "time_max": "2026-12-02T00:00:00Z"}),
        )
        .await,
    );
    assert!(t.contains("permission you have not granted"), "{t}");
    state.fail_next("/drive", 503, "backendError");
    assert!(
        failed(&call(&alice, "drive_search", json!({"name_contains": "plan"})).await)
            .contains("try again shortly")
    );

    let before = state.api_tokens().len();
    for (tool, args, says) in [
        ("drive_search", json!({"name_contains": ""}), "empty"),
        (
            "drive_search",
            json!({"name_contains": "a\nb"}),
            "control characters",
        ),
        (
            "drive_search",
            json!({"name_contains": "x", "page_size": 51}),
            "between 1 and 50",
        ),
        (
            "drive_read",
            json!({"file_id": "../../etc"}),
            "letters, digits",
        ),
        (
            "gmail_read",
            json!({"message_id": "m 1"}),
            "letters, digits",
        ),
        (
            "gmail_search",
            json!({"text": "x".repeat(201)}),
            "longer than 200",
        ),
        (
            "calendar_events",
            json!({"time_min": "yesterday", "time_max": "2026-12-02T00:00:00Z"}),
            "UTC time",
        ),
        (
            "calendar_events",
            json!({"time_min": "2026-12-02T00:00:00Z", "time_max": "2026-12-01T00:00:00Z"}),
            "after time_min",
        ),
        (
            "calendar_events",
            json!({"time_min": "2026-01-01T00:00:00Z", "time_max": "2029-01-01T00:00:00Z"}),
            "at most a year",
        ),
    ] {
        let t = failed(&call(&alice, tool, args).await);
        assert!(
            t.starts_with("invalid input") && t.contains(says),
            "{tool}: {t}"
        );
    }
    assert_eq!(
        state.api_tokens().len(),
        before,
        "nothing was sent to Google"
    );

    // A dead Google refresh token: reconnect, and the grant ends.
    state.kill_refresh_tokens("alice@example.com");
    state.fail_next("/drive", 401, "authError");
    assert!(
        failed(&call(&alice, "drive_search", json!({"name_contains": "plan"})).await)
            .contains("reconnect your Google account")
    );
    assert!(
        s.auth_server
            .grants(&UserId::new(ALICE).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_tool_has_its_own_rate_limit() {
    let s = server().await;
    let alice = client(&s, "alice@example.com", &READ).await;
    let args = json!({"time_min": "2026-12-01T00:00:00Z", "time_max": "2026-12-02T00:00:00Z"});
    // 60 a minute: a burst of 60, then one a second. Counted until the
    // first refusal, against the time the calls took.
    let started = std::time::Instant::now();
    let mut allowed = 0usize;
    loop {
        let params = CallToolRequestParams::new("calendar_events")
            .with_arguments(args.as_object().unwrap().clone());
        if alice.call_tool(params).await.is_err() {
            break;
        }
        allowed += 1;
        assert!(allowed < 1_000, "never refused");
    }
    let refills = started.elapsed().as_secs() as usize + 1;
    assert!((60..=60 + refills).contains(&allowed), "{allowed} allowed");
    ok(&call(&alice, "drive_search", json!({"name_contains": "plan"})).await);
}

#[test]
fn the_raw_message_is_base64url() {
    let raw = google_mcp::text::message(&["a@example.com".into()], &[], "Hi", "x").unwrap();
    assert!(BASE64URL_NOPAD.decode(raw.as_bytes()).is_ok());
}

/// The sign-in pages in a real browser: our consent, then the double's
/// Google page; screenshots kept in `target/screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs chromium"]
async fn the_sign_in_in_a_real_browser() {
    let s = server().await;
    let mut state = OAuthState::new(s.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(CALLBACK)
                .with_client_name("Chromium via google-mcp")
                .with_scopes(READ),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();
    let browser = mcp_auth_testkit::webdriver::Chromium::start("google-mcp browser test").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    browser.open(&url).await.unwrap();
    browser.wait_for_text("h1", "Allow").await.unwrap();
    assert!(
        browser
            .text("body")
            .await
            .unwrap()
            .contains("you sign in with Google")
    );
    browser.click("button[value=approve]").await.unwrap();
    browser
        .wait_for_text("h1", "Sign in with Google")
        .await
        .unwrap();
    std::fs::write(
        dir.join("google-double-login.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    browser
        .type_into("#user", "alice@example.com")
        .await
        .unwrap();
    browser.click("button[value=approve]").await.unwrap();
    let back = browser.wait_for_url(CALLBACK).await.unwrap();
    state.handle_callback_url(&back).await.unwrap();
}

#[tokio::test]
async fn every_configuration_problem_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = Settings::from_sources(
        &google_mcp::setting_names(),
        |k| match k {
            "GOOGLE_CLIENT_SECRET" => Some("secret-only".into()),
            "MCP_VAULT_KEY" => Some("not base64!".into()),
            _ => None,
        },
        None,
    )
    .unwrap();
    let err = start_with(&settings, listener, None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, google_mcp::StartError::Config(ref p) if p.len() == 2),
        "{text}"
    );
    assert!(
        text.contains("GOOGLE_CLIENT_ID") && text.contains("MCP_VAULT_KEY"),
        "{text}"
    );
    assert!(!text.contains("secret-only"), "{text}");
}

/// Cancel at Google, after approving our consent: the MCP client is sent
/// `error=access_denied` with its `state` and our `iss`, so it stops
/// waiting; rmcp's client reports the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_at_google_sends_the_client_access_denied() {
    let s = server().await;
    let mut state = OAuthState::new(s.url.as_str(), None).await.unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(CALLBACK)
                .with_client_name("rmcp via google-mcp")
                .with_scopes(["google:gmail"]),
        )
        .await
        .unwrap();
    let url = state.get_authorization_url().await.unwrap();
    let mut browser = Browser::new();
    let consent = browser.get(&url).await.unwrap();
    assert_eq!(consent.status, 200, "{}", consent.body);
    let to_google = browser
        .post(
            &format!("{}/consent", s.issuer.trim_end_matches('/')),
            &[
                ("pending", &consent.field("pending").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(to_google.status, 303, "{}", to_google.body);
    let asked = mcp_auth_testkit::browser::query_of(to_google.location());
    let google_page = browser.get(to_google.location()).await.unwrap();
    assert!(google_page.body.contains("Cancel"));
    let mut form: Vec<(&str, &str)> = asked
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.push(("decision", "cancel"));
    let endpoint = to_google.location().split('?').next().unwrap().to_owned();
    let back = browser.post(&endpoint, &form).await.unwrap();
    let to_client = browser.get(back.location()).await.unwrap();
    assert_eq!(to_client.status, 303, "{}", to_client.body);
    let callback = to_client.location().to_owned();
    assert!(callback.starts_with(CALLBACK), "{callback}");
    let q = mcp_auth_testkit::browser::query_of(&callback);
    assert_eq!(q["error"], "access_denied");
    assert!(q.contains_key("state") && q.contains_key("iss") && !q.contains_key("code"));
    let refused = state.handle_callback_url(&callback).await;
    assert!(refused.is_err(), "rmcp's client reports the refusal");
}

/// Least privilege at the first sign-in: the 401 challenge and the
/// resource metadata name the read scopes only; sending mail is asked for
/// on step-up, which names it in its 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_sign_in_asks_for_the_read_scopes_only() {
    let s = server().await;
    let http = reqwest::Client::new();
    let unauthenticated = http
        .post(s.url.as_str())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let challenge = unauthenticated.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("scope=\"google:drive google:gmail google:calendar\""),
        "{challenge}"
    );
    assert!(!challenge.contains("gmail.send"), "{challenge}");
    let origin = s.issuer.trim_end_matches('/');
    let metadata: Value = http
        .get(format!("{origin}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported: Vec<&str> = metadata["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!supported.contains(&"google:gmail.send"), "{metadata}");
    assert!(supported.contains(&"google:gmail"), "{metadata}");
    // A client that asks for what the challenge names: Google is asked for
    // the read-only scopes, not gmail.send.
    let c = client(&s, "alice@example.com", &READ).await;
    drop(c);
    let asked = double(&s)
        .state
        .authorize_queries
        .lock()
        .unwrap()
        .last()
        .unwrap()["scope"]
        .clone();
    assert!(!asked.contains("gmail.send"), "{asked}");
    assert!(asked.contains("gmail.readonly"), "{asked}");
}

/// The official TypeScript SDK's first sign-in to google-mcp: the scope it
/// asks for (from our 401) is the read scopes, and Google is then asked
/// for the read-only scopes, not `gmail.send`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs node and npm"]
async fn the_typescript_sdk_asks_google_for_read_scopes_only_at_first() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mcp-auth-demo/tests/ts");
    mcp_auth_testkit::npm_ready(&dir, "@modelcontextprotocol/sdk", "google-mcp first scope");
    let s = server().await;
    let output = tokio::process::Command::new("node")
        .args(["first-scope.mjs", s.url.as_str()])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("scope: google:drive google:gmail google:calendar"),
        "{stdout}"
    );
    let authorization_url = stdout.lines().last().unwrap().to_owned();
    // The person approves our consent; we send them to Google.
    let mut browser = Browser::new();
    let consent = browser.get(&authorization_url).await.unwrap();
    assert_eq!(consent.status, 200, "{}", consent.body);
    let to_google = browser
        .post(
            &format!("{}/consent", s.issuer.trim_end_matches('/')),
            &[
                ("pending", &consent.field("pending").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(to_google.status, 303, "{}", to_google.body);
    let asked = mcp_auth_testkit::browser::query_of(to_google.location())["scope"].clone();
    assert!(asked.contains("gmail.readonly"), "{asked}");
    assert!(!asked.contains("gmail.send"), "{asked}");
}
