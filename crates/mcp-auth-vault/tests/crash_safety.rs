//! Crash safety and multi-process behaviour, with real processes.
//!
//! The test binary re-executes itself: `child_process_entry` acts as a child
//! (a writer, a key rotator, or a concurrent writer) when `MCP_VAULT_TEST_CHILD`
//! is set. Parents kill children with SIGKILL at random moments and then check
//! that every record decrypts to a complete version.

mod common;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{KEY_A, KEY_B, check_payload, file_vault, payload, user};
use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};
use secrecy::ExposeSecret;

const CHILD: &str = "MCP_VAULT_TEST_CHILD";
const DIR: &str = "MCP_VAULT_TEST_DIR";
const ARG: &str = "MCP_VAULT_TEST_ARG";
const USERS: usize = 3;
const PROVIDERS: usize = 3;
const ROTATION_USERS: usize = 16;

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn spawn_child(mode: &str, dir: &Path, arg: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, mode)
        .env(DIR, dir)
        .env(ARG, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

fn both_keys(dir: &Path) -> Vault {
    Vault::builder(StorageMode::EncryptedFile(dir.to_owned()))
        .key(KeyMaterial::raw(KEY_A))
        .key(KeyMaterial::raw(KEY_B))
        .open()
        .expect("open with both keys")
}

/// Writes every (user, provider) record at versions `from..to`.
fn write_versions(vault: &Vault, from: u64, to: u64) {
    for version in from..to {
        for u in 0..USERS {
            for p in 0..PROVIDERS {
                vault
                    .put_bytes(
                        &user(&format!("user-{u}")),
                        &format!("provider-{p}"),
                        &payload(u, p, version),
                    )
                    .expect("put");
            }
        }
    }
}

/// Every record must decrypt to a complete version; returns the highest seen.
fn verify_all(dir: &Path) -> u64 {
    let vault = file_vault(dir, KEY_A);
    let mut highest = 0;
    for u in 0..USERS {
        for p in 0..PROVIDERS {
            let value = vault
                .get_bytes(&user(&format!("user-{u}")), &format!("provider-{p}"))
                .unwrap_or_else(|e| panic!("user-{u}/provider-{p} unreadable: {e}"))
                .unwrap_or_else(|| panic!("user-{u}/provider-{p} lost"));
            let version = check_payload(value.expose_secret(), u, p)
                .unwrap_or_else(|e| panic!("user-{u}/provider-{p}: {e}"));
            highest = highest.max(version);
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "opening the vault removes stale temp files"
    );
    highest
}

fn seed_rotation_users(vault: &Vault) {
    for u in 0..ROTATION_USERS {
        for p in 0..2 {
            vault
                .put_bytes(&user(&format!("r{u}")), &format!("p{p}"), &payload(u, p, 7))
                .expect("seed");
        }
    }
}

fn verify_rotation_users(vault: &Vault) {
    for u in 0..ROTATION_USERS {
        for p in 0..2 {
            let value = vault
                .get_bytes(&user(&format!("r{u}")), &format!("p{p}"))
                .unwrap_or_else(|e| panic!("r{u}/p{p} unreadable mid-rotation: {e}"))
                .unwrap_or_else(|| panic!("r{u}/p{p} lost"));
            assert_eq!(check_payload(value.expose_secret(), u, p), Ok(7));
        }
    }
}

/// Child entry point. Without `MCP_VAULT_TEST_CHILD` it runs a short,
/// bounded version of the writer in-process and checks the result.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD) else {
        let dir = common::tempdir();
        write_versions(&file_vault(dir.path(), KEY_A), 0, 3);
        assert_eq!(verify_all(dir.path()), 2);
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR).expect("dir"));
    let arg = std::env::var(ARG).expect("arg");
    match mode.as_str() {
        "writer" => {
            let start: u64 = arg.parse().expect("start version");
            write_versions(&file_vault(&dir, KEY_A), start, u64::MAX);
        }
        "rotator" => {
            let vault = both_keys(&dir);
            loop {
                vault.rotate(KeyMaterial::raw(KEY_B)).expect("rotate to B");
                vault.rotate(KeyMaterial::raw(KEY_A)).expect("rotate to A");
            }
        }
        "concurrent" => {
            let vault = file_vault(&dir, KEY_A);
            for k in 0..30 {
                vault
                    .put_bytes(
                        &user("shared"),
                        &format!("{arg}-{k}"),
                        format!("{arg} value {k}").as_bytes(),
                    )
                    .expect("put shared");
                vault
                    .put_bytes(&user(&format!("own-{arg}")), &format!("p{k}"), b"own")
                    .expect("put own");
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn sigkill_during_writes_never_tears_or_loses_a_record() {
    let dir = common::tempdir();
    write_versions(&file_vault(dir.path(), KEY_A), 0, 1);
    let mut progressed = 0;
    let mut last_highest = 0;
    let kills = 200;
    for i in 0..kills {
        let start = (i + 1) * 1_000_000;
        let mut child = spawn_child("writer", dir.path(), &start.to_string());
        std::thread::sleep(Duration::from_micros(1_000 + random_u64() % 40_000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let highest = verify_all(dir.path());
        if highest >= start && highest != last_highest {
            progressed += 1;
        }
        last_highest = highest;
    }
    eprintln!("{progressed} of {kills} killed writers had written a new version");
    // The kills must land while children are writing, not before they start.
    assert!(
        progressed >= kills / 4,
        "only {progressed} of {kills} children wrote before being killed"
    );
}

#[test]
fn sigkill_during_rotation_keeps_every_record_readable() {
    let dir = common::tempdir();
    seed_rotation_users(&file_vault(dir.path(), KEY_A));
    let mut interrupted = 0;
    for _ in 0..60 {
        let mut child = spawn_child("rotator", dir.path(), "");
        std::thread::sleep(Duration::from_micros(2_000 + random_u64() % 80_000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let vault = both_keys(dir.path());
        if vault.rotation_pending() {
            interrupted += 1;
        }
        verify_rotation_users(&vault);
    }
    eprintln!("{interrupted} of 60 kills landed mid-rotation");
    assert!(
        interrupted >= 5,
        "only {interrupted} kills landed mid-rotation"
    );

    // Resume: finish the rotation to B, after which B alone opens the vault.
    let vault = both_keys(dir.path());
    let report = vault.rotate(KeyMaterial::raw(KEY_B)).expect("finish");
    assert!(report.failed.is_empty());
    assert!(!vault.rotation_pending());
    drop(vault);
    let only_b = file_vault(dir.path(), KEY_B);
    assert!(!only_b.rotation_pending());
    verify_rotation_users(&only_b);
}

#[test]
fn two_processes_writing_concurrently_lose_no_update() {
    let dir = common::tempdir();
    drop(file_vault(dir.path(), KEY_A));
    let mut a = spawn_child("concurrent", dir.path(), "a");
    let mut b = spawn_child("concurrent", dir.path(), "b");
    assert!(a.wait().expect("wait a").success(), "child a failed");
    assert!(b.wait().expect("wait b").success(), "child b failed");
    let vault = file_vault(dir.path(), KEY_A);
    let shared = user("shared");
    assert_eq!(vault.providers(&shared).expect("list").len(), 60);
    for prefix in ["a", "b"] {
        for k in 0..30 {
            let value = vault
                .get_bytes(&shared, &format!("{prefix}-{k}"))
                .expect("get")
                .expect("present");
            assert_eq!(
                value.expose_secret(),
                format!("{prefix} value {k}").as_bytes()
            );
        }
        assert_eq!(
            vault
                .providers(&user(&format!("own-{prefix}")))
                .expect("list")
                .len(),
            30
        );
    }
}

#[test]
fn concurrent_creation_of_a_passphrase_vault_agrees_on_one_salt() {
    use secrecy::SecretString;
    let dir = common::tempdir();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let path = dir.path().to_owned();
            std::thread::spawn(move || {
                let v = Vault::builder(StorageMode::EncryptedFile(path))
                    .key(KeyMaterial::passphrase(SecretString::from(
                        "shared passphrase",
                    )))
                    .open()
                    .expect("open");
                v.put_bytes(&user(&format!("t{i}")), "p", b"x")
                    .expect("put");
                v.current_key_id()
            })
        })
        .collect();
    let ids: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one key for all: {ids:?}"
    );
}
