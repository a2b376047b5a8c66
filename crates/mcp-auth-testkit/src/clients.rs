//! The client interop suite: MCP clients no one here wrote — the official
//! TypeScript SDK, the official Python SDK and the MCP Inspector CLI, each
//! pinned in `clients/` (`package-lock.json`, `requirements.txt`) — sign in
//! to a server, call a tool, step up, refresh and are revoked, with the
//! person's part (our login and consent, a provider's login, the
//! connected-apps page) done in headless Chromium.
//!
//! [`run`] returns the steps that passed, or an error naming the client,
//! the server and the step that failed. The SDK clients run as scripts
//! (`ts-client.mjs`, `py-client.py`) that talk in lines; the Inspector CLI
//! is run once per step, as a person would run it, with its own OAuth
//! store under a private `HOME`.
//!
//! Needs node, npm, python3 and chromium: the tests that call [`run`] are
//! `#[ignore]`d for a plain `cargo test` and run by `scripts/test-all.sh`.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::webdriver::Chromium;

/// A client of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpClient {
    /// `@modelcontextprotocol/sdk` (npm), through `ts-client.mjs`.
    TypeScriptSdk,
    /// `mcp` (PyPI), through `py-client.py`.
    PythonSdk,
    /// `@modelcontextprotocol/inspector`'s CLI (npm).
    InspectorCli,
}

impl McpClient {
    /// The client's name in failures.
    pub fn name(self) -> &'static str {
        match self {
            Self::TypeScriptSdk => "the TypeScript SDK",
            Self::PythonSdk => "the Python SDK",
            Self::InspectorCli => "the MCP Inspector CLI",
        }
    }

    /// The `client_name` it registers with (the connected-apps page lists it).
    fn registered_as(self) -> &'static str {
        match self {
            Self::TypeScriptSdk => "TypeScript SDK interop",
            Self::PythonSdk => "Python SDK interop",
            Self::InspectorCli => "MCP Inspector",
        }
    }
}

/// A tool call: its name and arguments.
#[derive(Debug, Clone)]
pub struct Call {
    /// The tool.
    pub tool: &'static str,
    /// Its arguments (a JSON object).
    pub args: Value,
}

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in failures ("the demo", "spotify-mcp").
    pub name: &'static str,
    /// The protected MCP endpoint.
    pub mcp_url: String,
    /// The authorization server's origin (for `/apps`).
    pub origin: String,
    /// Who signs in (our development login, or the provider double's).
    pub user: &'static str,
    /// A call the first sign-in allows.
    pub first: Call,
    /// A call that needs a scope the first sign-in did not ask for.
    pub step_up: Call,
    /// The scope the Inspector is configured to ask for first (it asks for
    /// every scope the server lists unless its configuration names some).
    pub first_scope: &'static str,
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// A failed step, named.
struct Failure {
    step: &'static str,
    detail: String,
}

fn failed(step: &'static str, detail: impl std::fmt::Display) -> Failure {
    Failure {
        step,
        detail: detail.to_string(),
    }
}

/// Runs `client` against `target` through every step: sign-in, tool call,
/// step-up, refresh, revocation. The steps that passed, one line each; or
/// `"<client> on <target>, step <step>: <detail>"`.
pub async fn run(client: McpClient, target: &Target) -> Result<Vec<String>, String> {
    let dir = clients_dir();
    let test = format!("client interop ({})", client.name());
    crate::npm_ready(&dir, "@modelcontextprotocol/inspector", &test);
    let browser = Chromium::start(&test).await;
    let outcome = match client {
        McpClient::TypeScriptSdk => {
            let mut command = tokio::process::Command::new("node");
            command.arg("ts-client.mjs");
            scripted(client, target, &browser, command).await
        }
        McpClient::PythonSdk => {
            let python = crate::pip_ready(&dir, &test);
            let mut command = tokio::process::Command::new(python);
            command.arg("py-client.py");
            scripted(client, target, &browser, command).await
        }
        McpClient::InspectorCli => inspector(target, &browser).await,
    };
    outcome.map_err(|f| {
        format!(
            "{} on {}, step {}: {}",
            client.name(),
            target.name,
            f.step,
            f.detail
        )
    })
}

// ------------------------------------------------------------ the person

/// The person's part of one authorization in Chromium: from `authorize`
/// through whatever pages come (our login, our consent, the provider
/// double's login) until the browser is sent to a URL starting with
/// `back_to`, which is returned.
async fn person(
    browser: &Chromium,
    authorize: &str,
    user: &str,
    back_to: &str,
) -> Result<String, String> {
    browser.open(authorize).await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acted_on = String::new();
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        // WebDriver's URL, not the page's: a client that does not listen
        // on its redirect leaves Chromium on an error page.
        let url = browser.url().await.map_err(|e| e.to_string())?;
        if url.starts_with(back_to) {
            return Ok(url);
        }
        let heading = browser
            .run("return (document.querySelector('h1') || {}).textContent || ''")
            .await
            .map_err(|e| e.to_string())?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let here = format!("{url} | {heading}");
        if here != acted_on && !heading.is_empty() {
            seen.push(heading.clone());
            let acted = if heading.contains("Sign in to Spotify") {
                browser
                    .type_into("#user", user)
                    .await
                    .and(browser.click("button[value=approve]").await)
            } else if heading.contains("Sign in") {
                browser
                    .type_into("#user", user)
                    .await
                    .and(browser.click("button[type=submit]").await)
            } else if heading.contains("Allow") {
                browser.click("button[value=approve]").await
            } else {
                return Err(format!("an unexpected page: {heading:?} at {url}"));
            };
            acted.map_err(|e| format!("on {heading:?}: {e}"))?;
            acted_on = here;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = browser.text("body").await.unwrap_or_default();
    Err(format!(
        "not back at {back_to} within 30 s (pages seen: {seen:?}; the last one says {:?})",
        last.chars().take(200).collect::<String>()
    ))
}

/// The person revokes `client`'s access on the connected-apps page.
async fn revoke_in_browser(
    browser: &Chromium,
    origin: &str,
    client: McpClient,
) -> Result<(), String> {
    let apps = format!("{origin}/apps");
    browser.open(&apps).await.map_err(|e| e.to_string())?;
    browser
        .wait_for_text("h1", "Connected apps")
        .await
        .map_err(|e| e.to_string())?;
    let script = format!(
        "for (const li of document.querySelectorAll('li')) {{
           const name = li.querySelector('strong');
           if (name && name.textContent === {name} && li.querySelector('button')) {{
             li.querySelector('button').click(); return true; }} }}
         return false;",
        name = json!(client.registered_as())
    );
    let clicked = browser.run(&script).await.map_err(|e| e.to_string())?;
    if clicked != json!(true) {
        return Err(format!(
            "the connected-apps page does not list {:?}",
            client.registered_as()
        ));
    }
    // The page comes back without it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let source = browser.source().await.unwrap_or_default();
        if source.contains("Connected apps") && !source.contains(client.registered_as()) {
            return Ok(());
        }
    }
    Err(format!(
        "{:?} is still listed after Revoke",
        client.registered_as()
    ))
}

// ------------------------------------------------------------ the SDKs

/// An SDK client script (see `ts-client.mjs`): it prints `AUTHORIZE <url>`
/// when the person is needed and reads `CALLBACK <url>`; `READY revoke`
/// when it is time to revoke it, and reads `REVOKED`; `OK <step>: …` per
/// step, `FAILED <step>: …`, `DONE`.
async fn scripted(
    client: McpClient,
    target: &Target,
    browser: &Chromium,
    mut command: tokio::process::Command,
) -> Result<Vec<String>, Failure> {
    let mut child = command
        .arg(&target.mcp_url)
        .arg(target.first.tool)
        .arg(target.first.args.to_string())
        .arg(target.step_up.tool)
        .arg(target.step_up.args.to_string())
        .current_dir(clients_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed("start", e))?;
    let mut to_client = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut passed = Vec::new();
    let mut step = "sign-in";
    loop {
        let line = match tokio::time::timeout(Duration::from_secs(90), lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = child.start_kill();
                let stderr = errors.await.unwrap_or_default();
                let tail: String = stderr
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(failed(
                    step,
                    format!("the client stopped talking ({other:?}); its stderr ends: {tail}"),
                ));
            }
        };
        if let Some(url) = line.strip_prefix("AUTHORIZE ") {
            let redirect = redirect_uri_of(url);
            let callback = person(browser, url, target.user, &redirect)
                .await
                .map_err(|e| failed(step, format!("in Chromium: {e}")))?;
            to_client
                .write_all(format!("CALLBACK {callback}\n").as_bytes())
                .await
                .map_err(|e| failed(step, e))?;
        } else if line == "READY revoke" {
            step = "revocation";
            revoke_in_browser(browser, &target.origin, client)
                .await
                .map_err(|e| failed(step, format!("in Chromium: {e}")))?;
            to_client
                .write_all(b"REVOKED\n")
                .await
                .map_err(|e| failed(step, e))?;
        } else if let Some(ok) = line.strip_prefix("OK ") {
            step = next_step(ok);
            passed.push(ok.to_owned());
        } else if let Some(bad) = line.strip_prefix("FAILED ") {
            let (named, detail) = bad.split_once(": ").unwrap_or((bad, ""));
            return Err(failed(step_named(named), detail));
        } else if line == "DONE" {
            return Ok(passed);
        }
    }
}

/// The step after the one an `OK <step>: …` line reports.
fn next_step(ok: &str) -> &'static str {
    match ok.split(':').next().unwrap_or_default() {
        "sign-in" => "tool call",
        "tool call" => "step-up",
        "step-up" => "refresh",
        _ => "revocation",
    }
}

fn step_named(name: &str) -> &'static str {
    ["sign-in", "tool call", "step-up", "refresh", "revocation"]
        .into_iter()
        .find(|s| *s == name)
        .unwrap_or("unknown")
}

/// The `redirect_uri` of an authorization URL.
fn redirect_uri_of(authorize: &str) -> String {
    crate::browser::query_of(authorize)
        .remove("redirect_uri")
        .unwrap_or_default()
}

// ------------------------------------------------------------ the Inspector

/// One run of the Inspector CLI: its stdout, whether it asked for the
/// person, its exit status and stderr.
struct CliRun {
    stdout: String,
    stderr: String,
    success: bool,
    asked_person: bool,
}

struct Inspector<'a> {
    home: tempfile::TempDir,
    config: PathBuf,
    callback: String,
    target: &'a Target,
    browser: &'a Chromium,
}

impl Inspector<'_> {
    /// Runs the CLI with `args`; when it asks for the person (`Please
    /// navigate to: <url>`), Chromium walks the pages and ends at the CLI's
    /// own callback listener. `answer`: written to its stdin first (its
    /// step-up question).
    async fn cli(&self, args: &[&str], answer: Option<&str>) -> Result<CliRun, String> {
        let script = clients_dir()
            .join("node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .args(["--cli", "--config"])
            .arg(&self.config)
            .args(["--server", "target", "--format", "json"])
            .args(args)
            .env("HOME", self.home.path())
            // Its prompts without a terminal; the file store keeps the
            // OAuth state between runs, as the keychain would.
            .env("MCP_AUTO_OPEN_ENABLED", "true")
            .env("MCP_INSPECTOR_SECRET_STORE", "file")
            .env("BROWSER", "true")
            .env_remove("DISPLAY")
            .current_dir(clients_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().expect("piped");
        if let Some(answer) = answer {
            stdin
                .write_all(answer.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
        let stdout = child.stdout.take().expect("piped");
        let reading = tokio::spawn(async move {
            let mut text = String::new();
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let mut errors = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut stderr = String::new();
        let mut asked_person = false;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let line = tokio::time::timeout_at(deadline.into(), errors.next_line())
                .await
                .map_err(|_| format!("no answer within 90 s; its stderr: {stderr}"))?;
            let Ok(Some(line)) = line else { break };
            if let Some((_, url)) = line.split_once("Please navigate to: ") {
                asked_person = true;
                person(self.browser, url.trim(), self.target.user, &self.callback)
                    .await
                    .map_err(|e| format!("in Chromium: {e}"))?;
            }
            if !line.contains("Secrets are stored unencrypted")
                && !line.contains("secret-storage.md")
            {
                stderr.push_str(&line);
                stderr.push('\n');
            }
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .map_err(|_| "it did not exit".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(CliRun {
            stdout: reading.await.unwrap_or_default(),
            stderr,
            success: status.success(),
            asked_person,
        })
    }

    /// `tools/call` of `call`.
    async fn call(
        &self,
        call: &Call,
        extra: &[&str],
        answer: Option<&str>,
    ) -> Result<CliRun, String> {
        let args = call.args.to_string();
        let mut all = vec![
            "--method",
            "tools/call",
            "--tool-name",
            call.tool,
            "--tool-args-json",
            &args,
            "--callback-url",
            &self.callback,
        ];
        all.extend_from_slice(extra);
        self.cli(&all, answer).await
    }

    /// The stored token set (the Inspector keeps it as a JSON string in
    /// its secrets file).
    fn secrets(&self) -> Result<(PathBuf, Value, String), String> {
        let path = self.home.path().join(".mcp-inspector/secrets.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let all: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let key = all["secrets"]
            .as_object()
            .and_then(|m| m.keys().find(|k| k.contains(":tokens:")).cloned())
            .ok_or("no token set in the Inspector's store")?;
        Ok((path, all, key))
    }

    fn refresh_token(&self) -> Result<String, String> {
        let (_, all, key) = self.secrets()?;
        let tokens: Value = serde_json::from_str(all["secrets"][&key].as_str().unwrap_or("{}"))
            .map_err(|e| e.to_string())?;
        Ok(tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The stored access token runs out, as an hour would make it.
    fn expire_access_token(&self) -> Result<(), String> {
        let (path, mut all, key) = self.secrets()?;
        let mut tokens: Value = serde_json::from_str(all["secrets"][&key].as_str().unwrap_or("{}"))
            .map_err(|e| e.to_string())?;
        tokens["access_token"] = json!("expired");
        all["secrets"][&key] = json!(tokens.to_string());
        std::fs::write(&path, all.to_string()).map_err(|e| e.to_string())
    }
}

fn answered(run: &CliRun, what: &str) -> Result<Value, String> {
    let result: Value = serde_json::from_str(run.stdout.trim()).map_err(|_| {
        format!(
            "{what}: no JSON result (exit {}); stdout {:?}, stderr {:?}",
            if run.success { "0" } else { "non-zero" },
            run.stdout,
            run.stderr
        )
    })?;
    if !run.success || result["result"]["isError"] != json!(false) {
        return Err(format!(
            "{what} did not answer: {result}; stderr {:?}",
            run.stderr
        ));
    }
    Ok(result)
}

async fn inspector(target: &Target, browser: &Chromium) -> Result<Vec<String>, Failure> {
    let home = tempfile::tempdir().map_err(|e| failed("start", e))?;
    let config = home.path().join("servers.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"target": {
            "type": "streamable-http",
            "url": target.mcp_url,
            "oauth": {"scopes": target.first_scope},
        }}})
        .to_string(),
    )
    .map_err(|e| failed("start", e))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| failed("start", e))?
        .port();
    let cli = Inspector {
        home,
        config,
        callback: format!("http://127.0.0.1:{port}/oauth/callback"),
        target,
        browser,
    };
    let mut passed = Vec::new();

    let step = "sign-in";
    let run = cli
        .call(&target.first, &[], None)
        .await
        .map_err(|e| failed(step, e))?;
    if !run.asked_person {
        return Err(failed(
            step,
            format!("it never asked for a sign-in; stderr {:?}", run.stderr),
        ));
    }
    passed.push("sign-in: signed in through Chromium".to_owned());
    answered(&run, target.first.tool).map_err(|e| failed("tool call", e))?;
    passed.push(format!("tool call: {} answered", target.first.tool));

    let step = "step-up";
    let run = cli
        .call(&target.step_up, &[], Some("y\n"))
        .await
        .map_err(|e| failed(step, e))?;
    if !run.asked_person || !run.stderr.contains("needs additional scope") {
        return Err(failed(
            step,
            format!(
                "expected its step-up question and a new authorization; stderr {:?}",
                run.stderr
            ),
        ));
    }
    answered(&run, target.step_up.tool).map_err(|e| failed(step, e))?;
    passed.push(format!(
        "step-up: {} answered after a step-up authorization",
        target.step_up.tool
    ));

    let step = "refresh";
    let before = cli.refresh_token().map_err(|e| failed(step, e))?;
    cli.expire_access_token().map_err(|e| failed(step, e))?;
    let run = cli
        .call(&target.first, &["--stored-auth-only"], None)
        .await
        .map_err(|e| failed(step, e))?;
    answered(&run, target.first.tool).map_err(|e| failed(step, e))?;
    let after = cli.refresh_token().map_err(|e| failed(step, e))?;
    if run.asked_person || after.is_empty() || after == before {
        return Err(failed(
            step,
            "no refresh: the person was asked, or the refresh token did not rotate",
        ));
    }
    passed.push(format!(
        "refresh: {} answered after a refresh (the refresh token rotated)",
        target.first.tool
    ));

    let step = "revocation";
    revoke_in_browser(browser, &target.origin, McpClient::InspectorCli)
        .await
        .map_err(|e| failed(step, format!("in Chromium: {e}")))?;
    cli.expire_access_token().map_err(|e| failed(step, e))?;
    let run = cli
        .call(&target.first, &["--stored-auth-only"], None)
        .await
        .map_err(|e| failed(step, e))?;
    let all = format!("{}{}", run.stdout, run.stderr);
    if run.success || !all.contains("auth_required") {
        return Err(failed(
            step,
            format!(
                "expected auth_required after revocation; stdout {:?}, stderr {:?}",
                run.stdout, run.stderr
            ),
        ));
    }
    passed.push(
        "revocation: the refresh was refused and the Inspector needs a new sign-in".to_owned(),
    );
    Ok(passed)
}

/// Runs `client` against `target` through every step and prints them;
/// panics with the failure (`"<client> on <target>, step <step>: …"`).
///
/// # Panics
/// When a step fails or a step is missing.
#[allow(clippy::panic)]
pub async fn suite(client: McpClient, target: &Target) {
    match run(client, target).await {
        Ok(steps) => {
            assert_eq!(steps.len(), 5, "{steps:#?}");
            for step in steps {
                println!("ok: {step}");
            }
        }
        Err(failure) => panic!("{failure}"),
    }
}
