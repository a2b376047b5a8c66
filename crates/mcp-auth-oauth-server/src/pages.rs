//! The server's pages: server-rendered HTML that works without JavaScript,
//! readable on a phone. Every page is an askama template under
//! `templates/` (escaped by default: a client's name or a user's input is
//! never markup); every page response carries the same headers: no
//! caching, no framing, no referrer, no script, no third-party resource.

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The `Content-Security-Policy` of every page. Forms post only to this
/// server (`form-action 'self'`); a page whose form leads on to another
/// site (the consent page to the client or the provider) adds those
/// origins, since browsers apply `form-action` to the redirect after the
/// post as well.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds `sources` (from [`csp_source`]) to the page's `form-action`.
pub(crate) fn allow_form_targets(response: &mut Response<Body>, sources: &[String]) {
    if sources.is_empty() {
        return;
    }
    let csp = format!("{PAGE_CSP} {}", sources.join(" "));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The CSP source that matches `uri`'s destination: its origin
/// (`https://app.example.com`, `http://127.0.0.1:53123`) for a web URL
/// with a name or IPv4 host, else its scheme (`com.example.app:`, or
/// `http:` for an IPv6 loopback literal, which a CSP host cannot spell).
pub(crate) fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match (url.scheme(), url.host()) {
        ("http" | "https", Some(url::Host::Domain(_) | url::Host::Ipv4(_))) => {
            Some(url.origin().ascii_serialization())
        }
        (scheme, _) => Some(format!("{scheme}:")),
    }
}

/// How the consent page shows where the browser goes back to: scheme, host
/// and port (`http://127.0.0.1:53123`), or for an app's own scheme that
/// scheme (`com.example.app:`).
pub(crate) fn destination_text(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url.origin().ascii_serialization(),
        Ok(url) => match url.host_str() {
            Some(host) => format!("{}://{host} (an application on this device)", url.scheme()),
            None => format!("{}: (an application on this device)", url.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

/// Puts the headers every page of the server carries on `headers`:
/// `no-store`, the strict [`PAGE_CSP`], `X-Frame-Options: DENY`,
/// `Referrer-Policy: no-referrer`, `nosniff`, and the HTML content type.
/// For a [`Login`](crate::Login) that renders its own page.
pub fn apply_page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// `template` rendered as a page with `status`. A template that fails to
/// render (it cannot, short of a bug: every value is a string) is a 500
/// page that says nothing more.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response<Body> {
    let (status, html) = match template.render() {
        Ok(html) => (status, html),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    apply_page_headers(response.headers_mut());
    response
}

/// The error page for a request that cannot be sent back to the client
/// (unknown client, bad redirect URI, an expired sign-in): never a redirect.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    render(status, &ErrorPage { message })
}

/// What the consent page shows: Approve or Deny, posted to `action`.
#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) client_source: &'a str,
    pub(crate) redirect_to: &'a str,
    pub(crate) resource: &'a str,
    /// What is asked for (all of it at a first consent; what is new at a
    /// step-up).
    pub(crate) scopes: Vec<ScopeLine>,
    /// At a step-up: what this application already has.
    pub(crate) granted: Vec<ScopeLine>,
    /// Who is signed in, if anyone yet.
    pub(crate) user: Option<&'a str>,
    /// The provider the person signs in with after approving, if any.
    pub(crate) then_sign_in_with: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) pending: &'a str,
    pub(crate) csrf: &'a str,
}

/// The development login's form.
#[derive(Template)]
#[template(path = "dev_login.html")]
pub(crate) struct DevLoginPage<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) action: &'a str,
    pub(crate) pending: &'a str,
    pub(crate) csrf: &'a str,
}

/// One application on the connected-apps page.
#[derive(Debug)]
pub(crate) struct AppItem {
    /// The application's `client_id` (what its Revoke button names).
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) scopes: Vec<ScopeLine>,
    pub(crate) last_used: String,
}

/// A scope as a person reads it: what it allows in plain words, and the
/// scope string (shown small beside it when it differs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeLine {
    pub(crate) text: String,
    pub(crate) scope: Option<String>,
}

/// The applications holding a grant for the signed-in person.
#[derive(Template)]
#[template(path = "apps.html")]
pub(crate) struct AppsPage<'a> {
    pub(crate) user: &'a str,
    /// The provider behind an upstream login, if any.
    pub(crate) provider: Option<&'a str>,
    pub(crate) apps: Vec<AppItem>,
    /// How long an access token already issued still works, in whole
    /// minutes (rounded up): revoking cannot reach it.
    pub(crate) access_minutes: u64,
    pub(crate) action: &'a str,
    pub(crate) logout_action: &'a str,
    pub(crate) csrf: &'a str,
}

/// After signing out.
#[derive(Template)]
#[template(path = "signed_out.html")]
pub(crate) struct SignedOutPage;

/// `unix` seconds as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian; the
/// civil-from-days algorithm of H. Hinnant).
pub(crate) fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_179_220), "2026-12-02 02:40 UTC");
    }

    async fn body(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    const HOSTILE: &str = "<script>alert(1)</script>\"'&";

    #[tokio::test]
    async fn every_page_escapes_what_it_is_given_and_carries_the_page_headers() {
        let scopes = vec![ScopeLine {
            text: HOSTILE.to_owned(),
            scope: Some(HOSTILE.to_owned()),
        }];
        let pages = [
            error(StatusCode::BAD_REQUEST, HOSTILE),
            render(
                StatusCode::OK,
                &ConsentPage {
                    client_name: HOSTILE,
                    client_source: HOSTILE,
                    redirect_to: HOSTILE,
                    resource: HOSTILE,
                    scopes: scopes.clone(),
                    granted: scopes.clone(),
                    user: Some(HOSTILE),
                    then_sign_in_with: Some(HOSTILE),
                    action: HOSTILE,
                    pending: HOSTILE,
                    csrf: HOSTILE,
                },
            ),
            render(
                StatusCode::OK,
                &DevLoginPage {
                    client_name: HOSTILE,
                    action: HOSTILE,
                    pending: HOSTILE,
                    csrf: HOSTILE,
                },
            ),
            render(
                StatusCode::OK,
                &AppsPage {
                    user: HOSTILE,
                    provider: Some(HOSTILE),
                    apps: vec![AppItem {
                        id: HOSTILE.into(),
                        name: HOSTILE.into(),
                        origin: HOSTILE.into(),
                        scopes: scopes.clone(),
                        last_used: HOSTILE.into(),
                    }],
                    access_minutes: 60,
                    action: HOSTILE,
                    logout_action: HOSTILE,
                    csrf: HOSTILE,
                },
            ),
        ];
        for page in pages {
            let headers = page.headers().clone();
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], PAGE_CSP);
            assert!(PAGE_CSP.contains("frame-ancestors 'none'"));
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
            let html = body(page).await;
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("\"'&"), "{html}");
            assert!(html.contains("&#60;script&#62;"), "{html}");
        }
    }

    #[test]
    fn form_targets_and_destinations_name_scheme_host_and_port() {
        assert_eq!(
            csp_source("http://127.0.0.1:53123/callback?x=1").as_deref(),
            Some("http://127.0.0.1:53123")
        );
        assert_eq!(
            csp_source("https://app.example.com/cb").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            csp_source("cursor://anysphere/cb").as_deref(),
            Some("cursor:")
        );
        assert_eq!(
            csp_source("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(csp_source("http://[::1]:8080/cb").as_deref(), Some("http:"));
        assert_eq!(csp_source("not a url"), None);
        assert_eq!(
            destination_text("http://127.0.0.1:53123/cb"),
            "http://127.0.0.1:53123"
        );
        assert_eq!(
            destination_text("com.example.app:/cb"),
            "com.example.app: (an application on this device)"
        );
        assert_eq!(
            destination_text("cursor://anysphere.cursor-mcp/oauth/callback"),
            "cursor://anysphere.cursor-mcp (an application on this device)"
        );
        let mut page = render(StatusCode::OK, &ErrorPage { message: "x" });
        allow_form_targets(&mut page, &["https://app.example.com".to_owned()]);
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            format!("{PAGE_CSP} https://app.example.com").as_str()
        );
    }
}
