use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use mcp_auth_core::{UserId, UserPseudonyms};
use secrecy::SecretSlice;
use zeroize::Zeroizing;

use crate::aead;
use crate::credential::Credential;
use crate::error::{KeyProblem, VaultError};
use crate::format::{
    Cipher, IDENTITY_RECORD, MAX_MANIFEST_KEYS, MAX_PAYLOAD, MAX_PROVIDER_LEN, MAX_RECORDS,
    Manifest, NAMES_AAD, Record, SealedNames, UserFile,
};
use crate::key::{KdfParams, KeyId, KeyMaterial, MasterKey, PassphraseKdf};
use crate::os::fill_random;
mod names;

use crate::store::{CachedFileStore, FileStore, MemoryStore, StorageName, Update, VaultStore};
use names::Names;

/// Where and how the vault keeps its records. Every mode encrypts; the
/// plaintext development mode is deliberately not a variant here (see
/// [`Vault::dangerous_plaintext_file_for_development_only`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageMode {
    /// Encrypted records in process memory; lost at exit.
    MemoryOnly,
    /// Encrypted records in one file per user under a directory. The
    /// recommended production mode, and the default of [`StorageMode::parse`].
    EncryptedFile(PathBuf),
    /// A write-through memory cache in front of [`StorageMode::EncryptedFile`]
    /// (single-process deployments that want memory-speed reads).
    MemoryWithEncryptedBackup(PathBuf),
}

impl StorageMode {
    /// Parses the mode names used by existing MCP servers
    /// (`FILE_ENCRYPTED`, `MEMORY_ONLY`, `MEMORY_WITH_BACKUP`, any case; an
    /// empty or absent name means `FILE_ENCRYPTED`). `FILE_PLAINTEXT` is refused:
    /// plaintext storage is only reachable through its loudly named constructor.
    pub fn parse(name: Option<&str>, dir: Option<PathBuf>) -> Result<Self, VaultError> {
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("FILE_ENCRYPTED");
        let need_dir = |dir: Option<PathBuf>| {
            dir.ok_or_else(|| VaultError::InvalidStorageMode {
                mode: name.to_owned(),
                reason: "this mode needs a directory (e.g. set CREDENTIAL_STORAGE_DIR)",
            })
        };
        match name.to_ascii_uppercase().as_str() {
            "MEMORY_ONLY" => Ok(Self::MemoryOnly),
            "FILE_ENCRYPTED" => Ok(Self::EncryptedFile(need_dir(dir)?)),
            "MEMORY_WITH_BACKUP" => Ok(Self::MemoryWithEncryptedBackup(need_dir(dir)?)),
            "FILE_PLAINTEXT" => Err(VaultError::InvalidStorageMode {
                mode: name.to_owned(),
                reason: "FILE_PLAINTEXT cannot be selected by configuration; for local \
                         development call Vault::dangerous_plaintext_file_for_development_only",
            }),
            _ => Err(VaultError::InvalidStorageMode {
                mode: name.to_owned(),
                reason: "unknown; expected FILE_ENCRYPTED, MEMORY_ONLY or MEMORY_WITH_BACKUP",
            }),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RotationReport {
    /// Users whose files were examined.
    pub users: usize,
    /// Records re-encrypted under the new key.
    pub records_reencrypted: usize,
    /// User files that could not be rotated (corrupt, or holding a record
    /// under a key that was not supplied), by name ([`Vault::storage_name`]
    /// gives a user's). While this is non-empty the previous keys stay in
    /// the manifest and [`Vault::rotation_pending`] is true.
    pub failed: Vec<(StorageName, VaultError)>,
}

struct Keyring {
    current: Arc<MasterKey>,
    previous: Vec<Arc<MasterKey>>,
}

impl Keyring {
    fn find(&self, id: KeyId) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
            .map(Arc::as_ref)
    }

    fn manifest(&self, names: &Names) -> Result<Manifest, VaultError> {
        Ok(Manifest {
            keys: std::iter::once(&self.current)
                .chain(self.previous.iter())
                .map(|k| (k.id, k.kdf.clone()))
                .collect(),
            names: Some(names.seal(&self.current)?),
        })
    }
}

enum Protection {
    Encrypted(RwLock<Keyring>),
    Plaintext,
}

/// The encrypted per-user credential vault.
///
/// All methods are blocking (file I/O, and the passphrase KDF in
/// [`VaultBuilder::open`] and [`Vault::rotate`]); from async code call them
/// through `tokio::task::spawn_blocking` or keep the vault in
/// [`StorageMode::MemoryOnly`] / [`StorageMode::MemoryWithEncryptedBackup`]
/// where reads do no I/O. `Vault` is `Send + Sync`: share it in an `Arc`.
pub struct Vault {
    store: Box<dyn VaultStore>,
    protection: Protection,
    /// `None` in a plaintext development vault (files named by storage key).
    names: Option<Names>,
    passphrase_kdf: PassphraseKdf,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Vault");
        d.field("store", &self.store.kind());
        match &self.protection {
            Protection::Encrypted(ring) => {
                let ring = ring.read().unwrap_or_else(PoisonError::into_inner);
                d.field("current_key", &ring.current.id).field(
                    "previous_keys",
                    &ring.previous.iter().map(|k| k.id).collect::<Vec<_>>(),
                );
            }
            Protection::Plaintext => {
                d.field("protection", &"PLAINTEXT (development only)");
            }
        }
        d.finish()
    }
}

/// Builds a [`Vault`]; see [`Vault::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct VaultBuilder {
    store: Result<Box<dyn VaultStore>, VaultError>,
    keys: Vec<KeyMaterial>,
    passphrase_kdf: PassphraseKdf,
}

impl VaultBuilder {
    /// Adds a key. The first key of a new vault becomes its key. For an
    /// existing vault, supply its current key, plus the previous key while a
    /// rotation is unfinished; order does not matter.
    pub fn key(mut self, key: KeyMaterial) -> Self {
        self.keys.push(key);
        self
    }

    /// The KDF for new passphrase keys (default: Argon2id m=19 MiB, t=2, p=1).
    /// An existing vault keeps the parameters recorded in its manifest.
    pub fn passphrase_kdf(mut self, kdf: PassphraseKdf) -> Self {
        self.passphrase_kdf = kdf;
        self
    }

    /// Opens the vault: runs the passphrase KDF (once per passphrase key the
    /// manifest lists) and checks the keys against the manifest.
    pub fn open(self) -> Result<Vault, VaultError> {
        let store = self.store?;
        let (ring, names) = unlock(store.as_ref(), &self.keys, self.passphrase_kdf)?;
        tracing::debug!(store = store.kind(), key_id = %ring.current.id, "vault unlocked");
        let vault = Vault {
            store,
            protection: Protection::Encrypted(RwLock::new(ring)),
            names: Some(names),
            passphrase_kdf: self.passphrase_kdf,
        };
        vault.migrate_legacy_names()?;
        Ok(vault)
    }
}

fn unlock(
    store: &dyn VaultStore,
    keys: &[KeyMaterial],
    passphrase_kdf: PassphraseKdf,
) -> Result<(Keyring, Names), VaultError> {
    let first = keys.first().ok_or(VaultError::NoKey)?;
    let manifest = match store.load_manifest()? {
        Some(bytes) => bytes,
        None => {
            if !store.names()?.is_empty() {
                return Err(VaultError::corrupt(
                    "the key manifest",
                    "missing, but the directory holds user files (a plaintext development vault, or the manifest was deleted)",
                ));
            }
            let params = if first.is_passphrase() {
                passphrase_kdf.with_fresh_salt()?
            } else {
                KdfParams::Raw
            };
            let ring = Keyring {
                current: Arc::new(first.derive(&params)?),
                previous: Vec::new(),
            };
            let names = Names::new(ring.current.initial_names_key());
            let ours = ring.manifest(&names)?.encode();
            let in_effect = store.init_manifest(&ours)?;
            if in_effect == ours {
                return Ok((ring, names));
            }
            // Another process created the vault first: unlock against its manifest.
            in_effect
        }
    };
    let manifest = Manifest::decode(&manifest)?;
    let mut found: Vec<Arc<MasterKey>> = Vec::new();
    for (id, kdf) in &manifest.keys {
        let mut matched = None;
        for material in keys {
            if material.is_passphrase() == kdf.is_raw() {
                continue;
            }
            let key = material.derive(kdf)?;
            if key.id == *id {
                matched = Some(key);
                break;
            }
        }
        match matched {
            Some(key) => found.push(Arc::new(key)),
            None if found.is_empty() => return Err(VaultError::WrongKey { expected: *id }),
            None => tracing::warn!(
                key_id = %id,
                "the manifest lists a previous key that was not supplied; records written with it cannot be read"
            ),
        }
    }
    let mut found = found.into_iter();
    let current = found.next().ok_or(VaultError::NoKey)?;
    let ring = Keyring {
        current,
        previous: found.collect(),
    };
    let names = match &manifest.names {
        Some(sealed) => Names::open(sealed, &ring.current).ok_or_else(|| {
            VaultError::corrupt(
                "the key manifest",
                "its names key does not open with the current key",
            )
        })?,
        None => {
            // Written before pseudonymous names: the names key is derived
            // (every process upgrading this vault at once derives the same)
            // and sealed into a version 2 manifest from now on.
            let names = Names::new(ring.current.initial_names_key());
            store.store_manifest(&ring.manifest(&names)?.encode())?;
            tracing::info!(
                "vault manifest upgraded: user files are named by pseudonym from now on"
            );
            names
        }
    };
    Ok((ring, names))
}

fn check_provider(provider: &str) -> Result<(), VaultError> {
    if provider.is_empty() {
        return Err(VaultError::InvalidProvider { reason: "empty" });
    }
    if provider.len() > MAX_PROVIDER_LEN {
        return Err(VaultError::InvalidProvider {
            reason: "longer than 64 bytes",
        });
    }
    if provider.chars().any(char::is_control) {
        return Err(VaultError::InvalidProvider {
            reason: "contains a control character",
        });
    }
    Ok(())
}

fn decode_user(user: &UserId, bytes: &[u8]) -> Result<UserFile, VaultError> {
    UserFile::decode(bytes).map_err(|reason| {
        tracing::warn!(user = %user, reason, "vault file is corrupt; other users are unaffected");
        VaultError::corrupt(format!("user {user}"), reason)
    })
}

fn seal(
    key: &MasterKey,
    user: &UserId,
    provider: &str,
    plaintext: &[u8],
) -> Result<Record, VaultError> {
    let mut nonce = [0u8; 12];
    fill_random(&mut nonce)?;
    let mut record = Record {
        cipher: Cipher::Aes256Gcm,
        key_id: key.id,
        kdf: key.kdf.clone(),
        nonce,
        provider: provider.to_owned(),
        payload: Vec::new(),
    };
    let aad = record.aad(user.as_str());
    let user_key = key.user_key(user.storage_key().as_str());
    record.payload =
        aead::seal(&user_key, &nonce, &aad, plaintext).ok_or(VaultError::PayloadTooLarge {
            len: plaintext.len(),
            max: MAX_PAYLOAD,
        })?;
    Ok(record)
}

fn open_sealed(
    ring: &Keyring,
    user: &UserId,
    record: &Record,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    match record.cipher {
        Cipher::Plaintext => Err(VaultError::PlaintextRecordRefused {
            user: user.clone(),
            provider: record.provider.clone(),
        }),
        Cipher::Aes256Gcm => {
            let key = ring.find(record.key_id).ok_or(VaultError::KeyUnavailable {
                key_id: record.key_id,
            })?;
            let aad = record.aad(user.as_str());
            let user_key = key.user_key(user.storage_key().as_str());
            aead::open(&user_key, &record.nonce, &aad, &record.payload).ok_or_else(|| {
                    tracing::warn!(user = %user, provider = %record.provider, "record failed authentication");
                    VaultError::Decrypt {
                        user: user.clone(),
                        provider: record.provider.clone(),
                    }
                })
        }
    }
}

impl Vault {
    /// Starts building a vault on one of the standard storage modes.
    ///
    /// ```
    /// use mcp_auth_vault::{KeyMaterial, StorageMode, Vault};
    /// let vault = Vault::builder(StorageMode::MemoryOnly)
    ///     .key(KeyMaterial::generate()?)
    ///     .open()?;
    /// # Ok::<(), mcp_auth_vault::VaultError>(())
    /// ```
    pub fn builder(mode: StorageMode) -> VaultBuilder {
        let store: Result<Box<dyn VaultStore>, VaultError> = match mode {
            StorageMode::MemoryOnly => Ok(Box::new(MemoryStore::new())),
            StorageMode::EncryptedFile(dir) => FileStore::open(dir).map(|s| Box::new(s) as _),
            StorageMode::MemoryWithEncryptedBackup(dir) => {
                CachedFileStore::open(dir).map(|s| Box::new(s) as _)
            }
        };
        VaultBuilder {
            store,
            keys: Vec::new(),
            passphrase_kdf: PassphraseKdf::default(),
        }
    }

    /// Starts building a vault on a custom [`VaultStore`].
    pub fn builder_with_store(store: impl VaultStore + 'static) -> VaultBuilder {
        VaultBuilder {
            store: Ok(Box::new(store)),
            keys: Vec::new(),
            passphrase_kdf: PassphraseKdf::default(),
        }
    }

    /// **Development only.** A vault that stores credentials *unencrypted*
    /// (mode 0600 files) in `dir`. Logs a warning when opened. Refuses a
    /// directory that holds an encrypted vault, and an encrypted vault refuses
    /// the plaintext records this one writes.
    pub fn dangerous_plaintext_file_for_development_only(
        dir: impl Into<PathBuf>,
    ) -> Result<Self, VaultError> {
        let store = FileStore::open(dir)?;
        if store.load_manifest()?.is_some() {
            return Err(VaultError::InvalidKey(
                KeyProblem::EncryptedVaultOpenedAsPlaintext {
                    dir: store.dir().to_owned(),
                },
            ));
        }
        tracing::warn!(
            dir = %store.dir().display(),
            "PLAINTEXT credential storage is enabled: tokens are written to disk unencrypted. Never use this in production."
        );
        Ok(Self {
            store: Box::new(store),
            protection: Protection::Plaintext,
            names: None,
            passphrase_kdf: PassphraseKdf::default(),
        })
    }

    fn keyring(&self) -> Option<RwLockReadGuard<'_, Keyring>> {
        match &self.protection {
            Protection::Encrypted(ring) => {
                Some(ring.read().unwrap_or_else(PoisonError::into_inner))
            }
            Protection::Plaintext => None,
        }
    }

    fn seal_for(
        &self,
        ring: Option<&Keyring>,
        user: &UserId,
        provider: &str,
        plaintext: &[u8],
    ) -> Result<Record, VaultError> {
        match ring {
            Some(ring) => seal(&ring.current, user, provider, plaintext),
            None => Ok(Record {
                cipher: Cipher::Plaintext,
                key_id: KeyId([0; 8]),
                kdf: KdfParams::Raw,
                nonce: [0; 12],
                provider: provider.to_owned(),
                payload: plaintext.to_vec(),
            }),
        }
    }

    fn open_for(
        ring: Option<&Keyring>,
        user: &UserId,
        record: &Record,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        match (ring, record.cipher) {
            (Some(ring), _) => open_sealed(ring, user, record),
            (None, Cipher::Plaintext) => Ok(Zeroizing::new(record.payload.clone())),
            (None, _) => Err(VaultError::KeyUnavailable {
                key_id: record.key_id,
            }),
        }
    }

    /// Stores raw secret bytes for `(user, provider)`, replacing any previous value.
    pub fn put_bytes(
        &self,
        user: &UserId,
        provider: &str,
        secret: &[u8],
    ) -> Result<(), VaultError> {
        check_provider(provider)?;
        if secret.len() > MAX_PAYLOAD {
            return Err(VaultError::PayloadTooLarge {
                len: secret.len(),
                max: MAX_PAYLOAD,
            });
        }
        // The keyring read guard is held across the write so that a rotation
        // cannot retire the key this record is sealed with before it lands.
        let ring = self.keyring();
        let record = self.seal_for(ring.as_deref(), user, provider, secret)?;
        let name = self.storage_name(user);
        let identity = self
            .names
            .as_ref()
            .map(|names| names.identity_record(&name, user))
            .transpose()?;
        // A store with optimistic concurrency (Redis) may call this more
        // than once: it copies the record rather than consuming it.
        self.store.update(&name, &mut |current| {
            let mut file = match current {
                Some(bytes) => decode_user(user, bytes)?,
                None => UserFile::default(),
            };
            if file.find(provider).is_none() && file.credentials().count() >= MAX_RECORDS {
                return Err(VaultError::TooManyRecords {
                    user: user.clone(),
                    max: MAX_RECORDS,
                });
            }
            if let Some(identity) = &identity
                && file.find(IDENTITY_RECORD).is_none()
            {
                file.records.insert(0, identity.clone());
            }
            file.upsert(record.clone());
            Ok(Update::Write(file.encode()))
        })
    }

    /// The raw secret bytes stored for `(user, provider)`.
    pub fn get_bytes(
        &self,
        user: &UserId,
        provider: &str,
    ) -> Result<Option<SecretSlice<u8>>, VaultError> {
        Ok(self
            .get_plaintext(user, provider)?
            .map(|p| SecretSlice::from(p.to_vec())))
    }

    fn get_plaintext(
        &self,
        user: &UserId,
        provider: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        check_provider(provider)?;
        let ring = self.keyring();
        let Some(bytes) = self.store.load(&self.storage_name(user))? else {
            return Ok(None);
        };
        let file = decode_user(user, &bytes)?;
        file.find(provider)
            .map(|record| Self::open_for(ring.as_deref(), user, record))
            .transpose()
    }

    /// Stores a credential for `(user, provider)`, replacing any previous one.
    pub fn put(
        &self,
        user: &UserId,
        provider: &str,
        credential: &Credential,
    ) -> Result<(), VaultError> {
        let bytes = credential
            .to_bytes()
            .map_err(|_| VaultError::PayloadTooLarge {
                len: usize::MAX,
                max: MAX_PAYLOAD,
            })?;
        self.put_bytes(user, provider, &bytes)
    }

    /// The credential stored for `(user, provider)`, if any.
    pub fn get(&self, user: &UserId, provider: &str) -> Result<Option<Credential>, VaultError> {
        self.get_plaintext(user, provider)?
            .map(|plain| {
                Credential::from_bytes(&plain).map_err(|_| VaultError::NotACredential {
                    user: user.clone(),
                    provider: provider.to_owned(),
                })
            })
            .transpose()
    }

    /// Deletes the credential for `(user, provider)`. Returns whether one existed.
    pub fn delete(&self, user: &UserId, provider: &str) -> Result<bool, VaultError> {
        check_provider(provider)?;
        let mut existed = false;
        self.store
            .update(&self.storage_name(user), &mut |current| {
                let Some(bytes) = current else {
                    return Ok(Update::Keep);
                };
                let mut file = decode_user(user, bytes)?;
                existed = file.remove(provider);
                Ok(match (existed, file.credentials().next().is_none()) {
                    (false, _) => Update::Keep,
                    (true, true) => Update::Delete,
                    (true, false) => Update::Write(file.encode()),
                })
            })?;
        Ok(existed)
    }

    /// The providers `user` has credentials for, in storage order.
    pub fn providers(&self, user: &UserId) -> Result<Vec<String>, VaultError> {
        let Some(bytes) = self.store.load(&self.storage_name(user))? else {
            return Ok(Vec::new());
        };
        Ok(decode_user(user, &bytes)?
            .credentials()
            .map(|r| r.provider.clone())
            .collect())
    }

    /// Every user with stored credentials. In an encrypted vault each file
    /// is named by pseudonym, so this reads every file's sealed user id: a
    /// file that does not yield one (corrupt, or copied under another
    /// user's name) is left out with a warning in the log.
    pub fn users(&self) -> Result<Vec<UserId>, VaultError> {
        let mut out = Vec::new();
        for name in self.store.names()? {
            match self.user_of(&name) {
                Ok(Some(user)) => out.push(user),
                Ok(None) => {}
                Err(e) => tracing::warn!(file = %name, error = %e, "left out of the list of users"),
            }
        }
        Ok(out)
    }

    /// The name `user`'s file is stored under: a pseudonym (`p-…`, a keyed
    /// hash of the user id) in an encrypted vault, the user's storage key in
    /// a plaintext development vault. For the operator looking for one
    /// user's file (`<dir>/<name>.vault`, or the Redis key `…:u:<name>`).
    pub fn storage_name(&self, user: &UserId) -> StorageName {
        match &self.names {
            Some(names) => names.file_name(user),
            None => StorageName::legacy(user),
        }
    }

    /// Pseudonyms of user ids for the other stores of the deployment (the
    /// authorization server's, the session store, rate-limit keys), under a
    /// key derived from this vault's names key: every process that opens the
    /// vault gets the same, and a key rotation does not change them. `None`
    /// for a plaintext development vault.
    pub fn user_pseudonyms(&self) -> Option<UserPseudonyms> {
        self.names.as_ref().map(|n| n.stores.clone())
    }

    /// Deletes everything stored for `user`, even if the file is corrupt.
    /// Returns whether anything existed.
    pub fn delete_user(&self, user: &UserId) -> Result<bool, VaultError> {
        let mut existed = false;
        self.store
            .update(&self.storage_name(user), &mut |current| {
                existed = current.is_some();
                Ok(if existed {
                    Update::Delete
                } else {
                    Update::Keep
                })
            })?;
        if existed {
            tracing::info!(user = %user, "deleted all credentials of a user");
        }
        Ok(existed)
    }

    /// Emergency revoke-all: deletes every stored credential of every user.
    /// The vault stays usable with the same key. Returns the number of users
    /// whose data was deleted. (Revoking the tokens at the providers is the
    /// caller's job: the `mcp-auth-pkce` crate's revocation does that.)
    pub fn wipe_all(&self) -> Result<usize, VaultError> {
        let n = self.store.wipe()?;
        tracing::warn!(
            users = n,
            "vault wiped: every stored credential was deleted"
        );
        Ok(n)
    }

    fn names(&self) -> Result<&Names, VaultError> {
        self.names
            .as_ref()
            .ok_or(VaultError::InvalidKey(KeyProblem::PlaintextVault))
    }

    /// The id of the key new records are written with (`None` for a
    /// plaintext development vault).
    pub fn current_key_id(&self) -> Option<KeyId> {
        self.keyring().map(|r| r.current.id)
    }

    /// Whether an earlier rotation is unfinished (previous keys are still in
    /// the manifest). Finish it with [`Vault::finish_rotation`].
    pub fn rotation_pending(&self) -> bool {
        self.keyring().is_some_and(|r| !r.previous.is_empty())
    }

    /// Re-encrypts every record under `new_key`.
    ///
    /// Safe to interrupt at any point (even by SIGKILL): the manifest lists
    /// the new key *and* the old ones before the first record is rewritten,
    /// each user file is replaced atomically, and the old keys leave the
    /// manifest only after every record is rewritten. After an interruption,
    /// open the vault with both keys and call [`Vault::finish_rotation`] (or
    /// `rotate` again). Every record stays readable throughout, by this
    /// process and by any process that opens the vault with both keys.
    pub fn rotate(&self, new_key: KeyMaterial) -> Result<RotationReport, VaultError> {
        let Protection::Encrypted(lock) = &self.protection else {
            return Err(VaultError::InvalidKey(KeyProblem::PlaintextVault));
        };
        let params = if new_key.is_passphrase() {
            self.passphrase_kdf.with_fresh_salt()?
        } else {
            KdfParams::Raw
        };
        let new_key = Arc::new(new_key.derive(&params)?);
        {
            let mut ring = lock.write().unwrap_or_else(PoisonError::into_inner);
            if ring.current.id != new_key.id {
                let mut previous = vec![ring.current.clone()];
                previous.extend(ring.previous.iter().filter(|k| k.id != new_key.id).cloned());
                if previous.len() + 1 > MAX_MANIFEST_KEYS {
                    return Err(VaultError::InvalidKey(KeyProblem::TooManyKeys {
                        max: MAX_MANIFEST_KEYS,
                    }));
                }
                let next = Keyring {
                    current: new_key,
                    previous,
                };
                // Durable before any record is written with the new key.
                self.store
                    .store_manifest(&next.manifest(self.names()?)?.encode())?;
                *ring = next;
                tracing::info!(key_id = %ring.current.id, "vault key rotation started");
            }
        }
        self.finish_rotation()
    }

    /// Re-encrypts every record not under the current key, then retires the
    /// previous keys if nothing failed.
    pub fn finish_rotation(&self) -> Result<RotationReport, VaultError> {
        let Protection::Encrypted(lock) = &self.protection else {
            return Err(VaultError::InvalidKey(KeyProblem::PlaintextVault));
        };
        let names = self.names()?;
        let mut report = RotationReport::default();
        for name in self.store.names()? {
            report.users += 1;
            let ring = lock.read().unwrap_or_else(PoisonError::into_inner);
            let mut rewritten = 0;
            let result = self.store.update(&name, &mut |current| {
                rewritten = 0;
                let Some(bytes) = current else {
                    return Ok(Update::Keep);
                };
                let mut file = UserFile::decode(bytes)
                    .map_err(|reason| VaultError::corrupt(format!("user file {name}"), reason))?;
                let user = match name.legacy_user() {
                    Some(user) => user,
                    None => names.user_of(&name, &file)?,
                };
                for record in &mut file.records {
                    if record.provider == IDENTITY_RECORD
                        || (record.cipher == Cipher::Aes256Gcm && record.key_id == ring.current.id)
                    {
                        continue;
                    }
                    let plain = open_sealed(&ring, &user, record)?;
                    *record = seal(&ring.current, &user, &record.provider, &plain)?;
                    rewritten += 1;
                }
                Ok(if rewritten == 0 {
                    Update::Keep
                } else {
                    Update::Write(file.encode())
                })
            });
            drop(ring);
            match result {
                Ok(()) => report.records_reencrypted += rewritten,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "could not rotate this user's records");
                    report.failed.push((name, e));
                }
            }
        }
        if report.failed.is_empty() {
            let mut ring = lock.write().unwrap_or_else(PoisonError::into_inner);
            if !ring.previous.is_empty() {
                let retired = Keyring {
                    current: ring.current.clone(),
                    previous: Vec::new(),
                };
                self.store
                    .store_manifest(&retired.manifest(names)?.encode())?;
                ring.previous.clear();
            }
            tracing::info!(
                users = report.users,
                records = report.records_reencrypted,
                "vault key rotation finished"
            );
        }
        Ok(report)
    }
}
