//! Security headers and CORS, through tower-http.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use axum::body::Body;
use axum::http::{Request, Response};

use crate::ConfigError;
use crate::pipeline::{RequestFacts, Step};

/// Response headers every answer carries (unless the handler set its own).
///
/// | header | value |
/// |---|---|
/// | `Strict-Transport-Security` | `max-age=63072000; includeSubDomains` (2 years; [`hsts_max_age`](Self::hsts_max_age)), only when the resource URL is https |
/// | `X-Content-Type-Options` | `nosniff` |
/// | `Referrer-Policy` | `no-referrer` |
/// | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` |
/// | `X-Frame-Options` | `DENY` |
/// | `Cache-Control` | `no-store` |
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    hsts: bool,
    /// `None`: the default two years.
    hsts_max_age: Option<u64>,
}

impl SecurityHeaders {
    /// The headers, with HSTS when `behind_tls`.
    pub fn new(behind_tls: bool) -> Self {
        Self {
            hsts: behind_tls,
            hsts_max_age: None,
        }
    }

    /// HSTS `max-age` (default 2 years; keep it at least one year once the
    /// deployment is settled: browsers and preload lists expect that).
    #[must_use]
    pub fn hsts_max_age(mut self, max_age: Duration) -> Self {
        self.hsts_max_age = Some(max_age.as_secs());
        self
    }

    fn hsts_value(&self) -> HeaderValue {
        match self.hsts_max_age {
            None => HeaderValue::from_static(HSTS),
            Some(secs) => HeaderValue::from_str(&format!("max-age={secs}; includeSubDomains"))
                .unwrap_or(HeaderValue::from_static(HSTS)),
        }
    }

    /// Adds the headers to every response of `router`.
    pub fn apply(self, router: Router) -> Router {
        router.layer(self.layer())
    }

    /// The headers as one tower layer (a stack of tower-http
    /// `SetResponseHeaderLayer`s), for use outside an axum `Router`.
    pub fn layer(self) -> SecurityHeadersLayer {
        let [nosniff, referrer, csp, frame, cache] = FIXED.map(|(name, value)| {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        });
        // One composed layer: the router boxes it once, not once per header.
        ServiceBuilder::new()
            .layer(nosniff)
            .layer(referrer)
            .layer(csp)
            .layer(frame)
            .layer(cache)
            .option_layer(self.hsts.then(|| {
                SetResponseHeaderLayer::overriding(
                    header::STRICT_TRANSPORT_SECURITY,
                    self.hsts_value(),
                )
            }))
            .into_inner()
    }

    /// Adds the same headers to one response, as [`SecurityHeaders::layer`]
    /// does: each fixed header unless the response has it, HSTS always
    /// (when on).
    ///
    /// For a service that builds its own responses: [`crate::McpAuth`] calls
    /// it from the one service it wraps the MCP endpoint in, which saves
    /// six nested services (cloned per request) and six futures.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        for (name, value) in FIXED {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        }
        if self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, self.hsts_value());
        }
    }
}

/// The headers set unless the response has them (the table above).
const FIXED: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

const HSTS: &str = "max-age=63072000; includeSubDomains";

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
            return Err(ConfigError::Cors {
                origin: "*".to_owned(),
                reason: "any origin (*) cannot be combined with credentials",
            });
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

/// Which `Origin` headers the MCP endpoint accepts (MCP transport: servers
/// MUST validate `Origin` and answer 403 when it is present and not
/// allowed; this is the defence against DNS rebinding). Built from the same
/// allow-list as CORS, plus the resource's own origin.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    any: bool,
    allowed: Vec<HeaderValue>,
}

impl OriginPolicy {
    /// The policy for `cors`, on a resource whose origin is `own_origin`.
    pub(crate) fn new(cors: &CorsConfig, own_origin: &str) -> Result<Self, ConfigError> {
        let mut allowed = Vec::with_capacity(cors.origins.len() + 1);
        for origin in &cors.origins {
            allowed.push(checked_origin(origin)?);
        }
        if let Ok(own) = HeaderValue::from_str(own_origin) {
            allowed.push(own);
        }
        Ok(Self {
            any: cors.any_origin,
            allowed,
        })
    }

    /// Whether a request with `headers` may proceed: no `Origin` (clients
    /// that are not browsers send none), or exactly one that is allowed.
    /// `null` (sandboxed pages, `file:`) is allowed only with
    /// [`CorsConfig::any_origin`].
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = values.next() else {
            return true;
        };
        if values.next().is_some() {
            return false;
        }
        self.any
            || self
                .allowed
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }
}

/// The Origin step: refuses with 403 before anything else.
impl Step for OriginPolicy {
    type Kept = ();

    async fn before(
        &self,
        request: Request<Body>,
        _facts: &mut RequestFacts,
    ) -> Result<(Request<Body>, ()), Response<Body>> {
        if self.allows(request.headers()) {
            return Ok((request, ()));
        }
        crate::audit::auth_failed("origin", 403);
        Err(crate::challenge::refusal(
            axum::http::StatusCode::FORBIDDEN,
            "invalid_origin",
            "requests from this Origin are not allowed",
        ))
    }
}

fn checked_origin(origin: &str) -> Result<HeaderValue, ConfigError> {
    if origin == "*" {
        return Err(ConfigError::Cors {
            origin: origin.to_owned(),
            reason: "use CorsConfig::any_origin() for *, never in an allow-list",
        });
    }
    let not_an_origin = || ConfigError::Cors {
        origin: origin.to_owned(),
        reason: "not an origin (scheme://host[:port], no path)",
    };
    let url = url::Url::parse(origin).map_err(|_| not_an_origin())?;
    let serialized = url.origin().ascii_serialization();
    if serialized == "null" || serialized != origin.trim_end_matches('/') {
        return Err(not_an_origin());
    }
    HeaderValue::from_str(&serialized).map_err(|_| not_an_origin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ORIGIN, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn origins_are_checked_against_the_cors_list_and_the_own_origin() {
        let cors = CorsConfig::allow_origins(["https://app.example.com"]);
        let policy = OriginPolicy::new(&cors, "https://mcp.example.com").unwrap();
        assert!(policy.allows(&with_origin(&[])));
        assert!(policy.allows(&with_origin(&["https://app.example.com"])));
        assert!(policy.allows(&with_origin(&["https://mcp.example.com"])));
        for refused in [
            "http://evil.example",
            "null",
            "https://app.example.com.evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
        ] {
            assert!(!policy.allows(&with_origin(&[refused])), "{refused}");
        }
        assert!(!policy.allows(&with_origin(&[
            "https://app.example.com",
            "https://app.example.com"
        ])));
        let none = OriginPolicy::new(&CorsConfig::default(), "http://127.0.0.1:8787").unwrap();
        assert!(none.allows(&with_origin(&["http://127.0.0.1:8787"])));
        assert!(!none.allows(&with_origin(&["http://localhost:8787"])));
        let any = OriginPolicy::new(&CorsConfig::any_origin(), "https://mcp.example.com").unwrap();
        assert!(any.allows(&with_origin(&["null"])));
        assert!(any.allows(&with_origin(&["http://evil.example"])));
    }

    #[test]
    fn insert_into_keeps_headers_the_response_set_and_enforces_hsts() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=0"),
        );
        SecurityHeaders::new(true).insert_into(&mut headers);
        assert_eq!(headers[header::CACHE_CONTROL], "max-age=5");
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers.len(), FIXED.len() + 1);

        let mut plain = HeaderMap::new();
        SecurityHeaders::new(false).insert_into(&mut plain);
        assert!(!plain.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(plain.len(), FIXED.len());
    }
}
