//! The Redis store (feature `redis`), for a fleet of processes sharing
//! sign-ins: a code can be redeemed, and a refresh token rotated, once
//! across the fleet (one Lua script each, one round trip).

use data_encoding::HEXLOWER;
use mcp_auth_core::RedisConfig;
use mcp_auth_core::RedisConnection;
use mcp_auth_core::redis_conn::{RedisSetupError, describe, ping};
use mcp_auth_core::{BoxFuture, UserId};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::store::wire::{GrantWire, Subjects, corrupt, hex, json};
use crate::store::{
    AuthStore, ClientInfo, CodeRecord, Grant, PendingSignIn, Redemption, RefreshAndGrant,
    RefreshRecord, Rotation, StoreKey,
};

/// The authorization server's records in Redis. Codes, refresh tokens and
/// pending ids appear only as SHA-256 hex in key names; records are JSON.
///
/// | key (prefix `P`) | contents | expiry |
/// |---|---|---|
/// | `P pending:<hex>` | the pending authorization | its end |
/// | `P code:<hex>` | `F:<grant id>\n<record>`, then `U:<grant id>` once redeemed, `R:<grant id>` once replayed | the code's end + 1 h |
/// | `P grant:<id>` | `<user index name>\n<consent hex>\n<grant>` | the grant's end |
/// | `P grant-refresh:<id>` | set of the grant's refresh token hashes | the grant's end |
/// | `P refresh:<hex>` | `A:<grant id>\n<record>`, or `R:<grant id>\n<at>\n<successor>\n<record>` | the grant's end |
/// | `P user:<user index name>` | set of the user's grant ids | its last grant's end (ended ids pruned on read and, sampled, on write) |
/// | `P consent:<hex>` | `1` | the consent's end |
/// | `P client:<id>` | the registered client | its last use + the client TTL (default 90 days, as the server's registration TTL) |
///
/// With [`RedisAuthStore::user_pseudonyms`] (what `mcp-auth-app` sets), the
/// user index name is the user's pseudonym, the user id inside grants,
/// codes and pending sign-ins is sealed, and consents and locks (named by
/// a hash over the user id) are named by a keyed hash: nothing in Redis
/// names a user or can be tested against a guessed one.
/// Without, the index name is the user's storage key and the id is plain.
///
/// Every key expires. `revoke_all` (the emergency switch) finds the grants
/// with `SCAN` rather than keeping a list of them.
///
/// Redis failures are [`StoreError::Unavailable`]: the server fails closed.
/// On a Redis Cluster every key carries the prefix as a hash tag
/// ([`RedisConfig::key_prefix`]), so the scripts, which derive key names,
/// run on the one primary that holds them.
#[derive(Clone)]
pub struct RedisAuthStore {
    conn: RedisConnection,
    prefix: String,
    client_ttl: u64,
    /// `WAIT` after the writes a failover must not undo: replicas, timeout.
    wait: Option<(usize, std::time::Duration)>,
    subjects: Subjects,
}

impl std::fmt::Debug for RedisAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAuthStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(describe(e))
}

const REVOKE_FN: &str = r"
local function revoke(p, gid)
  local g = redis.call('GET', p .. 'grant:' .. gid)
  if not g then return 0 end
  local nl1 = string.find(g, '\n', 1, true)
  local nl2 = string.find(g, '\n', nl1 + 1, true)
  local user = string.sub(g, 1, nl1 - 1)
  local consent = string.sub(g, nl1 + 1, nl2 - 1)
  local tokens = redis.call('SMEMBERS', p .. 'grant-refresh:' .. gid)
  for _, t in ipairs(tokens) do redis.call('DEL', p .. 'refresh:' .. t) end
  redis.call('DEL', p .. 'grant-refresh:' .. gid, p .. 'grant:' .. gid, p .. 'consent:' .. consent)
  redis.call('SREM', p .. 'user:' .. user, gid)
  return 1
end
";

/// KEYS[1] code key; ARGV[1] grant's end (for the tombstone). A used code
/// presented again becomes `R:<grant id>` (replayed).
const REDEEM: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {'unknown'} end
local kind = string.sub(v, 1, 2)
if kind == 'U:' or kind == 'R:' then
  redis.call('SET', KEYS[1], 'R:' .. string.sub(v, 3), 'KEEPTTL')
  return {'replayed', string.sub(v, 3)}
end
local nl = string.find(v, '\n', 1, true)
local gid = string.sub(v, 3, nl - 1)
redis.call('SET', KEYS[1], 'U:' .. gid, 'KEEPTTL')
return {'fresh', string.sub(v, nl + 1)}
";

/// ARGV[1] prefix, ARGV[2] old hex, ARGV[3] new hex, ARGV[4] now,
/// ARGV[5] grace, ARGV[6] new record JSON, ARGV[7] the sealed successor
/// (base64url). A rotated token's value is
/// `R:<grant>\n<at>\n<successor hex>\n<sealed>\n<record>` (rows written
/// before the sealed successor was kept have no `<sealed>` line: a retry
/// of those revokes).
const ROTATE: &str = r"
local p = ARGV[1]
local v = redis.call('GET', p .. 'refresh:' .. ARGV[2])
if not v then return {'unknown'} end
local kind = string.sub(v, 1, 2)
local parts = {}
for line in string.gmatch(string.sub(v, 3), '[^\n]+') do table.insert(parts, line) end
local gid = parts[1]
local now = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local record
if kind == 'R:' then
  local at = tonumber(parts[2])
  local successor = redis.call('GET', p .. 'refresh:' .. parts[3])
  local unused = successor and string.sub(successor, 1, 2) == 'A:'
  if #parts == 5 and grace > 0 and now <= at + grace and unused then
    return {'retried', parts[5], parts[4]}
  end
  revoke(p, gid)
  return {'reused', gid}
else
  record = parts[2]
end
local ttl = redis.call('TTL', p .. 'grant:' .. gid)
if ttl < 0 then return {'unknown'} end
redis.call('SET', p .. 'refresh:' .. ARGV[2], 'R:' .. gid .. '\n' .. now .. '\n' .. ARGV[3] .. '\n' .. ARGV[7] .. '\n' .. record, 'EX', ttl)
redis.call('SET', p .. 'refresh:' .. ARGV[3], 'A:' .. gid .. '\n' .. ARGV[6], 'EX', ttl)
redis.call('SADD', p .. 'grant-refresh:' .. gid, ARGV[2], ARGV[3])
return {'rotated', record}
";

/// A refresh token's value and its grant's, in one round trip. KEYS[1]
/// the refresh token, ARGV[1] prefix. `{}` when unknown, `{refresh}` when
/// its grant is gone.
const REFRESH_AND_GRANT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {} end
local nl = string.find(v, '\n', 1, true)
if not nl then return {v} end
local g = redis.call('GET', ARGV[1] .. 'grant:' .. string.sub(v, 3, nl - 1))
if not g then return {v} end
return {v, g}
";

/// ARGV[1] prefix, ARGV[2] grant id.
const REVOKE: &str = "return revoke(ARGV[1], ARGV[2])";

/// ARGV[1] prefix, ARGV[2] hex, ARGV[3] value; the grant must be live.
const PUT_REFRESH: &str = r"
local p = ARGV[1]
local gid = ARGV[4]
local ttl = redis.call('TTL', p .. 'grant:' .. gid)
if ttl < 0 then return 0 end
redis.call('SET', p .. 'refresh:' .. ARGV[2], ARGV[3], 'EX', ttl)
redis.call('SADD', p .. 'grant-refresh:' .. gid, ARGV[2])
redis.call('EXPIRE', p .. 'grant-refresh:' .. gid, ttl)
return 1
";

/// Writes a grant and indexes it under its user, in one round trip, and
/// keeps the index bounded: it expires with the user's last grant, and
/// each write drops the ids of up to three ended grants found by sampling
/// it. ARGV[1] prefix, ARGV[2] user key, ARGV[3] grant id, ARGV[4] the
/// grant's end, ARGV[5] the grant's value.
const INDEX_GRANT: &str = r"
local p = ARGV[1]
local user = p .. 'user:' .. ARGV[2]
local ends = tonumber(ARGV[4])
redis.call('SET', p .. 'grant:' .. ARGV[3], ARGV[5], 'EXAT', ends)
redis.call('SADD', user, ARGV[3])
local at = redis.call('EXPIRETIME', user)
if at < ends then redis.call('EXPIREAT', user, ends) end
for _, gid in ipairs(redis.call('SRANDMEMBER', user, 3)) do
  if redis.call('EXISTS', p .. 'grant:' .. gid) == 0 then redis.call('SREM', user, gid) end
end
return 1
";

struct Scripts {
    index_grant: Script,
    redeem: Script,
    rotate: Script,
    revoke: Script,
    refresh_and_grant: Script,
    put_refresh: Script,
    unlock: Script,
}

/// Deletes a lock only if its holder is the caller.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
    index_grant: Script::new(INDEX_GRANT),
    redeem: Script::new(REDEEM),
    rotate: Script::new(&format!("{REVOKE_FN}{ROTATE}")),
    revoke: Script::new(&format!("{REVOKE_FN}{REVOKE}")),
    refresh_and_grant: Script::new(REFRESH_AND_GRANT),
    put_refresh: Script::new(PUT_REFRESH),
    unlock: Script::new(UNLOCK),
});

#[derive(Serialize, Deserialize)]
struct CodeWire {
    grant: GrantWire,
    redirect_uri: String,
    code_challenge: String,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct PendingWire {
    client: ClientInfo,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    resource: String,
    scopes: Vec<String>,
    browser: String,
    csrf: String,
    subject: Option<String>,
    #[serde(default)]
    consented: bool,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct RefreshWire {
    grant_id: String,
    scopes: Vec<String>,
}

impl RedisAuthStore {
    /// The default key prefix, `mcp-auth:as:`.
    pub const DEFAULT_PREFIX: &'static str = "mcp-auth:as:";

    /// Connects to `config`'s Redis and checks the connection with `PING`.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(config)?;
        ping(&store.conn).await.map_err(|e| match e {
            RedisSetupError::Unavailable(what) => StoreError::Unavailable(what),
            _ => StoreError::Unavailable("unreachable"),
        })?;
        Ok(store)
    }

    /// Like [`RedisAuthStore::connect`] without connecting: the first
    /// operation connects (every operation fails closed until Redis is up).
    /// Must be called within a Tokio runtime.
    pub fn connect_lazy(config: RedisConfig) -> Result<Self, StoreError> {
        let conn = config.connect_lazy().map_err(|e| match e {
            RedisSetupError::Unavailable(what) => StoreError::Unavailable(what),
            _ => StoreError::Unavailable("the Redis URL or key prefix is not valid"),
        })?;
        Ok(Self {
            conn,
            prefix: config.key_prefix(),
            client_ttl: crate::DEFAULT_REGISTRATION_TTL.as_secs(),
            wait: None,
            subjects: Subjects::default(),
        })
    }

    /// Names users by pseudonym and seals their ids inside records (no user
    /// id at rest), under `pseudonyms` (e.g. the vault's
    /// `Vault::user_pseudonyms().derive("oauth-server")`; every process of
    /// a fleet must use the same). Records written before stay readable
    /// until they expire; records written with it need the same key.
    #[must_use]
    pub fn user_pseudonyms(mut self, pseudonyms: mcp_auth_core::UserPseudonyms) -> Self {
        self.subjects = Subjects(Some(pseudonyms));
        self
    }

    /// After each write a failover must not undo (a code redeemed, a
    /// refresh token rotated, a grant revoked), waits until `replicas`
    /// replicas have it (`WAIT`), at most `timeout`; if fewer do, the
    /// operation fails closed ([`StoreError::Unavailable`]) instead of
    /// answering with something a promoted replica would not know. Off by
    /// default (Redis replication is asynchronous: see docs/deploy.md).
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: std::time::Duration) -> Self {
        self.wait = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// `WAIT`s for the configured replicas; an error when too few have the
    /// writes so far.
    async fn replicated(&self) -> Result<(), StoreError> {
        let Some((replicas, timeout)) = self.wait else {
            return Ok(());
        };
        // On a cluster, WAIT goes to the primary that holds this store's slot.
        let acked: usize = self
            .conn
            .query_where(
                redis::cmd("WAIT").arg(replicas).arg(
                    u64::try_from(timeout.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                ),
                &self.prefix,
            )
            .await
            .map_err(|e| unavailable(&e))?;
        if acked < replicas {
            return Err(StoreError::Unavailable(
                "a write did not reach the replicas in time",
            ));
        }
        Ok(())
    }

    /// How long a registered client is kept after its last use (default 90
    /// days, the server's default registration TTL; keep them equal or
    /// this longer).
    #[must_use]
    pub fn client_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.client_ttl = ttl.as_secs().max(1);
        self
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    async fn read_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let value: Option<String> = self
            .conn
            .clone()
            .get(self.key("grant", id))
            .await
            .map_err(|e| unavailable(&e))?;
        value.map(|v| self.decode_grant(&v)).transpose()
    }

    /// A grant from its stored value (`<index>\n<consent>\n<json>`).
    fn decode_grant(&self, value: &str) -> Result<Grant, StoreError> {
        let record = value.splitn(3, '\n').nth(2).ok_or_else(corrupt)?;
        let wire: GrantWire = serde_json::from_str(record).map_err(|_| corrupt())?;
        wire.into_grant(&self.subjects)
    }

    /// A grant's stored value: `<index>\n<consent>\n<json>`.
    fn grant_value(&self, grant: &Grant) -> Result<String, StoreError> {
        Ok(format!(
            "{}\n{}\n{}",
            self.subjects.index_name(&grant.subject),
            hex(self.subjects.hide(grant.consent)),
            json(&GrantWire::from(grant, &self.subjects)?)?
        ))
    }

    /// Rewrites a stored grant, keeping its expiry.
    async fn rewrite_grant(&self, grant: &Grant) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(self.key("grant", &grant.id))
            .arg(self.grant_value(grant)?)
            .arg("KEEPTTL")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

mod store;
