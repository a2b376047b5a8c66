//! Pseudonymous names: the vault's names key (sealed in the manifest), the
//! pseudonyms of user files, each file's identity record, and the migration
//! of vaults written before pseudonyms.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The vault's names key and what is derived from it: the pseudonyms of
/// user files, the key that seals each file's user id, and the root of the
/// pseudonyms other stores use ([`Vault::user_pseudonyms`]).
pub(super) struct Names {
    pub(super) key: Zeroizing<[u8; 32]>,
    pub(super) files: UserPseudonyms,
    pub(super) identity: Zeroizing<[u8; 32]>,
    pub(super) stores: UserPseudonyms,
}

impl Names {
    pub(super) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        let root = UserPseudonyms::from_key(*key);
        Self {
            files: root.derive("vault files"),
            identity: root.derive_bytes("vault identity"),
            stores: root.derive("stores"),
            key,
        }
    }

    fn aad(current: &MasterKey) -> Vec<u8> {
        [NAMES_AAD, current.id.as_bytes()].concat()
    }

    pub(super) fn seal(&self, current: &MasterKey) -> Result<SealedNames, VaultError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let sealed = aead::seal(
            &current.names_wrap_key(),
            &nonce,
            &Self::aad(current),
            self.key.as_ref(),
        )
        .and_then(|v| <[u8; 48]>::try_from(v).ok())
        .ok_or_else(|| VaultError::corrupt("the key manifest", "could not seal the names key"))?;
        Ok(SealedNames { nonce, sealed })
    }

    pub(super) fn open(sealed: &SealedNames, current: &MasterKey) -> Option<Self> {
        let plain = aead::open(
            &current.names_wrap_key(),
            &sealed.nonce,
            &Self::aad(current),
            &sealed.sealed,
        )?;
        let key: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(Self::new(Zeroizing::new(key)))
    }

    pub(super) fn file_name(&self, user: &UserId) -> StorageName {
        StorageName::pseudonym(&self.files.name(user))
    }

    /// The record that holds `user`'s id in the file named `name`.
    pub(super) fn identity_record(
        &self,
        name: &StorageName,
        user: &UserId,
    ) -> Result<Record, VaultError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let mut record = Record {
            cipher: Cipher::Aes256Gcm,
            key_id: KeyId([0; 8]),
            kdf: KdfParams::Raw,
            nonce,
            provider: IDENTITY_RECORD.to_owned(),
            payload: Vec::new(),
        };
        let aad = record.aad(name.as_str());
        record.payload = aead::seal(&self.identity, &nonce, &aad, user.as_str().as_bytes()).ok_or(
            VaultError::PayloadTooLarge {
                len: user.as_str().len(),
                max: MAX_PAYLOAD,
            },
        )?;
        Ok(record)
    }

    /// The user whose file `file` (named `name`) is: its identity record,
    /// opened and checked against the name (a file copied to another
    /// user's name is refused).
    pub(super) fn user_of(
        &self,
        name: &StorageName,
        file: &UserFile,
    ) -> Result<UserId, VaultError> {
        let bad = |reason| VaultError::corrupt(format!("user file {name}"), reason);
        let record = file
            .find(IDENTITY_RECORD)
            .ok_or_else(|| bad("it has no identity record"))?;
        let plain = aead::open(
            &self.identity,
            &record.nonce,
            &record.aad(name.as_str()),
            &record.payload,
        )
        .ok_or_else(|| bad("its identity record fails authentication"))?;
        let user = std::str::from_utf8(&plain)
            .ok()
            .and_then(|id| UserId::new(id).ok())
            .ok_or_else(|| bad("its identity record holds no user id"))?;
        if self.file_name(&user) != *name {
            return Err(bad("it belongs under another name"));
        }
        Ok(user)
    }
}

impl Vault {
    /// The user whose file is named `name`, if it exists.
    pub(super) fn user_of(&self, name: &StorageName) -> Result<Option<UserId>, VaultError> {
        if let Some(user) = name.legacy_user() {
            return Ok(Some(user));
        }
        let Some(names) = &self.names else {
            return Ok(None);
        };
        let Some(bytes) = self.store.load(name)? else {
            return Ok(None);
        };
        let file = UserFile::decode(&bytes)
            .map_err(|reason| VaultError::corrupt(format!("user file {name}"), reason))?;
        names.user_of(name, &file).map(Some)
    }

    /// Moves every file still named by storage key (written before
    /// pseudonyms) to its pseudonym, adding the identity record. Crash-safe:
    /// the new file is written before the old one is deleted, and a file
    /// found under both names is merged (the pseudonym's records win, the
    /// old file's other providers are added). A corrupt old file is left
    /// where it is, with a warning: nothing is ever lost.
    pub(super) fn migrate_legacy_names(&self) -> Result<(), VaultError> {
        let Some(names) = &self.names else {
            return Ok(());
        };
        let mut moved = 0usize;
        for old in self.store.names()? {
            let Some(user) = old.legacy_user() else {
                continue;
            };
            let Some(bytes) = self.store.load(&old)? else {
                continue;
            };
            let legacy = match UserFile::decode(&bytes) {
                Ok(file) => file,
                Err(reason) => {
                    tracing::warn!(file = %old, reason, "a user file written before pseudonyms is corrupt: left under its old name");
                    continue;
                }
            };
            let new = names.file_name(&user);
            let identity = names.identity_record(&new, &user)?;
            self.store.update(&new, &mut |current| {
                let mut file = match current {
                    Some(bytes) => decode_user(&user, bytes)?,
                    None => UserFile::default(),
                };
                if file.find(IDENTITY_RECORD).is_none() {
                    file.records.insert(0, identity.clone());
                }
                for record in legacy.credentials() {
                    if file.find(&record.provider).is_none() {
                        file.records.push(record.clone());
                    }
                }
                Ok(Update::Write(file.encode()))
            })?;
            self.store.update(&old, &mut |_| Ok(Update::Delete))?;
            moved += 1;
        }
        if moved > 0 {
            tracing::info!(
                users = moved,
                "vault files renamed from user ids to pseudonyms"
            );
        }
        Ok(())
    }
}
