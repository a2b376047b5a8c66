//! The development issuer's metadata describes only what it serves (RFC
//! 8414 section 2), and its mint answers malformed requests as OAuth does.
#![allow(clippy::unwrap_used)]

use mcp_auth_testkit::{DEV_MINT_GRANT, DevIssuer};
use serde_json::Value;

#[tokio::test]
async fn the_metadata_advertises_only_what_is_served() {
    let (issuer, _) = DevIssuer::serve_loopback("http://127.0.0.1:1/mcp")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = issuer.issuer();
    let metadata: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], base);
    // No authorization endpoint is served, so none is advertised, nor a
    // grant or response type that would need one.
    assert!(
        metadata.get("authorization_endpoint").is_none(),
        "{metadata}"
    );
    assert_eq!(metadata["response_types_supported"], serde_json::json!([]));
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!([DEV_MINT_GRANT])
    );
    assert!(metadata.get("code_challenge_methods_supported").is_none());
    // Not an OpenID provider: no OpenID configuration.
    let oidc = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(oidc.status(), 404);

    // Every endpoint the document names answers.
    let jwks = http
        .get(metadata["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let minted: Value = http
        .post(metadata["token_endpoint"].as_str().unwrap())
        .form(&[("grant_type", DEV_MINT_GRANT), ("sub", "alice")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(minted["access_token"].is_string(), "{minted}");
}

#[tokio::test]
async fn the_mint_answers_bad_requests_with_oauth_errors() {
    let (issuer, _) = DevIssuer::serve_loopback("http://127.0.0.1:1/mcp")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let token = format!("{}/token", issuer.issuer());
    for (form, error) in [
        (vec![("scope", "x")], "invalid_request"),
        (vec![("sub", "")], "invalid_request"),
        (
            vec![("grant_type", "authorization_code"), ("sub", "alice")],
            "unsupported_grant_type",
        ),
    ] {
        let response = http.post(&token).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 400, "{form:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}: {body}");
    }
}
