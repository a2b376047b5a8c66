//! What the endpoints answer when they refuse: [`OAuthError`] for the
//! endpoints OAuth clients call (an RFC 6749 section 5.2 JSON body), and
//! [`PageError`] for the pages a person sees (an error page). Handlers
//! return `Result<_, one of them>` and use `?`; store and random-number
//! failures turn into "unavailable" on their own.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::extract::ParamError;
use crate::{AUDIT, ServerError, StoreError, pages};

/// A refusal shown to a person as a page. Never a redirect: the errors
/// that may go back to the client are sent by the authorize flow itself.
#[derive(Debug)]
pub(crate) enum PageError {
    /// 400: the request cannot be understood or has expired.
    BadRequest(Cow<'static, str>),
    /// 401: nobody is signed in.
    Unauthorized(&'static str),
    /// 403: a form or flow that this browser may not use.
    Forbidden(&'static str),
    /// 404.
    NotFound(&'static str),
    /// 429, with `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// 503: a store or the provider failed; nothing was done.
    Unavailable,
}

impl PageError {
    pub(crate) const EXPIRED: Self = Self::BadRequest(Cow::Borrowed(
        "This sign-in has expired or was already completed. Start again from your application.",
    ));
    pub(crate) const COMPLETED: Self =
        Self::BadRequest(Cow::Borrowed("This sign-in was already completed."));
    pub(crate) const BAD_FORM: Self = Self::Forbidden("The form is not valid. Start again.");

    pub(crate) fn bad_request(message: &'static str) -> Self {
        Self::BadRequest(Cow::Borrowed(message))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::BadRequest(message) => message,
            Self::Unauthorized(message) | Self::Forbidden(message) | Self::NotFound(message) => {
                message
            }
            Self::RateLimited { .. } => "Too many attempts. Wait a moment and try again.",
            Self::Unavailable => {
                "The server cannot complete sign-ins right now. Try again in a moment."
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response<Body> {
        let mut response = pages::error(self.status(), self.message());
        if let Self::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<StoreError> for PageError {
    fn from(_: StoreError) -> Self {
        Self::Unavailable
    }
}

impl From<ServerError> for PageError {
    fn from(_: ServerError) -> Self {
        Self::Unavailable
    }
}

impl From<ParamError> for PageError {
    fn from(e: ParamError) -> Self {
        Self::bad_request(e.0)
    }
}

/// A refusal answered as RFC 6749 section 5.2 JSON (`no-store`), the
/// audit log saying why.
#[derive(Debug)]
pub(crate) enum OAuthError {
    /// 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// 401 `invalid_client`, with `WWW-Authenticate: Basic`.
    InvalidClient(&'static str),
    /// 400 `invalid_grant`.
    InvalidGrant(&'static str),
    /// 400 `invalid_target` (RFC 8707).
    InvalidTarget(&'static str),
    /// 400 `invalid_scope`.
    InvalidScope(&'static str),
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// 400 `invalid_client_metadata` (RFC 7591).
    InvalidClientMetadata(&'static str),
    /// 400 `invalid_redirect_uri` (RFC 7591).
    InvalidRedirectUri(&'static str),
    /// 429 `temporarily_unavailable`, with `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// 503 `server_error`: a store failed; nothing was done.
    Unavailable,
}

impl OAuthError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::InvalidRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            Self::InvalidClient(why) => (StatusCode::UNAUTHORIZED, "invalid_client", why),
            Self::InvalidGrant(why) => (StatusCode::BAD_REQUEST, "invalid_grant", why),
            Self::InvalidTarget(why) => (StatusCode::BAD_REQUEST, "invalid_target", why),
            Self::InvalidScope(why) => (StatusCode::BAD_REQUEST, "invalid_scope", why),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "authorization_code or refresh_token",
            ),
            Self::InvalidClientMetadata(why) => {
                (StatusCode::BAD_REQUEST, "invalid_client_metadata", why)
            }
            Self::InvalidRedirectUri(why) => (StatusCode::BAD_REQUEST, "invalid_redirect_uri", why),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many requests",
            ),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response<Body> {
        let (status, error, description) = self.parts();
        match self {
            Self::InvalidClientMetadata(_) | Self::InvalidRedirectUri(_) => {
                tracing::info!(target: AUDIT, event = "registration_refused", error, reason = description);
            }
            Self::RateLimited { .. } => {}
            _ => {
                tracing::info!(target: AUDIT, event = "token_refused", error, reason = description);
                crate::metrics::token_refused(error);
            }
        }
        let mut response = json(
            status,
            &json!({"error": error, "error_description": description}),
            "no-store",
        );
        let headers = response.headers_mut();
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if description == super::extract::BODY_TOO_LARGE {
            // The rest of the body was not read: a proxy must not reuse
            // the connection.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        match self {
            Self::InvalidClient(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"token\""),
                );
            }
            Self::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for OAuthError {
    fn from(_: StoreError) -> Self {
        Self::Unavailable
    }
}

impl From<ServerError> for OAuthError {
    fn from(_: ServerError) -> Self {
        Self::Unavailable
    }
}

impl From<ParamError> for OAuthError {
    fn from(e: ParamError) -> Self {
        Self::InvalidRequest(e.0)
    }
}

/// Handlers take `Result<StrictForm, ParamError>` and turn the error into
/// their own shape (a page or OAuth JSON); alone, it is a 400 page.
impl axum::response::IntoResponse for ParamError {
    fn into_response(self) -> axum::response::Response {
        PageError::from(self).into_response()
    }
}

/// A JSON answer with `cache`.
pub(crate) fn json(status: StatusCode, value: &Value, cache: &'static str) -> Response<Body> {
    json_bytes(status, value.to_string().into_bytes(), cache)
}

/// A JSON response from an already serialized body.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// A 303 to `location`, not cached, with no referrer.
pub(crate) fn redirect_to(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `uri` with `pairs` added to its query.
pub(crate) fn with_params(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// Adds a `Set-Cookie` (a secret: marked sensitive, never logged).
pub(crate) fn set_cookie(response: &mut Response<Body>, cookie: &secrecy::SecretString) {
    if let Ok(mut value) = HeaderValue::from_str(secrecy::ExposeSecret::expose_secret(cookie)) {
        value.set_sensitive(true);
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_are_rfc_6749_json_and_never_cached() {
        let response = OAuthError::InvalidClient("client authentication failed").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[header::PRAGMA], "no-cache");
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        let limited = OAuthError::RateLimited { retry_after: 7 }.into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        let unavailable = OAuthError::from(StoreError::Full).into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn page_errors_are_pages_with_the_right_status() {
        for (error, status) in [
            (PageError::EXPIRED, StatusCode::BAD_REQUEST),
            (PageError::BAD_FORM, StatusCode::FORBIDDEN),
            (PageError::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (
                PageError::RateLimited { retry_after: 3 },
                StatusCode::TOO_MANY_REQUESTS,
            ),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert!(
                response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
    }
}
