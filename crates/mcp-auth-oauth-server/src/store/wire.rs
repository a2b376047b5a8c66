//! Records as the persistent stores write them (Redis, the embedded
//! file): JSON, the user as its text, keys as hex.

use data_encoding::HEXLOWER;
use mcp_auth_core::{UserId, UserPseudonyms};
use serde::{Deserialize, Serialize};

use super::{ClientOrigin, Grant, StoreKey};
use crate::StoreError;

/// A stored record that does not decode: the store fails closed.
pub(crate) fn corrupt() -> StoreError {
    StoreError::Unavailable("a stored record is not readable")
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| corrupt())
}

pub(crate) fn hex(key: StoreKey) -> String {
    HEXLOWER.encode(&key.0)
}

/// How a persistent store writes the user a record belongs to: with
/// pseudonyms set, index keys carry the user's pseudonym and records carry
/// the id sealed (no user id at rest); without, the storage key and the
/// plain id, as before. Reading accepts both, so data written before
/// pseudonyms were turned on stays readable until it expires.
#[derive(Clone, Debug, Default)]
pub(crate) struct Subjects(pub(crate) Option<UserPseudonyms>);

impl Subjects {
    /// The name of `user`'s index (a key segment).
    pub(crate) fn index_name(&self, user: &UserId) -> String {
        match &self.0 {
            Some(p) => p.name(user).as_str().to_owned(),
            None => user.storage_key().as_str().to_owned(),
        }
    }

    /// The index name `user` had before pseudonyms, while they are on.
    pub(crate) fn legacy_index_name(&self, user: &UserId) -> Option<String> {
        self.0
            .as_ref()
            .map(|_| user.storage_key().as_str().to_owned())
    }

    /// The stored name of a record whose key is a hash over a user id (a
    /// consent, a per-user lock): keyed with pseudonyms on.
    pub(crate) fn hide(&self, key: StoreKey) -> StoreKey {
        match &self.0 {
            Some(p) => StoreKey(p.keyed_hash(&key.0)),
            None => key,
        }
    }

    /// `user` as written inside a record.
    pub(crate) fn seal(&self, user: &UserId) -> Result<String, StoreError> {
        match &self.0 {
            Some(p) => p
                .seal_user(user)
                .map_err(|_| StoreError::Unavailable("the random generator failed")),
            None => Ok(user.as_str().to_owned()),
        }
    }

    /// A user read back from a record.
    pub(crate) fn open(&self, text: &str) -> Result<UserId, StoreError> {
        if UserPseudonyms::is_sealed(text) {
            return self
                .0
                .as_ref()
                .and_then(|p| p.open_user(text))
                .ok_or(StoreError::Unavailable(
                    "a stored user id is sealed under another key (check the vault key)",
                ));
        }
        UserId::new(text).map_err(|_| corrupt())
    }
}

/// A grant on the wire (the user as its text, the consent as hex).
#[derive(Serialize, Deserialize)]
pub(crate) struct GrantWire {
    id: String,
    subject: String,
    client_id: String,
    client_name: String,
    client_origin: ClientOrigin,
    resource: String,
    scopes: Vec<String>,
    created_at: u64,
    last_used: u64,
    pub(crate) expires_at: u64,
    consent: String,
}

impl GrantWire {
    pub(crate) fn from(g: &Grant, subjects: &Subjects) -> Result<Self, StoreError> {
        Ok(Self {
            id: g.id.clone(),
            subject: subjects.seal(&g.subject)?,
            client_id: g.client_id.clone(),
            client_name: g.client_name.clone(),
            client_origin: g.client_origin.clone(),
            resource: g.resource.clone(),
            scopes: g.scopes.clone(),
            created_at: g.created_at,
            last_used: g.last_used,
            expires_at: g.expires_at,
            consent: HEXLOWER.encode(&g.consent.0),
        })
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn into_grant(self, subjects: &Subjects) -> Result<Grant, StoreError> {
        let consent: [u8; 32] = HEXLOWER
            .decode(self.consent.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut grant = Grant::new(
            self.id,
            subjects.open(&self.subject)?,
            self.client_id,
            self.client_name,
            self.resource,
            self.scopes,
            self.created_at,
            self.expires_at,
            StoreKey(consent),
        );
        grant.client_origin = self.client_origin;
        grant.last_used = self.last_used;
        Ok(grant)
    }
}
