//! End to end against a real OpenID provider no one here wrote: npm
//! `oidc-provider` (OpenID Certified), pinned by the committed
//! `tests/oidc/package-lock.json`, installed with `npm ci` when missing and
//! started on loopback by this test. A scripted browser logs in through the
//! provider's development interactions (login form, then consent), keeping
//! cookies.
//!
//! Covers: discovery with the issuer check, full login, code exchange with
//! PKCE, RFC 9207 `iss` (the provider advertises it), ID-token validation
//! (ES256 via JWKS, iss, aud, exp, nonce), refresh with rotation, reuse of
//! an old refresh token rejected, and revocation.
//!
//! Needs `node` and `npm`: ignored by a plain `cargo test`, run by
//! `scripts/test-all.sh` (which brings Node.js 22); without node it fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mcp_auth_core::UserId;
use mcp_auth_pkce::{OAuthClient, OAuthError, Provider, RedirectUri, TokenKind};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, BufReader};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal browser: follows redirects itself, keeps cookies, submits the
/// provider's login and consent forms. Returns the callback query string.
async fn browse_to_callback(start: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut url = url::Url::parse(start).unwrap();
    let mut form: Option<Vec<(&str, &str)>> = None;
    for _ in 0..20 {
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = match form.take() {
            Some(fields) => http.post(url.clone()).form(&fields),
            None => http.get(url.clone()),
        };
        let response = request.header("cookie", cookie).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            if let Some(query) = location.strip_prefix(&format!("{REDIRECT}?")) {
                return query.to_owned();
            }
            url = url.join(&location).unwrap();
            continue;
        }
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        let action = body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form in: {body}"));
        url = url.join(action).unwrap();
        form = Some(if body.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", "alice"), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        });
    }
    panic!("the provider never redirected back");
}

struct OidcProvider {
    child: tokio::process::Child,
    issuer: String,
}

async fn start_provider() -> OidcProvider {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    mcp_auth_testkit::npm_ready(&dir, "oidc-provider", "oidc-provider end-to-end test");
    let port = free_port();
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .arg(port.to_string())
        .arg(REDIRECT)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("oidc-provider did not start in 30 s")
        .unwrap()
        .unwrap();
    let issuer = ready.strip_prefix("READY ").expect("READY line").to_owned();
    // Keep draining stdout: a closed pipe would crash the provider (EPIPE).
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    OidcProvider { child, issuer }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm"]
async fn sign_in_refresh_rotation_and_revocation_against_oidc_provider() {
    let mut op = start_provider().await;
    let provider = Provider::discover("oidc-provider", &op.issuer)
        .await
        .unwrap();
    assert_eq!(provider.issuer.as_deref(), Some(op.issuer.as_str()));
    assert!(provider.is_openid() && provider.iss_parameter_supported);
    assert!(provider.revocation_endpoint.is_some());
    // Discovery under another issuer name is refused (exact match).
    assert_eq!(
        Provider::discover("x", &format!("{}/", op.issuer))
            .await
            .unwrap_err(),
        OAuthError::DiscoveryIssuerMismatch
    );

    let client = OAuthClient::builder(provider, "mcp-e2e", RedirectUri::new(REDIRECT).unwrap())
        .client_secret(SecretString::from("mcp-e2e-client-secret"))
        .build()
        .unwrap();
    let alice = UserId::new("alice@example.com").unwrap();
    let scopes = ["openid", "offline_access", "email"];

    // Full login: code + PKCE, iss checked, ID token validated.
    let request = client
        .start(&alice, &scopes, &[("prompt", "consent")])
        .await
        .unwrap();
    assert!(request.url.contains("nonce="));
    let query = browse_to_callback(&request.url).await;
    assert!(
        query.contains("iss="),
        "RFC 9207 iss in the callback: {query}"
    );
    let tokens = client.callback(&alice, &query).await.unwrap();
    let claims = tokens
        .id_token_claims
        .as_ref()
        .expect("validated ID token claims");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "mcp-e2e");
    assert!(claims.contains_key("nonce"));
    assert_eq!(tokens.subject(), Some("alice"));
    let first_refresh = tokens.refresh_token.clone().expect("a refresh token");

    // A replayed callback is refused before the provider sees the code again.
    assert_eq!(
        client.callback(&alice, &query).await.unwrap_err(),
        OAuthError::UnknownState
    );

    // Refresh with rotation: a new refresh token; the old one is then refused.
    let refreshed = client.refresh(&alice, &tokens).await.unwrap();
    let rotated = refreshed.refresh_token.clone().unwrap();
    assert_ne!(rotated.expose_secret(), first_refresh.expose_secret());
    assert_ne!(
        refreshed.access_token.expose_secret(),
        tokens.access_token.expose_secret()
    );
    assert!(refreshed.id_token_claims.is_some(), "claims carried over");
    let reused = client.refresh(&alice, &tokens).await.unwrap_err();
    assert_eq!(reused, OAuthError::ReauthenticationRequired);

    // Revocation: a second sign-in's refresh token, revoked, no longer works.
    let request = client
        .start(&alice, &scopes, &[("prompt", "consent")])
        .await
        .unwrap();
    let second = client
        .callback(&alice, &browse_to_callback(&request.url).await)
        .await
        .unwrap();
    client.revoke(&second, TokenKind::Refresh).await.unwrap();
    assert_eq!(
        client.refresh(&alice, &second).await.unwrap_err(),
        OAuthError::ReauthenticationRequired
    );
    let _ = op.child.kill().await;
}
