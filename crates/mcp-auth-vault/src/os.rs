//! What the vault asks of the operating system: random bytes, and whether a
//! file or directory is private to its owner.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::VaultError;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|_| VaultError::Random)
}

/// Fails unless `path` is inaccessible to group and others.
pub(crate) fn check_private(path: &Path, wanted: u32) -> Result<(), VaultError> {
    let meta = fs::metadata(path).map_err(|e| VaultError::io("inspect", path, e))?;
    check_private_metadata(&meta, path, wanted)
}

/// [`check_private`] on metadata already read, e.g. from an opened file
/// (`File::metadata`), so that what is checked is what is then read.
pub(crate) fn check_private_metadata(
    meta: &fs::Metadata,
    path: &Path,
    wanted: u32,
) -> Result<(), VaultError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecurePermissions {
            path: path.to_owned(),
            mode,
            wanted,
        });
    }
    Ok(())
}
