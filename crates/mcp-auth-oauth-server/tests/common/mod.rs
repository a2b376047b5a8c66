//! Shared by the authorization server's HTTP tests: an issuer and a
//! protected resource on loopback, and the requests a client makes.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use mcp_auth_axum::{McpAuth, ResourceConfig};
use mcp_auth_jwks::Validator;
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin};
use mcp_auth_testkit::browser::{Browser, Page, Pkce, query_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const REDIRECT: &str = "http://localhost/callback";

pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

pub fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

pub const CONF_SECRET: &str = "conf-secret-value-0123456789";

pub struct Env {
    pub server: AuthServer,
    pub issuer: String,
    pub resource: String,
    pub http: reqwest::Client,
}

impl Env {
    /// `server`, already served at `issuer`, for `resource`.
    pub fn new(server: AuthServer, issuer: String, resource: String) -> Self {
        Self {
            server,
            issuer,
            resource,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }
}

/// A server on its own loopback issuer (resource `{issuer}/mcp`, scope
/// `mcp:tools`, the development login, registration on) with what
/// `custom` adds, serving its routes only.
pub async fn own_server(
    custom: impl FnOnce(
        mcp_auth_oauth_server::AuthServerBuilder,
    ) -> mcp_auth_oauth_server::AuthServerBuilder,
) -> Env {
    let (listener, issuer) = listen().await;
    let resource = format!("{issuer}/mcp");
    let builder = AuthServer::builder(&issuer, &resource)
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dynamic_registration(true);
    let server = custom(builder).build().unwrap();
    serve(listener, server.router());
    Env::new(server, issuer, resource)
}

pub async fn env_with(loopback_documents: bool) -> Env {
    env_custom(loopback_documents, |b| b).await
}

pub async fn env_custom(
    loopback_documents: bool,
    custom: impl FnOnce(
        mcp_auth_oauth_server::AuthServerBuilder,
    ) -> mcp_auth_oauth_server::AuthServerBuilder,
) -> Env {
    let (as_listener, issuer) = listen().await;
    let (mcp_listener, mcp_origin) = listen().await;
    let resource = format!("{mcp_origin}/mcp");
    let mut builder = AuthServer::builder(&issuer, &resource)
        .scopes(["mcp:tools", "files:write", "offline_access"])
        .default_scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dynamic_registration(true)
        .confidential_client(
            "static-conf",
            "Static confidential",
            [REDIRECT],
            CONF_SECRET,
        );
    builder = custom(builder);
    if loopback_documents {
        builder = builder.dangerous_allow_loopback_metadata_documents();
    }
    let server = builder.build().unwrap();
    serve(as_listener, server.router());
    let operator = server.clone();
    // The resource finds our keys by discovery, as it would any issuer's.
    let config = ResourceConfig::builder(&resource, &issuer)
        .require_scopes(["mcp:tools"])
        .build()
        .unwrap();
    let validator = Validator::from_issuer(config.policy().require_access_token_type())
        .await
        .unwrap();
    let echo = any(|request: axum::extract::Request| async move {
        let who = request
            .extensions()
            .get::<Arc<mcp_auth_axum::token::AuthContext>>()
            .map(|c| c.subject().to_owned())
            .unwrap_or_default();
        axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": {"subject": who}}))
    });
    let app = McpAuth::with_jwks(config, validator)
        .unwrap()
        .into_router(echo)
        .unwrap();
    serve(mcp_listener, app);
    Env::new(operator, issuer, resource)
}

pub async fn env() -> Env {
    env_with(true).await
}

pub fn new_pkce() -> Pkce {
    Pkce::new()
}

pub fn query(location: &str) -> HashMap<String, String> {
    query_of(location)
}

/// A hidden field's value in a page.
pub fn field(page: &Page, name: &str) -> String {
    page.field(name)
        .unwrap_or_else(|| panic!("no {name} in {}", page.body))
}

pub async fn register(env: &Env, name: &str) -> String {
    let answer: Value = env
        .http
        .post(format!("{}/register", env.issuer))
        .json(
            &json!({"client_name": name, "redirect_uris": [REDIRECT, "http://evil.example/cb"],
                      "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["redirect_uris"],
        json!([REDIRECT]),
        "one bad URI does not fail the rest: {answer}"
    );
    assert!(answer.get("client_secret").is_none());
    answer["client_id"].as_str().unwrap().to_owned()
}

pub fn authorize_url(env: &Env, client_id: &str, pkce: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", env.issuer)).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", "http://localhost:53123/callback")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "state-123")
            .append_pair("resource", &env.resource);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// authorize → login as `user` → consent approved: the callback URL.
pub async fn sign_in(
    env: &Env,
    browser: &mut Browser,
    client_id: &str,
    pkce: &Pkce,
    user: &str,
) -> String {
    let url = authorize_url(env, client_id, pkce, &[]);
    let login = browser.get(&url).await.unwrap();
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    for cookie in login.headers.get_all("set-cookie") {
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("__Host-"), "{text}");
        for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(text.contains(attribute), "{text}");
        }
    }
    let consent = browser
        .post(
            &format!("{}/login", env.issuer),
            &[
                ("pending", &field(&login, "pending")),
                ("csrf", &field(&login, "csrf")),
                ("user", user),
            ],
        )
        .await
        .unwrap();
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(
        consent.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(consent.headers["x-frame-options"], "DENY");
    let done = browser
        .post(
            &format!("{}/consent", env.issuer),
            &[
                ("pending", &field(&consent, "pending")),
                ("csrf", &field(&consent, "csrf")),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    done.location().to_owned()
}

pub async fn exchange(
    env: &Env,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let response = env
        .http
        .post(format!("{}/token", env.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://localhost:53123/callback"),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.unwrap())
}

pub async fn refresh(env: &Env, client_id: &str, token: &str) -> (StatusCode, Value) {
    let response = env
        .http
        .post(format!("{}/token", env.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

pub async fn call_resource(env: &Env, token: &str) -> StatusCode {
    env.http
        .post(&env.resource)
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status()
}

pub async fn token_form(
    env: &Env,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = env.http.post(format!("{}/token", env.issuer)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}
