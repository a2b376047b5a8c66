//! The embedded store's tables in one write transaction, and the writes
//! that span them (grants with their index, rotation, revocation, the
//! sweep and the clients' cap).

#[allow(clippy::wildcard_imports)]
use super::*;

/// The tables, open in one write transaction.
pub(super) struct Tables<'t> {
    pub(super) grants: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) by_user: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) refresh: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) by_grant: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) consents: redb::Table<'t, &'static [u8], u64>,
    pub(super) clients: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) subjects: Subjects,
}

impl<'t> Tables<'t> {
    pub(super) fn open(
        txn: &'t redb::WriteTransaction,
        subjects: Subjects,
    ) -> Result<Self, redb::TableError> {
        Ok(Self {
            grants: txn.open_table(GRANTS)?,
            by_user: txn.open_table(BY_USER)?,
            refresh: txn.open_table(REFRESH)?,
            by_grant: txn.open_table(BY_GRANT)?,
            consents: txn.open_table(CONSENTS)?,
            clients: txn.open_table(CLIENTS)?,
            subjects,
        })
    }

    pub(super) fn put_grant(&mut self, grant: &Grant) -> Result<(), StoreError> {
        let value = json(&GrantWire::from(grant, &self.subjects)?)?;
        self.grants
            .insert(grant.id.as_str(), value.as_bytes())
            .map_err(failed)?;
        let index = format!("{}\n{}", self.subjects.index_name(&grant.subject), grant.id);
        self.by_user
            .insert(index.as_str(), [].as_slice())
            .map_err(failed)?;
        Ok(())
    }

    pub(super) fn put_refresh(
        &mut self,
        key: StoreKey,
        row: &RefreshRow,
    ) -> Result<(), StoreError> {
        let value = json(row)?;
        self.refresh
            .insert(key.0.as_slice(), value.as_bytes())
            .map_err(failed)?;
        let index = format!("{}\n{}", row.record().grant_id, hex(key));
        self.by_grant
            .insert(index.as_str(), [].as_slice())
            .map_err(failed)?;
        Ok(())
    }

    /// Removes a grant, its refresh tokens and its consent.
    pub(super) fn revoke(&mut self, id: &str) -> Result<bool, StoreError> {
        let Some(grant) = load_grant(&self.grants, id, &self.subjects)? else {
            return Ok(false);
        };
        for index in keys_under(&self.by_grant, id)? {
            if let Ok(bytes) = data_encoding::HEXLOWER.decode(after_newline(&index).as_bytes()) {
                self.refresh.remove(bytes.as_slice()).map_err(failed)?;
            }
            self.by_grant.remove(index.as_str()).map_err(failed)?;
        }
        self.grants.remove(id).map_err(failed)?;
        // Its index entry, under whichever name it was written.
        for name in std::iter::once(self.subjects.index_name(&grant.subject))
            .chain(self.subjects.legacy_index_name(&grant.subject))
        {
            let index = format!("{name}\n{id}");
            self.by_user.remove(index.as_str()).map_err(failed)?;
        }
        self.consents
            .remove(self.subjects.hide(grant.consent).0.as_slice())
            .map_err(failed)?;
        Ok(true)
    }

    /// Revokes every grant that has ended by `now`, and drops registered
    /// clients unused for `client_ttl`.
    pub(super) fn sweep(&mut self, now: u64, client_ttl: u64) -> Result<(), StoreError> {
        let mut unused = Vec::new();
        for entry in self.clients.iter().map_err(failed)? {
            let (id, bytes) = entry.map_err(failed)?;
            let last = decode::<ClientInfo>(bytes.value()).map(|c| c.last_used);
            if last.is_ok_and(|last| last > 0 && last.saturating_add(client_ttl) <= now) {
                unused.push(id.value().to_owned());
            }
        }
        for id in unused {
            self.clients.remove(id.as_str()).map_err(failed)?;
        }
        let mut ended = Vec::new();
        for entry in self.grants.iter().map_err(failed)? {
            let (id, bytes) = entry.map_err(failed)?;
            let ends = decode::<GrantWire>(bytes.value()).map(|g| g.expires_at);
            if ends.is_ok_and(|end| end <= now) {
                ended.push(id.value().to_owned());
            }
        }
        for id in ended {
            self.revoke(&id)?;
        }
        // Consents that have ended.
        let mut over = Vec::new();
        for entry in self.consents.iter().map_err(failed)? {
            let (key, until) = entry.map_err(failed)?;
            if until.value() <= now {
                over.push(key.value().to_vec());
            }
        }
        for key in over {
            self.consents.remove(key.as_slice()).map_err(failed)?;
        }
        Ok(())
    }

    /// Keeps the clients table under `max`: past it, the
    /// registered clients no grant uses go, least recently used first, a
    /// batch of 1/64 at a time (a registration flood from many addresses
    /// cannot grow the file without bound; configured clients never go).
    pub(super) fn cap_clients(&mut self, max: u64) -> Result<(), StoreError> {
        if self.clients.len().map_err(failed)? < max {
            return Ok(());
        }
        let mut in_use = std::collections::HashSet::new();
        for entry in self.grants.iter().map_err(failed)? {
            let (_, bytes) = entry.map_err(failed)?;
            if let Ok(grant) = decode::<GrantWire>(bytes.value()) {
                in_use.insert(grant.client_id().to_owned());
            }
        }
        let mut candidates = Vec::new();
        for entry in self.clients.iter().map_err(failed)? {
            let (id, bytes) = entry.map_err(failed)?;
            if let Ok(client) = decode::<ClientInfo>(bytes.value())
                && client.origin == crate::store::ClientOrigin::Registered
                && !in_use.contains(id.value())
            {
                candidates.push((client.last_used, id.value().to_owned()));
            }
        }
        let batch = usize::try_from(max / 64)
            .unwrap_or(1)
            .max(1)
            .min(candidates.len());
        if batch > 0 {
            candidates.select_nth_unstable(batch - 1);
        }
        for (_, id) in candidates.into_iter().take(batch) {
            self.clients.remove(id.as_str()).map_err(failed)?;
        }
        Ok(())
    }

    pub(super) fn rotate(
        &mut self,
        old: StoreKey,
        new: StoreKey,
        record: RefreshRecord,
        now: u64,
        grace: u64,
        sealed_successor: &[u8],
    ) -> Result<Rotation, StoreError> {
        let previous = match load_refresh(&self.refresh, old)? {
            None => return Ok(Rotation::Unknown),
            Some(RefreshRow::Active { record }) => record,
            Some(RefreshRow::Rotated {
                record,
                at,
                successor,
                sealed,
            }) => {
                let successor = data_encoding::HEXLOWER
                    .decode(successor.as_bytes())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(StoreKey);
                let unused = match successor {
                    Some(key) => matches!(
                        load_refresh(&self.refresh, key)?,
                        Some(RefreshRow::Active { .. })
                    ),
                    None => false,
                };
                let sealed = data_encoding::BASE64URL_NOPAD
                    .decode(sealed.as_bytes())
                    .unwrap_or_default();
                if grace > 0 && now <= at.saturating_add(grace) && unused && !sealed.is_empty() {
                    return Ok(Rotation::Retried {
                        record,
                        sealed_successor: sealed,
                    });
                }
                let grant_id = record.grant_id;
                self.revoke(&grant_id)?;
                return Ok(Rotation::Reused { grant_id });
            }
        };
        if load_grant(&self.grants, &previous.grant_id, &self.subjects)?.is_none() {
            return Ok(Rotation::Unknown);
        }
        let rotated = RefreshRow::Rotated {
            record: previous.clone(),
            at: now,
            successor: hex(new),
            sealed: data_encoding::BASE64URL_NOPAD.encode(sealed_successor),
        };
        self.put_refresh(old, &rotated)?;
        self.put_refresh(new, &RefreshRow::Active { record })?;
        Ok(Rotation::Rotated(previous))
    }
}
