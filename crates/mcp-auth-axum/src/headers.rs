//! Security headers and CORS, through tower-http.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::ConfigError;

/// Response headers every answer carries (unless the handler set its own).
///
/// | header | value |
/// |---|---|
/// | `Strict-Transport-Security` | `max-age=63072000; includeSubDomains`, only when the resource URL is https |
/// | `X-Content-Type-Options` | `nosniff` |
/// | `Referrer-Policy` | `no-referrer` |
/// | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` |
/// | `X-Frame-Options` | `DENY` |
/// | `Cache-Control` | `no-store` |
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    hsts: bool,
}

impl SecurityHeaders {
    /// The headers, with HSTS when `behind_tls`.
    pub fn new(behind_tls: bool) -> Self {
        Self { hsts: behind_tls }
    }

    /// Adds the headers to every response of `router`.
    pub fn apply(self, router: Router) -> Router {
        router.layer(self.layer())
    }

    /// The headers as one tower layer (a stack of tower-http
    /// `SetResponseHeaderLayer`s), for use outside an axum `Router`.
    pub fn layer(self) -> SecurityHeadersLayer {
        let fixed = |name: HeaderName, value: &'static str| {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        };
        // One composed layer: the router boxes it once, not once per header.
        ServiceBuilder::new()
            .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(fixed(header::REFERRER_POLICY, "no-referrer"))
            .layer(fixed(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ))
            .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
            .layer(fixed(header::CACHE_CONTROL, "no-store"))
            .option_layer(self.hsts.then(|| {
                SetResponseHeaderLayer::overriding(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=63072000; includeSubDomains"),
                )
            }))
            .into_inner()
    }
}

type HeaderLayer = SetResponseHeaderLayer<HeaderValue>;

/// The layer type [`SecurityHeaders::layer`] returns.
pub type SecurityHeadersLayer = Stack<
    Either<HeaderLayer, Identity>,
    Stack<
        HeaderLayer,
        Stack<HeaderLayer, Stack<HeaderLayer, Stack<HeaderLayer, Stack<HeaderLayer, Identity>>>>,
    >,
>;

/// Which browser origins may call the server.
///
/// Default: none (no CORS headers; browsers refuse cross-origin calls).
/// Bearer tokens travel in the `Authorization` header, so credentials
/// (cookies) are off unless asked for, and `*` is never combined with them.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    origins: Vec<String>,
    any_origin: bool,
    credentials: bool,
}

impl CorsConfig {
    /// Allows exactly these origins (`https://app.example.com`, with a port
    /// when it is not the default).
    pub fn allow_origins<S: Into<String>>(origins: impl IntoIterator<Item = S>) -> Self {
        Self {
            origins: origins.into_iter().map(Into::into).collect(),
            any_origin: false,
            credentials: false,
        }
    }

    /// Allows any origin, without credentials: for public servers whose
    /// browser clients come from anywhere and send bearer tokens.
    pub fn any_origin() -> Self {
        Self {
            origins: Vec::new(),
            any_origin: true,
            credentials: false,
        }
    }

    /// Lets browsers send cookies. Refused with [`CorsConfig::any_origin`].
    pub fn allow_credentials(mut self) -> Self {
        self.credentials = true;
        self
    }

    /// The tower-http layer, or why the configuration is unsafe.
    pub fn layer(&self) -> Result<Option<CorsLayer>, ConfigError> {
        if self.any_origin && self.credentials {
            return Err(ConfigError::Cors(
                "any origin (*) cannot be combined with credentials".to_owned(),
            ));
        }
        let allow_origin = if self.any_origin {
            AllowOrigin::any()
        } else if self.origins.is_empty() {
            return Ok(None);
        } else {
            let mut values = Vec::with_capacity(self.origins.len());
            for origin in &self.origins {
                values.push(checked_origin(origin)?);
            }
            AllowOrigin::list(values)
        };
        let layer = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
                HeaderName::from_static("mcp-method"),
                HeaderName::from_static("mcp-name"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                HeaderName::from_static("mcp-session-id"),
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
            ])
            .allow_credentials(self.credentials)
            .max_age(Duration::from_secs(600));
        Ok(Some(layer))
    }
}

fn checked_origin(origin: &str) -> Result<HeaderValue, ConfigError> {
    if origin == "*" {
        return Err(ConfigError::Cors(
            "use CorsConfig::any_origin() for *, never in an allow-list".to_owned(),
        ));
    }
    let url = url::Url::parse(origin)
        .map_err(|_| ConfigError::Cors(format!("{origin:?} is not an origin")))?;
    let serialized = url.origin().ascii_serialization();
    if serialized == "null" || serialized != origin.trim_end_matches('/') {
        return Err(ConfigError::Cors(format!(
            "{origin:?} is not an origin (scheme://host[:port], no path)"
        )));
    }
    HeaderValue::from_str(&serialized)
        .map_err(|_| ConfigError::Cors(format!("{origin:?} is not an origin")))
}
