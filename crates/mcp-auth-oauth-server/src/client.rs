//! Clients: redirect URI rules, client ID metadata documents (fetched with
//! an SSRF guard) and dynamic registration requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcp_auth_http::{HttpClient, OutboundClient, ResponseLimit, UrlPolicy};
use serde::Deserialize;

use crate::store::{ClientInfo, ClientOrigin};

/// Largest client metadata document read: 5 KiB.
pub const MAX_METADATA_DOCUMENT: usize = 5 * 1024;
/// Most redirect URIs kept for one client.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 512;
/// Longest client name kept (longer names are cut).
pub const MAX_CLIENT_NAME: usize = 100;

const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// A loopback redirect split into (host, rest after the port); `None` if
/// it is not `http://<loopback>[:port]<rest>`.
fn loopback_parts(uri: &str) -> Option<(&'static str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let host = LOOPBACK_HOSTS.into_iter().find(|h| after.starts_with(h))?;
    let mut rest = &after[host.len()..];
    if let Some(port) = rest.strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 || port[..digits].parse::<u16>().ok()? == 0 {
            return None;
        }
        rest = &port[digits..];
    }
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    Some((host, rest))
}

/// Whether `uri` may be registered: absolute, no fragment, no userinfo,
/// `https`, or `http` to a loopback host, or one of `private_use` exactly.
pub fn acceptable_redirect(uri: &str, private_use: &[String]) -> bool {
    if uri.len() > MAX_REDIRECT_URI_LEN || uri.contains('#') || uri.chars().any(char::is_whitespace)
    {
        return false;
    }
    if private_use.iter().any(|allowed| allowed == uri) {
        return true;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() || url.host_str().is_none() {
        return false;
    }
    match url.scheme() {
        "https" => true,
        "http" => loopback_parts(uri).is_some(),
        _ => false,
    }
}

/// Whether the requested redirect URI matches a registered one: the same
/// string, or (RFC 8252 section 7.3) the same loopback host and the same
/// path and query with any port, a registration without a port included.
/// No normalisation: case, trailing slashes, dot segments and extra query
/// parameters all make a difference.
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if requested.contains('#') || requested.contains('@') {
        return false;
    }
    if registered == requested {
        return true;
    }
    matches!(
        (loopback_parts(registered), loopback_parts(requested)),
        (Some(a), Some(b)) if a == b
    )
}

/// Private-use URI schemes of editors and desktop clients that register
/// only their own scheme (not reverse-domain form), accepted by
/// [`PrivateUsePolicy::ReverseDomainAndKnownEditors`]: `cursor`
/// (`cursor://anysphere.cursor-mcp/oauth/callback`), `vscode` and
/// `vscode-insiders`, `windsurf`.
pub const KNOWN_EDITOR_SCHEMES: &[&str] = &["cursor", "vscode", "vscode-insiders", "windsurf"];

/// Which private-use (app) redirect URIs a registration or a client
/// metadata document may use, beside `https` and loopback `http`, which are
/// always accepted, and those listed with
/// `AuthServerBuilder::private_use_redirects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PrivateUsePolicy {
    /// The default: schemes in reverse-domain form (RFC 8252 §7.1,
    /// `com.example.app:/callback`) and [`KNOWN_EDITOR_SCHEMES`]. The
    /// consent page shows such a destination as "an application on this
    /// device".
    #[default]
    ReverseDomainAndKnownEditors,
    /// Only the listed URIs.
    ListedOnly,
}

/// A scheme that names no app: web, script, local and data schemes.
const NOT_AN_APP: &[&str] = &[
    "http",
    "https",
    "javascript",
    "data",
    "file",
    "ftp",
    "ws",
    "wss",
    "blob",
    "about",
    "mailto",
    "vbscript",
    "filesystem",
];

/// Whether `uri` is a private-use redirect `policy` accepts (see
/// [`PrivateUsePolicy`]).
pub fn acceptable_private_use(uri: &str, policy: PrivateUsePolicy) -> bool {
    if policy == PrivateUsePolicy::ListedOnly
        || uri.len() > MAX_REDIRECT_URI_LEN
        || uri.contains('#')
        || !uri.is_ascii()
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let scheme = url.scheme();
    if NOT_AN_APP.contains(&scheme) {
        return false;
    }
    let reverse_domain = scheme.contains('.')
        && scheme.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    reverse_domain || KNOWN_EDITOR_SCHEMES.contains(&scheme)
}

/// The server's private-use redirect settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrivateUse {
    /// Accepted exactly as listed, whatever the policy.
    pub(crate) listed: Vec<String>,
    pub(crate) policy: PrivateUsePolicy,
}

/// Keeps the acceptable ones of `uris` (a registration is not refused
/// whole because one URI is bad); the refused ones are returned too.
pub(crate) fn filter_redirects(
    uris: &[String],
    private_use: &PrivateUse,
) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for uri in uris {
        let acceptable = acceptable_redirect(uri, &private_use.listed)
            || acceptable_private_use(uri, private_use.policy);
        if kept.len() < MAX_REDIRECT_URIS && acceptable {
            if !kept.contains(uri) {
                kept.push(uri.clone());
            }
        } else {
            refused.push(uri.clone());
        }
    }
    (kept, refused)
}

/// Characters that change how the text around them is shown without
/// showing themselves: bidirectional overrides, embeddings and isolates,
/// zero-width characters, the byte-order mark. A name with U+202E could
/// otherwise show its letters in another order than they are.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A name to show: trimmed, control characters and invisible format
/// characters (bidirectional, zero-width) removed, cut to
/// [`MAX_CLIENT_NAME`] characters.
pub(crate) fn display_name(name: Option<&str>, fallback: &str) -> String {
    let cleaned: String = name
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .take(MAX_CLIENT_NAME)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The client metadata this server reads (RFC 7591 names), from a
/// registration request or a metadata document.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientMetadata {
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) client_name: Option<String>,
    #[serde(default)]
    pub(crate) redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub(crate) grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) response_types: Option<Vec<String>>,
}

/// Why a client ID metadata document is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The `client_id` URL is not an acceptable document URL.
    #[error("the client_id is not an https URL with a path")]
    BadUrl,
    /// The document could not be fetched (unreachable, non-public address,
    /// too large, timeout, not 200).
    #[error("the client metadata document could not be fetched")]
    Fetch,
    /// The document is not JSON client metadata.
    #[error("the client metadata document is not valid")]
    Invalid,
    /// The document's `client_id` is not the URL it came from.
    #[error("the client metadata document names another client_id")]
    ClientIdMismatch,
    /// No acceptable redirect URI in the document.
    #[error("the client metadata document has no acceptable redirect URI")]
    NoRedirect,
    /// The document asks for client authentication this server does not
    /// offer metadata-document clients (only `none`).
    #[error("the client metadata document asks for an unsupported authentication method")]
    AuthMethod,
}

/// A cached resolution and until when it holds.
type Cached = (Result<ClientInfo, MetadataError>, u64);

/// Fetches and caches client ID metadata documents.
pub(crate) struct MetadataDocuments {
    http: Arc<dyn HttpClient>,
    cache: Mutex<HashMap<String, Cached>>,
    allow_loopback: bool,
}

impl std::fmt::Debug for MetadataDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataDocuments")
            .field("allow_loopback", &self.allow_loopback)
            .finish_non_exhaustive()
    }
}

const CACHE_ENTRIES: usize = 1024;
const FAILURE_TTL: u64 = 30;
const MIN_TTL: u64 = 60;
const MAX_TTL: u64 = 24 * 3600;
const DEFAULT_TTL: u64 = 3600;

impl MetadataDocuments {
    pub(crate) fn new(
        http: Option<Arc<dyn HttpClient>>,
        allow_loopback: bool,
    ) -> Result<Self, mcp_auth_http::HttpError> {
        let http: Arc<dyn HttpClient> = match http {
            Some(http) => http,
            None => {
                let mut builder = OutboundClient::builder()
                    .policy(UrlPolicy::PublicHttps)
                    .timeout(Duration::from_secs(5))
                    .max_response(MAX_METADATA_DOCUMENT);
                if allow_loopback {
                    builder = builder.dangerous_allow_loopback();
                }
                Arc::new(builder.build()?)
            }
        };
        Ok(Self {
            http,
            cache: Mutex::new(HashMap::new()),
            allow_loopback,
        })
    }

    /// Whether `client_id` names a metadata document.
    pub(crate) fn is_document_url(client_id: &str) -> bool {
        client_id.starts_with("https://") || client_id.starts_with("http://")
    }

    fn check_url(&self, client_id: &str) -> Result<url::Url, MetadataError> {
        let url = url::Url::parse(client_id).map_err(|_| MetadataError::BadUrl)?;
        let loopback_http = url.scheme() == "http"
            && self.allow_loopback
            && url.host_str().is_some_and(mcp_auth_core::is_loopback_host);
        // Dot segments are refused as written and as percent-encoded (the
        // parser resolves `%2e%2e` like `..`), and the URL must be exactly
        // its normal form: what is fetched is what was named.
        let dot_segment = client_id.split('/').skip(3).any(|segment| {
            let decoded = url::form_urlencoded::parse(format!("s={segment}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            decoded == "." || decoded == ".."
        }) || url.as_str() != client_id;
        if !(url.scheme() == "https" || loopback_http)
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() == "/"
            || dot_segment
            || client_id.len() > MAX_REDIRECT_URI_LEN
        {
            return Err(MetadataError::BadUrl);
        }
        Ok(url)
    }

    /// The client the document at `client_id` describes.
    pub(crate) async fn resolve(
        &self,
        client_id: &str,
        now: u64,
        private_use: &PrivateUse,
    ) -> Result<ClientInfo, MetadataError> {
        let url = self.check_url(client_id)?;
        if let Some((cached, until)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            && *until > now
        {
            return cached.clone();
        }
        let (result, ttl) = self.fetch(&url, client_id, now, private_use).await;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(client_id.to_owned(), (result.clone(), now + ttl));
        result
    }

    async fn fetch(
        &self,
        url: &url::Url,
        client_id: &str,
        now: u64,
        private_use: &PrivateUse,
    ) -> (Result<ClientInfo, MetadataError>, u64) {
        let failed = |e| (Err(e), FAILURE_TTL);
        let Ok(mut request) = http::Request::get(client_id)
            .header("accept", "application/json")
            .body(Vec::new())
        else {
            return failed(MetadataError::BadUrl);
        };
        request
            .extensions_mut()
            .insert(ResponseLimit(MAX_METADATA_DOCUMENT));
        let response = match self.http.send(request).await {
            Ok(response) if response.status() == http::StatusCode::OK => response,
            Ok(_) | Err(_) => {
                tracing::warn!(target: crate::AUDIT, event = "client_metadata_unavailable", host = url.host_str().unwrap_or(""));
                return failed(MetadataError::Fetch);
            }
        };
        let ttl = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(mcp_auth_http::cache_max_age)
            .map(|age| age.as_secs())
            .unwrap_or(DEFAULT_TTL)
            .clamp(MIN_TTL, MAX_TTL);
        let Ok(document) = serde_json::from_slice::<ClientMetadata>(response.body()) else {
            return failed(MetadataError::Invalid);
        };
        if document.client_id.as_deref() != Some(client_id) {
            return failed(MetadataError::ClientIdMismatch);
        }
        if !matches!(
            document.token_endpoint_auth_method.as_deref(),
            None | Some("none")
        ) {
            return failed(MetadataError::AuthMethod);
        }
        let (redirect_uris, _) = filter_redirects(&document.redirect_uris, private_use);
        if redirect_uris.is_empty() {
            return failed(MetadataError::NoRedirect);
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let refresh = document
            .grant_types
            .as_ref()
            .is_none_or(|g| g.iter().any(|t| t == "refresh_token"));
        let client = ClientInfo {
            client_id: client_id.to_owned(),
            name: display_name(document.client_name.as_deref(), &host),
            redirect_uris,
            secret_hash: None,
            refresh,
            origin: ClientOrigin::MetadataDocument { host },
            last_used: now,
        };
        (Ok(client), ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_differs() {
        let r = "http://localhost/callback";
        assert!(redirect_matches(r, "http://localhost:53123/callback"));
        assert!(redirect_matches(r, "http://localhost/callback"));
        assert!(redirect_matches(
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:9999/cb"
        ));
        assert!(redirect_matches(
            "http://[::1]/cb?x=1",
            "http://[::1]:80/cb?x=1"
        ));
        for bad in [
            "http://localhost:53123/callback/",     // trailing slash
            "http://localhost:53123/Callback",      // case
            "http://localhost:53123/callback?x",    // extra query
            "http://localhost:53123/callback#f",    // fragment
            "http://u@localhost:53123/callback",    // userinfo
            "http://localhost:53123/a/../callback", // dot segments
            "https://localhost:53123/callback",     // scheme
            "http://127.0.0.1:53123/callback",      // another loopback name
            "http://localhost.evil.com/callback",
            "http://localhost:0/callback",
            "http://localhost:99999/callback",
        ] {
            assert!(!redirect_matches(r, bad), "{bad}");
        }
        let https = "https://app.example.com/cb";
        assert!(redirect_matches(https, https));
        assert!(!redirect_matches(https, "https://app.example.com:8443/cb"));
        assert!(!redirect_matches(https, "https://app.example.com/cb/"));
        assert!(!redirect_matches(https, "https://APP.example.com/cb"));
        assert!(!redirect_matches(https, "http://app.example.com/cb"));
    }

    #[test]
    fn registrable_redirects() {
        let private = vec!["cursor://anysphere.cursor-mcp/oauth/callback".to_owned()];
        assert!(acceptable_redirect("https://app.example.com/cb", &private));
        assert!(acceptable_redirect("http://localhost/callback", &private));
        assert!(acceptable_redirect("http://127.0.0.1:8080/cb", &private));
        assert!(acceptable_redirect(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            &private
        ));
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "https://user:pw@app.example.com/cb",
            "cursor://anysphere.cursor-mcp/other",
            "javascript:alert(1)",
            "relative/path",
            "https:// spaced.example.com/",
        ] {
            assert!(!acceptable_redirect(bad, &private), "{bad}");
        }
        let listed_only = PrivateUse {
            listed: private.clone(),
            policy: PrivateUsePolicy::ListedOnly,
        };
        let (kept, refused) = filter_redirects(
            &[
                "https://ok.example.com/cb".into(),
                "http://bad.example.com/cb".into(),
                "cursor://anysphere.cursor-mcp/other".into(),
            ],
            &listed_only,
        );
        assert_eq!(kept, ["https://ok.example.com/cb"]);
        assert_eq!(
            refused,
            [
                "http://bad.example.com/cb",
                "cursor://anysphere.cursor-mcp/other"
            ]
        );
    }

    #[test]
    fn the_default_private_use_policy_lets_apps_and_known_editors_in_and_nothing_else() {
        let default = PrivateUsePolicy::default();
        for good in [
            "com.example.app:/oauth/callback",
            "com.example.app:/cb?x=1",
            "io.github.some-app://callback",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "vscode://vscode.github-authentication/did-authenticate",
            "vscode-insiders://x/cb",
            "windsurf://codeium.windsurf/mcp/callback",
        ] {
            assert!(acceptable_private_use(good, default), "{good}");
            assert!(
                !acceptable_private_use(good, PrivateUsePolicy::ListedOnly),
                "{good}"
            );
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "http://evil.example.com/cb",
            "https://evil.example.com/cb",
            "myapp://callback",
            "evil://cursor/cb",
            "com.example.app:/cb#frag",
            "com.example.app://user:pw@host/cb",
            "Com.Example.App:/cb\u{202E}",
            "com..example:/cb",
            "blob:https://x/y",
            "about:blank",
        ] {
            assert!(!acceptable_private_use(bad, default), "{bad}");
        }
        // Registered under the default: the editor's URI is kept, a
        // made-up scheme is not.
        let (kept, refused) = filter_redirects(
            &[
                "cursor://anysphere.cursor-mcp/oauth/callback".into(),
                "myapp://cb".into(),
            ],
            &PrivateUse::default(),
        );
        assert_eq!(kept, ["cursor://anysphere.cursor-mcp/oauth/callback"]);
        assert_eq!(refused, ["myapp://cb"]);
    }

    #[test]
    fn document_urls_with_dot_segments_or_not_in_normal_form_are_refused() {
        let documents = MetadataDocuments::new(None, false).unwrap();
        assert!(
            documents
                .check_url("https://app.example/client.json")
                .is_ok()
        );
        for bad in [
            "https://app.example/a/../client.json",
            "https://app.example/a/./client.json",
            "https://app.example/a/%2e%2e/client.json",
            "https://app.example/a/%2E%2e/client.json",
            "https://app.example/a/%2e/client.json",
            "https://APP.example/client.json",
            "https://app.example:443/client.json",
        ] {
            assert!(documents.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(display_name(Some("  My\u{0007} App "), "x"), "My App");
        assert_eq!(
            display_name(Some("Good\u{202E}txt.exe\u{200B}\u{2066}"), "x"),
            "Goodtxt.exe"
        );
        assert_eq!(display_name(None, "host.example"), "host.example");
        assert_eq!(
            display_name(Some(&"a".repeat(500)), "x").len(),
            MAX_CLIENT_NAME
        );
    }
}
