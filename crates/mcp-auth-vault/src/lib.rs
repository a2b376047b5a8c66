//! An encrypted, per-user credential vault for MCP servers.
//!
//! A multi-user MCP server holds each user's upstream OAuth tokens (Spotify,
//! Google, …). This crate keeps them encrypted at rest with AES-256-GCM under
//! a per-user key, in memory, in one file per user, or both, and survives
//! crashes, concurrent writers, corrupted files and key rotation.
//!
//! ```
//! use mcp_auth_core::UserId;
//! use mcp_auth_vault::{Credential, KeyMaterial, StorageMode, Vault};
//! use secrecy::{ExposeSecret, SecretString};
//!
//! let dir = tempfile::tempdir()?;
//! let key = KeyMaterial::generate()?; // in production: KeyMaterial::from_env("MCP_VAULT_KEY")?
//! let vault = Vault::builder(StorageMode::EncryptedFile(dir.path().join("vault")))
//!     .key(key)
//!     .open()?;
//!
//! let alice = UserId::new("alice@example.com")?;
//! let token = Credential::new(SecretString::from("spotify-access-token"))
//!     .with_refresh_token(SecretString::from("spotify-refresh-token"))
//!     .with_scopes(["playlist-read-private"]);
//! vault.put(&alice, "spotify", &token)?;
//!
//! let back = vault.get(&alice, "spotify")?.expect("stored");
//! assert_eq!(back.access_token().expose_secret(), "spotify-access-token");
//! assert_eq!(vault.providers(&alice)?, ["spotify"]);
//! assert!(format!("{back:?}").contains("[REDACTED]"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Keys
//!
//! The master key is a raw 256-bit key ([`KeyMaterial::from_env`],
//! [`KeyMaterial::from_base64`], [`KeyMaterial::from_key_file`]) or a
//! passphrase stretched once per unlock with Argon2id (default m = 19 MiB,
//! t = 2, p = 1) or PBKDF2-HMAC-SHA256 (≥ 600,000 iterations). Each user's
//! AES key is derived from it with HKDF-SHA256, so no operation after unlock
//! pays the password KDF again. [`Vault::rotate`] moves every record to a new
//! key and can be interrupted and resumed.
//!
//! # Security considerations
//!
//! * Every record's header (format version, key id, KDF parameters, nonce,
//!   provider name) and the owning user id are authenticated as AES-GCM
//!   associated data: a record copied into another user's file, renamed to
//!   another provider, or altered in any byte fails with
//!   [`VaultError::Decrypt`], which does not say why.
//! * Nonces are 96 random bits per write. With one key per user, the
//!   2⁻³² collision bound of random GCM nonces is reached only after about
//!   2³² writes *for one user*; rotate the key long before that.
//! * An attacker with the disk learns no user id: files are named by a
//!   keyed hash of it ([`Vault::storage_name`], a pseudonym under a key
//!   sealed in the manifest), and the id itself is sealed inside. They learn
//!   the number of users, provider names, record sizes and timestamps, but
//!   no credential. Vaults written before pseudonyms are migrated at open.
//!   They can delete a user's file or roll it back to an older copy; the
//!   vault cannot detect a rollback (see `docs/vault.md`).
//! * An attacker with the process's memory has the master key. Secrets are
//!   zeroized on drop to shorten their lifetime in memory, nothing more.
//! * A corrupt user file yields [`VaultError::Corrupt`] for that user only and
//!   is never overwritten by `put`; [`Vault::delete_user`] removes it.
//! * The plaintext development mode exists only behind
//!   [`Vault::dangerous_plaintext_file_for_development_only`]; an encrypted
//!   vault refuses plaintext records (no downgrade by planting a file).

mod aead;
mod credential;
mod error;
/// The record format, public for the fuzz target only: not part of the API.
#[doc(hidden)]
pub mod format;
mod kdf_limits;
mod key;
mod key_id;
mod os;
pub mod store;
mod vault;

pub use credential::Credential;
pub use error::{KdfProblem, KeyProblem, VaultError};
pub use key::{
    ARGON2ID_MIN_M_KIB, ARGON2ID_MIN_T, KdfParams, KeyId, KeyMaterial, PBKDF2_MIN_ITERATIONS,
    PassphraseKdf, SALT_LEN,
};
pub use store::{StorageName, VaultStore};
pub use vault::{RotationReport, StorageMode, Vault, VaultBuilder};
