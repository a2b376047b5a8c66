//! Where encrypted user files live. The vault encrypts; a store only keeps
//! opaque bytes per user, plus the (non-secret) key manifest.

pub(crate) mod cached;
pub(crate) mod file;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::fmt::Debug;

use mcp_auth_core::{Pseudonym, UserId};

use crate::error::VaultError;

pub use cached::CachedFileStore;
pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// The name a user's file is stored under.
///
/// In an encrypted vault it is a [`Pseudonym`] (`p-` and 40 hex digits, a
/// keyed hash of the user id under a key sealed in the vault's manifest):
/// the store never learns whose file it holds. Plaintext development
/// vaults, and encrypted vaults written before pseudonyms (until
/// [`VaultBuilder::open`](crate::VaultBuilder::open) migrates them), use the
/// user's [`storage key`](UserId::storage_key), which decodes to the id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageName(String);

impl StorageName {
    /// The name as a string slice: a file name stem, a Redis key segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes `text` (read back from a store's listing) as a name if it is a
    /// pseudonym or a canonical storage key; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if Pseudonym::parse(text).is_some() || UserId::from_storage_key(text).is_ok() {
            Some(Self(text.to_owned()))
        } else {
            None
        }
    }

    pub(crate) fn legacy(user: &UserId) -> Self {
        Self(user.storage_key().as_str().to_owned())
    }

    pub(crate) fn pseudonym(name: &Pseudonym) -> Self {
        Self(name.as_str().to_owned())
    }

    /// The user, if this is a storage key (which decodes to one).
    pub fn legacy_user(&self) -> Option<UserId> {
        UserId::from_storage_key(&self.0).ok()
    }
}

impl std::fmt::Display for StorageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an [`VaultStore::update`] callback wants done with a user's file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Update {
    /// Leave the file as it is.
    Keep,
    /// Replace the file with these bytes.
    Write(Vec<u8>),
    /// Delete the file.
    Delete,
}

/// The callback of [`VaultStore::update`]: gets the current bytes of the
/// user's file (if any) and says what to do.
pub type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Result<Update, VaultError> + 'a;

/// Storage for encrypted user files, each under a [`StorageName`].
///
/// Implementations must make [`VaultStore::update`] atomic: a reader sees the
/// old bytes or the new bytes, never a mix, and two concurrent updates of one
/// user (from threads or processes sharing the store) never lose either one.
pub trait VaultStore: Send + Sync + Debug {
    /// The bytes of the file named `name`, if it exists.
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError>;

    /// Read-modify-write of the file named `name`, atomically. If `f` fails, nothing
    /// is changed and its error is returned. `f` may be called more than
    /// once (a store with optimistic concurrency calls it again when
    /// another writer got there first); only its last answer counts.
    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError>;

    /// The name of every file.
    fn names(&self) -> Result<Vec<StorageName>, VaultError>;

    /// The key manifest, if one was stored.
    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError>;

    /// Replaces the key manifest atomically.
    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError>;

    /// Stores `bytes` as the manifest unless one exists, atomically with
    /// respect to other processes creating the same vault. Returns the
    /// manifest in effect afterwards (the existing one, or `bytes`).
    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError>;

    /// Deletes every user file (the manifest stays). Returns how many.
    fn wipe(&self) -> Result<usize, VaultError>;

    /// A short name for logs: `memory`, `file`, `memory+file`.
    fn kind(&self) -> &'static str;
}
