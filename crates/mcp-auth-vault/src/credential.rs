use std::time::Duration;

use mcp_auth_core::Clock;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A user's upstream OAuth credential (e.g. Spotify or Google tokens).
///
/// Tokens live in [`SecretString`]s: zeroized on drop and printed as
/// `[REDACTED]` by `Debug`.
#[derive(Debug)]
pub struct Credential {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_at: Option<u64>,
    scopes: Vec<String>,
    token_type: Option<String>,
}

impl Credential {
    /// A credential holding just an access token.
    pub fn new(access_token: SecretString) -> Self {
        Self {
            access_token,
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
            token_type: None,
        }
    }

    /// Adds a refresh token.
    pub fn with_refresh_token(mut self, token: SecretString) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// Sets the expiry (seconds since the Unix epoch).
    pub fn with_expires_at(mut self, unix_seconds: u64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// Sets the granted scopes.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the token type (usually `Bearer`).
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = Some(token_type.into());
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The refresh token, if any.
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }

    /// Expiry in seconds since the Unix epoch, if known.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The token type, if known.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// Whether the access token expires within `margin` of `clock`'s now. A
    /// credential without an expiry never counts as expired.
    pub fn expires_within(&self, clock: &dyn Clock, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| clock.unix_seconds().saturating_add(margin.as_secs()) >= at)
    }

    pub(crate) fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
        let wire = WireRef {
            v: 1,
            access_token: self.access_token.expose_secret(),
            refresh_token: self.refresh_token.as_ref().map(|t| t.expose_secret()),
            expires_at: self.expires_at,
            scopes: &self.scopes,
            token_type: self.token_type.as_deref(),
        };
        // Reserve enough up front so the buffer holding the tokens never reallocates
        // (a reallocation would leave an unzeroized copy behind).
        let estimate = 128
            + self.access_token.expose_secret().len() * 2
            + self
                .refresh_token
                .as_ref()
                .map_or(0, |t| t.expose_secret().len() * 2)
            + self.scopes.iter().map(|s| s.len() * 2 + 3).sum::<usize>()
            + self.token_type.as_ref().map_or(0, |t| t.len() * 2);
        let mut out = Zeroizing::new(Vec::with_capacity(estimate));
        serde_json::to_writer(&mut *out, &wire)?;
        Ok(out)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let wire: WireOwned = serde_json::from_slice(bytes)?;
        Ok(Self {
            access_token: SecretString::from(wire.access_token),
            refresh_token: wire.refresh_token.map(SecretString::from),
            expires_at: wire.expires_at,
            scopes: wire.scopes,
            token_type: wire.token_type,
        })
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    v: u8,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOwned {
    #[allow(dead_code)]
    v: u8,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    token_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_core::ManualClock;

    #[test]
    fn debug_redacts_tokens() {
        let c = Credential::new(SecretString::from("at-SECRET-123"))
            .with_refresh_token(SecretString::from("rt-SECRET-456"))
            .with_scopes(["playlist-read-private"]);
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        assert!(shown.contains("playlist-read-private"));
    }

    #[test]
    fn bytes_round_trip() {
        let c = Credential::new(SecretString::from("a\"t\\with escapes\u{1F600}"))
            .with_refresh_token(SecretString::from("rt"))
            .with_expires_at(1_800_000_000)
            .with_scopes(["s1", "s2"])
            .with_token_type("Bearer");
        let back = Credential::from_bytes(&c.to_bytes().expect("encode")).expect("decode");
        assert_eq!(
            back.access_token().expose_secret(),
            c.access_token().expose_secret()
        );
        assert_eq!(back.refresh_token().map(|t| t.expose_secret()), Some("rt"));
        assert_eq!(back.expires_at(), Some(1_800_000_000));
        assert_eq!(back.scopes(), ["s1", "s2"]);
        assert_eq!(back.token_type(), Some("Bearer"));
    }

    #[test]
    fn expiry_uses_the_clock_and_margin() {
        let clock = ManualClock::at_unix(1_000);
        let c = Credential::new(SecretString::from("t")).with_expires_at(1_100);
        assert!(!c.expires_within(&clock, Duration::from_secs(60)));
        assert!(c.expires_within(&clock, Duration::from_secs(100)));
        clock.advance(Duration::from_secs(100));
        assert!(c.expires_within(&clock, Duration::ZERO));
        assert!(!Credential::new(SecretString::from("t")).expires_within(&clock, Duration::MAX));
    }
}
