use std::fmt;

use data_encoding::BASE32_NOPAD;

/// A validated user identifier: the stable id of a signed-in user of an MCP
/// server (an OIDC `sub`, an e-mail address, an internal account id).
///
/// Valid ids are 1 to [`UserId::MAX_LEN`] bytes of UTF-8 without control
/// characters. Equality is byte equality: `Alice` and `alice` are different
/// users (normalise before constructing if your identity provider does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// Why a string is not a valid [`UserId`] or storage key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUserId {
    /// The id is the empty string.
    #[error("user id is empty")]
    Empty,
    /// The id is longer than [`UserId::MAX_LEN`] bytes.
    #[error("user id is {len} bytes long; the maximum is {max}")]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The id contains a control character (which would allow log injection).
    #[error("user id contains a control character at byte {at}")]
    ControlCharacter {
        /// Byte offset of the first control character.
        at: usize,
    },
    /// A storage key that is not the canonical encoding of any user id.
    #[error("not a canonical user storage key")]
    NotAStorageKey,
}

impl UserId {
    /// The longest accepted user id, in bytes. Chosen so that the storage key
    /// (base32, 8 characters per 5 bytes) plus a short file extension fits in
    /// the 255-byte file-name limit of common file systems.
    pub const MAX_LEN: usize = 128;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidUserId> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidUserId::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(InvalidUserId::TooLong {
                len: id.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some((at, _)) = id.char_indices().find(|(_, c)| c.is_control()) {
            return Err(InvalidUserId::ControlCharacter { at });
        }
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which this user's data is stored: an injective encoding
    /// (RFC 4648 base32, upper case, no padding) of the id's bytes, made only
    /// of `A-Z` and `2-7`. Safe as a file name on every common file system,
    /// case-insensitive ones included, and as a Redis key segment.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey(BASE32_NOPAD.encode(self.0.as_bytes()))
    }

    /// Decodes a storage key back to the user id. Only the canonical encoding
    /// produced by [`UserId::storage_key`] is accepted, so a planted file with
    /// a non-canonical name can never alias an existing user.
    pub fn from_storage_key(key: &str) -> Result<Self, InvalidUserId> {
        let bytes = BASE32_NOPAD
            .decode(key.as_bytes())
            .map_err(|_| InvalidUserId::NotAStorageKey)?;
        let id = String::from_utf8(bytes).map_err(|_| InvalidUserId::NotAStorageKey)?;
        let user = Self::new(id)?;
        if user.storage_key().as_str() != key {
            return Err(InvalidUserId::NotAStorageKey);
        }
        Ok(user)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for UserId {
    type Error = InvalidUserId;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidUserId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// The storage key of a [`UserId`]; see [`UserId::storage_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(String);

impl StorageKey {
    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(id: &str) -> String {
        UserId::new(id)
            .expect("valid id")
            .storage_key()
            .as_str()
            .to_owned()
    }

    #[test]
    fn ids_that_naive_sanitizers_merge_get_distinct_keys() {
        // `re.sub(r'[^\w\-_]', '_', id)[:50]` maps each of these pairs to one file.
        let pairs = [
            ("a.b", "a_b"),
            ("alice@example.com", "alice_example_com"),
            ("../etc/passwd", "___etc_passwd"),
            ("user 1", "user_1"),
        ];
        for (x, y) in pairs {
            assert_ne!(key(x), key(y), "{x:?} and {y:?} must not share storage");
        }
        let long_a = format!("{}{}", "p".repeat(60), "a");
        let long_b = format!("{}{}", "p".repeat(60), "b");
        assert_eq!(long_a[..50], long_b[..50], "common 50-byte prefix");
        assert_ne!(key(&long_a), key(&long_b));
    }

    #[test]
    fn ids_differing_only_in_case_get_keys_differing_in_more_than_case() {
        let a = key("Alice");
        let b = key("alice");
        assert_ne!(a.to_ascii_lowercase(), b.to_ascii_lowercase());
    }

    #[test]
    fn storage_keys_are_file_name_safe_and_short_enough() {
        let longest = "\u{10FFFF}".repeat(UserId::MAX_LEN / 4);
        let k = key(&longest);
        assert!(k.len() + ".vault".len() <= 255, "{} chars", k.len());
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
    }

    #[test]
    fn invalid_ids_are_rejected_with_a_reason() {
        assert_eq!(UserId::new(""), Err(InvalidUserId::Empty));
        assert_eq!(
            UserId::new("x".repeat(129)),
            Err(InvalidUserId::TooLong { len: 129, max: 128 })
        );
        assert_eq!(
            UserId::new("ok\nforged log line"),
            Err(InvalidUserId::ControlCharacter { at: 2 })
        );
        assert!(UserId::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn non_canonical_storage_keys_are_rejected() {
        let k = key("bob");
        assert!(UserId::from_storage_key(&k).is_ok());
        assert_eq!(
            UserId::from_storage_key(&k.to_ascii_lowercase()),
            Err(InvalidUserId::NotAStorageKey)
        );
        assert_eq!(
            UserId::from_storage_key("not base32!"),
            Err(InvalidUserId::NotAStorageKey)
        );
        assert_eq!(UserId::from_storage_key(""), Err(InvalidUserId::Empty));
    }

    fn valid_id() -> impl Strategy<Value = String> {
        "[^\\p{Cc}]{1,32}".prop_filter("fits", |s| s.len() <= UserId::MAX_LEN)
    }

    proptest! {
        #[test]
        fn storage_key_is_injective(a in valid_id(), b in valid_id()) {
            let ka = key(&a);
            let kb = key(&b);
            prop_assert_eq!(a == b, ka == kb);
        }

        #[test]
        fn storage_key_round_trips(a in valid_id()) {
            let id = UserId::new(a).expect("valid");
            prop_assert_eq!(UserId::from_storage_key(id.storage_key().as_str()).expect("decodes"), id);
        }
    }
}
