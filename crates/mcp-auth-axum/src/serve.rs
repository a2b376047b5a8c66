//! Serving a router on the internet: HTTP/1.1 with timeouts and a
//! connection cap, so one machine cannot hold every file descriptor open.
//!
//! `axum::serve` has no timeouts at all: a connection that sends half its
//! headers, or nothing, stays open for as long as the peer likes. [`serve`]
//! closes it.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// Default time allowed for a request's head (request line and headers):
/// 10 s, counted from the connection's opening or from the end of the
/// previous response, so it also closes idle keep-alive connections.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a request body may stop arriving, or a response stop being
/// read by the client, before the connection is closed: 60 s. It must be
/// longer than the interval of the MCP server's SSE keep-alive (rmcp: 15 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default most connections open at once: 4,096. Past it, new connections
/// wait in the kernel's accept queue until one closes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Serves `router` on `listener` with timeouts and a connection cap; await
/// the returned [`Serve`] (after setting what it offers) to run the server.
///
/// Handlers see the peer address as `ConnectInfo<SocketAddr>` (what
/// [`crate::VerificationLimit::per_peer`] reads), with no
/// `into_make_service_with_connect_info` needed.
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8787").await?;
/// mcp_auth_axum::serve(listener, app)
///     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
pub fn serve(listener: TcpListener, router: Router) -> Serve {
    Serve {
        listener,
        router,
        header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        shutdown: None,
    }
}

/// A server being set up by [`serve`]; `.await` it to run.
#[must_use = "a Serve does nothing until it is awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown: Option<mcp_auth_core::BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Time allowed for a request's head ([`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Time a request body may stall, or a response go unread
    /// ([`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Most connections open at once ([`DEFAULT_MAX_CONNECTIONS`]; at least 1).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Stops accepting when `signal` completes, lets requests in progress
    /// finish, then returns.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    async fn run(self) -> io::Result<()> {
        let Self {
            listener,
            router,
            header_read_timeout,
            idle_timeout,
            max_connections,
            shutdown,
        } = self;
        let mut signal = shutdown.unwrap_or_else(|| Box::pin(std::future::pending()));
        let slots = Arc::new(Semaphore::new(max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut signal => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors or a connection reset while
                        // queued: not fatal; wait a moment (EMFILE would
                        // otherwise spin).
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let io = TokioIo::new(WriteStallTimeout::new(stream, idle_timeout));
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let mut request =
                        request.map(|body| Body::new(StallTimeoutBody::new(body, idle_timeout)));
                    request.extensions_mut().insert(ConnectInfo(peer));
                    tower::ServiceExt::oneshot(router.clone(), request)
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_read_timeout)
                    .keep_alive(true);
                let connection = builder.serve_connection(io, service).with_upgrades();
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => log_end(result),
                    _ = stop.changed() => {
                        connection.as_mut().graceful_shutdown();
                        log_end(connection.await);
                    }
                }
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // Every connection holds a slot: having them all back means every
        // connection has ended.
        let _ = slots.acquire_many(max_connections as u32).await;
        Ok(())
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection closed");
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = mcp_auth_core::BoxFuture<'static, io::Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The connection, failing a write that makes no progress for `timeout`
/// (a client that stopped reading its response).
struct WriteStallTimeout {
    stream: TcpStream,
    timeout: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl WriteStallTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        Self {
            stream,
            timeout,
            stalled_since: None,
        }
    }

    /// Called when a write is pending: arms the timer on the first stall,
    /// `Err` once it has run out.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let timeout = self.timeout;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for WriteStallTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl WriteStallTimeout {
    /// A write's outcome: progress clears the stall timer, a pending write
    /// runs it.
    fn judge<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                self.check_stall(cx)?;
                Poll::Pending
            }
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl AsyncWrite for WriteStallTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.judge(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.judge(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.judge(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A request body that fails when no frame arrives for `timeout` (a client
/// that sent its headers and then stalled, or trickles its body).
struct StallTimeoutBody {
    body: Incoming,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl StallTimeoutBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
struct BodyStalled;

impl hyper::body::Body for StallTimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyStalled))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
