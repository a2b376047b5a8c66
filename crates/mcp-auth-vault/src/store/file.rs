use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{StorageName, Update, UpdateFn, VaultStore};
use crate::error::VaultError;
use crate::format::MAX_FILE_LEN;
use crate::os::{check_private, fill_random};
use data_encoding::HEXLOWER;

const USER_FILE_SUFFIX: &str = ".vault";
const MANIFEST_FILE: &str = "keys.manifest";
const LOCK_FILE: &str = ".lock";
const TEMP_PREFIX: &str = ".tmp-";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// One file per user under a directory.
///
/// * The directory is created with mode 0700; an existing directory that
///   group or others can access is refused.
/// * Files are created with mode 0600.
/// * Every write goes to a temporary file in the same directory, is fsynced,
///   renamed over the old file, and the directory is fsynced: a crash leaves
///   the old or the new file, never a torn one.
/// * Writers hold an exclusive `flock` on `<dir>/.lock`, so processes sharing
///   the directory serialise their read-modify-writes and lose no update.
///   Readers take no lock: rename is atomic.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

struct DirLock {
    _file: File,
}

impl FileStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, VaultError> {
        let dir = dir.into();
        match DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
        {
            Ok(()) => {}
            Err(e) => return Err(VaultError::io("create directory", &dir, e)),
        }
        check_private(&dir, DIR_MODE)?;
        let store = Self { dir };
        store.remove_stale_temp_files()?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the user file named `name`: `<dir>/<name>.vault`.
    pub fn user_path(&self, name: &StorageName) -> PathBuf {
        self.dir.join(format!("{name}{USER_FILE_SUFFIX}"))
    }

    fn lock(&self) -> Result<DirLock, VaultError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| VaultError::io("open lock file", &path, e))?;
        file.lock().map_err(|e| VaultError::io("lock", &path, e))?;
        Ok(DirLock { _file: file })
    }

    /// A temporary file only exists while its writer holds the lock, so any
    /// found while we hold it was left by a writer that died.
    fn remove_stale_temp_files(&self) -> Result<(), VaultError> {
        let _lock = self.lock()?;
        for entry in fs::read_dir(&self.dir).map_err(|e| VaultError::io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| VaultError::io("list", &self.dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| VaultError::io("remove stale", &path, e))?;
                tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted write");
            }
        }
        Ok(())
    }

    fn read_file(path: &Path) -> Result<Option<Vec<u8>>, VaultError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VaultError::io("open", path, e)),
        };
        let limit = u64::try_from(MAX_FILE_LEN).unwrap_or(u64::MAX) + 1;
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| VaultError::io("read", path, e))?;
        // An oversized file is passed on and rejected by the decoder as corrupt.
        Ok(Some(bytes))
    }

    /// Must be called with the lock held.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix)?;
        let tmp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}", HEXLOWER.encode(&suffix)));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)
                .map_err(|e| VaultError::io("create", &tmp, e))?;
            file.write_all(bytes)
                .map_err(|e| VaultError::io("write", &tmp, e))?;
            file.sync_all()
                .map_err(|e| VaultError::io("fsync", &tmp, e))?;
            drop(file);
            fs::rename(&tmp, path).map_err(|e| VaultError::io("rename into", path, e))?;
            self.sync_dir()
        })();
        if result.is_err() {
            // Best effort: the temp file may or may not exist at this point.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn remove(&self, path: &Path) -> Result<bool, VaultError> {
        match fs::remove_file(path) {
            Ok(()) => {
                self.sync_dir()?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(VaultError::io("delete", path, e)),
        }
    }

    fn sync_dir(&self) -> Result<(), VaultError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VaultError::io("fsync directory", &self.dir, e))
    }

    fn user_files(&self) -> Result<Vec<(StorageName, PathBuf)>, VaultError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| VaultError::io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| VaultError::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(USER_FILE_SUFFIX)) else {
                continue;
            };
            match StorageName::parse(key) {
                Some(name) => out.push((name, entry.path())),
                None => {
                    tracing::warn!(file = %entry.path().display(), "ignoring a file whose name is not a user file name");
                }
            }
        }
        Ok(out)
    }
}

impl VaultStore for FileStore {
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError> {
        Self::read_file(&self.user_path(name))
    }

    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError> {
        let path = self.user_path(name);
        let _lock = self.lock()?;
        let current = Self::read_file(&path)?;
        match f(current.as_deref())? {
            Update::Keep => Ok(()),
            Update::Write(bytes) => self.write_atomic(&path, &bytes),
            Update::Delete => self.remove(&path).map(|_| ()),
        }
    }

    fn names(&self) -> Result<Vec<StorageName>, VaultError> {
        Ok(self.user_files()?.into_iter().map(|(u, _)| u).collect())
    }

    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError> {
        Self::read_file(&self.dir.join(MANIFEST_FILE))
    }

    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError> {
        let _lock = self.lock()?;
        self.write_atomic(&self.dir.join(MANIFEST_FILE), bytes)
    }

    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
        let path = self.dir.join(MANIFEST_FILE);
        let _lock = self.lock()?;
        if let Some(existing) = Self::read_file(&path)? {
            return Ok(existing);
        }
        self.write_atomic(&path, bytes)?;
        Ok(bytes.to_vec())
    }

    fn wipe(&self) -> Result<usize, VaultError> {
        let _lock = self.lock()?;
        let mut n = 0;
        for (_, path) in self.user_files()? {
            match fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(VaultError::io("delete", &path, e)),
            }
        }
        self.sync_dir()?;
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
