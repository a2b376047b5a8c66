//! The one outbound HTTP seam of the `mcp-auth` crates.
//!
//! Every request these crates send (JWKS and discovery documents, OAuth
//! token, refresh and revocation calls, token introspection, client
//! metadata documents) goes through the [`HttpClient`] trait: one method,
//! request in, response (with its body read, up to a cap) out. Its one
//! production implementation, [`OutboundClient`], holds the safety rules
//! once:
//!
//! - redirects are never followed (a 3xx is returned as it is);
//! - a timeout bounds the whole exchange, and the response body is read up
//!   to a size cap (the smaller of the client's and the request's
//!   [`ResponseLimit`]);
//! - URLs are `https`, or `http` to a loopback host ([`UrlPolicy::HttpsOrLoopback`],
//!   the default);
//! - for URLs that come from outside (an OAuth client's metadata document),
//!   [`UrlPolicy::PublicHttps`] also refuses any host whose resolved
//!   addresses are not all public: the check runs inside the connector, on
//!   the addresses actually dialled, so DNS rebinding cannot slip past it;
//! - no proxy from the environment, and request bodies (which carry client
//!   secrets, codes and tokens) are wiped from memory once sent.
//!
//! Tests give a component a fake: anything that implements [`HttpClient`].
//!
//! ```no_run
//! use mcp_auth_http::{HttpClient, OutboundClient, ResponseLimit};
//!
//! # async fn run() -> Result<(), mcp_auth_http::HttpError> {
//! let client = OutboundClient::builder().build()?;
//! let mut request = http::Request::get("https://login.example.com/jwks.json")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! request.extensions_mut().insert(ResponseLimit(64 * 1024));
//! let response = client.send(request).await?;
//! assert!(response.body().len() <= 64 * 1024);
//! # Ok(()) }
//! ```
//!
//! # Security considerations
//!
//! - Errors never hold a URL's query, a request body or a response body:
//!   only the host and a fixed reason.
//! - [`UrlPolicy::PublicHttps`] refuses loopback, private, link-local,
//!   shared, documentation and other non-public addresses, including IPv6
//!   forms that embed them ([`mcp_auth_core::is_public_ip`]). Its loopback
//!   exception for tests and demos is [`OutboundBuilder::dangerous_allow_loopback`].

mod cache_control;
mod client;
mod outbound;
mod url_rule;

pub use cache_control::cache_max_age;
pub use client::{HttpClient, HttpError, HttpRequest, HttpResponse, ResponseLimit};
pub use outbound::{
    DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT, OutboundBuilder, OutboundClient, UrlPolicy,
};
pub use url_rule::{UrlRefusal, check_configured_url};
