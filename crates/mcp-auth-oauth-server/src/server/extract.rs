//! What a handler takes from a request: strict form and query parameters,
//! the browser's cookies, HTTP Basic client credentials, and the client's
//! address. Each is an axum extractor, so a handler names what it needs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use data_encoding::BASE64;
use mcp_auth_session::{SessionCookie, SessionId};

use super::Inner;
use crate::secrets::ClientSecret;

/// Largest form or registration body read.
pub(crate) const MAX_FORM: usize = 16 * 1024;

/// Why a form longer than [`MAX_FORM`] is refused; its answer closes the
/// connection (the rest of the body is not read).
pub(crate) const BODY_TOO_LARGE: &str = "the request body is too large";

/// Form or query parameters. A repeated parameter is refused (RFC 6749
/// section 3.1), so no handler can read the first of two values where a
/// check read the second. `Debug` names the parameters, never their values
/// (a code, a verifier, a refresh token, a client secret).
#[derive(Default)]
pub(crate) struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Params").field(&names).finish()
    }
}

/// Why parameters were refused: shown to the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParamError(pub(crate) &'static str);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, ParamError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw) {
            if map.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(ParamError("a parameter is repeated"));
            }
        }
        Ok(Self(map))
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameters, for a [`Login`](crate::Login).
    pub(crate) fn into_map(self) -> HashMap<String, String> {
        self.0
    }
}

/// A form body of at most [`MAX_FORM`] bytes.
#[derive(Debug)]
pub(crate) struct StrictForm(pub(crate) Params);

impl<S: Send + Sync> FromRequest<S> for StrictForm {
    type Rejection = ParamError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM)
            .await
            .map_err(|_| ParamError(BODY_TOO_LARGE))?;
        Params::parse(&bytes).map(Self)
    }
}

/// The query string's parameters.
#[derive(Debug)]
pub(crate) struct StrictQuery(pub(crate) Params);

impl<S: Send + Sync> FromRequestParts<S> for StrictQuery {
    type Rejection = ParamError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Params::parse(parts.uri.query().unwrap_or("").as_bytes()).map(Self)
    }
}

/// The two cookies of the browser flow, when present and well formed: the
/// browser binding (which browser started a sign-in) and the login session,
/// read with the server's own two `SessionCookie`s.
#[derive(Debug, Default)]
pub(crate) struct Cookies {
    pub(crate) browser: Option<SessionId>,
    pub(crate) login: Option<SessionId>,
}

/// The browser-binding cookie.
pub(crate) fn browser_cookie() -> SessionCookie {
    cookie_named("mcp-auth-browser")
}

/// The login-session cookie.
pub(crate) fn login_cookie() -> SessionCookie {
    cookie_named("mcp-auth-login")
}

#[allow(clippy::expect_used)] // constant, valid names
fn cookie_named(name: &str) -> SessionCookie {
    SessionCookie::new(name).expect("a valid cookie name")
}

impl Cookies {
    pub(crate) fn of(
        headers: &HeaderMap,
        browser_cookie: &SessionCookie,
        login_cookie: &SessionCookie,
    ) -> Self {
        let mut cookies = Self::default();
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            cookies.browser = cookies.browser.or_else(|| browser_cookie.read(text));
            cookies.login = cookies.login.or_else(|| login_cookie.read(text));
        }
        cookies
    }
}

impl FromRequestParts<Arc<Inner>> for Cookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Inner>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers, &s.browser_cookie, &s.login_cookie))
    }
}

/// Client credentials from an `Authorization: Basic` header (RFC 6749
/// section 2.3.1: both parts form-urlencoded). A malformed header counts
/// as none.
#[derive(Debug)]
pub(crate) struct BasicAuth(pub(crate) Option<(String, ClientSecret)>);

impl<S: Send + Sync> FromRequestParts<S> for BasicAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let pair = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| BASE64.decode(b.trim().as_bytes()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (id, secret) = pair.split_once(':')?;
                let decode = |x: &str| {
                    url::form_urlencoded::parse(format!("a={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((decode(id)?, ClientSecret::presented(&decode(secret)?)))
            });
        Ok(Self(pair))
    }
}

/// The client's address: the TCP peer (`None` when the server was not
/// started with connect info, as in some tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The client-address policy's decision (trusted proxies), else
        // the TCP peer.
        Ok(Self(
            mcp_auth_axum::ClientAddress::from_extensions(&parts.extensions).0,
        ))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert!(Params::parse(b"a=1&b=2").is_ok());
        assert!(Params::parse(b"a=1&a=1").is_err());
        assert_eq!(
            Params::parse(b"x=%41+b").unwrap().get("x"),
            Some("A b"),
            "form-urlencoded"
        );
    }

    #[test]
    fn cookies_are_read_only_when_host_prefixed_and_well_formed() {
        let id = SessionId::generate().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!(
                "mcp-auth-login={0}; __Host-mcp-auth-browser={0}",
                id.expose()
            )
            .parse()
            .unwrap(),
        );
        let cookies = Cookies::of(&headers, &browser_cookie(), &login_cookie());
        assert!(cookies.login.is_none(), "no __Host- prefix: ignored");
        assert!(cookies.browser.is_some_and(|b| b.matches(id.expose())));
    }

    #[test]
    fn params_debug_names_the_parameters_never_their_values() {
        let params =
            Params::parse(b"code=c0de-secret&code_verifier=v3rifier&client_id=app").unwrap();
        let text = format!("{params:?}");
        assert!(
            text.contains("code_verifier") && text.contains("client_id"),
            "{text}"
        );
        assert!(
            !text.contains("c0de-secret") && !text.contains("v3rifier"),
            "{text}"
        );
        assert!(!format!("{:?}", StrictForm(params)).contains("v3rifier"));
    }

    #[test]
    fn basic_auth_debug_hides_the_secret() {
        let auth = BasicAuth(Some((
            "client".into(),
            ClientSecret::presented("s3cret-value"),
        )));
        let text = format!("{auth:?}");
        assert!(
            text.contains("client") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
