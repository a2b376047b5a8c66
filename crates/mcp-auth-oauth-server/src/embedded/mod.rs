//! The embedded store (feature `embedded`): one process keeps its grants,
//! refresh tokens, consents and registered clients in one redb file, so a
//! restart signs nobody out.
//!
//! Every write is committed (fsync) before it is acknowledged. Writes go
//! to one writer thread that applies whatever is queued in one transaction
//! and commits once (group commit): concurrent requests share an fsync,
//! and each write still sees the ones before it, so `redeem_code` and
//! `rotate_refresh` stay atomic. Reads run on the caller's thread against
//! the last commit. Pending sign-ins, codes and locks live for seconds to
//! minutes and stay in memory: a restart ends sign-ins in progress, never
//! a grant.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use mcp_auth_core::{BoxFuture, UserId};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::store::wire::{GrantWire, Subjects, corrupt, hex, json};
use crate::store::{
    AuthStore, ClientInfo, CodeRecord, Grant, MemoryAuthStore, PendingSignIn, Redemption,
    RefreshRecord, Rotation, StoreKey,
};

const META: TableDefinition<&str, &str> = TableDefinition::new("mcp-auth");
const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");
/// `<user storage key>\n<grant id>`: a user's grants.
const BY_USER: TableDefinition<&str, &[u8]> = TableDefinition::new("grants-by-user");
const REFRESH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh");
/// `<grant id>\n<refresh hex>`: a grant's refresh tokens.
const BY_GRANT: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh-by-grant");
const CONSENTS: TableDefinition<&[u8], u64> = TableDefinition::new("consents");
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");

/// What the file says it is.
const FORMAT: &str = "mcp-auth-oauth-server embedded store v1";
/// Expired grants are swept on one grant write in this many.
const SWEEP_EVERY: u64 = 1024;
/// Most writes committed together.
const MAX_BATCH: usize = 512;

/// Why the embedded store cannot open its file. Each names the file; none
/// changes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedStoreError {
    /// The directory or file cannot be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is a database, but not this store's.
    #[error("{0}: not an mcp-auth store file (left as it is; point MCP_DATA_DIR elsewhere)")]
    Foreign(PathBuf),
    /// The file is damaged or not a database at all.
    #[error("{path}: not readable as an mcp-auth store ({reason}); left as it is")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the database engine said.
        reason: String,
    },
    /// Another process has the file open.
    #[error("{0}: in use by another process")]
    InUse(PathBuf),
}

mod tables;

use tables::Tables;

/// Default most clients the file keeps ([`EmbeddedAuthStore::max_clients`]).
pub const DEFAULT_MAX_CLIENTS: u64 = 100_000;

type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Tables<'_>) -> Deliver + Send>;

/// The authorization server's records in one redb file, `auth.redb` in
/// the directory given to [`EmbeddedAuthStore::open`].
pub struct EmbeddedAuthStore {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    ephemeral: MemoryAuthStore,
    grant_writes: Arc<AtomicU64>,
    client_ttl: u64,
    max_clients: u64,
    path: PathBuf,
    /// How users are written (pseudonyms, sealed ids); read by the writer
    /// thread at each batch.
    subjects: Arc<std::sync::RwLock<Subjects>>,
}

impl std::fmt::Debug for EmbeddedAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedAuthStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedAuthStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer after its last batch; joining
        // releases the file, so the same process can open it again.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    tracing::error!(error = %e, "embedded store");
    StoreError::Unavailable("the embedded store failed")
}

impl EmbeddedAuthStore {
    /// The file's name in the directory.
    pub const FILE: &'static str = "auth.redb";

    /// Opens (or creates) `dir/auth.redb`. The directory is created
    /// (mode 0700) if missing. A file that is not this store's, or is
    /// damaged, is an error and is left untouched.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, EmbeddedStoreError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| EmbeddedStoreError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode_0700()
            .create(dir)
            .map_err(io(dir))?;
        let path = dir.join(Self::FILE);
        let exists = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if exists {
            check_read_only(&path)?;
        }
        let opened = if exists {
            Database::open(&path)
        } else {
            Database::create(&path)
        };
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => EmbeddedStoreError::InUse(path.clone()),
            redb::DatabaseError::Storage(redb::StorageError::Io(source))
                if source.kind() != std::io::ErrorKind::InvalidData =>
            {
                EmbeddedStoreError::Io {
                    path: path.clone(),
                    source,
                }
            }
            other => EmbeddedStoreError::Corrupt {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        init(&db, &path)?;
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        let subjects = Arc::new(std::sync::RwLock::new(Subjects::default()));
        let writer_subjects = subjects.clone();
        let writer = std::thread::Builder::new()
            .name("mcp-auth-embedded-store".into())
            .spawn(move || write_loop(&writer_db, &queue, &writer_subjects))
            .map_err(io(&path))?;
        Ok(Self {
            db,
            jobs: Some(jobs),
            writer: Some(writer),
            ephemeral: MemoryAuthStore::default(),
            grant_writes: Arc::new(AtomicU64::new(0)),
            client_ttl: crate::DEFAULT_REGISTRATION_TTL.as_secs(),
            max_clients: DEFAULT_MAX_CLIENTS,
            path,
            subjects,
        })
    }

    /// Names users by pseudonym in the file's index and seals their ids
    /// inside grants (no user id at rest), under `pseudonyms` (e.g. the
    /// vault's `Vault::user_pseudonyms().derive("oauth-server")`). Grants
    /// written before stay readable until they end; grants written with it
    /// need the same key at the next start.
    #[must_use]
    pub fn user_pseudonyms(self, pseudonyms: mcp_auth_core::UserPseudonyms) -> Self {
        *self
            .subjects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Subjects(Some(pseudonyms));
        self
    }

    fn subjects(&self) -> Subjects {
        self.subjects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How long a registered client is kept after its last use (default 90
    /// days, the server's default registration TTL); ended grants and
    /// unused clients are swept on one grant write in 1,024.
    #[must_use]
    pub fn client_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.client_ttl = ttl.as_secs().max(1);
        self
    }

    /// The most clients the file keeps (default 100,000,
    /// [`DEFAULT_MAX_CLIENTS`]): past it, registered clients no grant uses
    /// are evicted, least recently used first.
    #[must_use]
    pub fn max_clients(mut self, max: u64) -> Self {
        self.max_clients = max.max(1);
        self
    }

    /// Runs `f` in the next committed batch; its answer once committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        const STOPPED: StoreError = StoreError::Unavailable("the embedded store has stopped");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tables| {
            let result = f(tables);
            Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            })
        });
        self.jobs
            .as_ref()
            .ok_or(STOPPED)?
            .send(job)
            .map_err(|_| STOPPED)?;
        rx.await.map_err(|_| STOPPED)?
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db.begin_read().map_err(failed)?)
    }
}

/// Looks at an existing file without writing to it: another program's
/// database is refused before it is opened for writing (which would
/// touch its header). A file that needs the repair a crash leaves is
/// checked after the repair, by [`init`].
fn check_read_only(path: &Path) -> Result<(), EmbeddedStoreError> {
    let db = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(EmbeddedStoreError::InUse(path.to_owned()));
        }
        // Needs a repair (a crash), or not a database: the read-write
        // open repairs or refuses it.
        Err(_) => return Ok(()),
    };
    let foreign = || EmbeddedStoreError::Foreign(path.to_owned());
    let txn = db.begin_read().map_err(|_| foreign())?;
    let meta = txn.open_table(META).map_err(|_| foreign())?;
    match meta.get("format") {
        Ok(Some(format)) if format.value() == FORMAT => Ok(()),
        _ => Err(foreign()),
    }
}

/// Checks the file is this store's (or new), and creates the tables.
fn init(db: &Database, path: &Path) -> Result<(), EmbeddedStoreError> {
    let corrupt = |e: &dyn std::fmt::Display| EmbeddedStoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let txn = db.begin_write().map_err(|e| corrupt(&e))?;
    {
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(|e| corrupt(&e))?
            .map(|t| t.name().to_owned())
            .collect();
        let mut meta = txn.open_table(META).map_err(|e| corrupt(&e))?;
        let format = meta
            .get("format")
            .map_err(|e| corrupt(&e))?
            .map(|v| v.value().to_owned());
        match format {
            Some(format) if format == FORMAT => {}
            Some(_) => return Err(EmbeddedStoreError::Foreign(path.to_owned())),
            None if !tables.is_empty() => {
                return Err(EmbeddedStoreError::Foreign(path.to_owned()));
            }
            None => {
                meta.insert("format", FORMAT).map_err(|e| corrupt(&e))?;
            }
        }
        Tables::open(&txn, Subjects::default()).map_err(|e| corrupt(&e))?;
    }
    txn.commit().map_err(|e| corrupt(&e))
}

/// Takes what is queued, applies it in one transaction, commits once, then
/// answers each: all succeed or all fail closed.
fn write_loop(db: &Database, queue: &mpsc::Receiver<Job>, subjects: &std::sync::RwLock<Subjects>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        let outcome = (|| -> Result<(), StoreError> {
            let txn = db.begin_write().map_err(failed)?;
            {
                let subjects = subjects
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let mut tables = Tables::open(&txn, subjects).map_err(failed)?;
                for job in batch.drain(..) {
                    deliveries.push(job(&mut tables));
                }
            }
            txn.commit().map_err(failed)
        })();
        // Jobs not run (the transaction did not start) are dropped, which
        // answers their callers with an error.
        for deliver in deliveries {
            deliver(outcome.clone());
        }
    }
}

/// A refresh token's row.
#[derive(Serialize, Deserialize)]
#[serde(tag = "state")]
enum RefreshRow {
    Active {
        record: RefreshRecord,
    },
    Rotated {
        record: RefreshRecord,
        at: u64,
        successor: String,
        /// The successor sealed under the rotated token, base64url (empty
        /// in rows written before it was kept: a retry then revokes).
        #[serde(default)]
        sealed: String,
    },
}

impl RefreshRow {
    fn record(&self) -> &RefreshRecord {
        match self {
            Self::Active { record } | Self::Rotated { record, .. } => record,
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| corrupt())
}

fn load_grant(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
    subjects: &Subjects,
) -> Result<Option<Grant>, StoreError> {
    match table.get(id).map_err(failed)? {
        Some(bytes) => decode::<GrantWire>(bytes.value())?
            .into_grant(subjects)
            .map(Some),
        None => Ok(None),
    }
}

fn load_refresh(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: StoreKey,
) -> Result<Option<RefreshRow>, StoreError> {
    match table.get(key.0.as_slice()).map_err(failed)? {
        Some(bytes) => decode(bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Keys of `table` starting with `prefix\n`.
fn keys_under(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let (from, to) = (format!("{prefix}\n"), format!("{prefix}\u{b}"));
    let mut keys = Vec::new();
    for entry in table.range(from.as_str()..to.as_str()).map_err(failed)? {
        keys.push(entry.map_err(failed)?.0.value().to_owned());
    }
    Ok(keys)
}

fn after_newline(key: &str) -> &str {
    key.split_once('\n').map_or("", |(_, rest)| rest)
}

impl AuthStore for EmbeddedAuthStore {
    fn put_pending(
        &self,
        key: StoreKey,
        pending: PendingSignIn,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ephemeral.put_pending(key, pending)
    }

    fn pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        self.ephemeral.pending(key, now)
    }

    fn take_pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        self.ephemeral.take_pending(key, now)
    }

    fn put_code(&self, key: StoreKey, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ephemeral.put_code(key, code)
    }

    fn redeem_code(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Redemption, StoreError>> {
        self.ephemeral.redeem_code(key, now)
    }

    fn code_replayed(&self, key: StoreKey) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.ephemeral.code_replayed(key)
    }

    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>> {
        let client_ttl = self.client_ttl;
        let sweep = self
            .grant_writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY);
        Box::pin(self.write(move |t| {
            if sweep {
                t.sweep(grant.created_at, client_ttl)?;
            }
            t.put_grant(&grant)
        }))
    }

    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>> {
        let subjects = self.subjects();
        let found = self.read(|txn| {
            let table = txn.open_table(GRANTS).map_err(failed)?;
            load_grant(&table, id, &subjects)
        });
        Box::pin(std::future::ready(
            found.map(|g| g.filter(|g| g.expires_at > now)),
        ))
    }

    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_owned();
        Box::pin(self.write(move |t| {
            if let Some(mut grant) = load_grant(&t.grants, &id, &t.subjects)? {
                grant.last_used = now;
                t.put_grant(&grant)?;
            }
            Ok(())
        }))
    }

    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let id = id.to_owned();
        Box::pin(self.write(move |t| t.revoke(&id)))
    }

    fn grant_count_bound<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        let subjects = self.subjects();
        // The index entries: every live grant has one.
        let count = self.read(|txn| {
            let index = txn.open_table(BY_USER).map_err(failed)?;
            let mut count = keys_under(&index, &subjects.index_name(user))?.len();
            if let Some(legacy) = subjects.legacy_index_name(user) {
                count += keys_under(&index, &legacy)?.len();
            }
            Ok(count)
        });
        Box::pin(std::future::ready(count))
    }

    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>> {
        let subjects = self.subjects();
        let found = self.read(|txn| {
            let index = txn.open_table(BY_USER).map_err(failed)?;
            let grants = txn.open_table(GRANTS).map_err(failed)?;
            let mut found = Vec::new();
            // The user's index name, and the one written before pseudonyms.
            let mut keys = keys_under(&index, &subjects.index_name(user))?;
            if let Some(legacy) = subjects.legacy_index_name(user) {
                keys.extend(keys_under(&index, &legacy)?);
            }
            for key in keys {
                if let Some(grant) = load_grant(&grants, after_newline(&key), &subjects)?
                    && grant.expires_at > now
                    && &grant.subject == user
                {
                    found.push(grant);
                }
            }
            found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(found)
        });
        Box::pin(std::future::ready(found))
    }

    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.write(|t| {
            let count = usize::try_from(t.grants.len().map_err(failed)?).unwrap_or(usize::MAX);
            t.grants.retain(|_, _| false).map_err(failed)?;
            t.by_user.retain(|_, _| false).map_err(failed)?;
            t.refresh.retain(|_, _| false).map_err(failed)?;
            t.by_grant.retain(|_, _| false).map_err(failed)?;
            t.consents.retain(|_, _| false).map_err(failed)?;
            Ok(count)
        }))
    }

    fn put_refresh(
        &self,
        key: StoreKey,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |t| {
            if load_grant(&t.grants, &record.grant_id, &t.subjects)?.is_none() {
                // The grant is gone (revoked meanwhile): nothing to continue.
                return Ok(());
            }
            t.put_refresh(key, &RefreshRow::Active { record })
        }))
    }

    fn refresh(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>> {
        let found = self.read(|txn| {
            let table = txn.open_table(REFRESH).map_err(failed)?;
            Ok(load_refresh(&table, key)?.map(|row| row.record().clone()))
        });
        Box::pin(std::future::ready(found))
    }

    fn rotate_refresh(
        &self,
        old: StoreKey,
        new: StoreKey,
        record: RefreshRecord,
        now: u64,
        grace: u64,
        sealed_successor: Vec<u8>,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>> {
        Box::pin(self.write(move |t| t.rotate(old, new, record, now, grace, &sealed_successor)))
    }

    fn put_consent(&self, key: StoreKey, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |t| {
            let key = t.subjects.hide(key);
            t.consents.insert(key.0.as_slice(), until).map_err(failed)?;
            Ok(())
        }))
    }

    fn consent(&self, key: StoreKey, now: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let key = self.subjects().hide(key);
        let found = self.read(|txn| {
            let table = txn.open_table(CONSENTS).map_err(failed)?;
            let until = table.get(key.0.as_slice()).map_err(failed)?;
            Ok(until.is_some_and(|u| u.value() > now))
        });
        Box::pin(std::future::ready(found))
    }

    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>> {
        let max = self.max_clients;
        Box::pin(self.write(move |t| {
            t.cap_clients(max)?;
            let value = json(&client)?;
            t.clients
                .insert(client.client_id.as_str(), value.as_bytes())
                .map_err(failed)?;
            Ok(())
        }))
    }

    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>> {
        let found = self.read(|txn| {
            let table = txn.open_table(CLIENTS).map_err(failed)?;
            match table.get(id).map_err(failed)? {
                Some(bytes) => decode(bytes.value()).map(Some),
                None => Ok(None),
            }
        });
        Box::pin(std::future::ready(found))
    }

    fn try_lock(
        &self,
        name: StoreKey,
        holder: &str,
        now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.ephemeral.try_lock(name, holder, now, ttl)
    }

    fn unlock(&self, name: StoreKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ephemeral.unlock(name, holder)
    }
}

/// `DirBuilder::mode` on Unix; nothing elsewhere.
trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for std::fs::DirBuilder {
    #[cfg(unix)]
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }

    #[cfg(not(unix))]
    fn mode_0700(&mut self) -> &mut Self {
        self
    }
}
