//! Helpers shared by the vault's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use mcp_auth_core::UserId;
use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};

pub const KEY_A: [u8; 32] = [0xA5; 32];
pub const KEY_B: [u8; 32] = [0x5A; 32];

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

pub fn file_vault(dir: &Path, key: [u8; 32]) -> Vault {
    Vault::builder(StorageMode::EncryptedFile(dir.to_owned()))
        .key(KeyMaterial::raw(key))
        .open()
        .expect("open file vault")
}

/// The documented file layout: `<dir>/<storage name>.vault`, the name a
/// pseudonym of the user (a plaintext development vault: the storage key).
pub fn user_file(dir: &Path, vault: &Vault, user: &UserId) -> PathBuf {
    dir.join(format!("{}.vault", vault.storage_name(user)))
}

/// Self-validating payloads: a reader can tell a complete value from a torn one.
pub fn payload(user: usize, provider: usize, version: u64) -> Vec<u8> {
    let len = ((version as usize).wrapping_mul(37) + user * 11 + provider) % 1500;
    let mut out = format!("u{user}/p{provider}/v{version}/n{len}|").into_bytes();
    out.extend((0..len).map(|k| ((version as usize + k) % 251) as u8));
    out
}

/// Parses a payload made by [`payload`], returning its version if it is
/// complete and belongs to `(user, provider)`.
pub fn check_payload(bytes: &[u8], user: usize, provider: usize) -> Result<u64, String> {
    let bar = bytes.iter().position(|&b| b == b'|').ok_or("no header")?;
    let header = std::str::from_utf8(&bytes[..bar]).map_err(|_| "header not utf-8")?;
    let parts: Vec<&str> = header.split('/').collect();
    if parts.len() != 4 || parts[0] != format!("u{user}") || parts[1] != format!("p{provider}") {
        return Err(format!("wrong owner in header {header:?}"));
    }
    let version: u64 = parts[2][1..].parse().map_err(|_| "bad version")?;
    let len: usize = parts[3][1..].parse().map_err(|_| "bad length")?;
    let body = &bytes[bar + 1..];
    if body.len() != len {
        return Err(format!("torn value: {} of {len} bytes", body.len()));
    }
    if body
        .iter()
        .enumerate()
        .any(|(k, &b)| b != ((version as usize + k) % 251) as u8)
    {
        return Err("corrupted body".into());
    }
    Ok(version)
}

/// A private (0700) directory inside a fresh temporary directory: `tempfile`
/// creates 0755 directories under the usual umask, which the vault refuses.
pub struct TestDir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl TestDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn tempdir() -> TestDir {
    use std::os::unix::fs::DirBuilderExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("private");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .expect("private dir");
    TestDir { _tmp: tmp, path }
}

/// The key of the release-0.1 vault in `tests/data/vault-v1`.
pub const FIXTURE_V1_KEY: [u8; 32] = [0x11; 32];
/// Its users and their providers.
pub const FIXTURE_V1_USERS: [(&str, &[&str]); 3] = [
    ("alice@example.com", &["spotify", "google"]),
    ("bob@example.org", &["spotify"]),
    ("carol", &["google"]),
];

/// `tests/data/vault-v1`: a file vault written by release 0.1 (files named
/// by storage key, a version 1 manifest).
pub fn fixture_v1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vault-v1")
}

/// Every credential of the fixture is there, whole, and the listing by user
/// names exactly its three users.
pub fn assert_fixture_v1_intact(v: &Vault) {
    use secrecy::ExposeSecret;
    let mut users = v.users().expect("users");
    users.sort();
    let mut expected: Vec<UserId> = FIXTURE_V1_USERS.iter().map(|(u, _)| user(u)).collect();
    expected.sort();
    assert_eq!(users, expected);
    for (id, providers) in FIXTURE_V1_USERS {
        let u = user(id);
        let mut listed = v.providers(&u).expect("providers");
        listed.sort();
        let mut want: Vec<&str> = providers.to_vec();
        want.sort_unstable();
        assert_eq!(listed, want, "{id}");
        for p in providers {
            let c = v.get(&u, p).expect("get").expect("present");
            assert_eq!(
                c.access_token().expose_secret(),
                format!("{p}-access-of-{id}")
            );
            assert_eq!(
                c.refresh_token().map(|t| t.expose_secret().to_owned()),
                Some(format!("{p}-refresh-of-{id}"))
            );
        }
    }
}
