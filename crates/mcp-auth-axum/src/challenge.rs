//! RFC 6750 / RFC 9728 challenges and the other refusals the layers send.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

use crate::config::{OFFLINE_ACCESS, ResourceConfig};

/// Quotes a value for an auth-param (RFC 9110 quoted-string).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Never emit control characters into a header.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The scopes to put in a challenge: never `offline_access`.
fn challenge_scope<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let list: Vec<&str> = scopes
        .into_iter()
        .filter(|s| *s != OFFLINE_ACCESS)
        .collect();
    (!list.is_empty()).then(|| list.join(" "))
}

/// The kinds of `WWW-Authenticate: Bearer` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge<'a> {
    /// No credentials: just where to find out how to get some.
    Missing,
    /// RFC 6750 `invalid_token`, with a safe description.
    InvalidToken(&'a str),
    /// RFC 6750 `invalid_request`.
    InvalidRequest(&'a str),
}

fn bearer_header(
    config: &ResourceConfig,
    error: Option<(&str, &str)>,
    scope: Option<String>,
) -> HeaderValue {
    let mut value = String::from("Bearer ");
    let mut params = Vec::with_capacity(4);
    if let Some((code, description)) = error {
        params.push(format!("error={}", quoted(code)));
        params.push(format!("error_description={}", quoted(description)));
    }
    if let Some(scope) = scope {
        params.push(format!("scope={}", quoted(&scope)));
    }
    params.push(format!(
        "resource_metadata={}",
        quoted(config.metadata_url())
    ));
    value.push_str(&params.join(", "));
    // Every part is validated configuration or a fixed string; fall back to
    // the bare scheme rather than panic if that ever stops being true.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
}

fn json_error(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "error_description": description }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 401 (or 400 for `invalid_request`) with the challenge.
pub(crate) fn challenge(config: &ResourceConfig, kind: Challenge<'_>) -> Response<Body> {
    let scope = challenge_scope(config.challenge_scopes().iter().map(String::as_str));
    let (status, error) = match kind {
        Challenge::Missing => (StatusCode::UNAUTHORIZED, None),
        Challenge::InvalidToken(d) => (StatusCode::UNAUTHORIZED, Some(("invalid_token", d))),
        Challenge::InvalidRequest(d) => (StatusCode::BAD_REQUEST, Some(("invalid_request", d))),
    };
    let mut response = match error {
        Some((code, description)) => json_error(status, code, description),
        None => json_error(status, "unauthorized", "an access token is required"),
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        bearer_header(config, error, scope),
    );
    response
}

/// 403 `insufficient_scope` naming every scope the operation needs.
pub(crate) fn insufficient_scope(config: &ResourceConfig, needed: &[String]) -> Response<Body> {
    let description = "the access token lacks a scope this operation needs";
    let mut response = json_error(StatusCode::FORBIDDEN, "insufficient_scope", description);
    let scope = challenge_scope(needed.iter().map(String::as_str));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        bearer_header(config, Some(("insufficient_scope", description)), scope),
    );
    response
}

/// A plain refusal with a JSON body and no challenge (400, 404, 413, 500).
pub(crate) fn refusal(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    json_error(status, code, description)
}

/// 429 or 503 with `Retry-After`.
pub(crate) fn retry_later(
    status: StatusCode,
    retry_after: u64,
    description: &str,
) -> Response<Body> {
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limited"
    } else {
        "temporarily_unavailable"
    };
    let mut response = json_error(status, code, description);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_quotes_and_drops_controls() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("a\r\nb"), "\"ab\"");
    }

    #[test]
    fn offline_access_is_never_in_a_challenge_scope() {
        assert_eq!(challenge_scope(["offline_access"]), None);
        assert_eq!(
            challenge_scope(["a", "offline_access", "b"]).as_deref(),
            Some("a b")
        );
    }
}
