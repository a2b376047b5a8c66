use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const B64: data_encoding::Encoding = data_encoding::BASE64URL_NOPAD;

/// Why a PKCE value could not be made or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A code verifier is not 43 to 128 characters long (RFC 7636 section 4.1).
    #[error("a code verifier must be 43 to 128 characters; this one has {0}")]
    VerifierLength(usize),
    /// A code verifier contains a character outside the unreserved set
    /// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
    #[error("a code verifier may only contain A-Z, a-z, 0-9, '-', '.', '_' and '~'")]
    VerifierCharacter,
}

fn random_token() -> Result<String, PkceError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|_| PkceError::Random)?;
    Ok(B64.encode(bytes.as_ref()))
}

mcp_auth_core::secret_string! {
    /// The PKCE `code_verifier` (RFC 7636 section 4.1): a secret the client
    /// keeps until the token exchange.
    ///
    /// Not `Clone`, `Debug` prints `[REDACTED]`, zeroed on drop.
    pub struct CodeVerifier;
}

impl CodeVerifier {
    /// 32 bytes from the CSPRNG, base64url: 43 characters (RFC 7636
    /// section 4.1's recommendation).
    pub fn generate() -> Result<Self, PkceError> {
        Ok(Self::wrap(random_token()?))
    }

    /// Accepts an existing verifier after checking RFC 7636's rules.
    pub fn from_string(verifier: String) -> Result<Self, PkceError> {
        let verifier = Self::wrap(verifier);
        let len = verifier.expose().chars().count();
        if !(43..=128).contains(&len) {
            return Err(PkceError::VerifierLength(len));
        }
        if !verifier
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(PkceError::VerifierCharacter);
        }
        Ok(verifier)
    }

    /// The verifier, for the token request.
    pub fn secret(&self) -> &str {
        self.expose()
    }

    /// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 section 4.2).
    pub fn s256_challenge(&self) -> CodeChallenge {
        CodeChallenge(B64.encode(&Sha256::digest(self.expose().as_bytes())))
    }
}

/// The `code_challenge` sent in the authorization request, always with
/// `code_challenge_method=S256`. Public by design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// The challenge.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Always `S256`.
    pub fn method(&self) -> &'static str {
        "S256"
    }
}

macro_rules! random_value {
    ($(#[$doc:meta])* $name:ident) => {
        mcp_auth_core::secret_string! {
            $(#[$doc])*
            ///
            /// Zeroed on drop; compared in constant time (`matches`).
            pub struct $name;
        }

        impl $name {
            /// 32 bytes from the CSPRNG, base64url (43 characters).
            pub fn generate() -> Result<Self, PkceError> {
                random_token().map(Self::wrap)
            }

            /// A value this crate generated and stored (sealed) earlier.
            #[allow(dead_code)]
            pub(crate) fn from_stored(value: String) -> Self {
                Self::wrap(value)
            }

            /// The value, for the authorization request.
            pub fn as_str(&self) -> &str {
                self.expose()
            }
        }
    };
}

random_value!(
    /// The OAuth `state` parameter: binds a callback to the authorization
    /// request this client made (CSRF protection, RFC 6749 section 10.12).
    StateToken
);
random_value!(
    /// The OpenID Connect `nonce`: binds an ID token to this authorization
    /// request (replay protection, OIDC Core section 3.1.2.1).
    Nonce
);

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn state_and_nonce_are_wiped_on_drop() {
        wiped_on_drop::<StateToken>();
        wiped_on_drop::<Nonce>();
    }

    #[test]
    fn state_matches_only_itself_whatever_the_length() {
        let state = StateToken::generate().unwrap();
        let value = state.as_str().to_owned();
        assert!(state.matches(&value));
        assert!(!state.matches(&value[..42]));
        assert!(!state.matches(&format!("{value}x")));
        assert!(!state.matches(""));
        let mut flipped = value.into_bytes();
        flipped[0] ^= 1;
        assert!(!state.matches(std::str::from_utf8(&flipped).unwrap()));
    }
}
