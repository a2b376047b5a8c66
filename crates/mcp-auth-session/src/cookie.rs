//! A `__Host-` session cookie for browser-facing endpoints.

use secrecy::SecretString;

use crate::{SessionError, SessionId};

/// Builds and reads the session cookie.
///
/// The cookie is always `__Host-<name>=<id>; Path=/; Secure; HttpOnly;
/// SameSite=Lax`: the `__Host-` prefix makes browsers refuse it unless it is
/// Secure, has `Path=/` and no `Domain`, so a sibling subdomain cannot plant
/// or overwrite it (RFC 6265bis §4.1.3.2); HttpOnly keeps it from scripts;
/// SameSite=Lax keeps it off cross-site subrequests and form posts.
///
/// ```
/// use mcp_auth_session::{SessionCookie, SessionId};
/// use secrecy::ExposeSecret;
///
/// let cookie = SessionCookie::new("sid")?;
/// let id = SessionId::generate()?;
/// let set_cookie = cookie.set_cookie(&id);
/// assert!(set_cookie.expose_secret().starts_with("__Host-sid="));
/// let header = format!("theme=dark; {}", set_cookie.expose_secret().split(';').next().unwrap());
/// assert_eq!(cookie.read(&header), Some(id));
/// # Ok::<(), mcp_auth_session::SessionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SessionCookie {
    name: String,
    max_age: Option<u64>,
}

impl SessionCookie {
    /// A cookie named `__Host-<name>`. The name must be a non-empty RFC 6265
    /// token of at most 64 characters (letters, digits, `-`, `_`, `.`).
    pub fn new(name: &str) -> Result<Self, SessionError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(SessionError::InvalidField {
                field: "cookie name",
                reason: "must be 1-64 of letters, digits, '-', '_', '.'",
            });
        }
        Ok(Self {
            name: format!("__Host-{name}"),
            max_age: None,
        })
    }

    /// Adds `Max-Age` (e.g. the absolute timeout) so the browser forgets the
    /// cookie when the session can no longer be valid. Without it, the cookie
    /// is a browser-session cookie.
    pub fn with_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// The full cookie name, `__Host-` included.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` header value carrying `id`. It contains the session
    /// id, so it is returned as a secret.
    pub fn set_cookie(&self, id: &SessionId) -> SecretString {
        let mut value = format!(
            "{}={}; Path=/; Secure; HttpOnly; SameSite=Lax",
            self.name,
            id.expose()
        );
        if let Some(max_age) = self.max_age {
            value.push_str(&format!("; Max-Age={max_age}"));
        }
        SecretString::from(value)
    }

    /// The `Set-Cookie` header value that deletes the cookie (sign-out).
    pub fn clear_cookie(&self) -> String {
        format!(
            "{}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
            self.name
        )
    }

    /// Reads the session id from a `Cookie` request header. Returns `None`
    /// when the cookie is absent or its value is not a well-formed id.
    pub fn read(&self, cookie_header: &str) -> Option<SessionId> {
        cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.name)
            .find_map(|(_, value)| SessionId::parse(value.trim_matches('"')).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn attributes_are_host_prefixed_secure_httponly_lax_root_path() {
        let cookie = SessionCookie::new("sid").unwrap();
        let id = SessionId::generate().unwrap();
        let value = cookie.set_cookie(&id);
        let value = value.expose_secret();
        assert!(value.starts_with("__Host-sid="));
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(
                value.split("; ").any(|a| a == attr),
                "{attr} missing in {value}"
            );
        }
        assert!(!value.contains("Domain"));
        let with_age = cookie
            .clone()
            .with_max_age(std::time::Duration::from_secs(86400))
            .set_cookie(&id);
        assert!(with_age.expose_secret().ends_with("; Max-Age=86400"));
        assert!(cookie.clear_cookie().contains("Max-Age=0"));
        assert!(!format!("{value:?}").is_empty());
        assert!(!format!("{:?}", cookie.set_cookie(&id)).contains(id.expose()));
    }

    #[test]
    fn reads_only_its_own_well_formed_cookie() {
        let cookie = SessionCookie::new("sid").unwrap();
        let id = SessionId::generate().unwrap();
        let pair = format!("__Host-sid={}", id.expose());
        assert_eq!(cookie.read(&pair), Some(id.clone()));
        assert_eq!(
            cookie.read(&format!("a=b;  {pair} ; c=d")),
            Some(id.clone())
        );
        // A cookie without the prefix (settable by a sibling subdomain) is ignored.
        assert_eq!(cookie.read(&format!("sid={}", id.expose())), None);
        assert_eq!(cookie.read("__Host-sid=not-an-id"), None);
        assert_eq!(cookie.read(""), None);
        assert_eq!(cookie.read("=;;=;__Host-sid"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "a b", "a;b", "a=b", &"x".repeat(65), "é"] {
            assert!(SessionCookie::new(name).is_err(), "{name:?}");
        }
    }
}
