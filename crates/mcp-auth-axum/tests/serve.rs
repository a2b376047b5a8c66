//! `mcp_auth_axum::serve`: stalled connections are closed, the connection
//! cap holds, handlers see the peer address, shutdown is graceful. Raw TCP
//! clients, so that a stall is really a stall.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use std::future::IntoFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

fn app() -> Router {
    Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route("/endless", get(|| async { axum::body::Body::new(Endless) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
}

/// A response body that never ends: only a client that reads it keeps it
/// moving.
struct Endless;

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        static CHUNK: [u8; 65536] = [b'x'; 65536];
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
            bytes::Bytes::from_static(&CHUNK),
        ))))
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Serves `app()` on a free loopback port with what `configure` sets.
async fn start(configure: impl FnOnce(mcp_auth_axum::Serve) -> mcp_auth_axum::Serve) -> SocketAddr {
    let (listener, addr) = listen().await;
    tokio::spawn(configure(mcp_auth_axum::serve(listener, app())).into_future());
    addr
}

/// Reads until the server closes the connection; how long that took.
async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match timeout(limit, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let addr = start(|server| server.header_read_timeout(Duration::from_millis(300))).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = time_to_close(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a connection that sends nothing stays open"
    );
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    let addr = start(|server| server.header_read_timeout(Duration::from_millis(300))).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nx-a: ")
        .await
        .unwrap();
    let closed = time_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "half a request head holds the connection");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let addr = start(|server| server.header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Kept alive, then idle: closed once the next head does not come.
    let closed = time_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "an idle keep-alive connection stays open");
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_off() {
    let addr = start(|server| server.idle_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let closed = time_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a body that stops arriving holds the connection"
    );
    // A body that arrives is served.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
}

#[tokio::test]
async fn a_client_that_stops_reading_its_response_is_cut_off() {
    let addr = start(|server| server.idle_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Read nothing while the socket buffers fill and the timeout runs out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Then what was buffered drains, and the stream ends instead of going on.
    let closed = time_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "an unread response holds the connection forever"
    );
}

#[tokio::test]
async fn a_slow_handler_is_not_an_idle_connection() {
    let addr = start(|server| {
        server
            .header_read_timeout(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(100))
    })
    .await;
    // The handler takes 300 ms, longer than both timeouts: still answered.
    let response = get_text(addr, "/slow").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let addr = start(|server| {
        server
            .max_connections(2)
            .header_read_timeout(Duration::from_secs(30))
    })
    .await;
    let first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    // Give the server time to accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = tokio::spawn(async move { get_text(addr, "/peer").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap of 2"
    );
    drop(first);
    let response = timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(second);
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let addr = start(|server| server).await;
    let response = get_text(addr, "/peer").await;
    assert!(response.contains("127.0.0.1:"), "{response}");
}

#[tokio::test]
async fn graceful_shutdown_lets_a_request_in_progress_finish() {
    let (listener, addr) = listen().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        mcp_auth_axum::serve(listener, app())
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    let in_progress = tokio::spawn(async move { get_text(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    let response = in_progress.await.unwrap();
    assert!(response.ends_with("done"), "{response}");
    timeout(Duration::from_secs(5), server)
        .await
        .expect("the server returns after shutdown")
        .unwrap()
        .unwrap();
    // Nothing is accepted any more.
    assert!(TcpStream::connect(addr).await.is_err());
}
