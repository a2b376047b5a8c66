//! `OutboundClient` against a loopback server: each rule, and errors that
//! say where without saying what.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use mcp_auth_http::{HttpClient, HttpError, OutboundClient, ResponseLimit, UrlPolicy, UrlRefusal};

async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [("location", "http://127.0.0.1:1/elsewhere")],
                    "",
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/status",
            get(|| async { (StatusCode::BAD_REQUEST, "{\"error\":\"x\"}") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn get_request(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn a_response_of_any_status_comes_back_with_its_body() {
    let addr = server().await;
    let client = OutboundClient::new().unwrap();
    let ok = client
        .send(get_request(&format!("http://{addr}/ok")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body(), b"hello");
    let bad = client
        .send(get_request(&format!("http://{addr}/status")))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let echoed = client
        .send(
            http::Request::post(format!("http://{addr}/echo"))
                .body(b"a=1&b=2".to_vec())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(echoed.body(), b"a=1&b=2");
}

#[tokio::test]
async fn redirects_are_returned_never_followed() {
    let addr = server().await;
    let client = OutboundClient::new().unwrap();
    let response = client
        .send(get_request(&format!("http://{addr}/redirect")))
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://127.0.0.1:1/elsewhere"
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let addr = server().await;
    let small = OutboundClient::builder()
        .max_response(1_000)
        .build()
        .unwrap();
    let error = small
        .send(get_request(&format!("http://{addr}/big")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HttpError::TooLarge { max: 1_000, .. }),
        "{error}"
    );
    // A request's own limit lowers the client's, never raises it.
    let client = OutboundClient::new().unwrap();
    let mut request = get_request(&format!("http://{addr}/big"));
    request.extensions_mut().insert(ResponseLimit(5_000));
    let error = client.send(request).await.unwrap_err();
    assert!(
        matches!(error, HttpError::TooLarge { max: 5_000, .. }),
        "{error}"
    );
    let mut request = get_request(&format!("http://{addr}/big"));
    request.extensions_mut().insert(ResponseLimit(usize::MAX));
    assert_eq!(client.send(request).await.unwrap().body().len(), 10_000);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let addr = server().await;
    let client = OutboundClient::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client
        .send(get_request(&format!("http://{addr}/slow")))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn plain_http_goes_only_to_loopback_and_other_schemes_nowhere() {
    let client = OutboundClient::new().unwrap();
    for (url, refusal) in [
        ("http://example.com/jwks.json", UrlRefusal::PlainHttp),
        ("ftp://example.com/x", UrlRefusal::NotHttps),
        ("file://localhost/etc/passwd", UrlRefusal::NotHttps),
        ("https://user:pass@example.com/x", UrlRefusal::Credentials),
    ] {
        let error = client.send(get_request(url)).await.unwrap_err();
        assert!(
            matches!(&error, HttpError::Refused { reason, .. } if *reason == refusal)
                && error.to_string().contains(refusal.reason()),
            "{url}: {error}"
        );
        assert!(!error.to_string().contains("pass"), "{error}");
    }
}

#[tokio::test]
async fn public_https_refuses_this_machine_and_private_networks() {
    let addr = server().await;
    let client = OutboundClient::builder()
        .policy(UrlPolicy::PublicHttps)
        .build()
        .unwrap();
    for url in [
        format!("https://127.0.0.1:{}/ok", addr.port()),
        "https://[::1]/x".to_owned(),
        "https://10.0.0.1/x".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::ffff:192.168.0.1]/x".to_owned(),
        // A name that resolves to loopback: refused by the resolver,
        // before any connection.
        format!("https://localhost:{}/ok", addr.port()),
    ] {
        let error = client.send(get_request(&url)).await.unwrap_err();
        assert!(
            matches!(error, HttpError::NotPublic { .. }),
            "{url}: {error}"
        );
    }
    let error = client
        .send(get_request(&format!("http://{addr}/ok")))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Refused { .. }), "{error}");
}

#[tokio::test]
async fn the_loopback_exception_is_explicit() {
    let addr = server().await;
    let client = OutboundClient::builder()
        .policy(UrlPolicy::PublicHttps)
        .dangerous_allow_loopback()
        .build()
        .unwrap();
    for url in [
        format!("http://{addr}/ok"),
        format!("http://localhost:{}/ok", addr.port()),
    ] {
        let response = client.send(get_request(&url)).await.unwrap();
        assert_eq!(response.body(), b"hello", "{url}");
    }
    let error = client
        .send(get_request("https://10.0.0.1/x"))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::NotPublic { .. }), "{error}");
}

#[tokio::test]
async fn errors_name_the_host_but_not_the_query() {
    let client = OutboundClient::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let error = client
        .send(get_request("http://127.0.0.1:1/token?code=s3cr3t-code"))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Connect { .. }), "{error}");
    let text = format!("{error} {error:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}
