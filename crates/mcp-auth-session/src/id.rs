//! Session ids and the handles (hashes) stores keep instead of them.

use std::fmt;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::SessionError;

/// Length of a session id in characters: 32 random bytes, base64url, no padding.
pub const SESSION_ID_LEN: usize = 43;

mcp_auth_core::secret_string! {
    /// A session id: 256 bits from the operating system's CSPRNG, base64url.
    ///
    /// This is the bearer secret handed to the client (in a cookie or an
    /// `Mcp-Session-Id` header). It is never stored: stores keep its SHA-256
    /// ([`SessionHandle`]). `Debug` is redacted, the text is wiped on drop;
    /// use [`SessionId::expose`] to put it on the wire.
    pub struct SessionId;
}

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, SessionError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| SessionError::Random)?;
        Ok(Self::wrap(BASE64URL_NOPAD.encode(bytes.as_ref())))
    }

    /// Parses an id received from a client. Only the canonical form
    /// [`SessionId::generate`] produces is accepted: exactly 43 base64url
    /// characters decoding to 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SessionError> {
        if text.len() != SESSION_ID_LEN {
            return Err(SessionError::MalformedId);
        }
        // BASE64URL_NOPAD rejects non-canonical trailing bits and padding.
        match BASE64URL_NOPAD.decode(text.as_bytes()) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self::wrap(text.to_owned())),
            _ => Err(SessionError::MalformedId),
        }
    }

    /// The handle a store keeps for this id: its SHA-256.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle(Sha256::digest(self.expose().as_bytes()).into())
    }
}

/// A copy of the id: the manager hands one to the caller and keeps none.
impl Clone for SessionId {
    fn clone(&self) -> Self {
        Self::wrap(self.expose().to_owned())
    }
}

/// Constant-time comparison of the ids' text.
impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose())
    }
}
impl Eq for SessionId {}

/// The SHA-256 of a [`SessionId`]: what stores key sessions by.
///
/// A handle identifies a session (to list or revoke it, or in logs) but cannot
/// be used as a session id, so a dump of the store, a log line or an admin
/// page listing handles yields no usable session. Equality is constant time.
#[derive(Clone, Copy)]
pub struct SessionHandle([u8; 32]);

impl SessionHandle {
    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex (64 characters); the form stores and logs use.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }

    /// Parses the 64-character lower-case hex form.
    pub fn from_hex(text: &str) -> Result<Self, SessionError> {
        match HEXLOWER.decode(text.as_bytes()) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                .map(Self)
                .map_err(|_| SessionError::MalformedId),
            Err(_) => Err(SessionError::MalformedId),
        }
    }

    /// The first 12 hex characters: enough to correlate log lines.
    pub fn short(&self) -> String {
        HEXLOWER.encode(&self.0[..6])
    }
}

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SessionHandle {}

// Agrees with the constant-time `PartialEq`: both look at all 32 bytes.
impl std::hash::Hash for SessionHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}…)", self.short())
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_are_43_chars_256_bits_and_distinct() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_eq!(a.expose().len(), SESSION_ID_LEN);
        assert_eq!(
            BASE64URL_NOPAD.decode(a.expose().as_bytes()).unwrap().len(),
            32
        );
        assert_ne!(a, b);
        assert_ne!(a.handle(), b.handle());
        assert_eq!(SessionId::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn handle_is_sha256_of_the_id_text() {
        let id = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // sha256("A" * 43), computed independently with `printf 'A%.0s' {1..43} | sha256sum`.
        assert_eq!(
            id.handle().to_hex(),
            HEXLOWER.encode(&Sha256::digest([b'A'; 43]))
        );
        let hex = id.handle().to_hex();
        assert_eq!(SessionHandle::from_hex(&hex).unwrap(), id.handle());
        assert!(SessionHandle::from_hex(&hex[..62]).is_err());
        assert!(SessionHandle::from_hex(&hex.to_uppercase()).is_err());
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = SessionId::generate().unwrap();
        let text = good.expose().to_owned();
        for bad in [
            String::new(),
            text[..42].to_owned(),
            format!("{text}A"),
            format!("{}=", &text[..42]),
            format!("{}+", &text[..42]),
            format!("{}/", &text[..42]),
            format!("{} ", &text[..42]),
            // Non-canonical: the last character carries bits beyond the 256th.
            format!("{}B", &"A".repeat(42)),
        ] {
            assert!(
                matches!(SessionId::parse(&bad), Err(SessionError::MalformedId)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let id = SessionId::generate().unwrap();
        assert_eq!(format!("{id:?}"), "SessionId([REDACTED])");
        let debug = format!("{id:?} {:?}", id.handle());
        assert!(!debug.contains(id.expose()));
        assert!(!debug.contains(&id.handle().to_hex()));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_43_char_canonical(text in ".{0,60}") {
            if let Ok(id) = SessionId::parse(&text) {
                prop_assert_eq!(id.expose(), text.as_str());
                prop_assert_eq!(text.len(), SESSION_ID_LEN);
            }
        }
    }
}
