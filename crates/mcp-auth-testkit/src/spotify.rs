//! An in-process double of Spotify: the accounts service (`/authorize`
//! with a test-user login page, `/api/token`, and an RFC 7009 `/api/revoke`
//! that real Spotify lacks, for providers that have one) and the Web API
//! endpoints the tools use (`/v1/me`, ...), with a few test users.
//!
//! It enforces what Spotify enforces: registered client and exact redirect
//! URI, PKCE S256, single-use codes, client authentication, refresh-token
//! validity (optionally rotating them), access-token expiry and scopes on
//! the API. It records every API call's bearer token, so tests can assert
//! that one user's call never carried another's token.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The client id the double knows.
pub const CLIENT_ID: &str = "spotify-double-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "spotify-double-client-secret";

/// A test user of the double.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The Spotify user id (`/v1/me` → `id`).
    pub id: String,
    /// The display name.
    pub display_name: String,
    /// `premium` or `free`.
    pub product: String,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    user: String,
    challenge: String,
    redirect_uri: String,
    scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct AccessGrant {
    user: String,
    scopes: Vec<String>,
    expires_at: u64,
}

#[derive(Debug, Default)]
struct Tokens {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, (String, Vec<String>)>,
}

/// What the double saw and how it behaves; shared with the test.
#[derive(Debug)]
pub struct SpotifyState {
    users: Vec<TestUser>,
    redirect_uris: Mutex<Vec<String>>,
    tokens: Mutex<Tokens>,
    counter: AtomicUsize,
    /// Token requests with `grant_type=refresh_token` seen.
    pub refreshes: AtomicUsize,
    /// Rotate refresh tokens on every refresh.
    pub rotate_refresh_tokens: AtomicBool,
    /// Access-token lifetime in seconds (default 3600).
    pub access_token_lifetime: AtomicU64,
    /// When non-zero, the token endpoint answers this status (a 5xx
    /// outage) instead of working.
    pub token_endpoint_status: AtomicU64,
    /// Refresh tokens revoked through `/api/revoke`.
    pub revoked: Mutex<Vec<String>>,
    /// Every Web API call: (path, bearer token).
    pub api_calls: Mutex<Vec<(String, String)>>,
    /// Scopes asked for at each `/authorize`, in order.
    pub authorize_scopes: Mutex<Vec<Vec<String>>>,
    /// Every `/authorize` query, in order.
    pub authorize_queries: Mutex<Vec<HashMap<String, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SpotifyState {
    fn next(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}-{n}-{:08x}", rand32())
    }

    /// Makes every refresh token of `user` invalid (as when the person
    /// removes the app's access in their Spotify account).
    pub fn kill_refresh_tokens(&self, user: &str) {
        lock(&self.tokens).refresh.retain(|_, (u, _)| u != user);
    }

    /// Makes every access token expired now.
    pub fn expire_access_tokens(&self) {
        for grant in lock(&self.tokens).access.values_mut() {
            grant.expires_at = 0;
        }
    }

    /// The user an access token belongs to, if it is valid.
    pub fn user_of(&self, access_token: &str) -> Option<String> {
        lock(&self.tokens)
            .access
            .get(access_token)
            .filter(|g| g.expires_at > now())
            .map(|g| g.user.clone())
    }

    /// The bearer tokens the Web API received, with their users.
    pub fn api_tokens(&self) -> Vec<(String, String)> {
        lock(&self.api_calls).clone()
    }

    /// The test users.
    pub fn users(&self) -> &[TestUser] {
        &self.users
    }
}

fn rand32() -> u32 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_le_bytes(b)
}

/// A running double.
#[derive(Debug, Clone)]
pub struct SpotifyDouble {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its state.
    pub state: Arc<SpotifyState>,
}

impl SpotifyDouble {
    /// Starts the double on a free loopback port with the test users
    /// `alice` (premium), `bob` (premium) and `carol` (free), accepting
    /// `redirect_uris`.
    #[allow(clippy::expect_used)]
    pub async fn start(redirect_uris: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Spotify double");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let user = |id: &str, name: &str, product: &str| TestUser {
            id: id.into(),
            display_name: name.into(),
            product: product.into(),
        };
        let state = Arc::new(SpotifyState {
            users: vec![
                user("alice", "Alice Example", "premium"),
                user("bob", "Bob Example", "premium"),
                user("carol", "Carol Example", "free"),
            ],
            redirect_uris: Mutex::new(redirect_uris.iter().map(|s| (*s).to_owned()).collect()),
            tokens: Mutex::default(),
            counter: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            rotate_refresh_tokens: AtomicBool::new(false),
            access_token_lifetime: AtomicU64::new(3600),
            token_endpoint_status: AtomicU64::new(0),
            revoked: Mutex::default(),
            api_calls: Mutex::default(),
            authorize_scopes: Mutex::default(),
            authorize_queries: Mutex::default(),
        });
        let app = Router::new()
            .route("/authorize", get(authorize_page).post(authorize_approve))
            .route("/api/token", post(token))
            .route("/api/revoke", post(revoke))
            .route("/v1/me", get(me))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, state }
    }

    /// Also accept `uri` as a redirect URI (for a server whose port is
    /// known only after the double started).
    pub fn allow_redirect_uri(&self, uri: &str) {
        lock(&self.state.redirect_uris).push(uri.to_owned());
    }

    /// `{base}/authorize`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/authorize", self.base)
    }

    /// `{base}/api/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/api/token", self.base)
    }

    /// `{base}/api/revoke` (RFC 7009; real Spotify has none).
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/api/revoke", self.base)
    }

    /// `{base}/v1/me`.
    pub fn me_endpoint(&self) -> String {
        format!("{}/v1/me", self.base)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn refuse(status: StatusCode, what: &str) -> Response {
    (status, what.to_owned()).into_response()
}

async fn authorize_page(
    State(s): State<Arc<SpotifyState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let known_redirect = q
        .get("redirect_uri")
        .is_some_and(|r| lock(&s.redirect_uris).contains(r));
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) || !known_redirect {
        return refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_CLIENT: unknown client or redirect URI",
        );
    }
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("code_challenge").is_none_or(|c| c.len() != 43)
    {
        return refuse(StatusCode::BAD_REQUEST, "invalid authorization request");
    }
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    lock(&s.authorize_scopes).push(scopes.clone());
    lock(&s.authorize_queries).push(q.clone());
    let hidden: String = q
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let users: String = s
        .users
        .iter()
        .map(|u| {
            format!(
                "<li><code>{}</code> ({}, {})</li>",
                escape(&u.id),
                escape(&u.display_name),
                escape(&u.product)
            )
        })
        .collect();
    let scope_list: String = scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Spotify (test double): sign in</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#191414}}\
         .banner{{background:#1db954;color:#fff;padding:.5rem 1rem;border-radius:.5rem;font-weight:600}}\
         label{{display:block;margin-top:1rem}}*{{box-sizing:border-box}}input[type=text]{{width:100%;padding:.5rem;font-size:1rem}}\
         button{{margin:1rem .5rem 0 0;padding:.6rem 1.2rem;font-size:1rem;border-radius:2rem;border:1px solid #191414;background:#fff}}\
         button.primary{{background:#1db954;border-color:#1db954;color:#fff}}</style></head><body>\
         <p class=\"banner\">Spotify test double: not the real Spotify. No password.</p>\
         <h1>Sign in to Spotify</h1><p>Test users:</p><ul>{users}</ul>\
         <p>The application asks for:</p><ul>{scope_list}</ul>\
         <form method=\"post\" action=\"/authorize\">{hidden}\
         <label for=\"user\">Spotify user id</label>\
         <input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Agree</button>\
         <button type=\"submit\" name=\"decision\" value=\"cancel\">Cancel</button>\
         </form></body></html>"
    );
    Html(body).into_response()
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

async fn authorize_approve(
    State(s): State<Arc<SpotifyState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(redirect_uri) = f
        .get("redirect_uri")
        .filter(|r| lock(&s.redirect_uris).contains(*r))
        .cloned()
    else {
        return refuse(StatusCode::BAD_REQUEST, "unknown redirect URI");
    };
    let state = f.get("state").cloned().unwrap_or_default();
    if f.get("decision").map(String::as_str) != Some("approve") {
        return Redirect::to(&with_query(
            &redirect_uri,
            &[("error", "access_denied"), ("state", &state)],
        ))
        .into_response();
    }
    let user = f
        .get("user")
        .map(|u| u.trim().to_owned())
        .unwrap_or_default();
    if !s.users.iter().any(|u| u.id == user) {
        return refuse(StatusCode::BAD_REQUEST, "no such test user");
    }
    let code = s.next("code");
    lock(&s.tokens).codes.insert(
        code.clone(),
        CodeGrant {
            user,
            challenge: f.get("code_challenge").cloned().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            scopes: f
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        },
    );
    Redirect::to(&with_query(
        &redirect_uri,
        &[("code", &code), ("state", &state)],
    ))
    .into_response()
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str())
}

fn issue(s: &SpotifyState, user: &str, scopes: &[String], refresh: Option<String>) -> Value {
    let access = s.next("sp-at");
    let lifetime = s.access_token_lifetime.load(Ordering::SeqCst);
    lock(&s.tokens).access.insert(
        access.clone(),
        AccessGrant {
            user: user.to_owned(),
            scopes: scopes.to_vec(),
            expires_at: now() + lifetime,
        },
    );
    let mut body = json!({"access_token": access, "token_type": "Bearer",
        "expires_in": lifetime, "scope": scopes.join(" ")});
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    body
}

async fn token(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let outage = s.token_endpoint_status.load(Ordering::SeqCst);
    if outage != 0 {
        let status = StatusCode::from_u16(outage as u16).unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, "upstream outage").into_response();
    }
    if !client_authenticated(&headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(grant) = lock(&s.tokens).codes.remove(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            if data_encoding::BASE64URL_NOPAD.encode(digest.as_ref()) != grant.challenge
                || f.get("redirect_uri") != Some(&grant.redirect_uri)
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let refresh = s.next("sp-rt");
            lock(&s.tokens)
                .refresh
                .insert(refresh.clone(), (grant.user.clone(), grant.scopes.clone()));
            Json(issue(&s, &grant.user, &grant.scopes, Some(refresh))).into_response()
        }
        Some("refresh_token") => {
            s.refreshes.fetch_add(1, Ordering::SeqCst);
            let presented = f.get("refresh_token").cloned().unwrap_or_default();
            let Some((user, scopes)) = lock(&s.tokens).refresh.get(&presented).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let rotated = if s.rotate_refresh_tokens.load(Ordering::SeqCst) {
                let next = s.next("sp-rt");
                let mut tokens = lock(&s.tokens);
                tokens.refresh.remove(&presented);
                tokens
                    .refresh
                    .insert(next.clone(), (user.clone(), scopes.clone()));
                Some(next)
            } else {
                None
            };
            Json(issue(&s, &user, &scopes, rotated)).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

async fn revoke(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = f.get("token").cloned().unwrap_or_default();
    lock(&s.tokens).refresh.remove(&token);
    lock(&s.revoked).push(token);
    StatusCode::OK.into_response()
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"status": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// The caller of a Web API request: its user and scopes, or the error.
#[allow(clippy::result_large_err)] // the error is the response itself
fn caller(
    s: &SpotifyState,
    headers: &HeaderMap,
    path: &str,
    needs: &[&str],
) -> Result<TestUser, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    lock(&s.api_calls).push((path.to_owned(), token.clone()));
    let grant = lock(&s.tokens).access.get(&token).cloned();
    let Some(grant) = grant else {
        return Err(api_error(StatusCode::UNAUTHORIZED, "Invalid access token"));
    };
    if grant.expires_at <= now() {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "The access token expired",
        ));
    }
    let have: BTreeSet<&str> = grant.scopes.iter().map(String::as_str).collect();
    if !needs.iter().all(|n| have.contains(n)) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "Insufficient client scope",
        ));
    }
    s.users
        .iter()
        .find(|u| u.id == grant.user)
        .cloned()
        .ok_or_else(|| api_error(StatusCode::UNAUTHORIZED, "Invalid access token"))
}

async fn me(State(s): State<Arc<SpotifyState>>, headers: HeaderMap) -> Response {
    match caller(&s, &headers, "/v1/me", &[]) {
        Ok(user) => Json(json!({
            "id": user.id,
            "display_name": user.display_name,
            "product": user.product,
            "type": "user",
            "uri": format!("spotify:user:{}", user.id),
        }))
        .into_response(),
        Err(response) => response,
    }
}
