//! The plain OAuth 2.0 (Spotify-style, no ID token) path against the
//! in-process Spotify double in `common/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_pkce::{OAuthClient, OAuthError, Provider, RedirectUri, TokenKind, redirect};
use secrecy::ExposeSecret;

#[tokio::test]
async fn full_sign_in_with_pkce_then_refresh_keeps_the_old_refresh_token() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let request = client
        .start(&alice(), &[], &[("show_dialog", "true")])
        .await
        .unwrap();
    assert!(
        request.url.contains("code_challenge_method=S256"),
        "{}",
        request.url
    );
    assert!(request.url.contains("show_dialog=true"));
    assert!(
        !request.url.contains("nonce="),
        "no nonce for a plain OAuth provider"
    );
    let query = approve(&request.url).await;
    let tokens = client.callback(&alice(), &query).await.unwrap();
    assert!(tokens.access_token.expose_secret().starts_with("access-"));
    assert_eq!(tokens.expires_at, Some(1_800_000_000 + 3600));
    assert_eq!(tokens.scopes, ["user-read-email"]);
    assert!(tokens.id_token_claims.is_none());
    // The verifier the double saw hashes to the challenge it was given (it
    // refused otherwise) and is a fresh 43-character value.
    assert_eq!(d.accounts.seen_verifiers.lock().unwrap()[0].len(), 43);

    let refreshed = client.refresh(&alice(), &tokens).await.unwrap();
    assert_ne!(
        refreshed.access_token.expose_secret(),
        tokens.access_token.expose_secret()
    );
    assert_eq!(
        refreshed.refresh_token.as_ref().unwrap().expose_secret(),
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "not rotated: the old refresh token is kept"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one_which_then_fails() {
    let d = double().await;
    d.accounts.rotate.store(true, Ordering::SeqCst);
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let tokens = signed_in(&client).await;
    let refreshed = client.refresh(&alice(), &tokens).await.unwrap();
    assert_ne!(
        refreshed.refresh_token.as_ref().unwrap().expose_secret(),
        tokens.refresh_token.as_ref().unwrap().expose_secret()
    );
    let again = client.refresh(&alice(), &tokens).await.unwrap_err();
    assert_eq!(again, OAuthError::ReauthenticationRequired);
    assert!(again.requires_sign_in());
    assert!(client.refresh(&alice(), &refreshed).await.is_ok());
}

#[tokio::test]
async fn refresh_ahead_of_expiry_only_when_due() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let tokens = signed_in(&client).await;
    let margin = Duration::from_secs(300);
    assert!(
        client
            .refresh_if_expiring(&alice(), &tokens, margin)
            .await
            .unwrap()
            .is_none()
    );
    clock.advance(Duration::from_secs(3600 - 299));
    assert!(
        client
            .refresh_if_expiring(&alice(), &tokens, margin)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn concurrent_refreshes_for_one_user_share_one_request() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = Arc::new(d.client(d.provider(), &clock));
    let tokens = signed_in(&client).await;
    d.accounts.delay_ms.store(200, Ordering::SeqCst);
    let before = d.accounts.token_calls.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, tokens) = (client.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            client.refresh(&alice(), &tokens).await
        }));
    }
    let mut access = HashSet::new();
    for t in tasks {
        access.insert(
            t.await
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret()
                .to_owned(),
        );
    }
    assert_eq!(
        d.accounts.token_calls.load(Ordering::SeqCst) - before,
        1,
        "one request for eight callers"
    );
    assert_eq!(access.len(), 1, "all callers got the same result");
    // Another user is not held up by, or merged with, alice's flight.
    let after = client.refresh(&alice(), &tokens).await.unwrap();
    assert!(!access.contains(after.access_token.expose_secret()));
}

#[tokio::test]
async fn state_is_checked_before_anything_else() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);

    // Missing.
    assert_eq!(
        client.callback(&alice(), "code=x").await.unwrap_err(),
        OAuthError::MissingState
    );
    // Unknown.
    assert_eq!(
        client
            .callback(&alice(), "code=x&state=never-issued")
            .await
            .unwrap_err(),
        OAuthError::UnknownState
    );
    // Replayed.
    let query = approve(&client.start(&alice(), &[], &[]).await.unwrap().url).await;
    assert!(client.callback(&alice(), &query).await.is_ok());
    assert_eq!(
        client.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    // Expired (10 minutes).
    let query = approve(&client.start(&alice(), &[], &[]).await.unwrap().url).await;
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        client.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::ExpiredState
    );
    // Another user's flow: refused, and that state is spent.
    let query = approve(&client.start(&alice(), &[], &[]).await.unwrap().url).await;
    let mallory = UserId::new("mallory@example.com").unwrap();
    assert_eq!(
        client.callback(&mallory, &query).await.unwrap_err(),
        OAuthError::StateUserMismatch
    );
    assert_eq!(
        client.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    // None of the refused callbacks reached the token endpoint with a code.
    assert_eq!(d.accounts.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn provider_errors_are_typed() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    let state = query.split("state=").nth(1).unwrap();
    let denied = format!("error=access_denied&error_description=The+user+said+no&state={state}");
    assert_eq!(
        client.callback(&alice(), &denied).await.unwrap_err(),
        OAuthError::AuthorizationDenied {
            error: "access_denied".into(),
            description: Some("The user said no".into())
        }
    );
    // A code the provider does not know: invalid_grant at the token endpoint.
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    let state = query.split("state=").nth(1).unwrap();
    let forged = format!("code=not-a-code&state={state}");
    assert_eq!(
        client.callback(&alice(), &forged).await.unwrap_err(),
        OAuthError::ReauthenticationRequired
    );
}

#[tokio::test]
async fn issuer_in_the_callback_must_match_exactly() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let issuer = "https://accounts.example.com";
    let client = d.client(
        d.provider().with_issuer(issuer).with_iss_parameter(true),
        &clock,
    );
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for (iss, expected) in [
        (
            Some("https://accounts.example.com/"),
            Some(OAuthError::IssuerMismatch),
        ),
        (
            Some("https://ACCOUNTS.example.com"),
            Some(OAuthError::IssuerMismatch),
        ),
        (
            Some("https://evil.example.com"),
            Some(OAuthError::IssuerMismatch),
        ),
        (None, Some(OAuthError::MissingIssuer)),
        (Some(issuer), None),
    ] {
        let query = approve(&client.start(&alice(), &[], &[]).await.unwrap().url).await;
        let query = match iss {
            Some(iss) => format!("{query}&iss={}", enc(iss)),
            None => query,
        };
        let result = client.callback(&alice(), &query).await;
        match expected {
            Some(error) => assert_eq!(result.unwrap_err(), error, "{iss:?}"),
            None => assert!(result.is_ok(), "{iss:?}: {result:?}"),
        }
    }
    // A provider without an issuer: an `iss` in the callback is refused too
    // (RFC 9207 section 2.4: the client cannot check it).
    let plain = d.client(d.provider(), &clock);
    let query = approve(&plain.start(&alice(), &[], &[]).await.unwrap().url).await;
    assert_eq!(
        plain
            .callback(&alice(), &format!("{query}&iss={}", enc(issuer)))
            .await
            .unwrap_err(),
        OAuthError::IssuerMismatch
    );
}

#[tokio::test]
async fn a_dead_provider_is_a_network_error_not_a_sign_in_error() {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let tokens = signed_in(&client).await;
    let dead = Provider::new(
        "dead",
        "http://127.0.0.1:9/authorize",
        "http://127.0.0.1:9/token",
    );
    let dead_client = d.client(dead, &clock);
    let err = dead_client.refresh(&alice(), &tokens).await.unwrap_err();
    assert!(matches!(err, OAuthError::Network(_)), "{err:?}");
    assert!(!err.requires_sign_in());
    // Spotify has no revocation endpoint: a typed refusal, no request.
    assert_eq!(
        client.revoke(&tokens, TokenKind::Access).await.unwrap_err(),
        OAuthError::RevocationUnsupported
    );
}

#[test]
fn redirect_uris_are_https_or_loopback_ips() {
    assert!(RedirectUri::new("https://mcp.example.com/cb").is_ok());
    assert!(RedirectUri::new("http://127.0.0.1:8080/cb").is_ok());
    assert!(RedirectUri::new("http://[::1]:8080/cb").is_ok());
    for bad in [
        "http://example.com/cb",
        "http://localhost:8080/cb",
        "ftp://x/cb",
        "/cb",
        "https://x/cb#f",
    ] {
        assert!(
            matches!(RedirectUri::new(bad), Err(OAuthError::Config(_))),
            "{bad}"
        );
    }
    assert!(redirect::dangerous::insecure_redirect_uri("http://devbox.lan/cb").is_ok());
    assert!(redirect::dangerous::insecure_redirect_uri("ftp://devbox.lan/cb").is_err());
}

#[test]
fn endpoints_must_be_https_or_loopback() {
    let bad = Provider::new(
        "x",
        "http://accounts.example.com/auth",
        "https://accounts.example.com/token",
    );
    let err = OAuthClient::builder(
        bad,
        "id",
        RedirectUri::new("https://mcp.example.com/cb").unwrap(),
    )
    .build()
    .unwrap_err();
    assert!(
        matches!(err, OAuthError::Config(ref p) if p.0.len() == 1 && p.0[0].setting() == "authorization endpoint"),
        "{err}"
    );
    assert!(
        OAuthClient::builder(
            Provider::google(),
            "id",
            RedirectUri::new("https://m.example.com/cb").unwrap()
        )
        .build()
        .is_ok()
    );
    assert!(
        OAuthClient::builder(
            Provider::spotify(),
            "id",
            RedirectUri::new("https://m.example.com/cb").unwrap()
        )
        .build()
        .is_ok()
    );
}

#[tokio::test]
async fn id_tokens_are_validated_signature_issuer_audience_expiry_and_nonce() {
    let d = double().await;
    // ID tokens are minted with the real time; the client's clock agrees.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = ManualClock::at_unix(now);
    let client = d.client(d.oidc_provider(), &clock);
    let cases = [
        (IdTokenMode::Good, None),
        (IdTokenMode::WrongNonce, Some(OAuthError::IdToken("nonce"))),
        (
            IdTokenMode::WrongAudience,
            Some(OAuthError::IdToken("audience")),
        ),
        (
            IdTokenMode::WrongIssuer,
            Some(OAuthError::IdToken("issuer")),
        ),
        (IdTokenMode::Expired, Some(OAuthError::IdToken("expired"))),
        (
            IdTokenMode::ForeignKey,
            Some(OAuthError::IdToken("signature")),
        ),
        (IdTokenMode::Missing, Some(OAuthError::MissingIdToken)),
    ];
    for (mode, expected) in cases {
        *d.accounts.id_tokens.lock().unwrap() = Some(mode);
        let request = client.start(&alice(), &[], &[]).await.unwrap();
        assert!(request.url.contains("nonce="), "OIDC sends a nonce");
        let query = approve(&request.url).await;
        let result = client.callback(&alice(), &query).await;
        match expected {
            None => {
                let tokens = result.unwrap();
                assert_eq!(tokens.subject(), Some("upstream-alice"));
            }
            Some(error) => assert_eq!(result.unwrap_err(), error, "{mode:?}"),
        }
    }
}

#[tokio::test]
async fn the_pending_store_is_bounded() {
    use mcp_auth_pkce::MemoryPendingStore;
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = OAuthClient::builder(
        d.provider(),
        CLIENT_ID,
        RedirectUri::new("http://127.0.0.1:9/callback").unwrap(),
    )
    .pending_store(Arc::new(MemoryPendingStore::with_capacity(2)))
    .clock(Arc::new(clock.clone()))
    .build()
    .unwrap();
    client.start(&alice(), &[], &[]).await.unwrap();
    client.start(&alice(), &[], &[]).await.unwrap();
    assert_eq!(
        client.start(&alice(), &[], &[]).await.unwrap_err(),
        OAuthError::TooManyPending
    );
    // Expired entries make room.
    clock.advance(Duration::from_secs(600));
    assert!(client.start(&alice(), &[], &[]).await.is_ok());
}

#[tokio::test]
async fn a_sign_in_for_a_user_not_yet_known_hands_its_binding_back_and_does_not_mix_with_user_flows()
 {
    let d = double().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let client = d.client(d.provider(), &clock);
    let request = client
        .start_sign_in("our-pending-request", &["user-read-email"], &[])
        .await
        .unwrap();
    let query = approve(&request.url).await;
    let (binding, tokens) = client.finish_sign_in(&query).await.unwrap();
    assert_eq!(binding, "our-pending-request");
    assert!(tokens.access_token.expose_secret().starts_with("access-"));
    // Single use.
    assert_eq!(
        client.finish_sign_in(&query).await.unwrap_err(),
        OAuthError::UnknownState
    );
    // A sign-in started for a user cannot be finished as an unbound one,
    // and the other way round.
    let request = client.start(&alice(), &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    assert_eq!(
        client.finish_sign_in(&query).await.unwrap_err(),
        OAuthError::StateUserMismatch
    );
    let request = client.start_sign_in("x", &[], &[]).await.unwrap();
    let query = approve(&request.url).await;
    assert_eq!(
        client.callback(&alice(), &query).await.unwrap_err(),
        OAuthError::StateUserMismatch
    );
}
