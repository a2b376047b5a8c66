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

#![allow(clippy::result_large_err)] // handlers return the error response itself

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::double::{escape, lock, now, oauth_error, pkce_holds, with_query};
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
    /// Token requests with `grant_type=authorization_code` seen.
    pub code_exchanges: AtomicUsize,
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
    /// The next Web API call whose path starts with the prefix answers
    /// this status (with `Retry-After` when given), once.
    pub fail_next: Mutex<Vec<Failure>>,
    library: Mutex<Library>,
}

/// A failure the Web API will answer once; see [`SpotifyState::fail_next`].
#[derive(Debug, Clone)]
pub struct Failure {
    /// Path prefix it applies to (`/v1/me/player`).
    pub path: String,
    /// The status (401, 404, 429, 500, ...).
    pub status: u16,
    /// `Retry-After` seconds (429).
    pub retry_after: Option<u64>,
}

/// A track of the double's catalog.
#[derive(Debug, Clone)]
pub struct Track {
    /// Base62 id, 22 characters.
    pub id: &'static str,
    /// Title.
    pub name: &'static str,
    /// Artist id.
    pub artist: &'static str,
    /// Album id.
    pub album: &'static str,
}

/// The catalog: artists (id, name), albums (id, name, artist), tracks.
pub const ARTISTS: [(&str, &str); 3] = [
    ("u8jzPde0IgxLd6GncfBAep", "The Rust Belt"),
    ("fJBd0Kh8oOOL8dKLzdocJ2", "Ferris and the Crabs"),
    ("isAjIhKtJ0RlgLKOmxgJTe", "Borrow Checkers"),
];
/// Albums: (id, name, artist id).
pub const ALBUMS: [(&str, &str, &str); 2] = [
    (
        "KdNnFRIBXuDL7DxtpYlSXp",
        "Zero Cost",
        "u8jzPde0IgxLd6GncfBAep",
    ),
    (
        "fKtHF4vUCsMehGAkWvj7FA",
        "Fearless Concurrency",
        "fJBd0Kh8oOOL8dKLzdocJ2",
    ),
];
/// Tracks.
pub const TRACKS: [Track; 5] = [
    Track {
        id: "c9QeWJKY40uvSwMFLZDe1f",
        name: "Lifetimes",
        artist: "u8jzPde0IgxLd6GncfBAep",
        album: "KdNnFRIBXuDL7DxtpYlSXp",
    },
    Track {
        id: "8rESQedUStPKR0CsTy4Qwb",
        name: "Move Semantics",
        artist: "u8jzPde0IgxLd6GncfBAep",
        album: "KdNnFRIBXuDL7DxtpYlSXp",
    },
    Track {
        id: "8DwkNhFdnXsiVpzz63FfkC",
        name: "Send and Sync",
        artist: "fJBd0Kh8oOOL8dKLzdocJ2",
        album: "fKtHF4vUCsMehGAkWvj7FA",
    },
    Track {
        id: "zJr4i0B3JrTAwR4y9ojflj",
        name: "Async Await",
        artist: "fJBd0Kh8oOOL8dKLzdocJ2",
        album: "fKtHF4vUCsMehGAkWvj7FA",
    },
    Track {
        id: "oQoaF1LlqsajAIxNKu8iS2",
        name: "Borrowed Time",
        artist: "isAjIhKtJ0RlgLKOmxgJTe",
        album: "KdNnFRIBXuDL7DxtpYlSXp",
    },
];

#[derive(Debug, Clone)]
struct Playlist {
    id: String,
    name: String,
    owner: String,
    public: bool,
    description: String,
    tracks: Vec<String>,
}

#[derive(Debug, Default)]
struct Player {
    playing: Option<String>,
    is_playing: bool,
    queue: Vec<String>,
    recent: Vec<String>,
}

#[derive(Debug, Default)]
struct Library {
    playlists: Vec<Playlist>,
    players: HashMap<String, Player>,
    next_playlist: usize,
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

    /// The next API call under `path` answers `status` (once).
    pub fn fail_next(&self, path: &str, status: u16, retry_after: Option<u64>) {
        lock(&self.fail_next).push(Failure {
            path: path.to_owned(),
            status,
            retry_after,
        });
    }

    /// The names of `user`'s playlists (owned or followed), as the API
    /// lists them.
    pub fn playlist_names(&self, user: &str) -> Vec<String> {
        lock(&self.library)
            .playlists
            .iter()
            .filter(|p| p.owner == user)
            .map(|p| p.name.clone())
            .collect()
    }

    /// The track `user` is playing, and whether it plays.
    pub fn playing(&self, user: &str) -> (Option<String>, bool) {
        let library = lock(&self.library);
        library
            .players
            .get(user)
            .map_or((None, false), |p| (p.playing.clone(), p.is_playing))
    }

    /// The tracks queued for `user`.
    pub fn queued(&self, user: &str) -> Vec<String> {
        lock(&self.library)
            .players
            .get(user)
            .map(|p| p.queue.clone())
            .unwrap_or_default()
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
        Self::start_on(None, redirect_uris)
            .await
            .expect("start the Spotify double")
    }

    /// [`start`](Self::start) on `listen` (a free loopback port when
    /// `None`), so that other processes can reach it; an error names the
    /// address that could not be bound.
    #[allow(clippy::expect_used)]
    pub async fn start_on(
        listen: Option<std::net::SocketAddr>,
        redirect_uris: &[&str],
    ) -> Result<Self, String> {
        let (listener, base) = crate::double::bind(listen).await?;
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
            code_exchanges: AtomicUsize::new(0),
            rotate_refresh_tokens: AtomicBool::new(false),
            access_token_lifetime: AtomicU64::new(3600),
            token_endpoint_status: AtomicU64::new(0),
            revoked: Mutex::default(),
            api_calls: Mutex::default(),
            authorize_scopes: Mutex::default(),
            authorize_queries: Mutex::default(),
            fail_next: Mutex::default(),
            library: Mutex::new(Library::seeded()),
        });
        let app = Router::new()
            .route("/authorize", get(authorize_page).post(authorize_approve))
            .route("/api/token", post(token))
            .route("/api/revoke", post(revoke))
            .route("/v1/me", get(me))
            .route("/v1/search", get(search))
            .route("/v1/me/player/currently-playing", get(currently_playing))
            .route("/v1/me/player/play", axum::routing::put(play))
            .route("/v1/me/player/pause", axum::routing::put(pause))
            .route("/v1/me/player/next", post(next_track))
            .route("/v1/me/player/previous", post(previous_track))
            .route("/v1/me/player/queue", post(queue))
            .route("/v1/me/player/recently-played", get(recently_played))
            .route("/v1/me/top/{kind}", get(top))
            .route("/v1/me/playlists", get(my_playlists).post(create_playlist))
            .route(
                "/v1/playlists/{id}/items",
                get(playlist_items).post(add_items),
            )
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base, state })
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
            s.code_exchanges.fetch_add(1, Ordering::SeqCst);
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(grant) = lock(&s.tokens).codes.remove(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if !pkce_holds(&verifier, &grant.challenge)
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
    let failure = {
        let mut failures = lock(&s.fail_next);
        failures
            .iter()
            .position(|f| path.starts_with(&f.path))
            .map(|i| failures.remove(i))
    };
    if let Some(failure) = failure {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = api_error(status, "injected failure");
        if let Some(after) = failure.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(after));
        }
        return Err(response);
    }
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

// ------------------------------------------------------------ Web API

impl Library {
    fn seeded() -> Self {
        let playlist =
            |id: &str, name: &str, owner: &str, public: bool, tracks: &[&str]| Playlist {
                id: id.into(),
                name: name.into(),
                owner: owner.into(),
                public,
                description: String::new(),
                tracks: tracks.iter().map(|t| (*t).to_owned()).collect(),
            };
        let mut players = HashMap::new();
        players.insert(
            "alice".to_owned(),
            Player {
                playing: Some(TRACKS[0].id.into()),
                is_playing: true,
                queue: Vec::new(),
                recent: vec![TRACKS[1].id.into(), TRACKS[2].id.into()],
            },
        );
        players.insert(
            "bob".to_owned(),
            Player {
                playing: Some(TRACKS[3].id.into()),
                is_playing: false,
                queue: Vec::new(),
                recent: vec![TRACKS[4].id.into()],
            },
        );
        Self {
            playlists: vec![
                playlist(
                    "G8NPRVdD53X83RZJzzzzgE",
                    "Alice's focus mix",
                    "alice",
                    false,
                    &[TRACKS[0].id, TRACKS[2].id],
                ),
                playlist(
                    "OzdmenCkhvMdgaKjIg8xNb",
                    "Alice's road trip",
                    "alice",
                    true,
                    &[TRACKS[1].id],
                ),
                playlist(
                    "e3nNyjOq9wMxEhh2FDEEtf",
                    "Bob's secret favourites",
                    "bob",
                    false,
                    &[TRACKS[3].id, TRACKS[4].id],
                ),
            ],
            players,
            next_playlist: 0,
        }
    }
}

fn track_json(id: &str) -> Value {
    let Some(t) = TRACKS.iter().find(|t| t.id == id) else {
        return Value::Null;
    };
    let artist = ARTISTS.iter().find(|a| a.0 == t.artist).map_or("", |a| a.1);
    let album = ALBUMS.iter().find(|a| a.0 == t.album).map_or("", |a| a.1);
    json!({"id": t.id, "name": t.name, "type": "track", "uri": format!("spotify:track:{}", t.id),
           "duration_ms": 180_000,
           "artists": [{"id": t.artist, "name": artist, "uri": format!("spotify:artist:{}", t.artist)}],
           "album": {"id": t.album, "name": album, "uri": format!("spotify:album:{}", t.album)}})
}

fn playlist_json(p: &Playlist) -> Value {
    json!({"id": p.id, "name": p.name, "public": p.public, "description": p.description,
           "uri": format!("spotify:playlist:{}", p.id), "owner": {"id": p.owner},
           "items": {"total": p.tracks.len()}})
}

fn page(items: Vec<Value>, limit: usize, offset: usize) -> Value {
    let total = items.len();
    let items: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({"items": items, "limit": limit, "offset": offset, "total": total})
}

fn number(q: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, Response> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| api_error(StatusCode::BAD_REQUEST, "Invalid limit or offset")),
    }
}

fn track_exists(uri: &str) -> Option<&'static str> {
    let id = uri.strip_prefix("spotify:track:")?;
    TRACKS.iter().find(|t| t.id == id).map(|t| t.id)
}

async fn search(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = caller(&s, &headers, "/v1/search", &[]) {
        return r;
    }
    let (limit, offset) = match (number(&q, "limit", 10), number(&q, "offset", 0)) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if !(1..=10).contains(&limit) {
        return api_error(StatusCode::BAD_REQUEST, "Invalid limit");
    }
    let text = q.get("q").map(|t| t.to_lowercase()).unwrap_or_default();
    if text.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "No search query");
    }
    let matches = |name: &str| name.to_lowercase().contains(&text);
    let mut out = serde_json::Map::new();
    for kind in q
        .get("type")
        .map(String::as_str)
        .unwrap_or("track")
        .split(',')
    {
        let items: Vec<Value> = match kind {
            "track" => TRACKS.iter().filter(|t| matches(t.name)).map(|t| track_json(t.id)).collect(),
            "artist" => ARTISTS
                .iter()
                .filter(|a| matches(a.1))
                .map(|a| json!({"id": a.0, "name": a.1, "type": "artist", "uri": format!("spotify:artist:{}", a.0)}))
                .collect(),
            "album" => ALBUMS
                .iter()
                .filter(|a| matches(a.1))
                .map(|a| json!({"id": a.0, "name": a.1, "type": "album", "uri": format!("spotify:album:{}", a.0)}))
                .collect(),
            "playlist" => lock(&s.library)
                .playlists
                .iter()
                .filter(|p| p.public && matches(&p.name))
                .map(playlist_json)
                .collect(),
            _ => return api_error(StatusCode::BAD_REQUEST, "Invalid type"),
        };
        out.insert(format!("{kind}s"), page(items, limit, offset));
    }
    Json(Value::Object(out)).into_response()
}

async fn currently_playing(State(s): State<Arc<SpotifyState>>, headers: HeaderMap) -> Response {
    let user = match caller(
        &s,
        &headers,
        "/v1/me/player/currently-playing",
        &["user-read-playback-state"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let library = lock(&s.library);
    match library
        .players
        .get(&user.id)
        .and_then(|p| p.playing.clone().map(|t| (t, p.is_playing)))
    {
        Some((track, playing)) => Json(json!({"is_playing": playing, "progress_ms": 42_000,
            "currently_playing_type": "track", "item": track_json(&track)}))
        .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// The caller, for a player command: Premium required.
#[allow(clippy::result_large_err)]
fn player_caller(s: &SpotifyState, headers: &HeaderMap, path: &str) -> Result<TestUser, Response> {
    let user = caller(s, headers, path, &["user-modify-playback-state"])?;
    if user.product != "premium" {
        return Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"status": 403, "message": "Player command failed: Premium required", "reason": "PREMIUM_REQUIRED"}})),
        )
            .into_response());
    }
    Ok(user)
}

async fn play(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match player_caller(&s, &headers, "/v1/me/player/play") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let uris: Vec<String> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("uris").and_then(|u| u.as_array()).cloned())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut library = lock(&s.library);
    let player = library.players.entry(user.id).or_default();
    if let Some(first) = uris.first() {
        let Some(id) = track_exists(first) else {
            return api_error(StatusCode::NOT_FOUND, "Not found");
        };
        player.playing = Some(id.to_owned());
    }
    if player.playing.is_none() {
        return api_error(
            StatusCode::NOT_FOUND,
            "Player command failed: No active device found",
        );
    }
    player.is_playing = true;
    StatusCode::NO_CONTENT.into_response()
}

async fn pause(State(s): State<Arc<SpotifyState>>, headers: HeaderMap) -> Response {
    let user = match player_caller(&s, &headers, "/v1/me/player/pause") {
        Ok(u) => u,
        Err(r) => return r,
    };
    lock(&s.library)
        .players
        .entry(user.id)
        .or_default()
        .is_playing = false;
    StatusCode::NO_CONTENT.into_response()
}

fn skip(s: &SpotifyState, headers: &HeaderMap, path: &str, forward: bool) -> Response {
    let user = match player_caller(s, headers, path) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut library = lock(&s.library);
    let player = library.players.entry(user.id).or_default();
    if forward {
        if let Some(current) = player.playing.take() {
            player.recent.insert(0, current);
        }
        player.playing = if player.queue.is_empty() {
            Some(TRACKS[4].id.to_owned())
        } else {
            Some(player.queue.remove(0))
        };
    } else if let Some(last) = player.recent.first().cloned() {
        player.recent.remove(0);
        player.playing = Some(last);
    }
    player.is_playing = true;
    StatusCode::NO_CONTENT.into_response()
}

async fn next_track(State(s): State<Arc<SpotifyState>>, headers: HeaderMap) -> Response {
    skip(&s, &headers, "/v1/me/player/next", true)
}

async fn previous_track(State(s): State<Arc<SpotifyState>>, headers: HeaderMap) -> Response {
    skip(&s, &headers, "/v1/me/player/previous", false)
}

async fn queue(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match player_caller(&s, &headers, "/v1/me/player/queue") {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(id) = q.get("uri").and_then(|u| track_exists(u)) else {
        return api_error(StatusCode::NOT_FOUND, "Not found");
    };
    lock(&s.library)
        .players
        .entry(user.id)
        .or_default()
        .queue
        .push(id.to_owned());
    StatusCode::NO_CONTENT.into_response()
}

async fn recently_played(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        "/v1/me/player/recently-played",
        &["user-read-recently-played"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let limit = match number(&q, "limit", 20) {
        Ok(l) if (1..=50).contains(&l) => l,
        Ok(_) => return api_error(StatusCode::BAD_REQUEST, "Invalid limit"),
        Err(r) => return r,
    };
    let library = lock(&s.library);
    let items: Vec<Value> = library
        .players
        .get(&user.id)
        .map(|p| {
            p.recent
                .iter()
                .map(|t| json!({"track": track_json(t), "played_at": "2026-12-01T10:00:00Z"}))
                .collect()
        })
        .unwrap_or_default();
    Json(page(items, limit, 0)).into_response()
}

async fn top(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    axum::extract::Path(kind): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/v1/me/top/{kind}"),
        &["user-top-read"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (limit, offset) = match (number(&q, "limit", 20), number(&q, "offset", 0)) {
        (Ok(l), Ok(o)) if (1..=50).contains(&l) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
        _ => return api_error(StatusCode::BAD_REQUEST, "Invalid limit"),
    };
    // Each user has their own favourites: a rotation of the catalog.
    let shift = user.id.len();
    let items: Vec<Value> = match kind.as_str() {
        "tracks" => (0..TRACKS.len()).map(|i| track_json(TRACKS[(i + shift) % TRACKS.len()].id)).collect(),
        "artists" => (0..ARTISTS.len())
            .map(|i| {
                let a = ARTISTS[(i + shift) % ARTISTS.len()];
                json!({"id": a.0, "name": a.1, "type": "artist", "uri": format!("spotify:artist:{}", a.0)})
            })
            .collect(),
        _ => return api_error(StatusCode::NOT_FOUND, "Not found"),
    };
    Json(page(items, limit, offset)).into_response()
}

async fn my_playlists(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(&s, &headers, "/v1/me/playlists", &["playlist-read-private"]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (limit, offset) = match (number(&q, "limit", 20), number(&q, "offset", 0)) {
        (Ok(l), Ok(o)) if (1..=50).contains(&l) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
        _ => return api_error(StatusCode::BAD_REQUEST, "Invalid limit"),
    };
    let items: Vec<Value> = lock(&s.library)
        .playlists
        .iter()
        .filter(|p| p.owner == user.id)
        .map(playlist_json)
        .collect();
    Json(page(items, limit, offset)).into_response()
}

async fn create_playlist(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        "/v1/me/playlists",
        &["playlist-modify-private"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(name) = body
        .get("name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
    else {
        return api_error(StatusCode::BAD_REQUEST, "Missing name");
    };
    let mut library = lock(&s.library);
    library.next_playlist += 1;
    let id = format!("NewPlaylist{:011}", library.next_playlist);
    let playlist = Playlist {
        id,
        name: name.to_owned(),
        owner: user.id,
        public: body
            .get("public")
            .and_then(|p| p.as_bool())
            .unwrap_or(false),
        description: body
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .to_owned(),
        tracks: Vec::new(),
    };
    let answer = playlist_json(&playlist);
    library.playlists.push(playlist);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// A playlist the user may read: their own, or a public one.
fn readable<'a>(library: &'a Library, id: &str, user: &str) -> Option<&'a Playlist> {
    library
        .playlists
        .iter()
        .find(|p| p.id == id && (p.owner == user || p.public))
}

async fn playlist_items(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/v1/playlists/{id}/items"),
        &["playlist-read-private"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (limit, offset) = match (number(&q, "limit", 20), number(&q, "offset", 0)) {
        (Ok(l), Ok(o)) if (1..=50).contains(&l) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
        _ => return api_error(StatusCode::BAD_REQUEST, "Invalid limit"),
    };
    let library = lock(&s.library);
    let Some(playlist) = readable(&library, &id, &user.id) else {
        return api_error(StatusCode::NOT_FOUND, "Not found");
    };
    let items: Vec<Value> = playlist
        .tracks
        .iter()
        .map(|t| json!({"added_at": "2026-11-30T12:00:00Z", "item": track_json(t)}))
        .collect();
    Json(page(items, limit, offset)).into_response()
}

async fn add_items(
    State(s): State<Arc<SpotifyState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let user = match caller(
        &s,
        &headers,
        &format!("/v1/playlists/{id}/items"),
        &["playlist-modify-private"],
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let uris: Vec<&str> = body
        .get("uris")
        .and_then(|u| u.as_array())
        .map(|a| a.iter().filter_map(|u| u.as_str()).collect())
        .unwrap_or_default();
    let mut ids = Vec::new();
    for uri in &uris {
        match track_exists(uri) {
            Some(id) => ids.push(id.to_owned()),
            None => return api_error(StatusCode::BAD_REQUEST, "Invalid track uri"),
        }
    }
    let mut library = lock(&s.library);
    let Some(playlist) = library
        .playlists
        .iter_mut()
        .find(|p| p.id == id && (p.owner == user.id || p.public))
    else {
        return api_error(StatusCode::NOT_FOUND, "Not found");
    };
    if playlist.owner != user.id {
        return api_error(
            StatusCode::FORBIDDEN,
            "You cannot add to a playlist you do not own",
        );
    }
    playlist.tracks.extend(ids);
    (
        StatusCode::CREATED,
        Json(json!({"snapshot_id": format!("snap-{}", playlist.tracks.len())})),
    )
        .into_response()
}
