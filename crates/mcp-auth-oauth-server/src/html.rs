//! The server's pages: plain server-rendered HTML that works without
//! JavaScript, readable on a phone, with every client-supplied text escaped.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

/// HTML-escapes `text` for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
margin:0;background:#f4f5f7;color:#1c1e21}main{max-width:28rem;margin:2rem auto;\
background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.3rem;margin:0 0 1rem}dl{margin:0 0 1rem}dt{font-weight:600;margin-top:.6rem}\
dd{margin:.2rem 0 0;word-break:break-all}ul{padding-left:1.2rem}code{font-size:.95em}\
.row{display:flex;gap:.75rem;margin-top:1.25rem}button,input[type=text]{font-size:1rem;\
padding:.7rem 1rem;border-radius:8px;border:1px solid #c4c7cc;width:100%;box-sizing:border-box}\
button{cursor:pointer;font-weight:600}button.primary{background:#1f6feb;color:#fff;\
border-color:#1f6feb}.note{color:#57606a;font-size:.9rem}.warn{background:#fff8c5;\
border:1px solid #d4a72c;border-radius:8px;padding:.6rem;font-size:.9rem}";

/// A whole page with the server's headers: no caching, no framing, no
/// referrer, no script, no third-party resource.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
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
    response
}

/// The error page for a request that cannot be sent back to the client
/// (unknown client, bad redirect URI): never a redirect.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response<Body> {
    page(
        status,
        "Sign-in failed",
        &format!(
            "<h1>This sign-in cannot continue</h1><p>{}</p>\
             <p class=\"note\">Close this window and try again from your application.</p>",
            escape(message)
        ),
    )
}

/// What the consent page shows.
#[derive(Debug)]
pub(crate) struct ConsentView<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) client_source: &'a str,
    pub(crate) redirect_host: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) scopes: &'a [String],
    /// Who is signed in, if anyone yet.
    pub(crate) user: Option<&'a str>,
    /// The provider the person signs in with after approving, if any.
    pub(crate) then_sign_in_with: Option<&'a str>,
    pub(crate) pending: &'a str,
    pub(crate) csrf: &'a str,
}

/// The consent page: Approve or Deny, posted to `action`.
pub(crate) fn consent(view: &ConsentView<'_>, action: &str) -> Response<Body> {
    let scopes = if view.scopes.is_empty() {
        "<li>basic access</li>".to_owned()
    } else {
        view.scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", escape(s)))
            .collect::<String>()
    };
    let body = format!(
        "<h1>Allow {name} to use your account?</h1>\
         {who}\
         <dl><dt>Application</dt><dd>{name}<br><span class=\"note\">{source}</span></dd>\
         <dt>It will return to</dt><dd>{redirect}</dd>\
         <dt>Access to</dt><dd>{resource}</dd>\
         <dt>Permissions</dt><dd><ul>{scopes}</ul></dd></dl>\
         <p class=\"warn\">Only approve if you started this sign-in from {name} yourself.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"pending\" value=\"{pending}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"row\"><button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button></div>\
         </form>",
        name = escape(view.client_name),
        who = match (view.user, view.then_sign_in_with) {
            (Some(user), Some(provider)) => format!(
                "<p>Signed in as <strong>{}</strong>. After you approve, {} asks you for the added permissions.</p>",
                escape(user),
                escape(provider)
            ),
            (Some(user), None) => format!("<p>Signed in as <strong>{}</strong>.</p>", escape(user)),
            (None, Some(provider)) => format!(
                "<p>After you approve, you sign in with <strong>{}</strong>.</p>",
                escape(provider)
            ),
            (None, None) => String::new(),
        },
        source = escape(view.client_source),
        redirect = escape(view.redirect_host),
        resource = escape(view.resource),
        action = escape(action),
        pending = escape(view.pending),
        csrf = escape(view.csrf),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

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
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc(1_796_179_220), "2026-12-02 02:40 UTC");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
