//! The proxy: people sign in through an upstream provider (the Spotify
//! double of mcp-auth-testkit), the provider's tokens stay in the vault,
//! tools get fresh upstream tokens, and the failure cases end the way the
//! issue says (a dead refresh token revokes our grants; an outage revokes
//! nothing).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use data_encoding::BASE64URL_NOPAD;
use mcp_auth_core::UserId;
use mcp_auth_oauth_server::{
    AuthServer, ProviderQuirks, SubjectSource, UpstreamError, UpstreamLogin, UpstreamToken,
};
use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri};
use mcp_auth_testkit::CapturedLog;
use mcp_auth_testkit::browser::{Browser, Pkce, query_of};
use mcp_auth_testkit::spotify::{CLIENT_ID, CLIENT_SECRET, SpotifyDouble};
use mcp_auth_vault::store::{MemoryStore, StorageName, UpdateFn};
use mcp_auth_vault::{KeyMaterial, Vault, VaultError, VaultStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

struct Setup {
    server: AuthServer,
    /// The client's redirect URI (a page that says "back at the client").
    callback: String,
    issuer: String,
    resource: String,
    double: SpotifyDouble,
    vault: Arc<Vault>,
    /// How often the vault's files were read.
    vault_loads: Arc<AtomicUsize>,
    http: reqwest::Client,
}

/// A memory vault store that counts its reads.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: Arc<AtomicUsize>,
}

impl VaultStore for CountingStore {
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(name)
    }
    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError> {
        self.inner.update(name, f)
    }
    fn names(&self) -> Result<Vec<StorageName>, VaultError> {
        self.inner.names()
    }
    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError> {
        self.inner.load_manifest()
    }
    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError> {
        self.inner.store_manifest(bytes)
    }
    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.inner.init_manifest(bytes)
    }
    fn wipe(&self) -> Result<usize, VaultError> {
        self.inner.wipe()
    }
    fn kind(&self) -> &'static str {
        "counting memory"
    }
}

#[derive(Default)]
struct Options {
    google_quirks: bool,
    revocation: bool,
}

async fn setup(options: Options) -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{issuer}/mcp");
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/cb", site.local_addr().unwrap());
    let back = axum::Router::new().route(
        "/cb",
        axum::routing::get(|| async { axum::response::Html("<title>back at the client</title>") }),
    );
    tokio::spawn(async move { axum::serve(site, back).await.unwrap() });
    let double = SpotifyDouble::start(&[&format!("{issuer}/login")]).await;
    let mut provider = Provider::new(
        "spotify",
        double.authorization_endpoint(),
        double.token_endpoint(),
    );
    if options.revocation {
        provider = provider.with_revocation_endpoint(double.revocation_endpoint());
    }
    let client = OAuthClient::builder(
        provider,
        CLIENT_ID,
        RedirectUri::new(format!("{issuer}/login")).unwrap(),
    )
    .client_secret(SecretString::from(CLIENT_SECRET))
    .build()
    .unwrap();
    let store = CountingStore::default();
    let vault_loads = store.loads.clone();
    let vault = Arc::new(
        Vault::builder_with_store(store)
            .key(KeyMaterial::raw([7; 32]))
            .open()
            .unwrap(),
    );
    let login = UpstreamLogin::builder(client, vault.clone())
        .display_name("Spotify")
        .subject(SubjectSource::user_info(double.me_endpoint(), "id"))
        .base_scopes(["user-read-private"])
        .scope("spotify:read", ["user-read-playback-state"])
        .scope(
            "spotify:playback",
            ["user-modify-playback-state", "user-read-playback-state"],
        )
        .quirks(if options.google_quirks {
            ProviderQuirks::google()
        } else {
            ProviderQuirks::spotify()
        })
        .build()
        .unwrap();
    let server = AuthServer::builder(&issuer, &resource)
        .scopes(["spotify:read", "spotify:playback"])
        .default_scopes(["spotify:read"])
        .public_client("test-client", "Test client", [callback.as_str()])
        .upstream(login)
        .build()
        .unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Setup {
        server,
        callback,
        issuer,
        resource,
        double,
        vault,
        vault_loads,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    fn authorize_url(&self, pkce: &Pkce, scope: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "test-client")
            .append_pair("redirect_uri", &self.callback)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "client-state")
            .append_pair("scope", scope)
            .append_pair("resource", &self.resource);
        url.to_string()
    }

    /// The whole sign-in as `user`, then the token exchange: our token
    /// response.
    async fn sign_in(&self, browser: &mut Browser, scope: &str, user: &str) -> Value {
        let pkce = Pkce::new();
        let callback = browser
            .sign_in_through(&self.authorize_url(&pkce, scope), user, &self.callback)
            .await
            .unwrap()
            .unwrap_or_else(|page| panic!("the sign-in stopped: {} {}", page.status, page.body));
        let q = query_of(&callback);
        assert_eq!(q["state"], "client-state");
        self.exchange(&q["code"], &pkce).await
    }

    async fn exchange(&self, code: &str, pkce: &Pkce) -> Value {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback.as_str()),
                ("client_id", "test-client"),
                ("code_verifier", &pkce.verifier),
                ("resource", &self.resource),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn refresh_ours(&self, refresh_token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "test-client"),
            ])
            .send()
            .await
            .unwrap()
    }

    fn handle(&self, user: &str) -> UpstreamToken {
        self.server
            .upstream_tokens()
            .unwrap()
            .for_user(&UserId::new(user).unwrap())
    }

    fn authorizations(&self) -> usize {
        self.double.state.authorize_queries.lock().unwrap().len()
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap()
}

// One thread: the captured log is the thread's subscriber.
#[tokio::test]
async fn consent_comes_first_then_the_provider_and_the_client_gets_only_our_tokens() {
    let (log, _guard) = CapturedLog::install();
    let s = setup(Options::default()).await;
    let mut browser = Browser::new();
    let pkce = Pkce::new();

    // Our consent page comes before anything is sent to the provider.
    let consent = browser
        .get(&s.authorize_url(&pkce, "spotify:read"))
        .await
        .unwrap();
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("value=\"approve\""),
        "{}",
        consent.body
    );
    assert!(
        consent
            .body
            .contains("you sign in with <strong>Spotify</strong>")
    );
    assert_eq!(
        s.authorizations(),
        0,
        "nothing sent upstream before consent"
    );

    let token = s.sign_in(&mut browser, "spotify:read", "alice").await;
    // The provider saw our redirect URI and mapped scopes, never the
    // client's redirect URI or resource.
    let upstream = s.double.state.authorize_queries.lock().unwrap()[0].clone();
    assert_eq!(upstream["redirect_uri"], format!("{}/login", s.issuer));
    assert!(!upstream.contains_key("resource"));
    assert!(!upstream.values().any(|v| v.contains(&s.callback)));
    let asked: Vec<&str> = upstream["scope"].split(' ').collect();
    assert_eq!(asked, ["user-read-playback-state", "user-read-private"]);

    // Our tokens: the namespaced subject; no upstream token anywhere.
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["sub"], "spotify:alice");
    let text = token.to_string();
    assert!(
        !text.contains("sp-at-") && !text.contains("sp-rt-"),
        "{text}"
    );

    // The tool's handle gives alice's upstream token, valid at the API.
    let handle = s.handle("spotify:alice");
    let upstream_token = handle.access_token().await.unwrap();
    assert_eq!(
        s.double
            .state
            .user_of(upstream_token.expose_secret())
            .as_deref(),
        Some("alice")
    );
    // Kept in the vault under (subject, provider), never in the clear.
    let stored = s
        .vault
        .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
        .unwrap()
        .unwrap();
    assert!(stored.refresh_token().is_some());
    for shown in [
        format!("{handle:?}"),
        format!("{stored:?}"),
        format!("{:?}", s.server.upstream_tokens().unwrap()),
    ] {
        assert!(
            !shown.contains("sp-at-") && !shown.contains("sp-rt-"),
            "{shown}"
        );
    }

    // Signed in again for the same scopes: remembered consent, tokens on
    // file cover them, so the provider is not asked again.
    let again = s.sign_in(&mut browser, "spotify:read", "alice").await;
    assert_eq!(
        claims(again["access_token"].as_str().unwrap())["sub"],
        "spotify:alice"
    );
    assert_eq!(s.authorizations(), 1);

    let logged = log.contents();
    assert!(logged.contains("upstream_signed_in"), "{logged}");
    assert!(
        !logged.contains("sp-at-") && !logged.contains("sp-rt-") && !logged.contains("code-"),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_get_different_subjects_and_each_their_own_upstream_token() {
    let s = setup(Options::default()).await;
    let alice = s
        .sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    let bob = s.sign_in(&mut Browser::new(), "spotify:read", "bob").await;
    assert_eq!(
        claims(alice["access_token"].as_str().unwrap())["sub"],
        "spotify:alice"
    );
    assert_eq!(
        claims(bob["access_token"].as_str().unwrap())["sub"],
        "spotify:bob"
    );
    let a = s.handle("spotify:alice").access_token().await.unwrap();
    let b = s.handle("spotify:bob").access_token().await.unwrap();
    assert_eq!(
        s.double.state.user_of(a.expose_secret()).as_deref(),
        Some("alice")
    );
    assert_eq!(
        s.double.state.user_of(b.expose_secret()).as_deref(),
        Some("bob")
    );
    // Someone never signed in has nothing: reconnect.
    assert!(matches!(
        s.handle("spotify:carol").access_token().await.unwrap_err(),
        UpstreamError::Reconnect { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wider_scope_asks_the_provider_again_and_the_person_keeps_what_they_had() {
    let s = setup(Options::default()).await;
    let mut browser = Browser::new();
    s.sign_in(&mut browser, "spotify:read", "alice").await;
    // Spotify-style: the full set again (Spotify has no incremental
    // authorization), so the new token still covers the old scopes.
    let token = s.sign_in(&mut browser, "spotify:playback", "alice").await;
    assert_eq!(token["scope"], "spotify:playback");
    assert_eq!(s.authorizations(), 2);
    let second = s.double.state.authorize_queries.lock().unwrap()[1].clone();
    let asked: Vec<&str> = second["scope"].split(' ').collect();
    assert_eq!(
        asked,
        [
            "user-modify-playback-state",
            "user-read-playback-state",
            "user-read-private"
        ]
    );
    assert!(!second.contains_key("include_granted_scopes"));
    let stored = s
        .vault
        .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
        .unwrap()
        .unwrap();
    assert!(
        stored
            .scopes()
            .contains(&"user-modify-playback-state".to_owned())
    );
    assert!(
        stored
            .scopes()
            .contains(&"user-read-playback-state".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_quirks_offline_access_consent_once_and_only_the_added_scopes() {
    let s = setup(Options {
        google_quirks: true,
        ..Options::default()
    })
    .await;
    let mut browser = Browser::new();
    s.sign_in(&mut browser, "spotify:read", "alice").await;
    s.sign_in(&mut browser, "spotify:playback", "alice").await;
    let queries = s.double.state.authorize_queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 2);
    // First: offline access, and consent because no refresh token is on file.
    assert_eq!(queries[0]["access_type"], "offline");
    assert_eq!(queries[0]["prompt"], "consent");
    assert!(!queries[0].contains_key("include_granted_scopes"));
    // Then: only the added scope (and the base ones), with
    // include_granted_scopes, and no forced consent (a refresh token is on file).
    assert_eq!(queries[1]["access_type"], "offline");
    assert_eq!(queries[1]["include_granted_scopes"], "true");
    assert!(!queries[1].contains_key("prompt"));
    let asked: Vec<&str> = queries[1]["scope"].split(' ').collect();
    assert_eq!(asked, ["user-modify-playback-state", "user-read-private"]);
    // What is on file covers old and new.
    let stored = s
        .vault
        .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
        .unwrap()
        .unwrap();
    for scope in ["user-read-playback-state", "user-modify-playback-state"] {
        assert!(
            stored.scopes().contains(&scope.to_owned()),
            "{:?}",
            stored.scopes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_tool_calls_with_an_expired_token_cause_one_refresh() {
    let s = setup(Options::default()).await;
    // Tokens that expire within the refresh margin (60 s).
    s.double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    s.sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    let stale = s
        .vault
        .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
        .unwrap()
        .unwrap()
        .access_token()
        .expose_secret()
        .to_owned();
    s.double
        .state
        .access_token_lifetime
        .store(3600, Ordering::SeqCst);
    let handle = s.handle("spotify:alice");
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap().expose_secret().to_owned());
    }
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0] && *t != stale));
    assert_eq!(s.double.state.user_of(&tokens[0]).as_deref(), Some("alice"));
    // Fresh now: no more refreshes.
    handle.access_token().await.unwrap();
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 1);
    // A token the provider refused (401) is refreshed once, by one caller.
    let rejected = SecretString::from(tokens[0].clone());
    let (a, b) = tokio::join!(
        handle.refresh_rejected(&rejected),
        handle.refresh_rejected(&rejected)
    );
    assert_eq!(a.unwrap().expose_secret(), b.unwrap().expose_secret());
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dead_refresh_token_means_reconnect_and_our_grants_end() {
    let (log, _guard) = CapturedLog::install();
    let s = setup(Options::default()).await;
    s.double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    let ours = s
        .sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    s.double.state.kill_refresh_tokens("alice");
    let error = s.handle("spotify:alice").access_token().await.unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Reconnect {
            provider: "Spotify".into()
        }
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "reconnect your Spotify account: sign in again from your application"
    );
    // Our grant is revoked: the client's refresh token no longer works.
    let refused = s
        .refresh_ours(ours["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        s.vault
            .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
            .unwrap()
            .is_none()
    );
    assert!(log.contents().contains("upstream_reconnect_required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_is_retryable_and_revokes_nothing() {
    let s = setup(Options::default()).await;
    s.double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    let ours = s
        .sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    for status in [503, 500, 502] {
        s.double
            .state
            .token_endpoint_status
            .store(status, Ordering::SeqCst);
        let error = s.handle("spotify:alice").access_token().await.unwrap_err();
        assert_eq!(
            error,
            UpstreamError::Unavailable {
                provider: "Spotify".into()
            }
        );
        assert!(error.is_retryable());
    }
    // Nothing was revoked or deleted; when the provider is back, it works.
    assert!(
        s.vault
            .get(&UserId::new("spotify:alice").unwrap(), "upstream:spotify")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.refresh_ours(ours["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    s.double
        .state
        .token_endpoint_status
        .store(0, Ordering::SeqCst);
    assert!(s.handle("spotify:alice").access_token().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_our_last_grant_revokes_the_provider_refresh_token_and_deletes_it() {
    let s = setup(Options {
        revocation: true,
        ..Options::default()
    })
    .await;
    s.sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    s.sign_in(&mut Browser::new(), "spotify:read", "bob").await;
    let alice = UserId::new("spotify:alice").unwrap();
    let refresh = s
        .vault
        .get(&alice, "upstream:spotify")
        .unwrap()
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_eq!(s.server.revoke_user(&alice).await.unwrap(), 1);
    assert_eq!(*s.double.state.revoked.lock().unwrap(), vec![refresh]);
    assert!(s.vault.get(&alice, "upstream:spotify").unwrap().is_none());
    // Bob is untouched; the emergency revoke-all forgets him too.
    let bob = UserId::new("spotify:bob").unwrap();
    assert!(s.vault.get(&bob, "upstream:spotify").unwrap().is_some());
    assert_eq!(s.server.revoke_all().await.unwrap(), 1);
    assert!(s.vault.get(&bob, "upstream:spotify").unwrap().is_none());
    assert_eq!(s.double.state.revoked.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_who_cancels_at_the_provider_sends_the_client_access_denied() {
    let s = setup(Options::default()).await;
    let mut browser = Browser::new();
    let pkce = Pkce::new();
    let consent = browser
        .get(&s.authorize_url(&pkce, "spotify:read"))
        .await
        .unwrap();
    let upstream = browser
        .post(
            &format!("{}/consent", s.issuer),
            &[
                ("pending", &consent.field("pending").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(upstream.status, 303);
    let login_page = browser.get(upstream.location()).await.unwrap();
    let fields: HashMap<String, String> = query_of(upstream.location());
    let mut form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.push(("decision", "cancel"));
    assert_eq!(login_page.status, 200);
    let back = browser
        .post(&s.double.authorization_endpoint(), &form)
        .await
        .unwrap();
    let callback = browser.get(back.location()).await.unwrap();
    // Our consent was given: the client is told, so it stops waiting.
    assert_eq!(callback.status, 303, "{}", callback.body);
    let q = query_of(callback.location());
    assert!(
        callback.location().starts_with(&s.callback),
        "{}",
        callback.location()
    );
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], s.issuer);
    assert!(!q.contains_key("code"));
    // The flow is over: the same callback again is an error page.
    let again = browser.get(back.location()).await.unwrap();
    assert_eq!(again.status, 400, "{}", again.body);
}

#[tokio::test]
async fn the_handle_goes_only_to_tokens_this_server_issued() {
    use mcp_auth_token::AuthContext;
    use tower::ServiceExt;
    let s = setup(Options::default()).await;
    let layer = s.server.upstream_tokens().unwrap().layer();
    let probe = tower::service_fn(|request: http::Request<()>| async move {
        Ok::<_, std::convert::Infallible>(
            request
                .extensions()
                .get::<UpstreamToken>()
                .map(|h| h.subject().as_str().to_owned()),
        )
    });
    let service = tower::Layer::layer(&layer, probe);
    for (iss, expected) in [
        (s.issuer.clone(), Some("spotify:alice".to_owned())),
        ("http://127.0.0.1:1/dev".to_owned(), None),
    ] {
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), Value::String(iss));
        let context = AuthContext::new(UserId::new("spotify:alice").unwrap()).with_claims(claims);
        let mut request = http::Request::new(());
        request.extensions_mut().insert(Arc::new(context));
        assert_eq!(service.clone().oneshot(request).await.unwrap(), expected);
    }
    assert_eq!(
        service.oneshot(http::Request::new(())).await.unwrap(),
        None,
        "no authentication, no handle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn the_proxy_sign_in_in_a_real_browser() {
    use mcp_auth_testkit::webdriver::Chromium;
    let s = setup(Options::default()).await;
    let browser = Chromium::start("oauth-server upstream browser test").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let keep = |name: &str, png: Vec<u8>| {
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(dir.join(name), png).unwrap();
    };
    let pkce = Pkce::new();
    browser
        .open(&s.authorize_url(&pkce, "spotify:read"))
        .await
        .unwrap();
    // Our consent, before the provider, saying where the person goes next.
    browser.wait_for_text("h1", "Allow").await.unwrap();
    let text = browser.text("body").await.unwrap();
    assert!(
        text.contains("After you approve, you sign in with Spotify."),
        "{text}"
    );
    assert!(!text.contains("Signed in as"), "{text}");
    keep(
        "oauth-upstream-consent.png",
        browser.screenshot().await.unwrap(),
    );
    // The form POST's 303 to the provider (another origin) is followed.
    browser.click("button[value=approve]").await.unwrap();
    browser
        .wait_for_text("h1", "Sign in to Spotify")
        .await
        .unwrap();
    keep(
        "spotify-double-login.png",
        browser.screenshot().await.unwrap(),
    );
    browser.type_into("#user", "alice").await.unwrap();
    browser.click("button[value=approve]").await.unwrap();
    // The provider's redirect to our /login, then ours to the client.
    let url = browser.wait_for_url(&s.callback).await.unwrap();
    let q = query_of(&url);
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], s.issuer);
    let token = s.exchange(&q["code"], &pkce).await;
    assert_eq!(
        claims(token["access_token"].as_str().unwrap())["sub"],
        "spotify:alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_provider_refresh_token_replaces_the_one_on_file() {
    let s = setup(Options::default()).await;
    s.double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    s.double
        .state
        .rotate_refresh_tokens
        .store(true, Ordering::SeqCst);
    s.sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    let alice = UserId::new("spotify:alice").unwrap();
    let refresh_on_file = |s: &Setup| {
        s.vault
            .get(&alice, "upstream:spotify")
            .unwrap()
            .unwrap()
            .refresh_token()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    let first = refresh_on_file(&s);
    let handle = s.handle("spotify:alice");
    handle.access_token().await.unwrap();
    let second = refresh_on_file(&s);
    assert_ne!(first, second, "the rotated refresh token is kept");
    // The old one is dead at the provider; the new one works.
    handle.access_token().await.unwrap();
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 2);
    assert_ne!(refresh_on_file(&s), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_or_the_client_revoking_the_last_grant_also_ends_the_provider_tokens() {
    let s = setup(Options {
        revocation: true,
        ..Options::default()
    })
    .await;
    let alice = UserId::new("spotify:alice").unwrap();
    let on_file = |s: &Setup| s.vault.get(&alice, "upstream:spotify").unwrap();
    // Two grants (two sign-ins): revoking one keeps the provider tokens.
    let mut browser = Browser::new();
    let first = s.sign_in(&mut browser, "spotify:read", "alice").await;
    let second = s.sign_in(&mut browser, "spotify:playback", "alice").await;
    let response = s
        .http
        .post(format!("{}/revoke", s.issuer))
        .form(&[
            ("token", first["refresh_token"].as_str().unwrap()),
            ("client_id", "test-client"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(on_file(&s).is_some(), "another grant still uses them");
    assert!(s.double.state.revoked.lock().unwrap().is_empty());
    // The person revokes the other on the connected-apps page: the last
    // grant, so the provider's refresh token is revoked and forgotten.
    let page = browser.get(&format!("{}/apps", s.issuer)).await.unwrap();
    let done = browser
        .post(
            &format!("{}/apps/revoke", s.issuer),
            &[
                ("client", &page.field("client").unwrap()),
                ("csrf", &page.field("csrf").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.status, 303);
    assert!(on_file(&s).is_none());
    assert_eq!(s.double.state.revoked.lock().unwrap().len(), 1);
    assert_eq!(
        s.refresh_ours(second["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn a_refresh_reads_the_vault_once_under_its_locks() {
    let s = setup(Options::default()).await;
    s.double
        .state
        .access_token_lifetime
        .store(30, Ordering::SeqCst);
    s.sign_in(&mut Browser::new(), "spotify:read", "alice")
        .await;
    s.double
        .state
        .access_token_lifetime
        .store(3600, Ordering::SeqCst);
    let handle = s.handle("spotify:alice");
    // Stale by the clock: one read finds it stale, one under the locks
    // finds what to refresh with.
    s.vault_loads.store(0, Ordering::SeqCst);
    let fresh = handle.access_token().await.unwrap();
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(s.vault_loads.load(Ordering::SeqCst), 2);
    // Fresh: one read, no refresh.
    s.vault_loads.store(0, Ordering::SeqCst);
    handle.access_token().await.unwrap();
    assert_eq!(s.vault_loads.load(Ordering::SeqCst), 1);
    // Refused by the provider: the refresh path alone, one read.
    s.vault_loads.store(0, Ordering::SeqCst);
    handle.refresh_rejected(&fresh).await.unwrap();
    assert_eq!(s.double.state.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(s.vault_loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pending_sign_in_is_approved_once() {
    // Re-posting Approve must not mint a fresh upstream sign-in each time
    // (a flood that fills the OAuth client's pending store for everyone).
    let s = setup(Options::default()).await;
    let mut browser = Browser::new();
    let consent = browser
        .get(&s.authorize_url(&Pkce::new(), "spotify:read"))
        .await
        .unwrap();
    let form = [
        ("pending", consent.field("pending").unwrap()),
        ("csrf", consent.field("csrf").unwrap()),
        ("decision", "approve".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = browser
        .post(&format!("{}/consent", s.issuer), &form)
        .await
        .unwrap();
    assert_eq!(first.status, 303, "to the provider: {}", first.body);
    for _ in 0..5 {
        let again = browser
            .post(&format!("{}/consent", s.issuer), &form)
            .await
            .unwrap();
        assert_eq!(again.status, 400, "{}", again.body);
        assert!(again.body.contains("already completed"), "{}", again.body);
    }
}

/// RFC 9700 §4.7.1: the provider's callback is checked against the browser
/// that started the sign-in before the provider's code is redeemed. A
/// callback URL from browser A opened in browser B (an attacker handing
/// the victim their own provider URL) gets the error page, the provider's
/// token endpoint is never called, and nothing is written to the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_in_another_browser_is_refused_before_the_code_is_redeemed() {
    use std::sync::atomic::Ordering;
    let s = setup(Options::default()).await;
    let mut started_in = Browser::new();
    let callback = started_in
        .sign_in_through(
            &s.authorize_url(&Pkce::new(), "spotify:read"),
            "alice",
            &format!("{}/login", s.issuer),
        )
        .await
        .unwrap()
        .unwrap_or_else(|page| panic!("the sign-in stopped: {} {}", page.status, page.body));
    assert!(callback.contains("code="), "{callback}");
    let mut other = Browser::new();
    let page = other.get(&callback).await.unwrap();
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("another browser"), "{}", page.body);
    assert_eq!(
        s.double.state.code_exchanges.load(Ordering::SeqCst),
        0,
        "the provider's code was never redeemed"
    );
    assert!(s.vault.users().unwrap().is_empty(), "nothing written");
    // The state is used up: the starting browser cannot finish with it
    // either (the attacker gains nothing by racing).
    let page = started_in.get(&callback).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(s.double.state.code_exchanges.load(Ordering::SeqCst), 0);

    // The same sign-in in one browser works, and redeems once.
    let mut browser = Browser::new();
    s.sign_in(&mut browser, "spotify:read", "alice").await;
    assert_eq!(s.double.state.code_exchanges.load(Ordering::SeqCst), 1);
}

/// Upstream scope truth: the person unticks a provider scope at the
/// provider (as Google allows); the code we issue carries only the scopes
/// the provider actually granted, so a tool needing the dropped one gets
/// our step-up, not the provider's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_carries_only_the_scopes_the_provider_granted() {
    let s = setup(Options::default()).await;
    let mut browser = Browser::new();
    let pkce = Pkce::new();
    let consent = browser
        .get(&s.authorize_url(&pkce, "spotify:read spotify:playback"))
        .await
        .unwrap();
    let upstream = browser
        .post(
            &format!("{}/consent", s.issuer),
            &[
                ("pending", &consent.field("pending").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(upstream.status, 303, "{}", upstream.body);
    let asked = query_of(upstream.location());
    assert!(asked["scope"].contains("user-modify-playback-state"));
    // At the provider, the person unticks the playback-control scope.
    let mut form: Vec<(String, String)> = asked
        .iter()
        .filter(|(k, _)| k.as_str() != "scope")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    form.push((
        "scope".into(),
        "user-read-private user-read-playback-state".into(),
    ));
    form.push(("user".into(), "alice".into()));
    form.push(("decision".into(), "approve".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let back = browser
        .post(&s.double.authorization_endpoint(), &form)
        .await
        .unwrap();
    let to_client = browser.get(back.location()).await.unwrap();
    assert_eq!(to_client.status, 303, "{}", to_client.body);
    let q = query_of(to_client.location());
    let token = s.exchange(&q["code"], &pkce).await;
    assert_eq!(token["scope"], "spotify:read", "{token}");
    let subject = UserId::new("spotify:alice").unwrap();
    let grants = s.server.grants(&subject).await.unwrap();
    assert_eq!(grants[0].scopes, ["spotify:read"]);
}
