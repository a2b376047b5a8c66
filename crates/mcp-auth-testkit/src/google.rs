//! An in-process double of Google: OpenID Connect (discovery, JWKS, an
//! authorization page with test users, token, revocation, userinfo) and the
//! Drive, Gmail and Calendar endpoints the example tools use, with test
//! data per user.
//!
//! It behaves as Google does where it matters: a refresh token only with
//! `access_type=offline` and on a consent screen (`prompt=consent`, or the
//! first grant), never rotated; `include_granted_scopes=true` adds the
//! earlier grants to the new token; ID tokens carry the nonce; scopes are
//! enforced on the APIs (403 `insufficientPermissions`). It parses Drive's
//! query language and Gmail's search syntax as Google does, and records
//! what it was sent, so tests can assert on escaping.
#![allow(clippy::result_large_err)] // handlers return the error response itself

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::double::{escape, lock, now, oauth_error, pkce_holds, with_query};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use data_encoding::BASE64URL_NOPAD;
use serde_json::{Value, json};

use crate::DevIssuer;

/// The client id the double knows.
pub const CLIENT_ID: &str = "google-double-client.apps.example";
/// Its secret.
pub const CLIENT_SECRET: &str = "google-double-client-secret";
/// Drive (read).
pub const DRIVE_READONLY: &str = "https://www.googleapis.com/auth/drive.readonly";
/// Gmail (read).
pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Gmail (send).
pub const GMAIL_SEND: &str = "https://www.googleapis.com/auth/gmail.send";
/// Calendar (read).
pub const CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";

/// Which ID token the double issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdTokenMode {
    /// A valid one.
    #[default]
    Good,
    /// For another client.
    WrongAudience,
    /// With another nonce.
    WrongNonce,
    /// Expired an hour ago.
    Expired,
    /// From another issuer.
    WrongIssuer,
}

#[derive(Debug, Clone)]
struct Code {
    user: String,
    challenge: String,
    redirect_uri: String,
    scopes: BTreeSet<String>,
    nonce: Option<String>,
    refresh: bool,
}

#[derive(Debug, Clone)]
struct Access {
    user: String,
    scopes: BTreeSet<String>,
    expires_at: u64,
}

#[derive(Debug, Clone)]
struct File {
    id: &'static str,
    name: &'static str,
    mime: &'static str,
    owner: &'static str,
    content: &'static str,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    owner: String,
    from: String,
    to: String,
    subject: String,
    plain: Option<String>,
    html: Option<String>,
}

/// What the double saw and how it behaves; shared with the test.
#[derive(Debug)]
pub struct GoogleState {
    signer: DevIssuer,
    redirect_uris: Mutex<Vec<String>>,
    codes: Mutex<HashMap<String, Code>>,
    access: Mutex<HashMap<String, Access>>,
    refresh: Mutex<HashMap<String, (String, BTreeSet<String>)>>,
    granted: Mutex<HashMap<String, BTreeSet<String>>>,
    counter: AtomicUsize,
    messages: Mutex<Vec<Message>>,
    /// The ID token the next code exchange returns.
    pub id_token_mode: Mutex<IdTokenMode>,
    /// Every `/o/oauth2/v2/auth` query, in order.
    pub authorize_queries: Mutex<Vec<HashMap<String, String>>>,
    /// Refresh requests seen.
    pub refreshes: AtomicUsize,
    /// Tokens revoked through `/revoke`.
    pub revoked: Mutex<Vec<String>>,
    /// Every API call: (path, bearer token).
    pub api_calls: Mutex<Vec<(String, String)>>,
    /// Every Drive `q` received.
    pub drive_queries: Mutex<Vec<String>>,
    /// Every Gmail `q` received.
    pub gmail_queries: Mutex<Vec<String>>,
    /// Raw RFC 5322 messages sent (decoded from base64url).
    pub sent: Mutex<Vec<(String, Vec<u8>)>>,
    /// The next API call under the path answers (status, reason), once.
    pub fail_next: Mutex<Vec<(String, u16, &'static str)>>,
}

impl GoogleState {
    fn next(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut b = [0u8; 6];
        let _ = aws_lc_rs::rand::fill(&mut b);
        format!("{prefix}-{n}-{}", data_encoding::HEXLOWER.encode(&b))
    }

    /// The user an access token belongs to, if valid.
    pub fn user_of(&self, token: &str) -> Option<String> {
        lock(&self.access)
            .get(token)
            .filter(|a| a.expires_at > now())
            .map(|a| a.user.clone())
    }

    /// The next API call under `path` answers `status` with Google's
    /// `reason` (`rateLimitExceeded`, `insufficientPermissions`, ...).
    pub fn fail_next(&self, path: &str, status: u16, reason: &'static str) {
        lock(&self.fail_next).push((path.to_owned(), status, reason));
    }

    /// Makes every refresh token of `user` invalid.
    pub fn kill_refresh_tokens(&self, user: &str) {
        lock(&self.refresh).retain(|_, (u, _)| u != user);
    }

    /// The bearer tokens the APIs received.
    pub fn api_tokens(&self) -> Vec<(String, String)> {
        lock(&self.api_calls).clone()
    }
}

/// A running double.
#[derive(Debug, Clone)]
pub struct GoogleDouble {
    /// `http://127.0.0.1:<port>`: the issuer, and the APIs' base.
    pub base: String,
    /// Its state.
    pub state: Arc<GoogleState>,
}

/// The test users.
pub const USERS: [(&str, &str); 2] = [
    ("alice@example.com", "10000000000000000001"),
    ("bob@example.com", "10000000000000000002"),
];

const FILES: [File; 4] = [
    File {
        id: "1aDocAliceQuarterlyPlanXyz",
        name: "Quarterly plan",
        mime: "application/vnd.google-apps.document",
        owner: "alice@example.com",
        content: "Q1: ship the Rust MCP server.\nQ2: more users.",
    },
    File {
        id: "1aTxtAliceNotesTxtXyz00001",
        name: "notes.txt",
        mime: "text/plain",
        owner: "alice@example.com",
        content: "Remember: tokens never leave the vault.",
    },
    File {
        id: "1aPngAlicePhotoPngXyz00001",
        name: "photo.png",
        mime: "image/png",
        owner: "alice@example.com",
        content: "\u{89}PNG binary",
    },
    File {
        id: "1bDocBobSecretBudgetXyz001",
        name: "Bob's budget",
        mime: "application/vnd.google-apps.document",
        owner: "bob@example.com",
        content: "Bob's private numbers.",
    },
];

impl GoogleDouble {
    /// Starts the double on a free loopback port, accepting
    /// `redirect_uris`.
    #[allow(clippy::expect_used)]
    pub async fn start(redirect_uris: &[&str]) -> Self {
        Self::start_on(None, redirect_uris)
            .await
            .expect("start the Google double")
    }

    /// [`start`](Self::start) on `listen` (a free loopback port when
    /// `None`), so that other processes can reach it; an error names the
    /// address that could not be bound.
    pub async fn start_on(
        listen: Option<std::net::SocketAddr>,
        redirect_uris: &[&str],
    ) -> Result<Self, String> {
        let (listener, base) = crate::double::bind(listen).await?;
        let message = |id: &str,
                       owner: &str,
                       from: &str,
                       subject: &str,
                       plain: Option<&str>,
                       html: Option<&str>| Message {
            id: id.into(),
            owner: owner.into(),
            from: from.into(),
            to: owner.into(),
            subject: subject.into(),
            plain: plain.map(str::to_owned),
            html: html.map(str::to_owned),
        };
        let state = Arc::new(GoogleState {
            signer: DevIssuer::new(base.clone(), CLIENT_ID),
            redirect_uris: Mutex::new(redirect_uris.iter().map(|s| (*s).to_owned()).collect()),
            codes: Mutex::default(),
            access: Mutex::default(),
            refresh: Mutex::default(),
            granted: Mutex::default(),
            counter: AtomicUsize::new(0),
            messages: Mutex::new(vec![
                message(
                    "m-alice-1",
                    "alice@example.com",
                    "carol@example.com",
                    "Lunch on Friday?",
                    Some("Shall we have lunch on Friday at noon?"),
                    None,
                ),
                message(
                    "m-alice-2",
                    "alice@example.com",
                    "news@example.com",
                    "Your weekly digest",
                    None,
                    Some(
                        "<html><body><h1>Digest</h1><p>Rust 2026 &amp; you.</p><script>evil()</script></body></html>",
                    ),
                ),
                message(
                    "m-bob-1",
                    "bob@example.com",
                    "dave@example.com",
                    "Bob only",
                    Some("This is for Bob."),
                    None,
                ),
            ]),
            id_token_mode: Mutex::default(),
            authorize_queries: Mutex::default(),
            refreshes: AtomicUsize::new(0),
            revoked: Mutex::default(),
            api_calls: Mutex::default(),
            drive_queries: Mutex::default(),
            gmail_queries: Mutex::default(),
            sent: Mutex::default(),
            fail_next: Mutex::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth2/v3/certs", get(jwks))
            .route(
                "/o/oauth2/v2/auth",
                get(authorize_page).post(authorize_approve),
            )
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/oauth2/v3/userinfo", get(userinfo))
            .route("/drive/v3/files", get(drive_list))
            .route("/drive/v3/files/{id}", get(drive_get))
            .route("/drive/v3/files/{id}/export", get(drive_export))
            .route("/gmail/v1/users/me/messages", get(gmail_list))
            .route("/gmail/v1/users/me/messages/{id}", get(gmail_get))
            .route("/gmail/v1/users/me/messages/send", post(gmail_send))
            .route(
                "/calendar/v3/calendars/primary/events",
                get(calendar_events),
            )
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base, state })
    }

    /// Also accept `uri` as a redirect URI.
    pub fn allow_redirect_uri(&self, uri: &str) {
        lock(&self.state.redirect_uris).push(uri.to_owned());
    }
}

async fn discovery(State(s): State<Arc<GoogleState>>) -> Response {
    let base = s.signer.issuer();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/o/oauth2/v2/auth"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
        "userinfo_endpoint": format!("{base}/oauth2/v3/userinfo"),
        "jwks_uri": format!("{base}/oauth2/v3/certs"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email", "profile"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<GoogleState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.signer.jwks_json(),
    )
        .into_response()
}

async fn authorize_page(
    State(s): State<Arc<GoogleState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let known = q
        .get("redirect_uri")
        .is_some_and(|r| lock(&s.redirect_uris).contains(r));
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) || !known {
        return (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch").into_response();
    }
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response();
    }
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
    let scopes: String = q
        .get("scope")
        .map(|s| {
            s.split_whitespace()
                .map(|x| format!("<li><code>{}</code></li>", escape(x)))
                .collect()
        })
        .unwrap_or_default();
    let users: String = USERS
        .iter()
        .map(|(e, _)| format!("<li><code>{e}</code></li>"))
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Google (test double): sign in</title>\
         <style>*{{box-sizing:border-box}}body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#202124}}\
         .banner{{background:#1a73e8;color:#fff;padding:.5rem 1rem;border-radius:.5rem;font-weight:600}}\
         label{{display:block;margin-top:1rem}}input[type=text]{{width:100%;padding:.5rem;font-size:1rem}}\
         button{{margin:1rem .5rem 0 0;padding:.6rem 1.2rem;font-size:1rem;border-radius:.3rem;border:1px solid #dadce0;background:#fff}}\
         button.primary{{background:#1a73e8;border-color:#1a73e8;color:#fff}}</style></head><body>\
         <p class=\"banner\">Google test double: not the real Google. No password.</p>\
         <h1>Sign in with Google</h1><p>Test accounts:</p><ul>{users}</ul>\
         <p>The application asks for:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"/o/oauth2/v2/auth\">{hidden}\
         <label for=\"user\">Email</label>\
         <input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"cancel\">Cancel</button>\
         </form></body></html>"
    ))
    .into_response()
}

async fn authorize_approve(
    State(s): State<Arc<GoogleState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(redirect_uri) = f
        .get("redirect_uri")
        .filter(|r| lock(&s.redirect_uris).contains(*r))
        .cloned()
    else {
        return (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch").into_response();
    };
    let state = f.get("state").cloned().unwrap_or_default();
    let iss = s.signer.issuer().to_owned();
    if f.get("decision").map(String::as_str) != Some("approve") {
        return Redirect::to(&with_query(
            &redirect_uri,
            &[("error", "access_denied"), ("state", &state), ("iss", &iss)],
        ))
        .into_response();
    }
    let user = f
        .get("user")
        .map(|u| u.trim().to_owned())
        .unwrap_or_default();
    if !USERS.iter().any(|(e, _)| *e == user) {
        return (StatusCode::BAD_REQUEST, "no such test account").into_response();
    }
    let mut scopes: BTreeSet<String> = f
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let first_grant = !lock(&s.granted).contains_key(&user);
    if f.get("include_granted_scopes").map(String::as_str) == Some("true")
        && let Some(before) = lock(&s.granted).get(&user)
    {
        scopes.extend(before.iter().cloned());
    }
    lock(&s.granted)
        .entry(user.clone())
        .or_default()
        .extend(scopes.iter().cloned());
    let offline = f.get("access_type").map(String::as_str) == Some("offline");
    let consent = f.get("prompt").map(String::as_str) == Some("consent") || first_grant;
    let code = s.next("4/code");
    lock(&s.codes).insert(
        code.clone(),
        Code {
            user,
            challenge: f.get("code_challenge").cloned().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            scopes,
            nonce: f.get("nonce").cloned(),
            refresh: offline && consent,
        },
    );
    Redirect::to(&with_query(
        &redirect_uri,
        &[("code", &code), ("state", &state), ("iss", &iss)],
    ))
    .into_response()
}

fn client_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str())
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET))
}

fn id_token(s: &GoogleState, user: &str, nonce: Option<&str>) -> String {
    let sub = USERS
        .iter()
        .find(|(e, _)| *e == user)
        .map_or("0", |(_, sub)| *sub);
    let t = now();
    let mut claims = json!({"iss": s.signer.issuer(), "aud": CLIENT_ID, "azp": CLIENT_ID, "sub": sub,
        "email": user, "email_verified": true, "iat": t, "exp": t + 3600});
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    match *lock(&s.id_token_mode) {
        IdTokenMode::Good => {}
        IdTokenMode::WrongAudience => claims["aud"] = json!("someone-else.apps.example"),
        IdTokenMode::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        IdTokenMode::Expired => {
            claims["iat"] = json!(t - 7200);
            claims["exp"] = json!(t - 3600);
        }
        IdTokenMode::WrongIssuer => claims["iss"] = json!("https://accounts.evil.example"),
    }
    s.signer.sign(
        &json!({"alg": "ES256", "kid": s.signer.kid(), "typ": "JWT"}),
        &claims,
    )
}

fn access(s: &GoogleState, user: &str, scopes: &BTreeSet<String>) -> String {
    let token = s.next("ya29");
    lock(&s.access).insert(
        token.clone(),
        Access {
            user: user.to_owned(),
            scopes: scopes.clone(),
            expires_at: now() + 3599,
        },
    );
    token
}

async fn token(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if !client_ok(&headers, &f) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = lock(&s.codes).remove(f.get("code").map_or("", String::as_str)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if !pkce_holds(&verifier, &code.challenge)
                || f.get("redirect_uri") != Some(&code.redirect_uri)
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let at = access(&s, &code.user, &code.scopes);
            let mut body = json!({"access_token": at, "token_type": "Bearer", "expires_in": 3599,
                "scope": code.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                "id_token": id_token(&s, &code.user, code.nonce.as_deref())});
            if code.refresh {
                let rt = s.next("1//refresh");
                lock(&s.refresh).insert(rt.clone(), (code.user.clone(), code.scopes.clone()));
                body["refresh_token"] = json!(rt);
            }
            Json(body).into_response()
        }
        Some("refresh_token") => {
            s.refreshes.fetch_add(1, Ordering::SeqCst);
            let Some((user, scopes)) = lock(&s.refresh)
                .get(f.get("refresh_token").map_or("", String::as_str))
                .cloned()
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            // Google does not rotate refresh tokens.
            let at = access(&s, &user, &scopes);
            Json(
                json!({"access_token": at, "token_type": "Bearer", "expires_in": 3599,
                "scope": scopes.iter().cloned().collect::<Vec<_>>().join(" ")}),
            )
            .into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

async fn revoke(
    State(s): State<Arc<GoogleState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let token = f.get("token").cloned().unwrap_or_default();
    let known =
        lock(&s.refresh).remove(&token).is_some() || lock(&s.access).remove(&token).is_some();
    lock(&s.revoked).push(token);
    if known {
        StatusCode::OK.into_response()
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_token")
    }
}

fn api_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        Json(
            json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"reason": reason, "message": message}]}}),
        ),
    )
        .into_response()
}

fn caller(
    s: &GoogleState,
    headers: &HeaderMap,
    path: &str,
    needs: &str,
) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    lock(&s.api_calls).push((path.to_owned(), token.clone()));
    let failure = {
        let mut f = lock(&s.fail_next);
        f.iter()
            .position(|(p, _, _)| path.starts_with(p.as_str()))
            .map(|i| f.remove(i))
    };
    if let Some((_, status, reason)) = failure {
        return Err(api_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            reason,
            "injected failure",
        ));
    }
    let Some(grant) = lock(&s.access).get(&token).cloned() else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Invalid Credentials",
        ));
    };
    if grant.expires_at <= now() {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Invalid Credentials",
        ));
    }
    if !needs.is_empty() && !grant.scopes.contains(needs) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(grant.user)
}

async fn userinfo(State(s): State<Arc<GoogleState>>, headers: HeaderMap) -> Response {
    match caller(&s, &headers, "/oauth2/v3/userinfo", "") {
        Ok(user) => Json(json!({"email": user, "email_verified": true})).into_response(),
        Err(r) => r,
    }
}

/// Parses Drive's query language as far as the tools use it:
/// `name contains '<literal>'` (with `\'` and `\\` escapes) `and trashed =
/// false`. Anything else is a 400, as Google answers.
fn drive_name_filter(q: &str) -> Option<String> {
    let rest = q.strip_prefix("name contains '")?;
    let mut literal = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '\\' => literal.push(chars.next()?),
            '\'' => break,
            c => literal.push(c),
        }
    }
    let tail: String = chars.collect();
    (tail == " and trashed = false").then_some(literal)
}

async fn drive_list(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(&s, &headers, "/drive/v3/files", DRIVE_READONLY) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let query = q.get("q").cloned().unwrap_or_default();
    lock(&s.drive_queries).push(query.clone());
    let Some(name) = drive_name_filter(&query) else {
        return api_error(StatusCode::BAD_REQUEST, "invalid", "Invalid Value");
    };
    let files: Vec<Value> = FILES
        .iter()
        .filter(|f| f.owner == user && f.name.to_lowercase().contains(&name.to_lowercase()))
        .map(|f| json!({"id": f.id, "name": f.name, "mimeType": f.mime}))
        .collect();
    Json(json!({"files": files})).into_response()
}

fn own_file(user: &str, id: &str) -> Option<&'static File> {
    FILES.iter().find(|f| f.id == id && f.owner == user)
}

async fn drive_get(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/drive/v3/files/{id}"),
        DRIVE_READONLY,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(file) = own_file(&user, &id) else {
        return api_error(StatusCode::NOT_FOUND, "notFound", "File not found");
    };
    if q.get("alt").map(String::as_str) == Some("media") {
        if file.mime.starts_with("application/vnd.google-apps") {
            return api_error(StatusCode::FORBIDDEN, "fileNotDownloadable", "Use export");
        }
        return (
            [(header::CONTENT_TYPE, file.mime)],
            file.content.as_bytes().to_vec(),
        )
            .into_response();
    }
    Json(json!({"id": file.id, "name": file.name, "mimeType": file.mime, "size": file.content.len().to_string()})).into_response()
}

async fn drive_export(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/drive/v3/files/{id}/export"),
        DRIVE_READONLY,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(file) = own_file(&user, &id) else {
        return api_error(StatusCode::NOT_FOUND, "notFound", "File not found");
    };
    if q.get("mimeType").map(String::as_str) != Some("text/plain")
        || !file.mime.starts_with("application/vnd.google-apps")
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Export only supports Docs Editors files.",
        );
    }
    (
        [(header::CONTENT_TYPE, "text/plain")],
        file.content.as_bytes().to_vec(),
    )
        .into_response()
}

/// Gmail's search syntax as far as the double needs: a quoted phrase
/// (`"..."`) matches subject or body; anything outside quotes is an
/// operator and is recorded, not interpreted.
fn gmail_phrase(q: &str) -> Option<String> {
    let inner = q.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then(|| inner.to_owned())
}

async fn gmail_list(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(&s, &headers, "/gmail/v1/users/me/messages", GMAIL_READONLY) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let query = q.get("q").cloned().unwrap_or_default();
    lock(&s.gmail_queries).push(query.clone());
    let phrase = gmail_phrase(&query).unwrap_or_default().to_lowercase();
    let found: Vec<Value> = lock(&s.messages)
        .iter()
        .filter(|m| m.owner == user)
        .filter(|m| {
            let text = format!(
                "{} {} {}",
                m.subject,
                m.plain.as_deref().unwrap_or(""),
                m.html.as_deref().unwrap_or("")
            )
            .to_lowercase();
            text.contains(&phrase)
        })
        .map(|m| json!({"id": m.id, "threadId": m.id}))
        .collect();
    Json(json!({"messages": found, "resultSizeEstimate": found.len()})).into_response()
}

fn b64(text: &str) -> String {
    BASE64URL_NOPAD.encode(text.as_bytes())
}

async fn gmail_get(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/gmail/v1/users/me/messages/{id}"),
        GMAIL_READONLY,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let messages = lock(&s.messages);
    let Some(m) = messages.iter().find(|m| m.id == id && m.owner == user) else {
        return api_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    };
    let mut parts = Vec::new();
    if let Some(plain) = &m.plain {
        parts.push(json!({"mimeType": "text/plain", "body": {"data": b64(plain)}}));
    }
    if let Some(html) = &m.html {
        parts.push(json!({"mimeType": "text/html", "body": {"data": b64(html)}}));
    }
    Json(json!({"id": m.id, "payload": {"mimeType": "multipart/alternative",
        "headers": [{"name": "From", "value": m.from}, {"name": "To", "value": m.to},
                    {"name": "Subject", "value": m.subject}, {"name": "Date", "value": "Mon, 30 Nov 2026 09:00:00 +0000"}],
        "parts": parts}})).into_response()
}

async fn gmail_send(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let user = match caller(&s, &headers, "/gmail/v1/users/me/messages/send", GMAIL_SEND) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(raw) = body.get("raw").and_then(|r| r.as_str()).and_then(|r| {
        BASE64URL_NOPAD
            .decode(r.trim_end_matches('=').as_bytes())
            .ok()
    }) else {
        return api_error(StatusCode::BAD_REQUEST, "invalidArgument", "Invalid raw");
    };
    lock(&s.sent).push((user, raw));
    Json(json!({"id": s.next("sent"), "labelIds": ["SENT"]})).into_response()
}

async fn calendar_events(
    State(s): State<Arc<GoogleState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        "/calendar/v3/calendars/primary/events",
        CALENDAR_READONLY,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (Some(min), Some(max)) = (q.get("timeMin"), q.get("timeMax")) else {
        return api_error(StatusCode::BAD_REQUEST, "badRequest", "timeMin and timeMax");
    };
    let events = [
        (
            "alice@example.com",
            "Standup",
            "2026-12-01T09:00:00Z",
            "2026-12-01T09:15:00Z",
        ),
        (
            "alice@example.com",
            "Rust meetup",
            "2026-12-03T18:00:00Z",
            "2026-12-03T20:00:00Z",
        ),
        (
            "bob@example.com",
            "Bob's dentist",
            "2026-12-02T10:00:00Z",
            "2026-12-02T11:00:00Z",
        ),
    ];
    let items: Vec<Value> = events.iter()
        .filter(|(owner, _, start, _)| *owner == user && start >= &min.as_str() && start < &max.as_str())
        .map(|(_, summary, start, end)| json!({"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}}))
        .collect();
    Json(json!({"items": items})).into_response()
}
