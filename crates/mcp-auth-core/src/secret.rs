//! One way to declare a secret type, for every crate of the workspace.
//!
//! A secret (a token, a session id, a PKCE verifier, an OAuth `state`) is a
//! newtype declared with [`secret_string!`](crate::secret_string): its
//! `Debug` prints `Name([REDACTED])`, it is zeroized when dropped, it has
//! no derived `PartialEq` (compare with its `matches`, constant time over
//! SHA-256 digests), and no `Clone` unless the crate adds one on purpose.
//! Structs that hold a secret among other fields print [`REDACTED`] for it,
//! the spelling `secrecy`'s `SecretString` uses inside its own `Debug`
//! (`SecretBox<str>([REDACTED])`), so a struct with `SecretString` fields
//! derives `Debug` and every secret in the workspace reads the same.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What `Debug` prints in place of a secret: one spelling everywhere.
pub const REDACTED: &str = "[REDACTED]";

/// Whether `a` and `b` hold the same bytes, in time that depends neither on
/// their contents nor on their lengths: their SHA-256 digests (always 32
/// bytes) are compared with `subtle`. (`subtle`'s slice comparison returns
/// early when the lengths differ, which tells an attacker the length.)
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// A field that `Debug` prints as [`REDACTED`], so a struct holding a
/// secret among other fields can `#[derive(Debug)]` instead of writing its
/// own. It derefs to the value; it adds nothing else (no zeroizing: hold a
/// `Zeroizing` or a [`secret_string!`](crate::secret_string) type inside
/// when the value must be wiped).
///
/// ```
/// use mcp_auth_core::Redacted;
/// #[derive(Debug)]
/// struct Login { user: String, password: Redacted<String> }
/// let login = Login { user: "ada".into(), password: Redacted("hunter2".into()) };
/// assert_eq!(format!("{login:?}"), r#"Login { user: "ada", password: [REDACTED] }"#);
/// assert_eq!(login.password.len(), 7);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> std::ops::Deref for Redacted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Declares a secret string newtype: `Debug` prints `Name([REDACTED])`, the
/// text is zeroized on drop (`ZeroizeOnDrop`), `matches` compares in
/// constant time ([`secrets_equal`]), `expose` lends the text for the one
/// place it must go. The crate adds its own constructors over the
/// generated `pub(crate) fn wrap(String)`.
///
/// ```
/// mcp_auth_core::secret_string! {
///     /// An API key.
///     pub struct ApiKey;
/// }
/// let key = ApiKey::wrap("k-123".to_owned());
/// assert_eq!(format!("{key:?}"), "ApiKey([REDACTED])");
/// assert!(key.matches("k-123") && !key.matches("k-12"));
/// assert_eq!(key.expose(), "k-123");
/// ```
#[macro_export]
macro_rules! secret_string {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        $vis struct $name($crate::__private::Zeroizing<::std::string::String>);

        #[allow(dead_code)]
        impl $name {
            /// Takes `value` as this secret.
            pub(crate) fn wrap(value: ::std::string::String) -> Self {
                Self($crate::__private::Zeroizing::new(value))
            }

            /// The secret's text, for the one place it must go (a request,
            /// a header); never for a log or an error message.
            $vis fn expose(&self) -> &str {
                &self.0
            }

            /// Whether `presented` is this secret, in constant time.
            $vis fn matches(&self, presented: &str) -> bool {
                $crate::secrets_equal(self.0.as_bytes(), presented.as_bytes())
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "{}({})", stringify!($name), $crate::REDACTED)
            }
        }

        // The text lives in a `Zeroizing<String>`, wiped when dropped.
        impl $crate::__private::ZeroizeOnDrop for $name {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::secret_string! {
        /// A test secret.
        pub(crate) struct Probe;
    }

    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn a_declared_secret_is_redacted_wiped_and_compared_in_constant_time() {
        wiped_on_drop::<Probe>();
        let probe = Probe::wrap("s3cret-value".to_owned());
        assert_eq!(format!("{probe:?}"), "Probe([REDACTED])");
        assert!(probe.matches("s3cret-value"));
        for other in ["s3cret-valu", "s3cret-value!", "", "S3cret-value"] {
            assert!(!probe.matches(other), "{other}");
        }
        assert!(secrets_equal(b"", b""));
        assert!(!secrets_equal(b"a", b"ab"));
    }
}
