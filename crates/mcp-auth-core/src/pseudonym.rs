//! Names for stored records that do not reveal whose they are.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use hmac::{Hmac, KeyInit, Mac};

/// The prefix of a user id sealed by [`UserPseudonyms::seal_user`].
const SEALED_PREFIX: &str = "s1.";
const SEAL_AAD: &[u8] = b"mcp-auth sealed user id v1";
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Redacted, UserId};

/// The prefix of every [`Pseudonym`]. A storage key ([`UserId::storage_key`],
/// the names of earlier releases) is upper-case base32 and never holds a
/// `-`, so the two kinds of name can never be confused, on a case-insensitive
/// file system included.
pub const PSEUDONYM_PREFIX: &str = "p-";
/// Bytes of HMAC-SHA256 a pseudonym keeps (160 bits: a collision between two
/// users' names is a 2⁻⁸⁰ event at a trillion users).
const PSEUDONYM_BYTES: usize = 20;

/// A keyed hash of user ids (HMAC-SHA256 under a 256-bit secret key), so
/// that records can be stored under a name that does not reveal the user:
/// a copy of the disk or of Redis shows `p-3f1c…` where it used to show an
/// encoding of `alice@example.com`. Whoever holds the key can compute the
/// name of a given user (that is how the operator still finds a user's
/// records), but nobody can read a user id off a name.
///
/// One key serves many stores: [`UserPseudonyms::derive`] gives each store
/// its own, so the same user has unrelated names in the vault, the
/// authorization server's store and the session store. The usual source
/// of the key is the credential vault (`Vault::user_pseudonyms`), so that
/// every process of a fleet that shares the vault computes the same names.
///
/// ```
/// use mcp_auth_core::{UserId, UserPseudonyms};
/// let keys = UserPseudonyms::from_key([7; 32]);
/// let alice = UserId::new("alice@example.com")?;
/// let name = keys.derive("sessions").name(&alice);
/// assert!(name.as_str().starts_with("p-") && !name.as_str().contains("alice"));
/// assert_eq!(name, keys.derive("sessions").name(&alice));
/// assert_ne!(name, keys.derive("grants").name(&alice));
/// assert_eq!(format!("{keys:?}"), "UserPseudonyms([REDACTED])");
/// # Ok::<(), mcp_auth_core::InvalidUserId>(())
/// ```
#[derive(Clone)]
pub struct UserPseudonyms(Redacted<Zeroizing<[u8; 32]>>);

impl fmt::Debug for UserPseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserPseudonyms").field(&self.0).finish()
    }
}

impl UserPseudonyms {
    /// Pseudonyms under `key` (keep it as secret as the vault key: whoever
    /// has it can test guesses of user ids against stored names).
    pub fn from_key(key: [u8; 32]) -> Self {
        Self(Redacted(Zeroizing::new(key)))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// An independent key for one purpose (one store, one kind of record).
    pub fn derive(&self, purpose: &str) -> Self {
        Self::from_key(self.mac(&[b"mcp-auth pseudonyms derive\0", purpose.as_bytes()]))
    }

    /// The 32 raw bytes of a key derived for `purpose`, for a store that
    /// needs a key of its own beside the names (e.g. to seal a user id it
    /// must read back).
    pub fn derive_bytes(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.mac(&[b"mcp-auth pseudonyms bytes\0", purpose.as_bytes()]))
    }

    /// HMAC-SHA256 of `data` under this key: a store names a record by it
    /// when the record's plain name is an unkeyed hash of something that
    /// holds a user id (a consent, a per-user lock), which a list of
    /// guessed ids could otherwise be tested against.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        self.mac(&[b"mcp-auth keyed hash\0", data])
    }

    /// The name of `user`'s records: `p-` and 40 lower-case hex digits.
    pub fn name(&self, user: &UserId) -> Pseudonym {
        let digest = self.mac(&[b"mcp-auth pseudonym\0", user.as_str().as_bytes()]);
        Pseudonym(format!(
            "{PSEUDONYM_PREFIX}{}",
            HEXLOWER.encode(&digest[..PSEUDONYM_BYTES])
        ))
    }
}

impl UserPseudonyms {
    /// `user`'s id sealed for storage beside a record that must name it
    /// (a grant's subject, a session's user): `s1.` and the base64url of a
    /// random 96-bit nonce and the AES-256-GCM ciphertext, under a key
    /// derived from this one. Each call gives a different text; only
    /// [`UserPseudonyms::open_user`] with the same key reads it back.
    pub fn seal_user(&self, user: &UserId) -> Result<String, RandomUnavailable> {
        let key = self.derive_bytes("sealed user ids");
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| RandomUnavailable)?;
        let sealed = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: user.as_str().as_bytes(),
                    aad: SEAL_AAD,
                },
            )
            .unwrap_or_else(|_| unreachable!("a user id is far below AES-GCM's length limit"));
        Ok(format!(
            "{SEALED_PREFIX}{}",
            BASE64URL_NOPAD.encode(&[&nonce[..], &sealed].concat())
        ))
    }

    /// The user id in a text made by [`UserPseudonyms::seal_user`] under
    /// this key; `None` for anything else (another key, a changed byte, not
    /// a sealed id).
    pub fn open_user(&self, text: &str) -> Option<UserId> {
        let bytes = BASE64URL_NOPAD
            .decode(text.strip_prefix(SEALED_PREFIX)?.as_bytes())
            .ok()?;
        if bytes.len() < 12 + 16 || bytes.len() > 12 + 16 + 1024 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let key = self.derive_bytes("sealed user ids");
        let plain = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
            .decrypt(
                &Nonce::try_from(nonce).ok()?,
                Payload {
                    msg: sealed,
                    aad: SEAL_AAD,
                },
            )
            .ok()?;
        UserId::new(String::from_utf8(plain).ok()?).ok()
    }

    /// Whether `text` has the shape of a sealed user id (as opposed to a
    /// plain one written before pseudonyms).
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX)
    }
}

/// The operating system's random number generator failed (no nonce, so
/// nothing was sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomUnavailable;

/// The name [`UserPseudonyms::name`] gives a user: safe as a file name on
/// every common file system and as a Redis key segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes `text` as a pseudonym if it has the shape of one (read back
    /// from a store's listing); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(PSEUDONYM_PREFIX)?;
        (hex.len() == 2 * PSEUDONYM_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_keyed_and_parse_back() {
        let alice = UserId::new("alice").expect("id");
        let a = UserPseudonyms::from_key([1; 32]).name(&alice);
        let b = UserPseudonyms::from_key([2; 32]).name(&alice);
        assert_ne!(a, b);
        assert_eq!(Pseudonym::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.as_str().len(), 42);
        for bad in [
            "",
            "p-",
            "P-00",
            &a.as_str().to_ascii_uppercase(),
            "MFWGSY3F",
        ] {
            assert_eq!(Pseudonym::parse(bad), None, "{bad}");
        }
        // Not the storage key, not the id.
        assert!(!a.as_str().contains(alice.storage_key().as_str()));
    }

    #[test]
    fn sealed_user_ids_open_only_under_their_key() {
        let keys = UserPseudonyms::from_key([3; 32]);
        let alice = UserId::new("alice@example.com").expect("id");
        let a = keys.seal_user(&alice).expect("sealed");
        let b = keys.seal_user(&alice).expect("sealed");
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("alice") && UserPseudonyms::is_sealed(&a));
        assert_eq!(keys.open_user(&a), Some(alice.clone()));
        assert_eq!(UserPseudonyms::from_key([4; 32]).open_user(&a), None);
        assert_eq!(keys.derive("x").open_user(&a), None);
        let mut flipped = a.into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open_user(&String::from_utf8(flipped).expect("ascii")),
            None
        );
        for junk in ["", "s1.", "s1.!!!", "alice", "s1.AAAA"] {
            assert_eq!(keys.open_user(junk), None, "{junk}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2_shape() {
        // RFC 4231 test case 2 (key "Jefe") through the same Mac calls.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want ");
        mac.update(b"for nothing?");
        assert_eq!(
            HEXLOWER.encode(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
