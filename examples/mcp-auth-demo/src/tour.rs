//! `--tour`: a walk through token validation and the vault, without HTTP.
//!
//! It validates bearer tokens minted by an embedded, ephemeral issuer
//! (`mcp-auth-jwks`), then walks through the encrypted credential vault
//! (`mcp-auth-vault`) for the signed-in user as a multi-user MCP server uses
//! it, and checks that every step behaves: the process exits non-zero if one
//! does not.

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

/// `<dir>/<pseudonym>.vault`: the file name is a keyed hash of the user id.
fn user_file(dir: &Path, vault: &Vault, user: &UserId) -> std::path::PathBuf {
    dir.join(format!("{}.vault", vault.storage_name(user)))
}

const ISSUER: &str = "https://issuer.demo.invalid";
const RESOURCE: &str = "https://mcp.demo.invalid/mcp";

/// Bearer-token validation; returns the verified subject to use as the vault user.
fn validate_tokens() -> Result<UserId> {
    use mcp_auth_jwks::{KeySet, Policy, ValidationError, Validator};
    use serde_json::json;

    println!(
        "0. Bearer tokens from an embedded issuer (ephemeral ES256 key), validated by mcp-auth-jwks"
    );
    let issuer = mcp_auth_testkit::DevIssuer::new(ISSUER, RESOURCE);
    let policy = Policy::new(ISSUER, RESOURCE)
        .require_access_token_type()
        .require_scopes(["mcp:tools"]);
    let validator =
        Validator::with_static_keys(policy, KeySet::from_jwks(issuer.jwks_json().as_bytes())?);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = |aud: &str, exp: u64| {
        json!({"iss": ISSUER, "aud": aud, "sub": "alice@example.com", "exp": exp,
               "iat": now, "scope": "mcp:tools", "client_id": "demo-client"})
    };
    let good = issuer.mint(&claims(RESOURCE, now + 300));
    let verified = rt.block_on(validator.validate(&good))?;
    println!(
        "   subject {} with scopes {:?} from client {:?}",
        verified.subject(),
        verified.scopes(),
        verified.client_id()
    );
    let cases = [
        (
            "a token for another resource",
            issuer.mint(&claims("https://other.invalid/mcp", now + 300)),
            "audience",
        ),
        (
            "an expired token",
            issuer.mint(&claims(RESOURCE, now - 3600)),
            "expired",
        ),
        (
            "an unsigned token (alg none)",
            "eyJhbGciOiJub25lIn0.e30.".to_owned(),
            "alg-none",
        ),
    ];
    for (what, token, rule) in cases {
        let err: Option<ValidationError> = rt.block_on(validator.validate(&token)).err();
        println!(
            "   {what}: {}",
            err.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        check(
            err.is_some_and(|e| e.rule() == rule),
            &format!("{what} is rejected ({rule})"),
        )?;
    }
    Ok(UserId::new(verified.subject())?)
}

fn run() -> Result<()> {
    println!("mcp-auth demo: bearer tokens and the encrypted per-user credential vault\n");
    let signed_in = validate_tokens()?;

    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("vault");
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    println!("\nvault directory: {}", dir.display());

    println!(
        "\n1. A fresh 256-bit vault key (production: MCP_VAULT_KEY=$(openssl rand -base64 32))"
    );
    let key_a = KeyMaterial::generate()?
        .export_base64()
        .ok_or("a generated key is raw")?;
    let vault = open(&dir, key_a.expose_secret())?;
    println!("   key id {}", vault.current_key_id().ok_or("encrypted")?);

    println!("\n2. Store upstream tokens for two users");
    let alice = signed_in;
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
    let alice_file = user_file(&dir, &vault, &alice);
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
    let names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    check(
        !names
            .iter()
            .any(|n| n.contains(alice.storage_key().as_str()) || n.contains("alice")),
        "no file name reveals a user id",
    )?;
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
    let bob_file = user_file(&dir, &vault, &bob);
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

/// Runs the tour; non-zero exit when a step misbehaves.
pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
