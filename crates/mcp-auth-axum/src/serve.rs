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

/// Default longest drain after a shutdown signal: 25 s (Kubernetes sends
/// SIGKILL 30 s after SIGTERM). Connections still open then are closed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// How long, once draining, an open keep-alive connection may still bring
/// a request (answered 503 + `Connection: close`) before it is closed.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// The shutdown of a server, shared by whoever starts it and whoever must
/// know (a readiness check, a layer refusing new work): once
/// [`start`](Self::start)ed, [`serve`] stops accepting, answers requests
/// that reach it afterwards with 503 and `Connection: close`, lets the
/// requests in progress finish, and returns within its drain timeout.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain(Arc<watch::Sender<bool>>);

impl Default for Drain {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Drain {
    /// A drain not started.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the drain (again: nothing more).
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when the drain starts.
    pub async fn started(&self) {
        let mut changes = self.0.subscribe();
        let _ = changes.wait_for(|draining| *draining).await;
    }
}

/// Completes on SIGTERM (what systemd, Docker and Kubernetes send) or
/// SIGINT (Ctrl-C), naming which; on other platforms on Ctrl-C.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

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
        drain: Drain::new(),
        drain_timeout: DEFAULT_DRAIN_TIMEOUT,
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
    drain: Drain,
    drain_timeout: Duration,
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

    /// Drains when `drain` is started (as well as on the graceful-shutdown
    /// signal): share it with a readiness check.
    pub fn drain(mut self, drain: Drain) -> Self {
        self.drain = drain;
        self
    }

    /// Longest drain ([`DEFAULT_DRAIN_TIMEOUT`]): connections still open
    /// then are closed.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Stops accepting when `signal` completes, lets requests in progress
    /// finish (within the drain timeout), then returns.
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
            drain,
            drain_timeout,
        } = self;
        let outside = shutdown.unwrap_or_else(|| Box::pin(std::future::pending()));
        let draining = drain.clone();
        let mut signal = std::pin::pin!(async move {
            tokio::select! {
                () = outside => draining.start(),
                () = draining.started() => {}
            }
        });
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
            let drain = drain.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let io = TokioIo::new(WriteStallTimeout::new(stream, idle_timeout));
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let mut request =
                        request.map(|body| Body::new(StallTimeoutBody::new(body, idle_timeout)));
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let draining = drain.is_draining();
                    let routed = tower::ServiceExt::oneshot(router.clone(), request);
                    async move {
                        if draining {
                            // Work that arrives after the signal goes elsewhere.
                            return Ok(axum::response::IntoResponse::into_response((
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                [
                                    (axum::http::header::CONNECTION, "close"),
                                    (axum::http::header::RETRY_AFTER, "1"),
                                ],
                                "shutting down\n",
                            )));
                        }
                        routed.await
                    }
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
                        // A client may be sending its next request on this
                        // keep-alive connection right now: closing it would
                        // cut that request. For a moment, answer whatever
                        // arrives with 503 + `Connection: close` (which
                        // ends the connection cleanly); then close what is
                        // left once its response is done.
                        tokio::select! {
                            result = connection.as_mut() => log_end(result),
                            () = tokio::time::sleep(DRAIN_IDLE_GRACE) => {
                                connection.as_mut().graceful_shutdown();
                                log_end(connection.await);
                            }
                        }
                    }
                }
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // Every connection holds a slot: having them all back means every
        // connection has ended. A connection still open at the bound (a
        // stream that does not end) is closed when its task is dropped.
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(drain_timeout, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                open = max_connections - slots.available_permits(),
                "drain bound reached: closing the connections still open"
            );
        }
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
    /// `None` once handed to the drain.
    body: Option<Incoming>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    ended: bool,
}

impl StallTimeoutBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body: Some(body),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            ended: false,
        }
    }
}

/// Most of an unread request body drained after an early answer.
const DRAIN_BODY_BYTES: usize = 64 * 1024;
/// Longest time spent draining it.
const DRAIN_BODY_TIME: Duration = Duration::from_secs(1);

/// A request answered before its body was read (a refusal: 401, 403, 413,
/// 429): the rest of the body is read and dropped, up to 64 KiB within a
/// second, so the connection stays usable for the next request. Closing it
/// instead, with bytes unread, makes the kernel reset it, and a proxy that
/// was still sending the body answers its client 502. A longer body ends
/// the connection.
impl Drop for StallTimeoutBody {
    fn drop(&mut self) {
        let Some(mut body) = self.body.take() else {
            return;
        };
        if self.ended || hyper::body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0usize;
                while read <= DRAIN_BODY_BYTES {
                    match std::future::poll_fn(|cx| {
                        hyper::body::Body::poll_frame(Pin::new(&mut body), cx)
                    })
                    .await
                    {
                        Some(Ok(frame)) => {
                            read += frame.data_ref().map_or(0, Bytes::len);
                        }
                        _ => return,
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_BODY_TIME, drain).await;
        });
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
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                if frame.is_none() {
                    this.ended = true;
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyStalled))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), hyper::body::Body::size_hint)
    }
}
