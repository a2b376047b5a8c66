//! Behaviour of the vault: the conformance suite every storage mode passes,
//! tamper detection, isolation of corrupt files, permissions, passphrases,
//! rotation, and secrets kept out of errors, Debug output and logs.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use common::{KEY_A, KEY_B, file_vault, user, user_file};
use mcp_auth_core::UserId;
use mcp_auth_vault::{
    Credential, KeyMaterial, KeyProblem, PassphraseKdf, StorageMode, Vault, VaultError,
};
use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

fn secret_bytes(vault: &Vault, user: &UserId, provider: &str) -> Option<Vec<u8>> {
    vault
        .get_bytes(user, provider)
        .expect("get")
        .map(|s| s.expose_secret().to_vec())
}

/// The same behaviour is required of every storage mode.
/// `$make` gives the vault and whatever must live as long as it (a
/// server); `#[...]` attributes after it go on every test.
macro_rules! conformance {
    ($name:ident, $make:expr $(, #[$meta:meta])*) => {
        mod $name {
            use super::*;

            fn make() -> ((common::TestDir, Box<dyn std::any::Any>), Vault) {
                let dir = common::tempdir();
                let make: fn(&std::path::Path) -> (Vault, Box<dyn std::any::Any>) = $make;
                let (vault, guard) = make(&dir.path().join("vault"));
                ((dir, guard), vault)
            }

            #[test]
            $(#[$meta])*
            fn put_get_overwrite_and_missing() {
                let (_d, v) = make();
                let alice = user("alice@example.com");
                assert!(v.get(&alice, "spotify").expect("get").is_none());
                let cred = Credential::new(SecretString::from("at-1"))
                    .with_refresh_token(SecretString::from("rt-1"))
                    .with_expires_at(1_900_000_000)
                    .with_scopes(["a", "b"]);
                v.put(&alice, "spotify", &cred).expect("put");
                let got = v.get(&alice, "spotify").expect("get").expect("present");
                assert_eq!(got.access_token().expose_secret(), "at-1");
                assert_eq!(got.refresh_token().map(|t| t.expose_secret()), Some("rt-1"));
                assert_eq!(got.expires_at(), Some(1_900_000_000));
                assert_eq!(got.scopes(), ["a", "b"]);
                v.put(
                    &alice,
                    "spotify",
                    &Credential::new(SecretString::from("at-2")),
                )
                .expect("overwrite");
                let got = v.get(&alice, "spotify").expect("get").expect("present");
                assert_eq!(got.access_token().expose_secret(), "at-2");
                assert!(got.refresh_token().is_none());
                assert!(v.get(&user("bob"), "spotify").expect("get").is_none());
                assert!(v.get(&alice, "google").expect("get").is_none());
            }

            #[test]
            $(#[$meta])*
            fn providers_delete_and_users() {
                let (_d, v) = make();
                let (alice, bob) = (user("alice"), user("bob"));
                v.put_bytes(&alice, "spotify", b"s").expect("put");
                v.put_bytes(&alice, "google", b"g").expect("put");
                v.put_bytes(&bob, "google", b"bg").expect("put");
                assert_eq!(v.providers(&alice).expect("list"), ["spotify", "google"]);
                let mut users = v.users().expect("users");
                users.sort();
                assert_eq!(users, [alice.clone(), bob.clone()]);
                assert!(v.delete(&alice, "spotify").expect("delete"));
                assert!(!v.delete(&alice, "spotify").expect("delete again"));
                assert_eq!(v.providers(&alice).expect("list"), ["google"]);
                assert!(v.delete(&alice, "google").expect("delete last"));
                assert!(v.providers(&alice).expect("list").is_empty());
                assert_eq!(v.users().expect("users"), std::slice::from_ref(&bob));
                assert_eq!(
                    secret_bytes(&v, &bob, "google").as_deref(),
                    Some(&b"bg"[..])
                );
            }

            #[test]
            $(#[$meta])*
            fn delete_user_and_wipe_all() {
                let (_d, v) = make();
                for i in 0..5 {
                    v.put_bytes(&user(&format!("u{i}")), "p", b"x")
                        .expect("put");
                }
                assert!(v.delete_user(&user("u0")).expect("delete user"));
                assert!(!v.delete_user(&user("u0")).expect("again"));
                assert_eq!(v.users().expect("users").len(), 4);
                assert_eq!(v.wipe_all().expect("wipe"), 4);
                assert!(v.users().expect("users").is_empty());
                assert!(secret_bytes(&v, &user("u1"), "p").is_none());
                v.put_bytes(&user("u1"), "p", b"after wipe")
                    .expect("usable after wipe");
                assert_eq!(
                    secret_bytes(&v, &user("u1"), "p").as_deref(),
                    Some(&b"after wipe"[..])
                );
            }

            #[test]
            $(#[$meta])*
            fn limits_are_enforced_with_typed_errors() {
                let (_d, v) = make();
                let alice = user("alice");
                assert!(matches!(
                    v.put_bytes(&alice, "", b"x"),
                    Err(VaultError::InvalidProvider { .. })
                ));
                assert!(matches!(
                    v.put_bytes(&alice, &"p".repeat(65), b"x"),
                    Err(VaultError::InvalidProvider { .. })
                ));
                assert!(matches!(
                    v.put_bytes(&alice, "a\nb", b"x"),
                    Err(VaultError::InvalidProvider { .. })
                ));
                assert!(matches!(
                    v.put_bytes(&alice, "p", &vec![0; 64 * 1024 + 1]),
                    Err(VaultError::PayloadTooLarge { .. })
                ));
                v.put_bytes(&alice, "p", &vec![7; 64 * 1024])
                    .expect("maximum size fits");
                for i in 1..64 {
                    v.put_bytes(&alice, &format!("p{i}"), b"x")
                        .expect("within record limit");
                }
                assert!(matches!(
                    v.put_bytes(&alice, "one-too-many", b"x"),
                    Err(VaultError::TooManyRecords { .. })
                ));
                v.put_bytes(&alice, "p1", b"replacing is fine")
                    .expect("replace at limit");
                assert_eq!(v.providers(&alice).expect("list").len(), 64);
            }

            #[test]
            $(#[$meta])*
            fn bytes_are_not_a_credential() {
                let (_d, v) = make();
                let alice = user("alice");
                v.put_bytes(&alice, "raw", b"\x00\x01 not json")
                    .expect("put");
                assert!(matches!(
                    v.get(&alice, "raw"),
                    Err(VaultError::NotACredential { .. })
                ));
            }

            #[test]
            $(#[$meta])*
            fn rotation_keeps_every_record_readable() {
                let (_d, v) = make();
                for i in 0..10 {
                    v.put_bytes(
                        &user(&format!("user{i}")),
                        "p",
                        format!("value {i}").as_bytes(),
                    )
                    .expect("put");
                }
                let before = v.current_key_id().expect("key");
                let report = v.rotate(KeyMaterial::raw(KEY_B)).expect("rotate");
                assert_eq!(report.users, 10);
                assert_eq!(report.records_reencrypted, 10);
                assert!(report.failed.is_empty());
                assert_ne!(v.current_key_id(), Some(before));
                assert!(!v.rotation_pending());
                for i in 0..10 {
                    assert_eq!(
                        secret_bytes(&v, &user(&format!("user{i}")), "p"),
                        Some(format!("value {i}").into_bytes())
                    );
                }
                let again = v.rotate(KeyMaterial::raw(KEY_B)).expect("same key again");
                assert_eq!(again.records_reencrypted, 0, "nothing left to rotate");
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
                #[test]
                $(#[$meta])*
            $(#[$meta])*
                fn round_trip_for_arbitrary_ids_names_and_payloads(
                    id in "[^\\p{Cc}]{1,24}",
                    provider in "[^\\p{Cc}]{1,16}",
                    payload in proptest::collection::vec(any::<u8>(), 0..2048),
                ) {
                    let (_d, v) = make();
                    let u = UserId::new(id).expect("valid");
                    v.put_bytes(&u, &provider, &payload).expect("put");
                    prop_assert_eq!(secret_bytes(&v, &u, &provider), Some(payload));
                    prop_assert_eq!(v.providers(&u).expect("list"), vec![provider]);
                }
            }
        }
    };
}

fn alone(vault: Vault) -> (Vault, Box<dyn std::any::Any>) {
    (vault, Box::new(()))
}

conformance!(memory_only, |_dir| {
    alone(
        Vault::builder(StorageMode::MemoryOnly)
            .key(KeyMaterial::raw(KEY_A))
            .open()
            .expect("open"),
    )
});
conformance!(encrypted_file, |dir| alone(file_vault(dir, KEY_A)));
conformance!(memory_with_encrypted_backup, |dir| {
    alone(
        Vault::builder(StorageMode::MemoryWithEncryptedBackup(dir.to_owned()))
            .key(KeyMaterial::raw(KEY_A))
            .open()
            .expect("open"),
    )
});
#[cfg(feature = "redis")]
conformance!(
    redis,
    |_dir| {
        let redis = mcp_auth_testkit::RedisServer::start("vault conformance (redis)");
        let store = mcp_auth_vault::store::RedisStore::open(mcp_auth_core::RedisConfig::new(redis.url(), mcp_auth_vault::store::RedisStore::DEFAULT_PREFIX))
        .expect("store");
        let vault = Vault::builder_with_store(store)
            .key(KeyMaterial::raw(KEY_A))
            .open()
            .expect("open");
        (vault, Box::new(redis))
    },
    #[ignore = "needs redis-server"]
);

#[test]
fn file_vault_persists_across_reopen_and_backup_mode_writes_through() {
    let dir = common::tempdir();
    let path = dir.path().join("v");
    {
        let cached = Vault::builder(StorageMode::MemoryWithEncryptedBackup(path.clone()))
            .key(KeyMaterial::raw(KEY_A))
            .open()
            .expect("open");
        cached
            .put_bytes(&user("alice"), "p", b"written through")
            .expect("put");
    }
    let reopened = file_vault(&path, KEY_A);
    assert_eq!(
        secret_bytes(&reopened, &user("alice"), "p").as_deref(),
        Some(&b"written through"[..])
    );
}

#[test]
fn flipping_any_single_byte_of_a_stored_file_is_detected() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let alice = user("alice");
    v.put_bytes(&alice, "spotify", b"the original access token")
        .expect("put");
    v.put_bytes(&alice, "google", b"another token")
        .expect("put");
    let path = user_file(dir.path(), &v, &alice);
    let original = fs::read(&path).expect("read");
    for pos in 0..original.len() {
        for mask in [0x01u8, 0x80] {
            let mut tampered = original.clone();
            tampered[pos] ^= mask;
            fs::write(&path, &tampered).expect("write tampered");
            let detected = match v.providers(&alice) {
                Err(VaultError::Corrupt { .. }) => true,
                Err(e) => panic!("byte {pos}: unexpected error {e}"),
                Ok(providers) => {
                    let mut failed = false;
                    for p in &providers {
                        match v.get_bytes(&alice, p) {
                            Err(
                                VaultError::Decrypt { .. }
                                | VaultError::KeyUnavailable { .. }
                                | VaultError::PlaintextRecordRefused { .. },
                            ) => failed = true,
                            Err(e) => panic!("byte {pos}: unexpected error {e}"),
                            Ok(Some(value)) => {
                                let expected: &[u8] = if p == "spotify" {
                                    b"the original access token"
                                } else {
                                    b"another token"
                                };
                                assert_eq!(
                                    value.expose_secret(),
                                    expected,
                                    "byte {pos}: a tampered record decrypted to something else"
                                );
                            }
                            Ok(None) => unreachable!("listed providers exist"),
                        }
                    }
                    // A flip in the identity record (the sealed user id)
                    // shows in the listing of users instead.
                    failed || !v.users().expect("users").contains(&alice)
                }
            };
            assert!(
                detected,
                "flipping byte {pos} with {mask:#x} went unnoticed"
            );
        }
    }
    fs::write(&path, &original).expect("restore");
    assert_eq!(
        secret_bytes(&v, &alice, "spotify").as_deref(),
        Some(&b"the original access token"[..])
    );
}

#[test]
fn a_file_copied_to_another_user_does_not_decrypt() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let (alice, mallory) = (user("alice"), user("mallory"));
    v.put_bytes(&alice, "spotify", b"alice's token")
        .expect("put");
    v.put_bytes(&mallory, "spotify", b"mallory's token")
        .expect("put");
    fs::copy(
        user_file(dir.path(), &v, &alice),
        user_file(dir.path(), &v, &mallory),
    )
    .expect("copy");
    assert!(matches!(
        v.get_bytes(&mallory, "spotify"),
        Err(VaultError::Decrypt { .. })
    ));
    assert_eq!(
        secret_bytes(&v, &alice, "spotify").as_deref(),
        Some(&b"alice's token"[..])
    );
}

/// Offsets of the credential records in a file written with a raw key
/// (documented layout: 7-byte file header; record header 1+1+8+1+12 bytes,
/// name length, name, u32 payload length, payload), leaving out the identity
/// record (its name starts with byte 1).
fn record_spans(file: &[u8]) -> Vec<(usize, usize, usize)> {
    let count = u16::from_be_bytes([file[5], file[6]]) as usize;
    let mut at = 7;
    let mut spans = Vec::new();
    for _ in 0..count {
        let name_at = at + 23;
        let name_len = file[name_at] as usize;
        let len_at = name_at + 1 + name_len;
        let payload_len =
            u32::from_be_bytes(file[len_at..len_at + 4].try_into().expect("4")) as usize;
        if file[name_at + 1] != 1 {
            spans.push((name_at + 1, len_at + 4, payload_len));
        }
        at = len_at + 4 + payload_len;
    }
    spans
}

#[test]
fn records_swapped_between_providers_are_detected() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let alice = user("alice");
    v.put_bytes(&alice, "prov-a", b"token for A!").expect("put");
    v.put_bytes(&alice, "prov-b", b"token for B!").expect("put");
    let path = user_file(dir.path(), &v, &alice);
    let original = fs::read(&path).expect("read");
    let spans = record_spans(&original);
    assert_eq!(spans.len(), 2);

    // 1. Rename: swap the provider names of the two records.
    let mut renamed = original.clone();
    renamed[spans[0].0 + 5] = b'b';
    renamed[spans[1].0 + 5] = b'a';
    fs::write(&path, &renamed).expect("write");
    assert!(matches!(
        v.get_bytes(&alice, "prov-a"),
        Err(VaultError::Decrypt { .. })
    ));
    assert!(matches!(
        v.get_bytes(&alice, "prov-b"),
        Err(VaultError::Decrypt { .. })
    ));

    // 2. Swap the ciphertexts (same length) between the two records.
    let mut swapped = original.clone();
    let (a, b) = (spans[0], spans[1]);
    assert_eq!(a.2, b.2);
    let ct_a = original[a.1..a.1 + a.2].to_vec();
    let ct_b = original[b.1..b.1 + b.2].to_vec();
    swapped[a.1..a.1 + a.2].copy_from_slice(&ct_b);
    swapped[b.1..b.1 + b.2].copy_from_slice(&ct_a);
    fs::write(&path, &swapped).expect("write");
    assert!(matches!(
        v.get_bytes(&alice, "prov-a"),
        Err(VaultError::Decrypt { .. })
    ));
    assert!(matches!(
        v.get_bytes(&alice, "prov-b"),
        Err(VaultError::Decrypt { .. })
    ));
}

#[test]
fn a_corrupt_file_affects_only_its_user_and_is_never_overwritten() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let (alice, bob) = (user("alice"), user("bob"));
    v.put_bytes(&alice, "spotify", b"alice").expect("put");
    v.put_bytes(&bob, "spotify", b"bob").expect("put");
    let path = user_file(dir.path(), &v, &alice);
    let full = fs::read(&path).expect("read");
    let truncated = &full[..full.len() / 2];
    fs::write(&path, truncated).expect("truncate");

    let err = v.get_bytes(&alice, "spotify").expect_err("corrupt");
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("user alice"), "{err}");
    assert_eq!(
        secret_bytes(&v, &bob, "spotify").as_deref(),
        Some(&b"bob"[..])
    );
    assert!(matches!(
        v.put_bytes(&alice, "google", b"new"),
        Err(VaultError::Corrupt { .. })
    ));
    assert!(matches!(
        v.delete(&alice, "spotify"),
        Err(VaultError::Corrupt { .. })
    ));
    assert_eq!(
        fs::read(&path).expect("read"),
        truncated,
        "a corrupt file is left as found"
    );

    let report = v.rotate(KeyMaterial::raw(KEY_B)).expect("rotation runs");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, v.storage_name(&alice));
    assert!(
        v.rotation_pending(),
        "old key kept while a user could not be rotated"
    );
    assert_eq!(
        secret_bytes(&v, &bob, "spotify").as_deref(),
        Some(&b"bob"[..])
    );

    assert!(v.delete_user(&alice).expect("delete corrupt user"));
    let report = v.finish_rotation().expect("finish");
    assert!(report.failed.is_empty());
    assert!(!v.rotation_pending());
    v.put_bytes(&alice, "spotify", b"fresh")
        .expect("put after reset");
    let reopened = file_vault(dir.path(), KEY_B);
    assert_eq!(
        secret_bytes(&reopened, &bob, "spotify").as_deref(),
        Some(&b"bob"[..])
    );
    assert_eq!(
        secret_bytes(&reopened, &alice, "spotify").as_deref(),
        Some(&b"fresh"[..])
    );
}

#[test]
fn hostile_files_yield_typed_errors() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let alice = user("alice");
    let path = user_file(dir.path(), &v, &alice);
    for junk in [
        Vec::new(),
        b"MAVF".to_vec(),
        b"MAVF\x01\xff\xff".to_vec(),
        vec![0xFF; 10_000],
        vec![b'M'; 5 * 1024 * 1024],
    ] {
        fs::write(&path, &junk).expect("write");
        assert!(matches!(
            v.get_bytes(&alice, "p"),
            Err(VaultError::Corrupt { .. })
        ));
    }
    fs::write(dir.path().join("keys.manifest"), b"MAVK\x01\x00").expect("write");
    let err = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
        .key(KeyMaterial::raw(KEY_A))
        .open()
        .expect_err("corrupt manifest");
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
}

#[test]
fn permissions_are_private() {
    let dir = common::tempdir();
    let vault_dir = dir.path().join("new-vault");
    let v = file_vault(&vault_dir, KEY_A);
    v.put_bytes(&user("alice"), "p", b"x").expect("put");
    let mode = |p: &std::path::Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&vault_dir), 0o700);
    assert_eq!(mode(&user_file(&vault_dir, &v, &user("alice"))), 0o600);
    assert_eq!(mode(&vault_dir.join("keys.manifest")), 0o600);

    let loose = dir.path().join("loose");
    fs::create_dir(&loose).expect("mkdir");
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = Vault::builder(StorageMode::EncryptedFile(loose))
        .key(KeyMaterial::raw(KEY_A))
        .open()
        .expect_err("loose dir");
    assert!(
        matches!(err, VaultError::InsecurePermissions { mode: 0o755, .. }),
        "{err}"
    );

    let key_file = dir.path().join("vault.key");
    fs::write(&key_file, [9u8; 32]).expect("write key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        KeyMaterial::from_key_file(&key_file),
        Err(VaultError::InsecurePermissions { .. })
    ));
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    KeyMaterial::from_key_file(&key_file).expect("private key file");

    // Something that is not a key file (a huge file, say a disk image named
    // by mistake) is refused from its metadata, without reading it.
    let huge = dir.path().join("huge.key");
    let file = fs::File::create(&huge).expect("create");
    file.set_len(1 << 40).expect("sparse 1 TiB");
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = KeyMaterial::from_key_file(&huge).expect_err("huge key file");
    assert!(
        matches!(
            &err,
            VaultError::InvalidKey(KeyProblem::KeyFileTooLarge { .. })
        ) && err.to_string().contains("larger than a key file"),
        "{err}"
    );
}

#[test]
fn user_ids_that_naive_sanitizers_merge_stay_apart() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let long_a = format!("{}a", "x".repeat(60));
    let long_b = format!("{}b", "x".repeat(60));
    let ids = [
        "a.b",
        "a_b",
        "A.B",
        "alice@example.com",
        "alice_example_com",
        long_a.as_str(),
        long_b.as_str(),
        "../../etc/passwd",
    ];
    for id in ids {
        v.put_bytes(&user(id), "p", id.as_bytes()).expect("put");
    }
    assert_eq!(v.users().expect("users").len(), ids.len());
    for id in ids {
        assert_eq!(
            secret_bytes(&v, &user(id), "p").as_deref(),
            Some(id.as_bytes()),
            "{id}"
        );
    }
    assert_eq!(
        fs::read_dir(dir.path()).expect("ls").count(),
        ids.len() + 2,
        "user files + manifest + lock, nothing outside"
    );
}

#[test]
fn wrong_key_is_refused_at_open() {
    let dir = common::tempdir();
    file_vault(dir.path(), KEY_A)
        .put_bytes(&user("a"), "p", b"x")
        .expect("put");
    let err = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
        .key(KeyMaterial::raw(KEY_B))
        .open()
        .expect_err("wrong key");
    assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    assert!(matches!(
        Vault::builder(StorageMode::MemoryOnly).open(),
        Err(VaultError::NoKey)
    ));
}

#[test]
fn passphrase_vaults_argon2id_and_pbkdf2() {
    for kdf in [
        PassphraseKdf::default(),
        PassphraseKdf::Pbkdf2Sha256 {
            iterations: 600_000,
        },
    ] {
        let dir = common::tempdir();
        let open = |pass: &str| {
            Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
                .key(KeyMaterial::passphrase(SecretString::from(pass)))
                .passphrase_kdf(kdf)
                .open()
        };
        open("correct horse battery staple")
            .expect("create")
            .put_bytes(&user("alice"), "p", b"secret")
            .expect("put");
        let v = open("correct horse battery staple").expect("reopen");
        assert_eq!(
            secret_bytes(&v, &user("alice"), "p").as_deref(),
            Some(&b"secret"[..])
        );
        assert!(matches!(
            open("wrong passphrase"),
            Err(VaultError::WrongKey { .. })
        ));
        // A raw key where a passphrase is expected is a wrong key, not a crash.
        let raw = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
            .key(KeyMaterial::raw(KEY_A))
            .open();
        assert!(matches!(raw, Err(VaultError::WrongKey { .. })));
    }
}

#[test]
fn rotation_between_raw_key_and_passphrase() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    v.put_bytes(&user("alice"), "p", b"kept").expect("put");
    v.rotate(KeyMaterial::passphrase(SecretString::from(
        "new passphrase",
    )))
    .expect("rotate to passphrase");
    drop(v);
    let v = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
        .key(KeyMaterial::passphrase(SecretString::from(
            "new passphrase",
        )))
        .open()
        .expect("open with passphrase");
    assert_eq!(
        secret_bytes(&v, &user("alice"), "p").as_deref(),
        Some(&b"kept"[..])
    );
    assert!(
        matches!(
            Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
                .key(KeyMaterial::raw(KEY_A))
                .open(),
            Err(VaultError::WrongKey { .. })
        ),
        "the old key is retired"
    );
}

#[test]
fn plaintext_mode_is_separate_loud_and_refused_by_encrypted_vaults() {
    let logs = capture_logs();
    let dir = common::tempdir();
    let plain_dir = dir.path().join("plain");
    let dev = Vault::dangerous_plaintext_file_for_development_only(&plain_dir).expect("dev vault");
    dev.put_bytes(&user("alice"), "p", b"visible on disk")
        .expect("put");
    assert_eq!(
        secret_bytes(&dev, &user("alice"), "p").as_deref(),
        Some(&b"visible on disk"[..])
    );
    assert!(
        logs.text()
            .contains("PLAINTEXT credential storage is enabled")
    );
    assert!(dev.rotate(KeyMaterial::raw(KEY_A)).is_err());

    // A plaintext file planted in an encrypted vault is refused, not served.
    let enc_dir = dir.path().join("enc");
    let v = file_vault(&enc_dir, KEY_A);
    v.put_bytes(&user("bob"), "p", b"bob").expect("put");
    fs::copy(
        user_file(&plain_dir, &dev, &user("alice")),
        user_file(&enc_dir, &v, &user("alice")),
    )
    .expect("plant");
    assert!(matches!(
        v.get_bytes(&user("alice"), "p"),
        Err(VaultError::PlaintextRecordRefused { .. })
    ));
    // An encrypted vault directory is not opened as a plaintext one, and a
    // plaintext directory is not silently adopted by an encrypted vault.
    assert!(Vault::dangerous_plaintext_file_for_development_only(&enc_dir).is_err());
    let err = Vault::builder(StorageMode::EncryptedFile(plain_dir))
        .key(KeyMaterial::raw(KEY_A))
        .open()
        .expect_err("plaintext dir");
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    assert!(StorageMode::parse(Some("FILE_PLAINTEXT"), Some(dir.path().into())).is_err());
    assert_eq!(
        StorageMode::parse(Some("memory_only"), None).expect("parse"),
        StorageMode::MemoryOnly
    );
    assert_eq!(
        StorageMode::parse(None, Some("/x".into())).expect("default"),
        StorageMode::EncryptedFile("/x".into())
    );
    assert!(
        StorageMode::parse(Some("FILE_ENCRYPTED"), None).is_err(),
        "a file mode needs a directory"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of every thread from here on (each integration
/// test binary installs the global subscriber once).
fn capture_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .init();
            captured
        })
        .clone()
}

#[test]
fn no_secret_in_debug_errors_or_logs() {
    let logs = capture_logs();
    let dir = common::tempdir();
    let key_b64 = "pSWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU=";
    let key = KeyMaterial::from_base64(key_b64).expect("key");
    let pass = "pass-phrase-SENTINEL";
    let v = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
        .key(key)
        .open()
        .expect("open");
    let alice = user("alice");
    let cred = Credential::new(SecretString::from("ACCESS-SENTINEL"))
        .with_refresh_token(SecretString::from("REFRESH-SENTINEL"));
    v.put(&alice, "spotify", &cred).expect("put");
    let got = v.get(&alice, "spotify").expect("get").expect("present");

    // Failure paths: tampering, wrong key, corrupt file, rotation, passphrase.
    let path = user_file(dir.path(), &v, &alice);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let decrypt_err = v.get(&alice, "spotify").expect_err("tampered");
    fs::write(&path, b"garbage").expect("write");
    let corrupt_err = v.get(&alice, "spotify").expect_err("corrupt");
    let wrong_key_err = Vault::builder(StorageMode::EncryptedFile(dir.path().to_owned()))
        .key(KeyMaterial::passphrase(SecretString::from(pass)))
        .open()
        .expect_err("wrong key");
    v.delete_user(&alice).expect("reset");
    v.put(&alice, "spotify", &cred).expect("put");
    v.rotate(KeyMaterial::passphrase(SecretString::from(pass)))
        .expect("rotate");

    let everything = format!(
        "{cred:?} {got:?} {v:?} {decrypt_err} {decrypt_err:?} {corrupt_err} {corrupt_err:?} {wrong_key_err} {wrong_key_err:?} {:?} {}",
        KeyMaterial::passphrase(SecretString::from(pass)),
        logs.text()
    );
    assert!(
        logs.text().contains("record failed authentication"),
        "logs were captured"
    );
    for secret in [
        "ACCESS-SENTINEL",
        "REFRESH-SENTINEL",
        "SENTINEL",
        key_b64,
        &key_b64[..20],
        "165, 165",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} leaked into: {everything}"
        );
    }
}

/// Every file (name and bytes) under `dir`, as one lossy text.
fn everything_on_disk(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        out.push_str(&entry.file_name().to_string_lossy());
        out.push(' ');
        out.push_str(&String::from_utf8_lossy(
            &fs::read(entry.path()).expect("read"),
        ));
        out.push('\n');
    }
    out
}

/// A copy of the release-0.1 fixture in a fresh private directory.
fn fixture_v1_copy() -> (common::TestDir, std::path::PathBuf) {
    let dir = common::tempdir();
    let vault_dir = dir.path().join("vault");
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
        .create(&vault_dir)
        .expect("mkdir");
    for entry in fs::read_dir(common::fixture_v1_dir()).expect("fixture") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), vault_dir.join(entry.file_name())).expect("copy");
    }
    (dir, vault_dir)
}

fn open_raw(dir: &std::path::Path, key: [u8; 32]) -> Result<Vault, VaultError> {
    Vault::builder(StorageMode::EncryptedFile(dir.to_owned()))
        .key(KeyMaterial::raw(key))
        .open()
}

#[test]
fn no_user_id_can_be_read_off_the_disk() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let alice = user("alice@example.com");
    v.put_bytes(&alice, "spotify", b"token").expect("put");
    let disk = everything_on_disk(dir.path());
    for needle in ["alice", alice.storage_key().as_str()] {
        assert!(!disk.contains(needle), "{needle} on disk: {disk}");
    }
    let name = v.storage_name(&alice);
    assert!(name.as_str().starts_with("p-"), "{name}");
    assert!(dir.path().join(format!("{name}.vault")).exists());
    // The operator's listing by user still works, through the key.
    assert_eq!(v.users().expect("users"), vec![alice.clone()]);
    // Another process with the key computes the same names.
    let again = file_vault(dir.path(), KEY_A);
    assert_eq!(again.storage_name(&alice), name);
    assert_eq!(again.users().expect("users"), vec![alice.clone()]);
    // A different vault (key) names the same user differently.
    let other = common::tempdir();
    assert_ne!(file_vault(other.path(), KEY_B).storage_name(&alice), name);
    // The pseudonyms handed to other stores are neither the file names nor the id.
    let stores = v.user_pseudonyms().expect("encrypted vault");
    assert_ne!(stores.name(&alice).as_str(), name.as_str());
    assert_eq!(
        again.user_pseudonyms().expect("keys").name(&alice),
        stores.name(&alice)
    );
}

#[test]
fn a_key_rotation_renames_nothing_and_keeps_the_listing() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let alice = user("alice");
    v.put_bytes(&alice, "spotify", b"token").expect("put");
    let name = v.storage_name(&alice);
    let pseudonyms = v.user_pseudonyms().expect("keys").name(&alice);
    let report = v.rotate(KeyMaterial::raw(KEY_B)).expect("rotate");
    assert_eq!(report.records_reencrypted, 1);
    assert!(report.failed.is_empty());
    drop(v);
    let v = file_vault(dir.path(), KEY_B);
    assert_eq!(v.storage_name(&alice), name);
    assert_eq!(v.user_pseudonyms().expect("keys").name(&alice), pseudonyms);
    assert_eq!(v.users().expect("users"), vec![alice.clone()]);
    assert_eq!(
        secret_bytes(&v, &alice, "spotify").as_deref(),
        Some(&b"token"[..])
    );
    assert!(matches!(
        open_raw(dir.path(), KEY_A),
        Err(VaultError::WrongKey { .. })
    ));
}

#[test]
fn a_file_moved_under_another_users_name_is_left_out_of_the_listing() {
    let dir = common::tempdir();
    let v = file_vault(dir.path(), KEY_A);
    let (alice, mallory) = (user("alice"), user("mallory"));
    v.put_bytes(&alice, "spotify", b"alice's").expect("put");
    fs::rename(
        user_file(dir.path(), &v, &alice),
        user_file(dir.path(), &v, &mallory),
    )
    .expect("move");
    assert!(v.users().expect("users").is_empty());
    assert!(matches!(
        v.get_bytes(&mallory, "spotify"),
        Err(VaultError::Decrypt { .. })
    ));
    assert_eq!(
        v.get_bytes(&alice, "spotify").expect("get").map(|_| ()),
        None
    );
}

#[test]
fn a_vault_written_by_release_0_1_is_migrated_losing_nothing() {
    let (_tmp, dir) = fixture_v1_copy();
    let before = everything_on_disk(&dir);
    for (id, _) in common::FIXTURE_V1_USERS {
        assert!(
            before.contains(user(id).storage_key().as_str()),
            "the fixture is old-style"
        );
    }
    let v = open_raw(&dir, common::FIXTURE_V1_KEY).expect("open migrates");
    common::assert_fixture_v1_intact(&v);
    let after = everything_on_disk(&dir);
    for (id, _) in common::FIXTURE_V1_USERS {
        let u = user(id);
        assert!(!after.contains(u.storage_key().as_str()), "{id}: {after}");
        assert!(!after.contains(id), "{id} on disk");
        assert!(user_file(&dir, &v, &u).exists());
    }
    assert_eq!(fs::read(dir.join("keys.manifest")).expect("manifest")[4], 2);
    // The upgraded vault reopens (no migration left), rotates and reopens.
    drop(v);
    let v = open_raw(&dir, common::FIXTURE_V1_KEY).expect("reopen");
    common::assert_fixture_v1_intact(&v);
    assert!(
        v.rotate(KeyMaterial::raw(KEY_B))
            .expect("rotate")
            .failed
            .is_empty()
    );
    drop(v);
    common::assert_fixture_v1_intact(&open_raw(&dir, KEY_B).expect("new key"));
}

#[test]
fn a_migration_interrupted_between_its_two_writes_is_finished_and_merged() {
    let (_tmp, dir) = fixture_v1_copy();
    let alice = user("alice@example.com");
    let old_alice = dir.join(format!("{}.vault", alice.storage_key()));
    let old_bytes = fs::read(&old_alice).expect("old file");
    let v = open_raw(&dir, common::FIXTURE_V1_KEY).expect("open migrates");
    // After the migration, alice gains a provider and replaces one...
    v.put_bytes(&alice, "github", b"new").expect("put");
    v.put(
        &alice,
        "spotify",
        &Credential::new(SecretString::from("spotify-newer")),
    )
    .expect("put");
    drop(v);
    // ...and the old file is back, as if a crash had come between writing
    // the new file and deleting the old one.
    fs::write(&old_alice, &old_bytes).expect("restore old file");
    let v = open_raw(&dir, common::FIXTURE_V1_KEY).expect("open again");
    assert!(!old_alice.exists(), "the old file is gone after the merge");
    let mut providers = v.providers(&alice).expect("providers");
    providers.sort();
    assert_eq!(providers, ["github", "google", "spotify"]);
    let spotify = v.get(&alice, "spotify").expect("get").expect("present");
    assert_eq!(
        spotify.access_token().expose_secret(),
        "spotify-newer",
        "the newer record wins"
    );
    assert_eq!(
        secret_bytes(&v, &alice, "github").as_deref(),
        Some(&b"new"[..])
    );
}

#[test]
fn a_corrupt_file_from_release_0_1_is_left_as_found_and_the_rest_migrate() {
    let (_tmp, dir) = fixture_v1_copy();
    let bob = user("bob@example.org");
    let old_bob = dir.join(format!("{}.vault", bob.storage_key()));
    let truncated = fs::read(&old_bob).expect("read")[..40].to_vec();
    fs::write(&old_bob, &truncated).expect("truncate");
    let v = open_raw(&dir, common::FIXTURE_V1_KEY).expect("open despite one corrupt file");
    assert_eq!(
        fs::read(&old_bob).expect("still there"),
        truncated,
        "never overwritten"
    );
    let alice = user("alice@example.com");
    assert_eq!(
        v.get(&alice, "google")
            .expect("get")
            .map(|c| c.access_token().expose_secret().to_owned()),
        Some("google-access-of-alice@example.com".to_owned())
    );
    // Still listed (its old name decodes), until the operator deletes it.
    assert!(v.users().expect("users").contains(&bob));
}
