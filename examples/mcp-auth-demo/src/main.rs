//! The mcp-auth demo. Runs on embedded defaults: no accounts, no services.
//!
//! Today it walks through the encrypted credential vault (`mcp-auth-vault`)
//! as a multi-user MCP server uses it, and checks that every step behaves:
//! the process exits non-zero if one does not. Later crates (JWKS validation,
//! sessions, rate limits, the HTTP layer) extend this demo.

use std::error::Error;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;

use mcp_auth_core::UserId;
use mcp_auth_vault::{Credential, KeyMaterial, StorageMode, Vault, VaultError};
use secrecy::{ExposeSecret, SecretString};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        println!("   ok: {what}");
        Ok(())
    } else {
        Err(format!("unexpected behaviour: {what}").into())
    }
}

fn open(dir: &Path, key: &str) -> std::result::Result<Vault, VaultError> {
    Vault::builder(StorageMode::EncryptedFile(dir.to_owned()))
        .key(KeyMaterial::from_base64(key)?)
        .open()
}

fn user_file(dir: &Path, user: &UserId) -> std::path::PathBuf {
    dir.join(format!("{}.vault", user.storage_key()))
}

fn run() -> Result<()> {
    println!("mcp-auth demo: the encrypted per-user credential vault\n");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("vault");
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    println!("vault directory: {}", dir.display());

    println!(
        "\n1. A fresh 256-bit vault key (production: MCP_VAULT_KEY=$(openssl rand -base64 32))"
    );
    let key_a = KeyMaterial::generate()?
        .export_base64()
        .ok_or("a generated key is raw")?;
    let vault = open(&dir, key_a.expose_secret())?;
    println!("   key id {}", vault.current_key_id().ok_or("encrypted")?);

    println!("\n2. Store upstream tokens for two users");
    let alice = UserId::new("alice@example.com")?;
    let bob = UserId::new("bob@example.com")?;
    let spotify = Credential::new(SecretString::from("BQD-alice-spotify-access-token"))
        .with_refresh_token(SecretString::from("AQC-alice-spotify-refresh-token"))
        .with_expires_at(1_900_000_000)
        .with_scopes(["playlist-read-private"]);
    vault.put(&alice, "spotify", &spotify)?;
    vault.put(
        &alice,
        "google",
        &Credential::new(SecretString::from("ya29.alice-google-token")),
    )?;
    vault.put(
        &bob,
        "spotify",
        &Credential::new(SecretString::from("BQD-bob-spotify-access-token")),
    )?;
    let alice_file = user_file(&dir, &alice);
    let on_disk = std::fs::read(&alice_file)?;
    let mode = std::fs::metadata(&alice_file)?.permissions().mode() & 0o777;
    println!(
        "   {} ({} bytes, mode {mode:o})",
        alice_file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        on_disk.len()
    );
    check(mode == 0o600, "user files are 0600")?;
    check(
        !on_disk
            .windows(b"alice-spotify".len())
            .any(|w| w == b"alice-spotify"),
        "no token text on disk",
    )?;
    check(
        vault.providers(&alice)? == ["spotify", "google"],
        "alice has spotify and google",
    )?;

    println!("\n3. Read back");
    let back = vault.get(&alice, "spotify")?.ok_or("stored")?;
    check(
        back.access_token().expose_secret() == "BQD-alice-spotify-access-token",
        "alice's spotify token decrypts",
    )?;
    println!("   Debug output: {back:?}");
    check(
        !format!("{back:?}").contains("BQD"),
        "Debug output is redacted",
    )?;

    println!("\n4. Tamper with one byte of alice's file");
    let mut tampered = on_disk.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    std::fs::write(&alice_file, &tampered)?;
    let err = vault.get(&alice, "google").err();
    println!(
        "   error: {}",
        err.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    check(
        matches!(err, Some(VaultError::Decrypt { .. })),
        "tampering is detected",
    )?;
    check(vault.get(&bob, "spotify")?.is_some(), "bob is unaffected")?;
    std::fs::write(&alice_file, &on_disk)?;

    println!("\n5. Copy alice's file over bob's (a record moved between users)");
    let bob_file = user_file(&dir, &bob);
    let bob_original = std::fs::read(&bob_file)?;
    std::fs::copy(&alice_file, &bob_file)?;
    let err = vault.get(&bob, "spotify").err();
    println!(
        "   error: {}",
        err.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    check(
        matches!(err, Some(VaultError::Decrypt { .. })),
        "a moved record does not decrypt",
    )?;
    std::fs::write(&bob_file, &bob_original)?;

    println!("\n6. Rotate to a new key");
    let key_b = KeyMaterial::generate()?
        .export_base64()
        .ok_or("a generated key is raw")?;
    let report = vault.rotate(KeyMaterial::from_base64(key_b.expose_secret())?)?;
    println!(
        "   {} records of {} users re-encrypted; new key id {}",
        report.records_reencrypted,
        report.users,
        vault.current_key_id().ok_or("encrypted")?
    );
    check(
        report.records_reencrypted == 3 && report.failed.is_empty(),
        "every record rotated",
    )?;
    check(
        matches!(
            open(&dir, key_a.expose_secret()),
            Err(VaultError::WrongKey { .. })
        ),
        "the old key is retired",
    )?;
    let reopened = open(&dir, key_b.expose_secret())?;
    check(
        reopened.get(&alice, "spotify")?.is_some(),
        "records read under the new key",
    )?;

    println!("\n7. Emergency: wipe every stored credential");
    let wiped = reopened.wipe_all()?;
    check(
        wiped == 2 && reopened.users()?.is_empty(),
        "both users' credentials are gone",
    )?;

    println!("\nall steps behaved as expected");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
