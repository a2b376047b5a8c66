//! A real browser for tests: Debian's `chromium`, headless, driven through
//! `chromedriver` with the W3C WebDriver protocol (plain JSON over HTTP).
//! [`Chromium::start`] panics when either binary is missing: a test that
//! asked for a browser fails without one (tests that need it are
//! `#[ignore = "needs chromium"]`; `scripts/test-all.sh` installs it).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use serde_json::{Value, json};

/// A headless Chromium session behind its own chromedriver process; both
/// end when dropped.
#[derive(Debug)]
pub struct Chromium {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// A WebDriver call failed.
#[derive(Debug)]
pub struct WebDriverError(pub String);

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebDriverError {}

type Result<T> = std::result::Result<T, WebDriverError>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9515)
}

fn have(binary: &str) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

impl Chromium {
    /// Starts chromedriver and a headless Chromium with a fresh profile and
    /// a phone-sized window (412 × 915). `test` names the test in the
    /// panic message when the browser is missing.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, &[]).await
    }

    /// [`start`](Self::start) with more command-line flags for Chromium
    /// (e.g. `--ignore-certificate-errors` for a site with a test CA).
    #[allow(clippy::panic, clippy::expect_used)]
    pub async fn start_with(test: &str, extra_args: &[&str]) -> Self {
        assert!(
            have("chromium") && have("chromedriver"),
            "{test} needs chromium and chromedriver (Debian: chromium chromium-driver), \
             which are not installed: run scripts/test-all.sh, which brings them"
        );
        let port = free_port();
        // Its own process group, so that dropping it ends the browsers it
        // started too, whatever state the session is in.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{test}: chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=412,915",
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        if let Some(list) = args.as_array_mut() {
            list.extend(extra_args.iter().map(|a| json!(a)));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a WebDriver session")
            .json()
            .await
            .expect("a WebDriver answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{test}: no browser session: {created}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .map_err(|e| WebDriverError(e.to_string()))?
            .json()
            .await
            .map_err(|e| WebDriverError(e.to_string()))?;
        if let Some(error) = answer["value"].get("error") {
            return Err(WebDriverError(format!(
                "{error}: {}",
                answer["value"]["message"]
            )));
        }
        Ok(answer["value"].clone())
    }

    /// Loads `url` (waits for the page).
    pub async fn open(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .map(|_| ())
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String> {
        let value = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Waits (up to 10 s) until the current URL starts with `prefix`, and
    /// returns it.
    pub async fn wait_for_url(&self, prefix: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await?;
            if url.starts_with(prefix) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                return Err(WebDriverError(format!("still at {url}, not {prefix}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) until the element matching `selector` exists and
    /// its text contains `part` (a click's navigation may still be under
    /// way when the click returns), and returns the text.
    pub async fn wait_for_text(&self, selector: &str, part: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.text(selector).await {
                Ok(text) if text.contains(part) => return Ok(text),
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(text) => {
                    return Err(WebDriverError(format!(
                        "{selector} says {text:?}, not {part:?}"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> Result<String> {
        let value = self.call(reqwest::Method::GET, "/source", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<String> {
        let value = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await?;
        value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| WebDriverError(format!("no element {selector}")))
    }

    /// The rendered text of the element matching `selector`.
    pub async fn text(&self, selector: &str) -> Result<String> {
        let element = self.find(selector).await?;
        let value = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Types `text` into the element matching `selector`.
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        let element = self.find(selector).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await
        .map(|_| ())
    }

    /// Clicks the element matching `selector` (waits for a resulting load).
    pub async fn click(&self, selector: &str) -> Result<()> {
        let element = self.find(selector).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Runs `script` in the page (`return …` for a value).
    pub async fn run(&self, script: &str) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Switches into the iframe matching `selector` (`None`: back to the top).
    pub async fn frame(&self, selector: Option<&str>) -> Result<()> {
        // The element reference exactly as the driver gave it.
        let id = match selector {
            Some(selector) => {
                self.call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": selector})),
                )
                .await?
            }
            None => Value::Null,
        };
        let body = json!({"id": id});
        self.call(reqwest::Method::POST, "/frame", Some(body))
            .await
            .map(|_| ())
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        BASE64
            .decode(value.as_str().unwrap_or_default().as_bytes())
            .map_err(|_| WebDriverError("the screenshot is not base64".into()))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // End the session (the driver closes the browser), without a
        // runtime: one blocking request with a short timeout.
        if let Some(address) = self.base.strip_prefix("http://")
            && let Ok(mut stream) = TcpStream::connect(address)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = std::io::Read::read(&mut stream, &mut [0u8; 512]);
            }
        }
        // Then the driver's whole process group: any browser left behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
