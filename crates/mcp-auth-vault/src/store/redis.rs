//! A vault store in Redis, for several processes sharing one vault.

use std::sync::{Mutex, PoisonError};

use mcp_auth_core::redis_conn::RedisSetupError;
use mcp_auth_core::{RedisConfig, UserId};

use redis::{Commands, Connection};

use super::{StorageName, Update, UpdateFn, VaultStore};
use crate::error::VaultError;

/// How many times [`RedisStore::update`] retries when another process
/// changed the same user between its read and its write.
const MAX_ATTEMPTS: usize = 64;
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Keeps the vault's sealed user files in Redis: `{prefix}:u:{storage key}`
/// holds a user's file (the same bytes a [`FileStore`](super::FileStore)
/// writes: records encrypted under the vault's key, which Redis never
/// sees), `{prefix}:users` the set of users, `{prefix}:manifest` the key
/// manifest (key ids and KDF salts, no key).
///
/// Every [`update`](VaultStore::update) is a `WATCH`/`MULTI`/`EXEC`
/// transaction, retried when another process changed the same user
/// meanwhile: two writers never lose either write. A failed or timed-out
/// command gives [`VaultError::StoreUnavailable`] and changes nothing; the
/// next call reconnects.
///
/// The calls block (the vault's API is synchronous, like its file store):
/// from async code, call the vault inside `tokio::task::spawn_blocking`.
pub struct RedisStore {
    /// `None` behind sentinels (each new connection asks them for the
    /// primary: it moves in a failover) and on a cluster (each new
    /// connection goes to the node that holds the vault's slot).
    client: Option<redis::Client>,
    config: RedisConfig,
    /// The prefix of every key: on a cluster, a hash tag, so that a
    /// user's file and the set of users share a slot (one transaction).
    prefix: String,
    idle: Mutex<Vec<Connection>>,
    /// On a cluster: the node a `MOVED` answer last named.
    node: Mutex<Option<(String, u16)>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the prefix.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> VaultError {
    VaultError::StoreUnavailable(mcp_auth_core::redis_conn::describe(e))
}

/// How many `MOVED` answers one call follows (a failover or resharding
/// moves the vault's slot once; more is a cluster in flux).
const MAX_REDIRECTS: usize = 3;

impl RedisStore {
    /// The default key prefix, `mcp-auth:vault`. Vaults with different keys
    /// must not share a prefix.
    pub const DEFAULT_PREFIX: &'static str = "mcp-auth:vault";

    /// A store at `config`'s Redis. Connects lazily: a server that is down
    /// now fails the first call, not this one.
    pub fn open(config: RedisConfig) -> Result<Self, VaultError> {
        let prefix = config.key_prefix();
        if config.is_sentinel() || config.is_cluster() {
            // Checked now, asked at the first call.
            config.check().map_err(|_| {
                VaultError::StoreUnavailable(
                    "the Redis URL or key prefix is not valid \
                     (redis+sentinel://host:port,…/service or redis+cluster://host:port,…)",
                )
            })?;
            return Ok(Self {
                client: None,
                config,
                prefix,
                idle: Mutex::new(Vec::new()),
                node: Mutex::new(None),
            });
        }
        let client = config.client().map_err(|e| match e {
            RedisSetupError::BadPrefix => VaultError::StoreUnavailable(
                "the key prefix must be non-empty, without control characters",
            ),
            _ => {
                VaultError::StoreUnavailable("the Redis URL does not parse (redis://host:port/db)")
            }
        })?;
        Ok(Self {
            client: Some(client),
            config,
            prefix,
            idle: Mutex::new(Vec::new()),
            node: Mutex::new(None),
        })
    }

    fn user_key(&self, name: &StorageName) -> String {
        format!("{}:u:{name}", self.prefix)
    }

    /// The member of the `users` set for `name`: the name itself, or for a
    /// vault written before pseudonyms the user id it held then.
    fn member(name: &StorageName) -> String {
        name.legacy_user()
            .map_or_else(|| name.as_str().to_owned(), |u| u.as_str().to_owned())
    }

    fn users_key(&self) -> String {
        format!("{}:users", self.prefix)
    }

    fn manifest_key(&self) -> String {
        format!("{}:manifest", self.prefix)
    }

    /// A new connection: to the one server, to the primary the sentinels
    /// name, or on a cluster to the node a `MOVED` named, else to the first
    /// seed node that answers.
    fn connect(&self) -> Result<Connection, VaultError> {
        let open = |client: redis::Client| -> redis::RedisResult<Connection> {
            let conn = client.get_connection_with_timeout(self.config.connection_timeout)?;
            conn.set_read_timeout(Some(self.config.response_timeout))?;
            conn.set_write_timeout(Some(self.config.response_timeout))?;
            Ok(conn)
        };
        if let Some(client) = &self.client {
            return open(client.clone()).map_err(|e| unavailable(&e));
        }
        if !self.config.is_cluster() {
            let client = self.config.client().map_err(|e| {
                VaultError::StoreUnavailable(match e {
                    RedisSetupError::Unavailable(what) => what,
                    _ => "the sentinels name no reachable primary",
                })
            })?;
            return open(client).map_err(|e| unavailable(&e));
        }
        let known = self
            .node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut last = VaultError::StoreUnavailable("no cluster node answered");
        for (host, port) in known.into_iter().chain(self.config.cluster_nodes()) {
            let client = self.config.node_client(&host, port).map_err(|_| {
                VaultError::StoreUnavailable("the cluster's TLS settings are not usable")
            })?;
            match open(client) {
                Ok(conn) => return Ok(conn),
                Err(e) => last = unavailable(&e),
            }
        }
        Err(last)
    }

    /// Runs `f` on a pooled connection; a connection that failed is
    /// dropped. On a cluster, a `MOVED` answer (the vault's slot is on
    /// another node, after a failover or a resharding) sends `f` there.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, VaultError> {
        for _ in 0..=MAX_REDIRECTS {
            let pooled = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => self.connect()?,
            };
            match f(&mut conn) {
                Ok(value) => {
                    let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                    if idle.len() < MAX_IDLE {
                        idle.push(conn);
                    }
                    return Ok(value);
                }
                Err(e) => {
                    let Some(node) = e.redirect_node().and_then(|(addr, _)| {
                        let (host, port) = addr.rsplit_once(':')?;
                        Some((host.to_owned(), port.parse().ok()?))
                    }) else {
                        return Err(unavailable(&e));
                    };
                    // Every pooled connection points at the old node.
                    self.idle
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                    *self.node.lock().unwrap_or_else(PoisonError::into_inner) = Some(node);
                }
            }
        }
        Err(VaultError::StoreUnavailable(
            "the cluster keeps moving the vault's slot",
        ))
    }
}

impl VaultStore for RedisStore {
    fn load(&self, name: &StorageName) -> Result<Option<Vec<u8>>, VaultError> {
        let key = self.user_key(name);
        self.with(|c| c.get(&key))
    }

    fn update(&self, name: &StorageName, f: &mut UpdateFn<'_>) -> Result<(), VaultError> {
        let key = self.user_key(name);
        let users = self.users_key();
        let member = Self::member(name);
        for _ in 0..MAX_ATTEMPTS {
            // The callback's error must come out as itself, not as a Redis
            // error: carried beside the transaction.
            let mut failed: Option<VaultError> = None;
            let done = self.with(|c| {
                redis::cmd("WATCH").arg(&key).exec(c)?;
                let current: Option<Vec<u8>> = c.get(&key)?;
                let update = match f(current.as_deref()) {
                    Ok(update) => update,
                    Err(e) => {
                        failed = Some(e);
                        redis::cmd("UNWATCH").exec(c)?;
                        return Ok(true);
                    }
                };
                let mut pipe = redis::pipe();
                pipe.atomic();
                match update {
                    Update::Keep => {
                        redis::cmd("UNWATCH").exec(c)?;
                        return Ok(true);
                    }
                    Update::Write(bytes) => {
                        pipe.set(&key, bytes).ignore();
                        pipe.sadd(&users, &member).ignore();
                    }
                    Update::Delete => {
                        pipe.del(&key).ignore();
                        pipe.srem(&users, &member).ignore();
                    }
                }
                // EXEC answers nil when the watched key changed meanwhile.
                let result: Option<()> = pipe.query(c)?;
                Ok(result.is_some())
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            if done {
                return Ok(());
            }
        }
        Err(VaultError::StoreUnavailable(
            "too many concurrent writers of one user",
        ))
    }

    fn names(&self) -> Result<Vec<StorageName>, VaultError> {
        let users = self.users_key();
        let members: Vec<String> = self.with(|c| c.smembers(&users))?;
        // A pseudonym, or (a vault written before them) a raw user id.
        let mut out: Vec<StorageName> = members
            .into_iter()
            .filter_map(|m| {
                StorageName::parse(&m)
                    .filter(|n| n.legacy_user().is_none())
                    .or_else(|| UserId::new(m).ok().map(|u| StorageName::legacy(&u)))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn load_manifest(&self) -> Result<Option<Vec<u8>>, VaultError> {
        let key = self.manifest_key();
        self.with(|c| c.get(&key))
    }

    fn store_manifest(&self, bytes: &[u8]) -> Result<(), VaultError> {
        let key = self.manifest_key();
        self.with(|c| c.set(&key, bytes))
    }

    fn init_manifest(&self, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
        let key = self.manifest_key();
        self.with(|c| {
            let _: bool = c.set_nx(&key, bytes)?;
            let current: Option<Vec<u8>> = c.get(&key)?;
            Ok(current.unwrap_or_else(|| bytes.to_vec()))
        })
    }

    fn wipe(&self) -> Result<usize, VaultError> {
        let mut n = 0;
        for name in self.names()? {
            let mut existed = false;
            self.update(&name, &mut |current| {
                existed = current.is_some();
                Ok(Update::Delete)
            })?;
            n += usize::from(existed);
        }
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
