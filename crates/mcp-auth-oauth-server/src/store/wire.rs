//! Records as the persistent stores write them (Redis, the embedded
//! file): JSON, the user as its text, keys as hex.

use data_encoding::HEXLOWER;
use mcp_auth_core::UserId;
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
    pub(crate) fn from(g: &Grant) -> Self {
        Self {
            id: g.id.clone(),
            subject: g.subject.as_str().to_owned(),
            client_id: g.client_id.clone(),
            client_name: g.client_name.clone(),
            client_origin: g.client_origin.clone(),
            resource: g.resource.clone(),
            scopes: g.scopes.clone(),
            created_at: g.created_at,
            last_used: g.last_used,
            expires_at: g.expires_at,
            consent: HEXLOWER.encode(&g.consent.0),
        }
    }

    pub(crate) fn into_grant(self) -> Result<Grant, StoreError> {
        let consent: [u8; 32] = HEXLOWER
            .decode(self.consent.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut grant = Grant::new(
            self.id,
            UserId::new(self.subject).map_err(|_| corrupt())?,
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
