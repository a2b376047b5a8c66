//! The secrets the server hands out, each its own type (the way oauth2-rs
//! declares them): a redacting `Debug`, no `Display`, zeroized on drop,
//! compared in constant time, stored only as their SHA-256 [`StoreKey`]. The
//! random generator returns them typed, so a code cannot be passed where a
//! refresh token is expected, nor printed by accident.

use crate::ServerError;
use crate::store::StoreKey;

macro_rules! random_secret {
    ($(#[$doc:meta])* $name:ident, $bytes:expr) => {
        mcp_auth_core::secret_string! {
            $(#[$doc])*
            pub(crate) struct $name;
        }

        // Not every secret is presented back or stored under its key.
        #[allow(dead_code)]
        impl $name {
            /// A fresh value from the operating system's CSPRNG, base64url.
            pub(crate) fn generate() -> Result<Self, ServerError> {
                random_text($bytes).map(Self::wrap)
            }

            /// A value presented by a caller.
            pub(crate) fn presented(text: &str) -> Self {
                Self::wrap(text.to_owned())
            }

            /// The key it is stored under (SHA-256).
            pub(crate) fn key(&self) -> StoreKey {
                StoreKey::of(self.expose())
            }
        }
    };
}

random_secret!(
    /// An authorization code: single use, 60 s.
    AuthorizationCode,
    32
);
random_secret!(
    /// A refresh token: rotated on every use.
    RefreshToken,
    32
);
random_secret!(
    /// The CSRF token a page's forms post back.
    CsrfToken,
    32
);
random_secret!(
    /// The id of a pending authorization (login and consent in progress).
    PendingId,
    32
);
random_secret!(
    /// A registered confidential client's secret.
    ClientSecret,
    32
);

/// `bytes` random bytes, base64url. Not a secret by itself: for ids that
/// are public (a grant id, a client id, a token's `jti`).
pub(crate) fn random_id(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| ServerError::Random)?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&buf))
}

fn random_text(bytes: usize) -> Result<String, ServerError> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bytes]);
    getrandom::fill(&mut buf).map_err(|_| ServerError::Random)?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_typed_redacted_and_keyed() {
        let code = AuthorizationCode::generate().unwrap();
        let refresh = RefreshToken::generate().unwrap();
        assert_eq!(code.expose().len(), 43);
        assert_ne!(code.expose(), refresh.expose());
        for text in [
            format!("{code:?}"),
            format!("{refresh:?}"),
            format!("{:?}", CsrfToken::generate().unwrap()),
            format!("{:?}", PendingId::generate().unwrap()),
            format!("{:?}", ClientSecret::generate().unwrap()),
        ] {
            assert!(text.ends_with("([REDACTED])"), "{text}");
        }
        assert!(!format!("{code:?}").contains(code.expose()));
        assert!(code.matches(code.expose()) && !code.matches(refresh.expose()));
        assert!(code.key() == StoreKey::of(code.expose()));
        assert!(AuthorizationCode::presented(code.expose()).key() == code.key());
    }
}
