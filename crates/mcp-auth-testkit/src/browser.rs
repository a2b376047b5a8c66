//! A scripted browser for the authorization server's pages: keeps cookies
//! by hand (they are `Secure`, which an HTTP client's cookie jar would not
//! send over loopback `http`), reads hidden form fields out of the HTML,
//! and follows the sign-in (authorize → login → consent) to the client's
//! callback URL. Used by the authorization server's tests, the demo's
//! smoke run and the example servers' tests.

use std::collections::HashMap;

use data_encoding::BASE64URL_NOPAD;

/// A PKCE pair (RFC 7636, S256).
#[derive(Debug, Clone)]
pub struct Pkce {
    /// The verifier (sent to the token endpoint).
    pub verifier: String,
    /// Its S256 challenge (sent to the authorization endpoint).
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    #[allow(clippy::unwrap_used)]
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        let verifier = BASE64URL_NOPAD.encode(&bytes);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        Self {
            challenge: BASE64URL_NOPAD.encode(digest.as_ref()),
            verifier,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// One page load: status, headers, body.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: reqwest::StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: String,
}

impl Page {
    /// The `Location` header, or "".
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        self.body[start..].split('"').next().map(str::to_owned)
    }
}

/// A browser: an HTTP client that follows no redirects, and its cookies.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            cookies: HashMap::new(),
        }
    }

    /// A browser with no cookies that trusts only the CA in `ca_pem` (a
    /// site behind a TLS proxy with a test certificate).
    #[allow(clippy::expect_used)]
    pub fn trusting(ca_pem: &str) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM certificate");
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .tls_certs_only([ca])
                .build()
                .expect("an HTTP client"),
            cookies: HashMap::new(),
        }
    }

    /// The cookies it holds, by name.
    pub fn cookies(&self) -> &HashMap<String, String> {
        &self.cookies
    }

    /// Sets a cookie by hand (a test planting one).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Result<Page, reqwest::Error> {
        for value in response.headers().get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
        Ok(Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    }

    /// `GET url` with the cookies.
    pub async fn get(&mut self, url: &str) -> Result<Page, reqwest::Error> {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await?;
        self.keep(response).await
    }

    /// `POST url` of a form, with the cookies.
    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Result<Page, reqwest::Error> {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await?;
        self.keep(response).await
    }

    /// Follows a sign-in from `authorize_url`: the development login as
    /// `user` when asked (posting to `{issuer}/login`), then Approve on the
    /// consent page. The callback URL the server redirected to, or the page
    /// that stopped the flow.
    pub async fn sign_in(
        &mut self,
        issuer: &str,
        authorize_url: &str,
        user: &str,
    ) -> Result<Result<String, Page>, reqwest::Error> {
        let mut page = self.get(authorize_url).await?;
        if page.status.is_success() && page.body.contains("name=\"user\"") {
            let (Some(pending), Some(csrf)) = (page.field("pending"), page.field("csrf")) else {
                return Ok(Err(page));
            };
            page = self
                .post(
                    &format!("{issuer}/login"),
                    &[("pending", &pending), ("csrf", &csrf), ("user", user)],
                )
                .await?;
        }
        if page.status.is_success() && page.body.contains("value=\"approve\"") {
            let (Some(pending), Some(csrf)) = (page.field("pending"), page.field("csrf")) else {
                return Ok(Err(page));
            };
            page = self
                .post(
                    &format!("{issuer}/consent"),
                    &[
                        ("pending", &pending),
                        ("csrf", &csrf),
                        ("decision", "approve"),
                    ],
                )
                .await?;
        }
        if page.status.is_redirection() {
            return Ok(Ok(page.location().to_owned()));
        }
        Ok(Err(page))
    }
}

impl Browser {
    /// Follows a sign-in from `start` across sites until a redirect to a
    /// URL starting with `stop_at` (the client's callback), which it
    /// returns. On each page with a POST form it submits the form's hidden
    /// fields, `user` when the form asks for one, and `decision=approve`
    /// when the form has that button: our login and consent pages and a
    /// provider double's login page alike. The page that stopped the flow
    /// otherwise.
    pub async fn sign_in_through(
        &mut self,
        start: &str,
        user: &str,
        stop_at: &str,
    ) -> Result<Result<String, Page>, reqwest::Error> {
        let Ok(mut at) = url::Url::parse(start) else {
            return Ok(Err(Page {
                status: reqwest::StatusCode::BAD_REQUEST,
                headers: reqwest::header::HeaderMap::new(),
                body: format!("not a URL: {start}"),
            }));
        };
        let mut page = self.get(at.as_str()).await?;
        for _ in 0..12 {
            if page.status.is_redirection() {
                let location = page.location().to_owned();
                let Ok(next) = at.join(&location) else {
                    return Ok(Err(page));
                };
                if next.as_str().starts_with(stop_at) {
                    return Ok(Ok(next.to_string()));
                }
                at = next;
                page = self.get(at.as_str()).await?;
                continue;
            }
            let Some(form) = post_form(&page.body) else {
                return Ok(Err(page));
            };
            let Ok(action) = at.join(&form.action) else {
                return Ok(Err(page));
            };
            let mut fields = form.hidden;
            if form.asks_user {
                fields.push(("user".into(), user.into()));
            }
            if form.approve {
                fields.push(("decision".into(), "approve".into()));
            }
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            at = action;
            page = self.post(at.as_str(), &pairs).await?;
        }
        Ok(Err(page))
    }
}

struct PostForm {
    action: String,
    hidden: Vec<(String, String)>,
    asks_user: bool,
    approve: bool,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    tag[start..].split('"').next().map(unescape)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The first `<form method="post">` of `html`.
fn post_form(html: &str) -> Option<PostForm> {
    let start = html.find("<form method=\"post\"")?;
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let open = &form[..form.find('>')?];
    let action = attribute(open, "action")?;
    let mut hidden = Vec::new();
    for tag in form.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        if tag.contains("type=\"hidden\"")
            && let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value"))
        {
            hidden.push((name, value));
        }
    }
    Some(PostForm {
        action,
        hidden,
        asks_user: form.contains("name=\"user\""),
        approve: form.contains("value=\"approve\""),
    })
}

/// The query parameters of `url`.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
