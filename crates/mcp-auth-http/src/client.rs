//! The trait, its request and response types, and its error.

use std::sync::Arc;

use mcp_auth_core::BoxFuture;

/// An outbound request: `http`'s request with the body in memory (the
/// shape `oauth2`'s `AsyncHttpClient` uses too).
pub type HttpRequest = http::Request<Vec<u8>>;

/// A response, its body read in full (up to the cap).
pub type HttpResponse = http::Response<Vec<u8>>;

/// The most response-body bytes this request's caller accepts, as a request
/// extension: the client reads at most the smaller of this and its own cap,
/// and answers [`HttpError::TooLarge`] past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimit(pub usize);

/// Sends one request and reads its response.
///
/// Object safe: components hold an `Arc<dyn HttpClient>`, so a test can give
/// them a fake. Implementations must not follow redirects, must bound the
/// time and the response size, and must honour [`ResponseLimit`].
pub trait HttpClient: Send + Sync + std::fmt::Debug {
    /// Sends `request`; any status is a response, not an error.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpError>>;
}

impl<T: HttpClient + ?Sized> HttpClient for Arc<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpError>> {
        (**self).send(request)
    }
}

/// Why a request got no response. Never holds a body, a query or a header
/// value: only the host and fixed words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL breaks the client's [`crate::UrlPolicy`].
    #[error("refused to send to {host}: {reason}")]
    Refused {
        /// The URL's host (empty when it has none).
        host: String,
        /// Which rule refused it.
        reason: crate::UrlRefusal,
    },
    /// The host resolves to an address that is not public
    /// ([`crate::UrlPolicy::PublicHttps`]).
    #[error("refused to connect to {host}: it resolves to a non-public address")]
    NotPublic {
        /// The host.
        host: String,
    },
    /// No answer within the timeout.
    #[error("{host} did not answer in time")]
    Timeout {
        /// The host.
        host: String,
    },
    /// The connection could not be made or broke.
    #[error("could not reach {host}")]
    Connect {
        /// The host.
        host: String,
    },
    /// The response body is larger than the cap.
    #[error("the response from {host} is larger than {max} bytes")]
    TooLarge {
        /// The host.
        host: String,
        /// The cap.
        max: usize,
    },
    /// The response body could not be read.
    #[error("the response from {host} could not be read")]
    Body {
        /// The host.
        host: String,
    },
    /// The client could not be built.
    /// (reqwest's reason goes to the log at `error` level.)
    #[error("the HTTP client could not be built (TLS backend or system configuration)")]
    Build,
}
