//! The HTTP seam: a fake `HttpClient` stands in for the provider's token
//! endpoint, sees the request the client sends, and answers it. No network.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use mcp_auth_core::UserId;
use mcp_auth_http::{HttpClient, HttpError, HttpRequest, HttpResponse};
use mcp_auth_pkce::{OAuthClient, Provider, RedirectUri};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Default)]
struct FakeTokenEndpoint {
    seen: Mutex<Vec<(String, String)>>,
}

impl HttpClient for FakeTokenEndpoint {
    fn send(
        &self,
        request: HttpRequest,
    ) -> mcp_auth_core::BoxFuture<'_, Result<HttpResponse, HttpError>> {
        self.seen.lock().unwrap().push((
            request.uri().to_string(),
            String::from_utf8(request.body().clone()).unwrap(),
        ));
        let answer = serde_json::json!({"access_token": "at-1", "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": "rt-1"});
        Box::pin(async move {
            let mut response = http::Response::new(answer.to_string().into_bytes());
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            Ok(response)
        })
    }
}

#[tokio::test]
async fn the_code_exchange_goes_through_the_given_http_client() {
    let fake = Arc::new(FakeTokenEndpoint::default());
    let provider = Provider::new(
        "fake",
        "https://idp.example.com/authorize",
        "https://idp.example.com/token",
    );
    let client = OAuthClient::builder(
        provider,
        "client-1",
        RedirectUri::new("http://127.0.0.1:9/callback").unwrap(),
    )
    .client_secret(SecretString::from("s3cret"))
    .http(fake.clone())
    .build()
    .unwrap();
    let alice = UserId::new("alice").unwrap();
    let start = client.start(&alice, &["read"], &[]).await.unwrap();
    let url = url::Url::parse(&start.url).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let tokens = client
        .callback(&alice, &format!("code=the-code&state={state}"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "at-1");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (endpoint, body) = &seen[0];
    assert_eq!(endpoint, "https://idp.example.com/token");
    assert!(body.contains("grant_type=authorization_code"), "{body}");
    assert!(body.contains("code=the-code"), "{body}");
    assert!(body.contains("code_verifier="), "{body}");
}
