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

    /// Key material is malformed or does not fit the vault.
    #[error("invalid key material: {0}")]
    InvalidKey(KeyProblem),

    /// KDF parameters are below the vault's minimum or otherwise unusable.
    #[error("invalid KDF parameters: {0}")]
    WeakKdf(KdfProblem),

    /// A storage mode name that is unknown, needs a directory, or may not
    /// be chosen by configuration.
    #[error("storage mode {mode}: {reason}")]
    InvalidStorageMode {
        /// The mode as given.
        mode: String,
        /// What is wrong with it.
        reason: &'static str,
    },

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

    /// A shared store (Redis) could not answer: nothing was changed, and
    /// retrying later may help. Never holds the URL (it may hold a password).
    #[error("the vault store is unavailable: {0}")]
    StoreUnavailable(&'static str),
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

/// What is wrong with key material ([`VaultError::InvalidKey`]). Never holds
/// the key or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// Not standard or URL-safe base64.
    #[error("the key is not valid base64")]
    NotBase64,
    /// Decodes to the wrong number of bytes.
    #[error("the key decodes to {bytes} bytes; a vault key is 32 bytes (256 bits)")]
    WrongLength {
        /// What it decodes to.
        bytes: usize,
    },
    /// The environment variable is not set.
    #[error("environment variable {var} is not set (generate one with `openssl rand -base64 32`)")]
    EnvNotSet {
        /// The variable.
        var: String,
    },
    /// The environment variable's value is not a key.
    #[error("{var}: {problem}")]
    InEnvVar {
        /// The variable.
        var: String,
        /// What is wrong with its value.
        problem: Box<KeyProblem>,
    },
    /// A key file larger than a key file can be (not read).
    #[error("{} is larger than a key file can be ({max} bytes)", path.display())]
    KeyFileTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: u64,
    },
    /// A key file holding neither 32 raw bytes nor base64 text.
    #[error("{} holds neither 32 raw bytes nor base64 text", path.display())]
    NotAKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// A raw key given to a vault whose key is derived from a passphrase.
    #[error("a raw key was supplied where the vault expects a passphrase")]
    RawKeyForPassphrase,
    /// A passphrase given to a vault keyed by a raw key.
    #[error("a passphrase was supplied where the vault expects a raw key")]
    PassphraseForRawKey,
    /// Rotation asked of a plaintext vault.
    #[error("a plaintext vault has no key to rotate")]
    PlaintextVault,
    /// A rotation would keep more keys than a vault holds.
    #[error("a vault holds at most {max} keys; finish the pending rotation first")]
    TooManyKeys {
        /// The most keys a vault holds.
        max: usize,
    },
    /// A directory holding an encrypted vault opened as a plaintext one.
    #[error("{} holds an encrypted vault; refusing to open it as a plaintext one", dir.display())]
    EncryptedVaultOpenedAsPlaintext {
        /// The directory.
        dir: PathBuf,
    },
}

/// Which bound KDF parameters break ([`VaultError::WeakKdf`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KdfProblem {
    /// Argon2id parameters below the minimum.
    #[error(
        "Argon2id m={m_kib} KiB, t={t}, p={p} is below the minimum m={} KiB, t={}, p=1",
        crate::kdf_limits::ARGON2ID_MIN_M_KIB,
        crate::kdf_limits::ARGON2ID_MIN_T
    )]
    Argon2idTooWeak {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },
    /// Argon2id parameters above the maximum (a planted file could exhaust
    /// memory or time).
    #[error(
        "Argon2id m={m_kib} KiB, t={t}, p={p} exceeds the maximum m={} KiB, t={}, p={}",
        crate::kdf_limits::ARGON2ID_MAX_M_KIB,
        crate::kdf_limits::ARGON2ID_MAX_T,
        crate::kdf_limits::ARGON2ID_MAX_P
    )]
    Argon2idTooCostly {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },
    /// PBKDF2 iterations below the minimum.
    #[error(
        "PBKDF2 with {iterations} iterations is below the minimum {}",
        crate::kdf_limits::PBKDF2_MIN_ITERATIONS
    )]
    Pbkdf2TooWeak {
        /// Iterations.
        iterations: u32,
    },
    /// PBKDF2 iterations above the maximum.
    #[error(
        "PBKDF2 with {iterations} iterations exceeds the maximum {}",
        crate::kdf_limits::PBKDF2_MAX_ITERATIONS
    )]
    Pbkdf2TooCostly {
        /// Iterations.
        iterations: u32,
    },
    /// The Argon2 implementation refused the parameters.
    #[error("Argon2id refused the parameters")]
    Argon2idRejected,
}
