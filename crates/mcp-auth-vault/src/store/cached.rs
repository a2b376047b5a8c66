use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};

use super::{FileStore, StorageName, Update, UpdateFn, VaultStore};
use crate::error::VaultError;

/// A write-through memory cache in front of a [`FileStore`]: reads are served
/// from memory after the first, every write goes to disk before it returns.
///
/// The cache holds the encrypted bytes, never plaintext. It assumes this
/// process is the only writer of the directory: writes by another process are
/// not seen until restart. Memory grows with the number of distinct users
/// read (at most one user file, ≤ 4 MiB, per user).
#[derive(Debug)]
pub struct CachedFileStore {
    file: FileStore,
    cache: RwLock<HashMap<StorageName, Option<Vec<u8>>>>,
}

impl CachedFileStore {
    /// Opens (creating if needed) a cached store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, VaultError> {
        Ok(Self {
            file: FileStore::open(dir)?,
            cache: RwLock::default(),
        })
    }
}

impl VaultStore for CachedFileStore {
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError> {
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(hit.clone());
        }
        let loaded = self.file.load(name)?;
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), loaded.clone());
        Ok(loaded)
    }

    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError> {
        let mut outcome: Option<Option<Vec<u8>>> = None;
        self.file.update(name, &mut |current| {
            let update = f(current)?;
            outcome = Some(match &update {
                Update::Keep => current.map(<[u8]>::to_vec),
                Update::Write(bytes) => Some(bytes.clone()),
                Update::Delete => None,
            });
            Ok(update)
        })?;
        if let Some(now) = outcome {
            self.cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone(), now);
        }
        Ok(())
    }

    fn names(&self) -> Result<Vec<StorageName>, VaultError> {
        self.file.names()
    }

    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError> {
        self.file.load_manifest()
    }

    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError> {
        self.file.store_manifest(bytes)
    }

    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.file.init_manifest(bytes)
    }

    fn wipe(&self) -> Result<usize, VaultError> {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        let n = self.file.wipe()?;
        cache.clear();
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "memory+file"
    }
}
