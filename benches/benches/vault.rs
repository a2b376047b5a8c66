//! Vault throughput, unlock cost, and the cost of the "derive the key on
//! every operation" design of an existing Python MCP server (PBKDF2-HMAC-SHA256,
//! 100,000 iterations per operation), measured in the same run with the ratio
//! printed. Figures are recorded in docs/vault.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use criterion::{Criterion, Throughput};
use mcp_auth_benches::{bench_mode, time_per_op};
use mcp_auth_core::UserId;
use mcp_auth_vault::{Credential, KeyMaterial, PassphraseKdf, StorageMode, Vault};
use secrecy::SecretString;
use sha2::Sha256;

const PASSPHRASE: &str = "correct horse battery staple";

fn credential() -> Credential {
    Credential::new(SecretString::from("A".repeat(220)))
        .with_refresh_token(SecretString::from("R".repeat(130)))
        .with_expires_at(1_900_000_000)
        .with_scopes(["playlist-read-private", "user-read-playback-state"])
        .with_token_type("Bearer")
}

fn private_dir(root: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = root.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("mkdir");
    dir
}

fn open(mode: StorageMode) -> Vault {
    Vault::builder(mode)
        .key(KeyMaterial::raw([7; 32]))
        .open()
        .expect("open")
}

/// The reference design: PBKDF2(machine id, fixed salt, 100k) on every
/// operation, then AES-256-GCM decryption of the stored token.
struct ReferenceDesign {
    nonce: [u8; 12],
    sealed: Vec<u8>,
}

impl ReferenceDesign {
    const ITERATIONS: u32 = 100_000;

    fn derive() -> [u8; 32] {
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            b"machine-id-0123456789",
            b"fastmcp2_salt_v1",
            Self::ITERATIONS,
            &mut key,
        );
        key
    }

    fn new(plaintext: &[u8]) -> Self {
        let nonce = [3u8; 12];
        let key = Self::derive();
        let sealed = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: b"",
                },
            )
            .expect("encrypt");
        Self { nonce, sealed }
    }

    fn get(&self) -> Vec<u8> {
        let key = Self::derive();
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))
            .decrypt(
                &Nonce::from(self.nonce),
                Payload {
                    msg: &self.sealed,
                    aad: b"",
                },
            )
            .expect("decrypt")
    }
}

fn bench_ops(c: &mut Criterion, tmp: &Path) {
    let alice = UserId::new("alice@example.com").expect("id");
    let cred = credential();
    let modes = [
        ("memory", StorageMode::MemoryOnly),
        ("file", StorageMode::EncryptedFile(private_dir(tmp, "file"))),
        (
            "memory+file",
            StorageMode::MemoryWithEncryptedBackup(private_dir(tmp, "cached")),
        ),
    ];
    let mut get = c.benchmark_group("vault/get");
    get.throughput(Throughput::Elements(1));
    let vaults: Vec<(&str, Vault)> = modes
        .into_iter()
        .map(|(name, mode)| {
            let v = open(mode);
            v.put(&alice, "spotify", &cred).expect("put");
            (name, v)
        })
        .collect();
    for (name, vault) in &vaults {
        get.bench_function(*name, |b| {
            b.iter(|| black_box(vault.get(&alice, "spotify").expect("get")))
        });
    }
    get.finish();

    let mut put = c.benchmark_group("vault/put");
    put.throughput(Throughput::Elements(1));
    for (name, vault) in &vaults {
        put.bench_function(*name, |b| {
            b.iter(|| vault.put(&alice, "spotify", black_box(&cred)).expect("put"))
        });
    }
    put.finish();
}

fn bench_unlock(c: &mut Criterion, tmp: &Path) {
    let mut group = c.benchmark_group("vault/unlock");
    group.sample_size(10);
    let raw_dir = private_dir(tmp, "unlock-raw");
    open(StorageMode::EncryptedFile(raw_dir.clone()));
    group.bench_function("raw key", |b| {
        b.iter(|| open(StorageMode::EncryptedFile(raw_dir.clone())))
    });
    for (name, kdf) in [
        ("argon2id m=19MiB t=2 p=1", PassphraseKdf::default()),
        (
            "pbkdf2-sha256 600k",
            PassphraseKdf::Pbkdf2Sha256 {
                iterations: 600_000,
            },
        ),
    ] {
        let dir = private_dir(tmp, name);
        let unlock = || {
            Vault::builder(StorageMode::EncryptedFile(dir.clone()))
                .key(KeyMaterial::passphrase(SecretString::from(PASSPHRASE)))
                .passphrase_kdf(kdf)
                .open()
                .expect("unlock")
        };
        unlock();
        group.bench_function(name, |b| b.iter(unlock));
    }
    group.finish();
}

fn bench_reference(c: &mut Criterion) {
    let reference =
        ReferenceDesign::new(b"an access token of a typical size............................");
    let mut group = c.benchmark_group("vault/reference-design");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("pbkdf2-100k per get", |b| {
        b.iter(|| black_box(reference.get()))
    });
    group.finish();
}

/// Both sides measured back to back in this run; the ratio is what matters.
fn print_ratio() {
    let alice = UserId::new("alice@example.com").expect("id");
    let vault = open(StorageMode::MemoryOnly);
    vault.put(&alice, "spotify", &credential()).expect("put");
    let reference =
        ReferenceDesign::new(b"an access token of a typical size............................");
    let (ours_n, reference_n) = if bench_mode() { (50_000, 30) } else { (10, 1) };
    let ours = time_per_op(ours_n, || {
        black_box(vault.get(&alice, "spotify").expect("get"));
    });
    let theirs = time_per_op(reference_n, || {
        black_box(reference.get());
    });
    println!(
        "ratio: reference design (PBKDF2 100k per operation) {:?}/get vs mcp-auth-vault memory mode {:?}/get = {:.0}x slower",
        theirs,
        ours,
        theirs.as_secs_f64() / ours.as_secs_f64().max(1e-12)
    );
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = Criterion::default().configure_from_args();
    bench_ops(&mut c, tmp.path());
    bench_unlock(&mut c, tmp.path());
    bench_reference(&mut c);
    c.final_summary();
    print_ratio();
}
