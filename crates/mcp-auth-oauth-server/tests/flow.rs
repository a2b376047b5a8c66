//! The authorization server end to end over HTTP on loopback: a scripted
//! browser (cookies kept by hand, forms read from the HTML) through
//! registration, authorize, the development login and consent; the token
//! endpoint; a resource protected by mcp-auth-axum that finds our keys by
//! discovery; and the refusals, each one test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::{any, get};
use common::*;
use data_encoding::BASE64URL_NOPAD;
use mcp_auth_oauth_server::{AuthServer, DangerousDevLogin, ServerError};
use mcp_auth_testkit::browser::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_client_signs_in_and_its_token_opens_the_resource_then_refreshes_with_rotation() {
    let env = env().await;
    let client_id = register(&env, "Test client").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let callback = sign_in(&env, &mut browser, &client_id, &pkce, "alice").await;
    assert!(
        callback.starts_with("http://localhost:53123/callback?"),
        "{callback}"
    );
    let q = query(&callback);
    assert_eq!(q["state"], "state-123");
    assert_eq!(q["iss"], env.issuer);
    let (status, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "mcp:tools");
    let access = tokens["access_token"].as_str().unwrap();
    // RFC 9068 header and claims.
    let header: Value = serde_json::from_slice(
        &BASE64URL_NOPAD
            .decode(access.split('.').next().unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(
        &BASE64URL_NOPAD
            .decode(access.split('.').nth(1).unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], env.resource);
    assert_eq!(claims["client_id"], client_id);
    assert!(claims["jti"].is_string());
    assert_eq!(call_resource(&env, access).await, StatusCode::OK);

    // Signed in and consented: the same request goes straight back, and a
    // new grant leaves the first one alone.
    let pkce2 = new_pkce();
    let page = browser
        .get(&authorize_url(&env, &client_id, &pkce2, &[]))
        .await
        .unwrap();
    let (status, headers, _) = (page.status, page.headers.clone(), page.body.clone());
    assert_eq!(status, StatusCode::SEE_OTHER, "remembered consent");
    let code2 = query(headers["location"].to_str().unwrap())["code"].clone();
    let (status, _) = exchange(&env, &client_id, &code2, &pkce2.verifier).await;
    assert_eq!(status, StatusCode::OK);

    // Refresh: rotated; the old one presented again revokes the grant.
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = refresh(&env, &client_id, &first).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(
        call_resource(&env, rotated["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    let (status, reused) = refresh(&env, &client_id, &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reused["error"], "invalid_grant");
    let (status, _) = refresh(&env, &client_id, &second).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the whole grant is revoked"
    );

    // The grant's consent went with it: the next sign-in asks again.
    let pkce3 = new_pkce();
    let page = browser
        .get(&authorize_url(&env, &client_id, &pkce3, &[]))
        .await
        .unwrap();
    let (status, _, page) = (page.status, page.headers.clone(), page.body.clone());
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Approve"), "{page}");
}

#[tokio::test]
async fn a_code_works_once_and_a_replay_revokes_what_it_gave() {
    let env = env().await;
    let client_id = register(&env, "Replay").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "bob").await);
    let (status, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    let (status, _) = refresh(&env, &client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the replay revoked the grant"
    );
}

#[tokio::test]
async fn a_wrong_verifier_or_client_does_not_redeem_a_code() {
    let env = env().await;
    let client_id = register(&env, "PKCE").await;
    let other = register(&env, "Other").await;
    for (who, verifier) in [(&client_id, "x".repeat(50)), (&other, String::new())] {
        let pkce = new_pkce();
        let mut browser = Browser::new();
        let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "carol").await);
        let verifier = if verifier.is_empty() {
            pkce.verifier.clone()
        } else {
            verifier
        };
        let (status, answer) = exchange(&env, who, &q["code"], &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"], "invalid_grant");
    }
}

#[tokio::test]
async fn errors_before_the_client_is_known_are_pages_never_redirects() {
    let env = env().await;
    let client_id = register(&env, "Pages").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    for url in [
        authorize_url(&env, "no-such-client", &pkce, &[]),
        authorize_url(&env, &client_id, &pkce, &[]).replace("localhost%3A53123", "evil.example"),
        authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fcallback", "%2Fcallback%2F"),
        authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fcallback", "%2FCallback"),
        authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fcallback", "%2Fcallback%3Fx%3D1"),
        authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fcallback", "%2Fcallback%23f"),
        authorize_url(&env, &client_id, &pkce, &[])
            .replace("http%3A%2F%2Flocalhost", "http%3A%2F%2Fu%40localhost"),
        authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fcallback", "%2Fx%2F..%2Fcallback"),
        authorize_url(&env, &client_id, &pkce, &[])
            .replace("http%3A%2F%2Flocalhost", "https%3A%2F%2Flocalhost"),
        format!(
            "{}&client_id=again",
            authorize_url(&env, &client_id, &pkce, &[])
        ),
    ] {
        let page = browser.get(&url).await.unwrap();
        assert!(page.status.is_client_error(), "{url}: {}", page.status);
        assert!(!page.headers.contains_key("location"), "{url}");
        assert!(page.body.contains("cannot continue"), "{}", page.body);
    }
}

#[tokio::test]
async fn errors_after_a_configured_client_is_known_go_back_with_state_and_iss() {
    let env = own_server(|b| {
        b.public_client(
            "configured-app",
            "Configured",
            ["http://localhost/callback"],
        )
    })
    .await;
    let client_id = "configured-app".to_owned();
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let no_pkce = authorize_url(&env, &client_id, &pkce, &[]).replace("code_challenge=", "x=");
    let cases = [
        (no_pkce, "invalid_request"),
        (
            authorize_url(&env, &client_id, &pkce, &[]).replace("method=S256", "method=plain"),
            "invalid_request",
        ),
        (
            authorize_url(&env, &client_id, &pkce, &[])
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            authorize_url(&env, &client_id, &pkce, &[]).replace("%2Fmcp", "%2Fother"),
            "invalid_target",
        ),
        (
            authorize_url(&env, &client_id, &pkce, &[("scope", "admin")]),
            "invalid_scope",
        ),
    ];
    for (url, error) in cases {
        let page = browser.get(&url).await.unwrap();
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{url}");
        let q = query(page.location());
        assert_eq!(q["error"], error, "{url}");
        assert_eq!(q["state"], "state-123");
        assert_eq!(q["iss"], env.issuer);
    }
}

/// RFC 9700 section 4.11.2: a client anyone could register gets its
/// request errors as a page, never a redirect to its redirect URI (else
/// registering `https://evil.example.org/x` and linking to a malformed
/// authorize URL makes this server redirect anywhere, no person involved).
#[tokio::test]
async fn a_registered_clients_request_errors_are_a_page_not_a_redirect() {
    let env = env().await;
    let client_id = env
        .http
        .post(format!("{}/register", env.issuer))
        .json(
            &serde_json::json!({"redirect_uris": ["https://evil.example.org/x"],
                                  "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut url = url::Url::parse(&format!("{}/authorize", env.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", "https://evil.example.org/x");
    let page = Browser::new().get(url.as_str()).await.unwrap();
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.headers.contains_key("location"), "no redirect");
    assert!(page.body.contains("response_type"), "{}", page.body);
}

#[tokio::test]
async fn consent_can_be_denied_and_forms_are_bound_to_the_browser() {
    let env = env().await;
    let client_id = register(&env, "<script>alert(1)</script> & co").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let login = browser
        .get(&authorize_url(&env, &client_id, &pkce, &[]))
        .await
        .unwrap();
    assert!(
        login
            .body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; co"),
        "escaped: {}",
        login.body
    );
    assert!(!login.body.contains("<script>"));
    let pending = field(&login, "pending");
    let csrf = field(&login, "csrf");
    let login_url = format!("{}/login", env.issuer);
    // A forged CSRF token, and the right one from another browser: refused.
    let forged = browser
        .post(
            &login_url,
            &[
                ("pending", &pending),
                ("csrf", "forged"),
                ("user", "mallory"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let stranger = Browser::new()
        .post(
            &login_url,
            &[("pending", &pending), ("csrf", &csrf), ("user", "mallory")],
        )
        .await
        .unwrap();
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    // The real browser logs in and denies.
    let consent = browser
        .post(
            &login_url,
            &[("pending", &pending), ("csrf", &csrf), ("user", "dave")],
        )
        .await
        .unwrap();
    assert!(
        consent.body.contains("&#60;script&#62;"),
        "{}",
        consent.body
    );
    let consent_url = format!("{}/consent", env.issuer);
    let denied = browser
        .post(
            &consent_url,
            &[("pending", &pending), ("csrf", &csrf), ("decision", "deny")],
        )
        .await
        .unwrap();
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    let q = query(denied.location());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "state-123");
    // Single use: the same form again is refused.
    let again = browser
        .post(
            &consent_url,
            &[
                ("pending", &pending),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await
        .unwrap();
    assert!(again.status.is_client_error());
}

#[tokio::test]
async fn metadata_advertises_exactly_what_is_implemented() {
    let env = env().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = env
            .http
            .get(format!("{}{path}", env.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], env.issuer);
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["client_id_metadata_document_supported"], true);
        assert!(
            doc["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("none"))
        );
        assert_eq!(
            doc["registration_endpoint"],
            format!("{}/register", env.issuer)
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
    }
    let jwks: Value = env
        .http
        .get(format!("{}/jwks.json", env.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn a_client_metadata_document_on_loopback_is_used_only_with_the_development_switch() {
    // The document, served on loopback.
    let (listener, origin) = listen().await;
    let client_id = format!("{origin}/client.json");
    let document = json!({"client_id": client_id, "client_name": "Document client",
                          "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let wrong =
        json!({"client_id": "https://elsewhere.example/client.json", "redirect_uris": [REDIRECT]});
    serve(
        listener,
        Router::new()
            .route(
                "/client.json",
                get(move || async move { axum::Json(document) }),
            )
            .route("/wrong.json", get(move || async move { axum::Json(wrong) })),
    );
    let env = env().await;
    let verifier = new_pkce();
    let mut browser = Browser::new();
    let callback = sign_in(&env, &mut browser, &client_id, &verifier, "erin").await;
    let (status, tokens) = exchange(
        &env,
        &client_id,
        &query(&callback)["code"],
        &verifier.verifier,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // A document naming another client_id is refused (a page, no redirect).
    let page = browser
        .get(&authorize_url(
            &env,
            &format!("{origin}/wrong.json"),
            &verifier,
            &[],
        ))
        .await
        .unwrap();
    let (status, headers, _) = (page.status, page.headers.clone(), page.body.clone());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!headers.contains_key("location"));

    // Without the development switch, the SSRF guard refuses the loopback
    // document: the client is unknown.
    let guarded = env_with(false).await;
    let page = Browser::new()
        .get(&authorize_url(&guarded, &client_id, &verifier, &[]))
        .await
        .unwrap();
    let (status, headers, body) = (page.status, page.headers.clone(), page.body.clone());
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!headers.contains_key("location"));
}

#[test]
fn the_development_login_is_refused_on_a_public_issuer() {
    let built = AuthServer::builder("https://mcp.example.com", "https://mcp.example.com/mcp")
        .login(DangerousDevLogin)
        .build();
    assert!(matches!(
        built,
        Err(ServerError::Config(ref problem)) if problem.setting() == "login"
    ));
    assert!(
        AuthServer::builder("https://mcp.example.com", "https://mcp.example.com/mcp")
            .login(DangerousDevLogin)
            .dangerous_allow_dev_login_on_public_issuer()
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn a_confidential_client_must_authenticate_with_its_secret() {
    let env = env().await;
    for how in ["none", "wrong", "basic", "post"] {
        let pkce = new_pkce();
        let mut browser = Browser::new();
        let q = query(&sign_in(&env, &mut browser, "static-conf", &pkce, "frank").await);
        let code = q["code"].as_str();
        let base = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://localhost:53123/callback"),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        let (status, answer) = match how {
            "none" => {
                token_form(
                    &env,
                    &[&base[..], &[("client_id", "static-conf")]].concat(),
                    None,
                )
                .await
            }
            "wrong" => token_form(&env, &base, Some(("static-conf", "not-the-secret"))).await,
            "basic" => token_form(&env, &base, Some(("static-conf", CONF_SECRET))).await,
            _ => {
                let form = [
                    &base[..],
                    &[("client_id", "static-conf"), ("client_secret", CONF_SECRET)],
                ]
                .concat();
                token_form(&env, &form, None).await
            }
        };
        match how {
            "none" | "wrong" => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{how}: {answer}");
                assert_eq!(answer["error"], "invalid_client");
            }
            _ => assert_eq!(status, StatusCode::OK, "{how}: {answer}"),
        }
    }
}

#[tokio::test]
async fn a_refresh_may_narrow_scopes_never_widen_them() {
    let env = env().await;
    let client_id = register(&env, "Scopes").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let url = authorize_url(
        &env,
        &client_id,
        &pkce,
        &[("scope", "mcp:tools files:write")],
    );
    let callback = browser
        .sign_in(&env.issuer, &url, "gina")
        .await
        .unwrap()
        .unwrap();
    let (_, tokens) = exchange(&env, &client_id, &query(&callback)["code"], &pkce.verifier).await;
    assert_eq!(tokens["scope"], "mcp:tools files:write");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, answer) = token_form(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &client_id),
            ("scope", "mcp:tools offline_access"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_scope");
    // Never a silent narrowing: the answer says to authorize again.
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("/authorize again"),
        "{answer}"
    );
    let (status, answer) = token_form(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &client_id),
            ("scope", "mcp:tools"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["scope"], "mcp:tools");
    assert_eq!(
        claims(answer["access_token"].as_str().unwrap())["scope"],
        "mcp:tools"
    );
    // RFC 6749 section 6: the new refresh token's scope is the one
    // presented; only the access token narrowed. Asking for both again works.
    let (status, answer) = token_form(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", answer["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("scope", "mcp:tools files:write"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["scope"], "mcp:tools files:write");
    // And with no scope named, the grant's whole scope.
    let (status, answer) =
        refresh(&env, &client_id, answer["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["scope"], "mcp:tools files:write");
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn within_the_grace_window_a_retry_gets_the_same_successor_and_a_replay_after_revokes() {
    let env = env_custom(true, |b| {
        b.refresh_grace(std::time::Duration::from_secs(30))
    })
    .await;
    let client_id = register(&env, "Grace").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "hank").await);
    let (_, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (_, lost) = refresh(&env, &client_id, &first).await;
    let lost = lost["refresh_token"].as_str().unwrap().to_owned();
    // The client never saw `lost` and retries with `first`: the same
    // successor again (idempotent), with a fresh access token; never a
    // second successor that would cut off whoever holds the first.
    for _ in 0..2 {
        let (status, retried) = refresh(&env, &client_id, &first).await;
        assert_eq!(status, StatusCode::OK, "{retried}");
        assert_eq!(retried["refresh_token"], lost.as_str());
        assert!(retried["access_token"].is_string());
    }
    let (status, next) = refresh(&env, &client_id, &lost).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let next = next["refresh_token"].as_str().unwrap().to_owned();
    // `first` presented again once its successor has been used (a thief
    // replaying inside the window): reuse, the whole grant is revoked.
    let (status, answer) = refresh(&env, &client_id, &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = refresh(&env, &client_id, &next).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the grant is revoked");
}

#[tokio::test]
async fn the_operator_lists_and_revokes_grants_and_other_devices_stay_signed_in() {
    let env = env().await;
    let client_id = register(&env, "Operator").await;
    let mut refresh_tokens = Vec::new();
    for device in 0..2 {
        let pkce = new_pkce();
        // Two browsers (two devices) of the same user.
        let mut browser = Browser::new();
        let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "ivy").await);
        let (_, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
        let _ = device;
    }
    let ivy = mcp_auth_core::UserId::new("ivy").unwrap();
    let grants = env.server.grants(&ivy).await.unwrap();
    assert_eq!(
        grants.len(),
        2,
        "a new grant did not revoke the other device's"
    );
    assert!(
        grants
            .iter()
            .all(|g| g.client_id == client_id && g.scopes == ["mcp:tools"])
    );
    assert!(env.server.revoke_grant(&grants[0].id).await.unwrap());
    let alive: Vec<StatusCode> = futures_statuses(&env, &client_id, &refresh_tokens).await;
    assert_eq!(alive.iter().filter(|s| **s == StatusCode::OK).count(), 1);
    assert_eq!(env.server.revoke_user(&ivy).await.unwrap(), 1);
    assert!(env.server.grants(&ivy).await.unwrap().is_empty());
    assert_eq!(env.server.revoke_all().await.unwrap(), 0);
}

async fn futures_statuses(env: &Env, client_id: &str, tokens: &[String]) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for token in tokens {
        statuses.push(refresh(env, client_id, token).await.0);
    }
    statuses
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let env = env().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let response = env
            .http
            .post(format!("{}/register", env.issuer))
            .json(
                &json!({"client_name": format!("flood {i}"), "redirect_uris": [REDIRECT],
                          "token_endpoint_auth_method": "none"}),
            )
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        10
    );
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_signed_in_person_sees_their_connected_apps_and_revokes_one() {
    let env = env().await;
    let first = register(&env, "First <app>").await;
    let second = register(&env, "Second app").await;
    let mut browser = Browser::new();
    let mut refresh_tokens = Vec::new();
    for client in [&first, &second] {
        let pkce = new_pkce();
        let q = query(&sign_in(&env, &mut browser, client, &pkce, "kim").await);
        let (_, tokens) = exchange(&env, client, &q["code"], &pkce.verifier).await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    let apps_url = format!("{}/apps", env.issuer);
    let page = browser.get(&apps_url).await.unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("First &#60;app&#62;") && page.body.contains("Second app"),
        "{}",
        page.body
    );
    assert!(page.body.contains("registered itself"));
    // The first Revoke form on the page: its application and the page's token.
    let grant = page.field("client").unwrap();
    let csrf = page.field("csrf").unwrap();
    // Another browser, or a forged token, cannot use the form.
    let stranger = Browser::new()
        .post(
            &format!("{apps_url}/revoke"),
            &[("client", &grant), ("csrf", &csrf)],
        )
        .await
        .unwrap();
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let forged = browser
        .post(
            &format!("{apps_url}/revoke"),
            &[("client", &grant), ("csrf", "forged")],
        )
        .await
        .unwrap();
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let done = browser
        .post(
            &format!("{apps_url}/revoke"),
            &[("client", &grant), ("csrf", &csrf)],
        )
        .await
        .unwrap();
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let statuses = [
        refresh(&env, &first, &refresh_tokens[0]).await.0,
        refresh(&env, &second, &refresh_tokens[1]).await.0,
    ];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "one revoked, one kept"
    );
    let page = browser.get(&apps_url).await.unwrap();
    assert_eq!(page.body.matches("Revoke access").count(), 1);
    // Without a login session there is nothing to show.
    assert_eq!(
        Browser::new().get(&apps_url).await.unwrap().status,
        StatusCode::UNAUTHORIZED
    );
}

/// An application that signed in twice (a step-up, a second device) holds
/// two grants: the page lists it once, with what both allow, and its one
/// Revoke button ends both.
#[tokio::test]
async fn an_application_with_two_grants_is_listed_once_and_revoked_whole() {
    let env = env().await;
    let client = register(&env, "Twice").await;
    let mut browsers = vec![Browser::new(), Browser::new()];
    let mut refresh_tokens = Vec::new();
    // Two browsers (two devices): each signs in and consents.
    for browser in &mut browsers {
        let pkce = new_pkce();
        let q = query(&sign_in(&env, browser, &client, &pkce, "lee").await);
        let (_, tokens) = exchange(&env, &client, &q["code"], &pkce.verifier).await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    let browser = &mut browsers[1];
    let apps_url = format!("{}/apps", env.issuer);
    let page = browser.get(&apps_url).await.unwrap();
    assert_eq!(
        page.body.matches("Revoke access").count(),
        1,
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("<strong>Twice</strong>").count(), 1);
    let done = browser
        .post(
            &format!("{apps_url}/revoke"),
            &[
                ("client", &page.field("client").unwrap()),
                ("csrf", &page.field("csrf").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    for token in &refresh_tokens {
        assert_eq!(
            refresh(&env, &client, token).await.0,
            StatusCode::BAD_REQUEST
        );
    }
    let page = browser.get(&apps_url).await.unwrap();
    assert!(
        page.body.contains("No application holds access"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_registration_unused_for_its_lifetime_is_gone() {
    let clock = mcp_auth_core::ManualClock::starting_now();
    let env = own_server(|b| {
        b.registration_ttl(std::time::Duration::from_secs(24 * 3600))
            .clock(clock.clone())
    })
    .await;
    let client_id = register(&env, "Short-lived").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let page = browser
        .get(&authorize_url(&env, &client_id, &pkce, &[]))
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK, "known while fresh");
    clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let page = browser
        .get(&authorize_url(&env, &client_id, &pkce, &[]))
        .await
        .unwrap();
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "unused for a day: gone"
    );
    assert!(!page.headers.contains_key("location"));
}

#[tokio::test]
async fn signing_keys_live_in_the_vault_and_rotate_without_breaking_tokens() {
    use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        std::sync::Arc::new(
            Vault::builder(StorageMode::EncryptedFile(dir.path().join("vault")))
                .key(KeyMaterial::raw([7; 32]))
                .open()
                .unwrap(),
        )
    };
    let env = env_custom(true, |b| b.keys_in_vault(open())).await;
    let client_id = register(&env, "Rotation").await;
    let before = fresh_token(&env, &client_id, "lee").await;
    assert_eq!(call_resource(&env, &before).await, StatusCode::OK);
    let published = env.server.jwks();

    // A restart with the same vault signs with the same keys.
    let restarted = AuthServer::builder(&env.issuer, &env.resource)
        .login(DangerousDevLogin)
        .keys_in_vault(open())
        .build()
        .unwrap();
    assert_eq!(restarted.jwks(), published);

    // Rotation: the published next key signs; the old one stays published,
    // so a token issued before still opens the resource.
    env.server.rotate_keys().unwrap();
    let kids: Vec<String> = env.server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 3);
    assert_eq!(
        kids[0],
        published["keys"][1]["kid"].as_str().unwrap(),
        "the published next key signs"
    );
    assert_eq!(call_resource(&env, &before).await, StatusCode::OK);
    let after = fresh_token(&env, &client_id, "lee").await;
    assert_eq!(call_resource(&env, &after).await, StatusCode::OK);
    // And the rotation was stored.
    let reopened = AuthServer::builder(&env.issuer, &env.resource)
        .login(DangerousDevLogin)
        .keys_in_vault(open())
        .build()
        .unwrap();
    assert_eq!(reopened.jwks(), env.server.jwks());
}

/// A whole sign-in in a new browser: the access token.
async fn fresh_token(env: &Env, client_id: &str, user: &str) -> String {
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(env, &mut browser, client_id, &pkce, user).await);
    let (_, tokens) = exchange(env, client_id, &q["code"], &pkce.verifier).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_every_metadata_form_and_its_endpoints_under_it() {
    let (listener, origin) = listen().await;
    let issuer = format!("{origin}/tenant/auth");
    let server = AuthServer::builder(&issuer, format!("{origin}/mcp"))
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .build()
        .unwrap();
    serve(listener, server.router());
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-authorization-server/tenant/auth",
        "/.well-known/openid-configuration/tenant/auth",
        "/tenant/auth/.well-known/openid-configuration",
        "/tenant/auth/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = http
            .get(format!("{origin}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], issuer, "{path}");
        assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
        assert!(
            doc.get("registration_endpoint").is_none(),
            "registration is off"
        );
    }
    let jwks = http
        .get(format!("{issuer}/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    let register = http
        .post(format!("{issuer}/register"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        register.status(),
        StatusCode::NOT_FOUND,
        "no registration endpoint when off"
    );
}

fn without_param(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(kept);
    parsed.to_string()
}

#[tokio::test]
async fn with_several_resources_the_request_must_name_one() {
    let env = env_custom(true, |b| b.resource("https://other.example.com/mcp")).await;
    let client_id = register(&env, "Two resources").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let unnamed = without_param(&authorize_url(&env, &client_id, &pkce, &[]), "resource");
    let page = browser.get(&unnamed).await.unwrap();
    // A registered client's request error is a page (no open redirector).
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(!page.headers.contains_key("location"));
    let other = authorize_url(&env, &client_id, &pkce, &[]).replace(
        &url::form_urlencoded::byte_serialize(env.resource.as_bytes()).collect::<String>(),
        "https%3A%2F%2Fother.example.com%2Fmcp",
    );
    let page = browser.get(&other).await.unwrap();
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the other configured resource is fine"
    );
}

#[tokio::test]
async fn registration_refuses_what_the_server_does_not_offer() {
    let env = env().await;
    for (metadata, error) in [
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb", "https://ok.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!("not an object"), "invalid_client_metadata"),
    ] {
        let response = env
            .http
            .post(format!("{}/register", env.issuer))
            .json(&metadata)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{metadata}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{metadata}");
    }
    // A confidential registration gets a secret once, stored hashed.
    let answer: Value = env
        .http
        .post(format!("{}/register", env.issuer))
        .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = answer["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43);
    assert!(!format!("{:?}", env.server).contains(secret));
}

#[tokio::test]
async fn client_metadata_documents_are_cached_by_their_headers_and_failures_briefly() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (listener, origin) = listen().await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let good = format!("{origin}/good.json");
    let document = json!({"client_id": good, "client_name": "Cached", "redirect_uris": [REDIRECT]});
    let (f, g) = (fetches.clone(), failures.clone());
    serve(
        listener,
        Router::new()
            .route(
                "/good.json",
                get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let document = document.clone();
                    async move { ([("cache-control", "max-age=3600")], axum::Json(document)) }
                }),
            )
            .route(
                "/bad.json",
                get(move || {
                    g.fetch_add(1, Ordering::SeqCst);
                    async { StatusCode::INTERNAL_SERVER_ERROR }
                }),
            ),
    );
    let env = env().await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    for _ in 0..3 {
        let page = browser
            .get(&authorize_url(&env, &good, &pkce, &[]))
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::OK);
        let page = browser
            .get(&authorize_url(
                &env,
                &format!("{origin}/bad.json"),
                &pkce,
                &[],
            ))
            .await
            .unwrap();
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached for its max-age");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        1,
        "a failure is cached briefly too"
    );
}

#[tokio::test]
async fn a_grant_ends_at_its_absolute_lifetime() {
    let clock = mcp_auth_core::ManualClock::starting_now();
    let env = own_server(|b| {
        b.grant_ttl(std::time::Duration::from_secs(3600))
            .clock(clock.clone())
    })
    .await;
    let client_id = register(&env, "Lifetime").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "max").await);
    let (_, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    let mut token = tokens["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_secs(1000));
        let (status, answer) = refresh(&env, &client_id, &token).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        token = answer["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.advance(std::time::Duration::from_secs(601));
    let (status, answer) = refresh(&env, &client_id, &token).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "rotation does not extend the grant"
    );
    assert_eq!(answer["error"], "invalid_grant");
}

/// "Last used" (shown to the minute on the connected-apps page) is stored
/// by a refresh at most once a minute, apart from the answer.
#[tokio::test]
async fn a_refresh_marks_the_grant_used_at_most_once_a_minute() {
    let clock = mcp_auth_core::ManualClock::starting_now();
    let env = own_server(|b| b.clock(clock.clone())).await;
    let client_id = register(&env, "Last used").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "lu").await);
    let (_, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
    let mut token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let lu = mcp_auth_core::UserId::new("lu").unwrap();
    let last_used = || async { env.server.grants(&lu).await.unwrap()[0].last_used };
    let signed_in = last_used().await;
    let mut refresh_after = async |seconds: u64| {
        clock.advance(std::time::Duration::from_secs(seconds));
        let (status, answer) = refresh(&env, &client_id, &token).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        token = answer["refresh_token"].as_str().unwrap().to_owned();
        // The touch is spawned after the answer: give it its turn.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    refresh_after(30).await;
    assert_eq!(
        last_used().await,
        signed_in,
        "within the minute: not stored"
    );
    refresh_after(31).await;
    assert_eq!(last_used().await, signed_in + 61, "a minute on: stored");
    refresh_after(59).await;
    assert_eq!(last_used().await, signed_in + 61);
}

#[tokio::test]
async fn the_browser_sign_in_ends_on_the_servers_clock() {
    // The login session follows the clock the server was given, not the
    // system's: a day later on that clock the person signs in again.
    let clock = mcp_auth_core::ManualClock::starting_now();
    let env = own_server(|b| b.clock(clock.clone())).await;
    let client_id = register(&env, "Clock").await;
    let mut browser = Browser::new();
    sign_in(&env, &mut browser, &client_id, &new_pkce(), "kim").await;
    // Still signed in (and consent remembered): straight back with a code.
    let again = browser
        .get(&authorize_url(&env, &client_id, &new_pkce(), &[]))
        .await
        .unwrap();
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    clock.advance(std::time::Duration::from_secs(25 * 3600));
    let later = browser
        .get(&authorize_url(&env, &client_id, &new_pkce(), &[]))
        .await
        .unwrap();
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert!(
        later.body.contains("name=\"user\""),
        "the login form again: {}",
        later.body
    );
}

#[tokio::test]
async fn the_protected_endpoint_checks_tokens_in_process_and_sees_a_rotation_at_once() {
    let (listener, issuer) = listen().await;
    let resource = format!("{issuer}/mcp");
    let server = AuthServer::builder(&issuer, &resource)
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dynamic_registration(true)
        .build()
        .unwrap();
    // Issuer and resource written once, in the builder above.
    let config = server
        .resource_config()
        .require_scopes(["mcp:tools"])
        .build()
        .unwrap();
    assert_eq!(config.resource(), resource);
    assert_eq!(
        config.authorization_servers(),
        std::slice::from_ref(&issuer)
    );
    let echo = any(|| async { axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": {}})) });
    let protected = server.protect(config).unwrap().into_router(echo).unwrap();
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let counter = jwks_fetches.clone();
    let app = server
        .router()
        .merge(protected)
        .layer(tower::util::MapRequestLayer::new(
            move |request: axum::extract::Request| {
                if request.uri().path().ends_with("/jwks.json") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                request
            },
        ));
    serve(listener, app);
    let env = Env::new(server.clone(), issuer, resource);
    let client_id = register(&env, "In process").await;
    let before = fresh_token(&env, &client_id, "ana").await;
    assert_eq!(call_resource(&env, &before).await, StatusCode::OK);
    server.rotate_keys().unwrap();
    let after = fresh_token(&env, &client_id, "ana").await;
    assert_ne!(kid(&before), kid(&after), "signed with the next key");
    assert_eq!(call_resource(&env, &after).await, StatusCode::OK);
    assert_eq!(call_resource(&env, &before).await, StatusCode::OK);
    assert_eq!(
        jwks_fetches.load(Ordering::SeqCst),
        0,
        "the server never asked itself for its keys"
    );
}

fn kid(jwt: &str) -> String {
    let header = data_encoding::BASE64URL_NOPAD
        .decode(jwt.split('.').next().unwrap().as_bytes())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_hsts_only_on_an_https_issuer() {
    use tower::ServiceExt;
    let https = AuthServer::builder("https://mcp.example.com", "https://mcp.example.com/mcp")
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dangerous_allow_dev_login_on_public_issuer()
        .dynamic_registration(true)
        .build()
        .unwrap()
        .router();
    let requests = || {
        [
            ("GET", "/.well-known/oauth-authorization-server", ""),
            ("GET", "/jwks.json", ""),
            ("GET", "/authorize?client_id=nobody", ""),
            ("POST", "/token", "grant_type=refresh_token"),
            ("POST", "/register", "{}"),
            ("GET", "/apps", ""),
        ]
    };
    for (method, path, body) in requests() {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = https.clone().oneshot(request).await.unwrap();
        let headers = response.headers();
        let hsts = headers
            .get("strict-transport-security")
            .unwrap_or_else(|| panic!("no HSTS on {path}"))
            .to_str()
            .unwrap();
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age >= 365 * 24 * 3600, "{path}: {hsts}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
    }
    // The max-age is configurable.
    let year = AuthServer::builder("https://mcp.example.com", "https://mcp.example.com/mcp")
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dangerous_allow_dev_login_on_public_issuer()
        .hsts_max_age(std::time::Duration::from_secs(365 * 24 * 3600))
        .build()
        .unwrap()
        .router();
    let request = http::Request::builder()
        .uri("/jwks.json")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = year.oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    // A loopback http issuer (development) never sends HSTS.
    let env = env().await;
    for (method, path, body) in requests() {
        let response = env
            .http
            .request(method.parse().unwrap(), format!("{}{path}", env.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            !response.headers().contains_key("strict-transport-security"),
            "{path}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn past_the_per_user_cap_a_sign_in_revokes_the_persons_oldest_grant() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = mcp_auth_core::ManualClock::at_unix(now);
    let server_clock = clock.clone();
    let env = env_custom(true, move |b| b.max_grants_per_user(2).clock(server_clock)).await;
    let client_id = register(&env, "Capped").await;
    let mut refresh_tokens = Vec::new();
    for _ in 0..3 {
        // One second apart, so "oldest" is well defined.
        clock.advance(std::time::Duration::from_secs(1));
        let pkce = new_pkce();
        let mut browser = Browser::new();
        let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "uma").await);
        let (status, tokens) = exchange(&env, &client_id, &q["code"], &pkce.verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    let uma = mcp_auth_core::UserId::new("uma").unwrap();
    assert_eq!(env.server.grants(&uma).await.unwrap().len(), 2);
    let statuses = futures_statuses(&env, &client_id, &refresh_tokens).await;
    assert_eq!(
        statuses,
        [StatusCode::BAD_REQUEST, StatusCode::OK, StatusCode::OK],
        "the oldest grant went; the newer two work"
    );
    // Another person is not affected by uma's cap.
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let q = query(&sign_in(&env, &mut browser, &client_id, &pkce, "vic").await);
    assert_eq!(
        exchange(&env, &client_id, &q["code"], &pkce.verifier)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(env.server.grants(&uma).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_state_longer_than_the_cap_is_refused_and_never_stored() {
    let env = env().await;
    let client_id = register(&env, "Long state").await;
    let pkce = new_pkce();
    let mut browser = Browser::new();
    let with_state = |state: &str| {
        authorize_url(&env, &client_id, &pkce, &[])
            .replace("state=state-123", &format!("state={state}"))
    };
    let long = "x".repeat(mcp_auth_oauth_server::MAX_STATE_LEN + 1);
    let page = browser.get(&with_state(&long)).await.unwrap();
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("1,024 bytes"), "{}", page.body);
    assert!(page.location().is_empty() || !page.body.contains(&long));
    let fits = "x".repeat(mcp_auth_oauth_server::MAX_STATE_LEN);
    let page = browser.get(&with_state(&fits)).await.unwrap();
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

/// Merged into an MCP server's own router (the usual way to serve both on
/// one origin), the authorization server's routes keep their security
/// headers, and the MCP routes are not given the pages' CSP.
#[tokio::test]
async fn merged_into_another_router_the_pages_keep_their_security_headers() {
    use tower::ServiceExt;
    let server = AuthServer::builder("https://mcp.example.com", "https://mcp.example.com/mcp")
        .scopes(["mcp:tools"])
        .login(DangerousDevLogin)
        .dangerous_allow_dev_login_on_public_issuer()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/mcp", any(|| async { "mcp" }))
        .merge(server.router());
    let get = |path: &str| {
        http::Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let page = app
        .clone()
        .oneshot(get("/authorize?client_id=nobody"))
        .await
        .unwrap();
    let headers = page.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );
    assert!(headers.contains_key("strict-transport-security"));
    let mcp = app.oneshot(get("/mcp")).await.unwrap();
    assert!(!mcp.headers().contains_key("content-security-policy"));
}

/// `prompt=login`, `max_age`, the login session's lifetime, and sign-out:
/// each makes the next authorization ask who the person is again, while
/// without them a signed-in browser with remembered consent goes straight
/// back to the client.
#[tokio::test]
async fn prompt_login_max_age_the_login_lifetime_and_sign_out_each_ask_again() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = mcp_auth_core::ManualClock::at_unix(now);
    let server_clock = clock.clone();
    let env = env_custom(true, move |b| {
        b.clock(server_clock)
            .login_session_ttl(std::time::Duration::from_secs(600))
    })
    .await;
    let client_id = register(&env, "Again").await;
    let mut browser = Browser::new();
    sign_in(&env, &mut browser, &client_id, &new_pkce(), "xena").await;
    let url = |extra: &[(&str, &str)]| authorize_url(&env, &client_id, &new_pkce(), extra);
    let straight_back = |page: &mcp_auth_testkit::browser::Page| {
        page.status == StatusCode::SEE_OTHER && page.location().contains("code=")
    };
    let asks_who = |page: &mcp_auth_testkit::browser::Page| {
        page.status == StatusCode::OK && page.body.contains("name=\"user\"")
    };
    // Signed in, consent remembered: straight back with a code.
    assert!(straight_back(&browser.get(&url(&[])).await.unwrap()));
    // prompt=login: the login form, though the browser is signed in.
    let page = browser.get(&url(&[("prompt", "login")])).await.unwrap();
    assert!(asks_who(&page), "{} {}", page.status, page.body);
    // max_age: 120 s after the sign-in, 60 s is too old, an hour is not.
    clock.advance(std::time::Duration::from_secs(120));
    assert!(asks_who(
        &browser.get(&url(&[("max_age", "60")])).await.unwrap()
    ));
    assert!(straight_back(
        &browser.get(&url(&[("max_age", "3600")])).await.unwrap()
    ));
    let page = browser.get(&url(&[("max_age", "soon")])).await.unwrap();
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    // The login session ends 600 s after the sign-in, used or not.
    clock.advance(std::time::Duration::from_secs(481));
    assert!(asks_who(&browser.get(&url(&[])).await.unwrap()));

    // Sign-out from the connected-apps page.
    let mut browser = Browser::new();
    sign_in(&env, &mut browser, &client_id, &new_pkce(), "xena").await;
    let apps = browser.get(&format!("{}/apps", env.issuer)).await.unwrap();
    assert_eq!(apps.status, StatusCode::OK, "{}", apps.body);
    assert!(apps.body.contains("Sign out"), "{}", apps.body);
    let csrf = field(&apps, "csrf");
    let forged = browser
        .post(&format!("{}/logout", env.issuer), &[("csrf", "forged")])
        .await
        .unwrap();
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let out = browser
        .post(&format!("{}/logout", env.issuer), &[("csrf", &csrf)])
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("Signed out"), "{}", out.body);
    assert!(
        out.headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("Max-Age=0")),
        "the login cookie is cleared"
    );
    let apps = browser.get(&format!("{}/apps", env.issuer)).await.unwrap();
    assert_eq!(apps.status, StatusCode::UNAUTHORIZED);
    assert!(asks_who(&browser.get(&url(&[])).await.unwrap()));
}

/// A session of the shared store that is not a browser login (an MCP
/// session of the same person) is not taken as one, even when planted in
/// the login cookie.
#[tokio::test]
async fn only_a_browser_login_signs_the_browser_in() {
    use mcp_auth_session::{MemorySessionStore, NewSession, SessionConfig, SessionManager};
    let store = Arc::new(MemorySessionStore::new());
    let shared = store.clone();
    let env = env_custom(true, move |b| b.login_sessions(shared)).await;
    let client_id = register(&env, "Planted").await;
    let mcp: SessionManager =
        SessionManager::with_shared_store(store, SessionConfig::default()).unwrap();
    let created = mcp
        .create(NewSession::new(
            mcp_auth_core::UserId::new("yara").unwrap(),
            "mcp-client",
        ))
        .await
        .unwrap();
    let mut browser = Browser::new();
    browser.set_cookie("__Host-mcp-auth-login", created.id.expose());
    let page = browser
        .get(&authorize_url(&env, &client_id, &new_pkce(), &[]))
        .await
        .unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("name=\"user\""),
        "asks who: {}",
        page.body
    );
    let apps = browser.get(&format!("{}/apps", env.issuer)).await.unwrap();
    assert_eq!(apps.status, StatusCode::UNAUTHORIZED);
}

/// An editor that registers only its own scheme signs in under the
/// default private-use policy, and is shown as an application on this
/// device; an operator who lists URIs only refuses it.
#[tokio::test]
async fn an_editor_registering_only_its_own_scheme_signs_in_by_default() {
    const CURSOR: &str = "cursor://anysphere.cursor-mcp/oauth/callback";
    let env = env().await;
    let registered: Value = env
        .http
        .post(format!("{}/register", env.issuer))
        .json(&json!({"client_name": "Cursor", "redirect_uris": [CURSOR], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registered["redirect_uris"], json!([CURSOR]), "{registered}");
    let client_id = registered["client_id"].as_str().unwrap();
    let pkce = new_pkce();
    let url = authorize_url(&env, client_id, &pkce, &[]).replace(
        "http%3A%2F%2Flocalhost%3A53123%2Fcallback",
        &url::form_urlencoded::byte_serialize(CURSOR.as_bytes()).collect::<String>(),
    );
    let mut browser = Browser::new();
    let login = browser.get(&url).await.unwrap();
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let consent = browser
        .post(
            &format!("{}/login", env.issuer),
            &[
                ("pending", &field(&login, "pending")),
                ("csrf", &field(&login, "csrf")),
                ("user", "zoe"),
            ],
        )
        .await
        .unwrap();
    assert!(
        consent
            .body
            .contains("cursor://anysphere.cursor-mcp (an application on this device)"),
        "{}",
        consent.body
    );
    let csp = consent.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action 'self' cursor:"), "{csp}");
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
    assert!(
        done.location().starts_with(&format!("{CURSOR}?code=")),
        "{}",
        done.location()
    );

    // Tightened: only listed URIs.
    let strict = env_custom(true, |b| {
        b.private_use_policy(mcp_auth_oauth_server::PrivateUsePolicy::ListedOnly)
    })
    .await;
    let refused = strict
        .http
        .post(format!("{}/register", strict.issuer))
        .json(&json!({"client_name": "Cursor", "redirect_uris": [CURSOR], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}
