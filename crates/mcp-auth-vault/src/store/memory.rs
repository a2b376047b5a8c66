use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use super::{StorageName, Update, UpdateFn, VaultStore};
use crate::error::VaultError;

/// Keeps encrypted user files in process memory only; everything is gone when
/// the process exits. Records stay encrypted in memory, so a heap dump without
/// the master key reveals no credential.
#[derive(Debug, Default)]
pub struct MemoryStore {
    files: RwLock<HashMap<StorageName, Vec<u8>>>,
    manifest: RwLock<Option<Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl VaultStore for MemoryStore {
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError> {
        // Values are replaced whole, so a poisoned lock still guards a consistent map.
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        Ok(files.get(name).cloned())
    }

    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError> {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        match f(files.get(name).map(Vec::as_slice))? {
            Update::Keep => {}
            Update::Write(bytes) => {
                files.insert(name.clone(), bytes);
            }
            Update::Delete => {
                files.remove(name);
            }
        }
        Ok(())
    }

    fn names(&self) -> Result<Vec<StorageName>, VaultError> {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        Ok(files.keys().cloned().collect())
    }

    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self
            .manifest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError> {
        *self
            .manifest
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(bytes.to_vec());
        Ok(())
    }

    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut manifest = self
            .manifest
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(manifest.get_or_insert_with(|| bytes.to_vec()).clone())
    }

    fn wipe(&self) -> Result<usize, VaultError> {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let n = files.len();
        files.clear();
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
