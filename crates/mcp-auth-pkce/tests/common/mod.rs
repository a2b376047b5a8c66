//! An in-process HTTP double of Spotify's accounts service (`/authorize`,
//! `/api/token`). It enforces PKCE S256, single-use codes, exact redirect
//! URIs, client authentication and refresh-token rules. With `id_tokens`
//! set it also acts as a minimal OpenID provider (`/jwks`, an `id_token` in
//! the token response, good or broken on purpose).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri, TokenSet};
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "spotify-client";
pub const CLIENT_SECRET: &str = "spotify-client-secret-value";

/// What ID token the double returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenMode {
    Good,
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    Expired,
    ForeignKey,
    Missing,
}

pub struct Accounts {
    pub signer: mcp_auth_testkit::DevIssuer,
    pub id_tokens: Mutex<Option<IdTokenMode>>,
    pub nonces: Mutex<HashMap<String, String>>,
    pub codes: Mutex<HashMap<String, (String, String)>>, // code -> (challenge, redirect_uri)
    pub refresh_tokens: Mutex<HashSet<String>>,
    pub seen_verifiers: Mutex<Vec<String>>,
    pub issued: AtomicUsize,
    pub token_calls: AtomicUsize,
    pub rotate: std::sync::atomic::AtomicBool,
    pub delay_ms: std::sync::atomic::AtomicU64,
}

async fn authorize(
    State(a): State<Arc<Accounts>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "bad authorize request").into_response();
    }
    let n = a.issued.fetch_add(1, Ordering::SeqCst);
    let code = format!("code-{n}");
    let redirect_uri = q["redirect_uri"].clone();
    a.codes.lock().unwrap().insert(
        code.clone(),
        (q["code_challenge"].clone(), redirect_uri.clone()),
    );
    if let Some(nonce) = q.get("nonce") {
        a.nonces.lock().unwrap().insert(code.clone(), nonce.clone());
    }
    let state = url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>();
    Redirect::to(&format!("{redirect_uri}?code={code}&state={state}")).into_response()
}

fn id_token(signer: &mcp_auth_testkit::DevIssuer, mode: IdTokenMode, nonce: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"iss": signer.issuer(), "sub": "upstream-alice", "aud": CLIENT_ID,
                            "iat": now, "exp": now + 600, "nonce": nonce});
    match mode {
        IdTokenMode::WrongNonce => claims["nonce"] = json!("another-nonce"),
        IdTokenMode::WrongAudience => claims["aud"] = json!("another-client"),
        IdTokenMode::WrongIssuer => claims["iss"] = json!("https://evil.example.com"),
        IdTokenMode::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
        }
        _ => {}
    }
    let header = json!({"alg": "ES256", "kid": signer.kid(), "typ": "JWT"});
    if mode == IdTokenMode::ForeignKey {
        let other = mcp_auth_testkit::DevIssuer::new(signer.issuer(), CLIENT_ID);
        return other.sign(
            &json!({"alg": "ES256", "kid": signer.kid(), "typ": "JWT"}),
            &claims,
        );
    }
    signer.sign(&header, &claims)
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

async fn token(
    State(a): State<Arc<Accounts>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    a.token_calls.fetch_add(1, Ordering::SeqCst);
    let delay = a.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(basic.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = a.issued.fetch_add(1, Ordering::SeqCst);
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect_uri)) = a.codes.lock().unwrap().remove(&f["code"]) else {
                return oauth_error("invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            a.seen_verifiers.lock().unwrap().push(verifier.clone());
            let computed =
                data_encoding::BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
            if computed != challenge || f.get("redirect_uri") != Some(&redirect_uri) {
                return oauth_error("invalid_grant");
            }
            let refresh = format!("refresh-{n}");
            a.refresh_tokens.lock().unwrap().insert(refresh.clone());
            let mut body = json!({"access_token": format!("access-{n}"), "token_type": "Bearer",
                        "expires_in": 3600, "refresh_token": refresh, "scope": "user-read-email"});
            let mode = *a.id_tokens.lock().unwrap();
            if let Some(mode) = mode.filter(|m| *m != IdTokenMode::Missing) {
                let nonce = a
                    .nonces
                    .lock()
                    .unwrap()
                    .remove(&f["code"])
                    .unwrap_or_default();
                body["id_token"] = json!(id_token(&a.signer, mode, &nonce));
            }
            Json(body).into_response()
        }
        Some("refresh_token") => {
            let presented = f.get("refresh_token").cloned().unwrap_or_default();
            let mut valid = a.refresh_tokens.lock().unwrap();
            if !valid.contains(&presented) {
                return oauth_error("invalid_grant");
            }
            let mut body = json!({"access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 3600});
            if a.rotate.load(Ordering::SeqCst) {
                valid.remove(&presented);
                let rotated = format!("refresh-{n}");
                valid.insert(rotated.clone());
                body["refresh_token"] = json!(rotated);
            }
            Json(body).into_response()
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

pub struct Double {
    pub accounts: Arc<Accounts>,
    pub base: String,
}

async fn jwks(State(a): State<Arc<Accounts>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        a.signer.jwks_json(),
    )
        .into_response()
}

pub async fn double() -> Double {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accounts = Arc::new(Accounts {
        signer: mcp_auth_testkit::DevIssuer::new(base.clone(), CLIENT_ID),
        id_tokens: Mutex::new(None),
        nonces: Mutex::new(HashMap::new()),
        codes: Mutex::default(),
        refresh_tokens: Mutex::default(),
        seen_verifiers: Mutex::default(),
        issued: AtomicUsize::new(0),
        token_calls: AtomicUsize::new(0),
        rotate: std::sync::atomic::AtomicBool::new(false),
        delay_ms: std::sync::atomic::AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/api/token", post(token))
        .route("/jwks", get(jwks))
        .with_state(accounts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Double { accounts, base }
}

impl Double {
    pub fn provider(&self) -> Provider {
        Provider::new(
            "spotify-double",
            format!("{}/authorize", self.base),
            format!("{}/api/token", self.base),
        )
        .with_default_scopes(["user-read-email"])
    }

    /// The double as an OpenID provider (issuer = its base URL).
    pub fn oidc_provider(&self) -> Provider {
        self.provider()
            .with_issuer(self.base.clone())
            .with_jwks_uri(format!("{}/jwks", self.base))
            .with_default_scopes(["openid"])
    }

    pub fn client(&self, provider: Provider, clock: &ManualClock) -> OAuthClient {
        OAuthClient::builder(
            provider,
            CLIENT_ID,
            RedirectUri::new("http://127.0.0.1:9/callback").unwrap(),
        )
        .client_secret(SecretString::from(CLIENT_SECRET))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
    }
}

/// Follows the authorization URL like a browser whose user approves, and
/// returns the callback's query string.
pub async fn approve(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap()
    );
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    location.split_once('?').unwrap().1.to_owned()
}

pub fn alice() -> UserId {
    UserId::new("alice@example.com").unwrap()
}

pub async fn signed_in(client: &OAuthClient) -> TokenSet {
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    client.callback(&alice(), &query).await.unwrap()
}
