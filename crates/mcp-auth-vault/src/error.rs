use std::io;
use std::path::PathBuf;

use mcp_auth_core::{InvalidUserId, UserId};

use crate::key_id::KeyId;

/// Everything that can go wrong in the vault.
///
/// No variant ever carries key material, a passphrase or a credential.
/// Decryption failures are deliberately opaque: they say *which record* failed
/// to authenticate, never why (tampering, a swapped record, or a wrong key all
/// look the same to an attacker).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The user id is not valid.
    #[error("invalid user id: {0}")]
    InvalidUserId(#[from] InvalidUserId),

    /// The provider name is not valid.
    #[error("invalid provider name: {reason}")]
    InvalidProvider {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A credential is larger than the vault stores.
    #[error("credential is {len} bytes; the maximum is {max}")]
    PayloadTooLarge {
        /// Size of the rejected payload.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The user already has the maximum number of stored credentials.
    #[error("user {user} already has {max} credentials stored; delete one first")]
    TooManyRecords {
        /// The user.
        user: UserId,
        /// The limit.
        max: usize,
    },

    /// A user's vault file (or the key manifest) cannot be parsed. Only that
    /// user is affected; nothing is overwritten until the file is deleted.
    #[error("vault data for {subject} is corrupt: {reason}")]
    Corrupt {
        /// `user <id>`, `the key manifest`, or `record bytes`.
        subject: String,
        /// What the parser found.
        reason: &'static str,
    },

    /// A record failed authentication: it was modified, copied from another
    /// user, renamed, or written under a different key with the same id.
    #[error(
        "credential {provider:?} of user {user} failed authentication (tampered, moved between users or providers, or wrong key)"
    )]
    Decrypt {
        /// The user whose record failed.
        user: UserId,
        /// The provider name of the record.
        provider: String,
    },

    /// A record was written with a key the vault was not opened with.
    #[error(
        "a record was written with key {key_id}, which this vault was not opened with; supply that key (e.g. as a previous key after an interrupted rotation)"
    )]
    KeyUnavailable {
        /// The id of the missing key.
        key_id: KeyId,
    },

    /// None of the supplied keys is the vault's current key.
    #[error(
        "none of the supplied keys matches the vault's current key {expected}: wrong passphrase or key?"
    )]
    WrongKey {
        /// The id of the key the vault expects.
        expected: KeyId,
    },

    /// No key was supplied.
    #[error("no key supplied: a vault needs at least one key")]
    NoKey,

    /// An encrypted vault found a plaintext record (a downgrade attempt, or a
    /// file from a development vault). It is refused.
    #[error(
        "credential {provider:?} of user {user} is stored in plaintext; an encrypted vault refuses it"
    )]
    PlaintextRecordRefused {
        /// The user.
        user: UserId,
        /// The provider name of the record.
        provider: String,
    },

    /// Key material is malformed (wrong length, bad base64, missing variable).
    #[error("invalid key material: {0}")]
    InvalidKey(String),

    /// KDF parameters are below the vault's minimum or otherwise unusable.
    #[error("invalid KDF parameters: {0}")]
    WeakKdf(String),

    /// A file or directory has permissions that let other users read it.
    #[error(
        "{path} has mode {mode:o}; it must not be accessible to group or others (chmod {wanted:o})"
    )]
    InsecurePermissions {
        /// The path.
        path: PathBuf,
        /// Its current permission bits.
        mode: u32,
        /// The permission bits the vault expects.
        wanted: u32,
    },

    /// The stored bytes are not a credential (e.g. written with `put_bytes`).
    #[error("stored value of {provider:?} for user {user} is not a credential")]
    NotACredential {
        /// The user.
        user: UserId,
        /// The provider name.
        provider: String,
    },

    /// An operating-system I/O error.
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        /// What the vault was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl VaultError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(subject: impl Into<String>, reason: &'static str) -> Self {
        Self::Corrupt {
            subject: subject.into(),
            reason,
        }
    }
}
