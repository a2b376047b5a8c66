//! The sign-in pages in a real browser: headless Chromium (Debian's
//! `chromium`, through `chromedriver`) types a user name, approves and
//! denies, and meets a forged CSRF token and a framing page. Screenshots
//! of every page (error, login, consent, connected apps) are kept for
//! review in `target/screenshots/oauth-*.png`.
#![allow(clippy::unwrap_used)]

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use mcp_auth_testkit::browser::query_of;
use mcp_auth_testkit::webdriver::Chromium;
use serde_json::{Value, json};

/// The client's callback, and a page that tries to frame the sign-in.
async fn client_site(authorize: String) -> String {
    let (listener, origin) = listen().await;
    let framing = format!(
        "<!doctype html><title>framing</title><iframe id=\"f\" src=\"{authorize}\" width=400 height=400></iframe>"
    );
    serve(
        listener,
        Router::new()
            .route(
                "/callback",
                get(|| async { axum::response::Html("<title>back at the client</title>") }),
            )
            .route(
                "/frame",
                get(move || async move { axum::response::Html(framing) }),
            ),
    );
    origin
}

async fn register_at(env: &Env, name: &str, redirect: &str) -> String {
    let answer: Value = env
        .http
        .post(format!("{}/register", env.issuer))
        .json(&json!({"client_name": name, "redirect_uris": [redirect], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["client_id"].as_str().unwrap().to_owned()
}

fn authorize(env: &Env, client_id: &str, redirect: &str, state: &str) -> String {
    authorize_with(env, client_id, redirect, state, &new_pkce())
}

fn authorize_with(
    env: &Env,
    client_id: &str,
    redirect: &str,
    state: &str,
    pkce: &mcp_auth_testkit::browser::Pkce,
) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", env.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("resource", &env.resource);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn login_consent_and_redirect_in_a_real_browser() {
    let env = env().await;
    let site = client_site(String::new()).await;
    let redirect = format!("{site}/callback");
    let client_id = register_at(&env, "<b>Chromium</b> & friends", &redirect).await;
    let browser = Chromium::start("oauth-server browser test").await;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let keep = |name: &str, png: Vec<u8>| {
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(dir.join(name), png).unwrap();
    };

    // An unknown client: an error page, no redirect.
    browser
        .open(&authorize(&env, "no-such-client", &redirect, "s-0"))
        .await
        .unwrap();
    assert_eq!(
        browser
            .wait_for_text("h1", "cannot continue")
            .await
            .unwrap(),
        "This sign-in cannot continue"
    );
    keep("oauth-error.png", browser.screenshot().await.unwrap());

    // Login: type a name, continue.
    let pkce = new_pkce();
    browser
        .open(&authorize_with(&env, &client_id, &redirect, "s-1", &pkce))
        .await
        .unwrap();
    assert_eq!(
        browser.wait_for_text("h1", "Sign in").await.unwrap(),
        "Sign in"
    );
    keep("oauth-login.png", browser.screenshot().await.unwrap());
    browser.type_into("#user", "chromium-user").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();

    // Consent: the client's name is text, not markup.
    let heading = browser.wait_for_text("h1", "Allow").await.unwrap();
    assert_eq!(
        heading,
        "Allow <b>Chromium</b> & friends to use your account?"
    );
    let source = browser.source().await.unwrap();
    assert!(
        !source.contains("<b>Chromium</b>"),
        "markup rendered as HTML"
    );
    // Who is asking, truthfully: where the browser goes back to as scheme,
    // host and port, and a self-registered name marked as unverified.
    let details = browser.text("dl").await.unwrap();
    assert!(details.contains(&site), "{details} lacks {site}");
    assert!(details.contains("not verified"), "{details}");
    keep("oauth-consent.png", browser.screenshot().await.unwrap());

    // Approve: back at the client with a code, the state and our issuer.
    browser.click("button[value=approve]").await.unwrap();
    let url = browser.wait_for_url(&redirect).await.unwrap();
    let q = query_of(&url);
    assert!(q.contains_key("code"));
    assert_eq!(q["state"], "s-1");
    assert_eq!(q["iss"], env.issuer);

    // The client redeems the code; the connected-apps page lists the grant.
    let redeemed = env
        .http
        .post(format!("{}/token", env.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", client_id.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), reqwest::StatusCode::OK);
    browser.open(&format!("{}/apps", env.issuer)).await.unwrap();
    browser
        .wait_for_text("li strong", "<b>Chromium</b>")
        .await
        .unwrap();
    keep("oauth-apps.png", browser.screenshot().await.unwrap());

    // Signed in and consented: the next request goes straight back; after
    // the consent is forgotten (another redirect) Deny sends an error.
    browser
        .open(&authorize(&env, &client_id, &redirect, "s-2"))
        .await
        .unwrap();
    assert!(query_of(&browser.wait_for_url(&redirect).await.unwrap()).contains_key("code"));
    // A name with a right-to-left override (U+202E) and a zero-width
    // space renders as written, not reversed.
    let other = register_at(&env, "Second\u{202E}txt.exe\u{200B} client", &redirect).await;
    browser
        .open(&authorize(&env, &other, &redirect, "s-3"))
        .await
        .unwrap();
    assert_eq!(
        browser.wait_for_text("h1", "Allow").await.unwrap(),
        "Allow Secondtxt.exe client to use your account?"
    );
    keep(
        "oauth-consent-bidi.png",
        browser.screenshot().await.unwrap(),
    );
    browser.click("button[value=deny]").await.unwrap();
    let q = query_of(&browser.wait_for_url(&redirect).await.unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "s-3");

    // A forged CSRF token: refused, nothing issued.
    browser
        .open(&authorize(&env, &other, &redirect, "s-4"))
        .await
        .unwrap();
    browser.wait_for_text("h1", "Allow").await.unwrap();
    browser
        .run("document.querySelector('input[name=csrf]').value = 'forged'; return true;")
        .await
        .unwrap();
    browser.click("button[value=approve]").await.unwrap();
    browser
        .wait_for_text("p", "The form is not valid")
        .await
        .unwrap();
    assert!(browser.url().await.unwrap().starts_with(&env.issuer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn the_sign_in_pages_cannot_be_framed() {
    let env = env().await;
    let placeholder = client_site(String::new()).await;
    let redirect = format!("{placeholder}/callback");
    let client_id = register_at(&env, "Framed", &redirect).await;
    let site = client_site(authorize(&env, &client_id, &redirect, "framed")).await;
    let browser = Chromium::start("oauth-server framing test").await;
    browser.open(&format!("{site}/frame")).await.unwrap();
    browser.frame(Some("#f")).await.unwrap();
    let framed = browser.source().await.unwrap();
    assert!(
        !framed.contains("name=\"user\""),
        "the login form loaded in a frame: {framed}"
    );
    browser.frame(None).await.unwrap();
    // The same page at the top level loads.
    browser
        .open(&authorize(&env, &client_id, &redirect, "top"))
        .await
        .unwrap();
    browser.wait_for_text("h1", "Sign in").await.unwrap();
}

/// Scopes a person can read: a first consent lists what each scope allows
/// in plain words (the scope string small beside it); a step-up lists what
/// the application already has apart from what it also asks, and says
/// what staying connected (`offline_access`) means. Screenshots at phone
/// and desktop width: `target/screenshots/oauth-consent-{first,step-up}-{phone,desktop}.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn consent_in_plain_words_first_and_on_step_up_at_phone_and_desktop_width() {
    let env = env_custom(true, |b| {
        b.describe_scope("mcp:tools", "Use this server's tools")
            .describe_scope("files:write", "Change and delete your files")
    })
    .await;
    let site = client_site(String::new()).await;
    let redirect = format!("{site}/callback");
    let client_id = register_at(&env, "Notes app", &redirect).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for (width, size) in [
        ("phone", "--window-size=390,844"),
        ("desktop", "--window-size=1280,900"),
    ] {
        let browser = Chromium::start_with("oauth-server consent in plain words", &[size]).await;
        let keep = |name: String, png: Vec<u8>| {
            assert!(png.starts_with(b"\x89PNG"));
            std::fs::write(dir.join(name), png).unwrap();
        };
        // First consent: the base scope, described.
        let pkce = new_pkce();
        browser
            .open(&authorize_with(&env, &client_id, &redirect, "s-1", &pkce))
            .await
            .unwrap();
        browser.wait_for_text("h1", "Sign in").await.unwrap();
        browser
            .type_into("#user", &format!("{width}-user"))
            .await
            .unwrap();
        browser.click("button[type=submit]").await.unwrap();
        browser.wait_for_text("h1", "Allow").await.unwrap();
        let details = browser.text("dl").await.unwrap();
        assert!(details.contains("It will be able to"), "{details}");
        assert!(details.contains("Use this server's tools"), "{details}");
        assert!(details.contains("mcp:tools"), "{details}");
        keep(
            format!("oauth-consent-first-{width}.png"),
            browser.screenshot().await.unwrap(),
        );
        browser.click("button[value=approve]").await.unwrap();
        let q = query_of(&browser.wait_for_url(&redirect).await.unwrap());
        // The client redeems the code: the grant exists.
        let redeemed = env
            .http
            .post(format!("{}/token", env.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", q["code"].as_str()),
                ("redirect_uri", redirect.as_str()),
                ("client_id", client_id.as_str()),
                ("code_verifier", pkce.verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(redeemed.status(), reqwest::StatusCode::OK);
        // Step-up: what it already has, apart from what it also asks, and
        // what staying connected means.
        let mut url = url::Url::parse(&authorize(&env, &client_id, &redirect, "s-2")).unwrap();
        url.query_pairs_mut()
            .append_pair("scope", "mcp:tools files:write offline_access");
        browser.open(url.as_str()).await.unwrap();
        browser.wait_for_text("h1", "Allow").await.unwrap();
        let details = browser.text("dl").await.unwrap();
        let (already, also) = details.split_once("It also asks to").expect("two groups");
        assert!(
            already.contains("It already can") && already.contains("Use this server's tools"),
            "{details}"
        );
        assert!(
            !already.contains("Change and delete your files"),
            "{details}"
        );
        assert!(also.contains("Change and delete your files"), "{details}");
        assert!(also.contains("Stay connected"), "{details}");
        assert!(!also.contains("Use this server's tools"), "{details}");
        keep(
            format!("oauth-consent-step-up-{width}.png"),
            browser.screenshot().await.unwrap(),
        );
    }
}
