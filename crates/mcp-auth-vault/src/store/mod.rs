//! Where encrypted user files live. The vault encrypts; a store only keeps
//! opaque bytes per user, plus the (non-secret) key manifest.

pub(crate) mod cached;
pub(crate) mod file;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::fmt::Debug;

use mcp_auth_core::UserId;

use crate::error::VaultError;

pub use cached::CachedFileStore;
pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

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

/// Storage for encrypted user files.
///
/// Implementations must make [`VaultStore::update`] atomic: a reader sees the
/// old bytes or the new bytes, never a mix, and two concurrent updates of one
/// user (from threads or processes sharing the store) never lose either one.
pub trait VaultStore: Send + Sync + Debug {
    /// The bytes of `user`'s file, if it exists.
    fn load(&self, user: &UserId) -> Result<Option<Vec<u8>>, VaultError>;

    /// Read-modify-write of `user`'s file, atomically. If `f` fails, nothing
    /// is changed and its error is returned. `f` may be called more than
    /// once (a store with optimistic concurrency calls it again when
    /// another writer got there first); only its last answer counts.
    fn update(&self, user: &UserId, f: &mut UpdateFn<'_>) -> Result<(), VaultError>;

    /// Every user with a file.
    fn users(&self) -> Result<Vec<UserId>, VaultError>;

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
