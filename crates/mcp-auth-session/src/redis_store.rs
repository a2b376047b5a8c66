//! The Redis store, for a fleet of server processes sharing sessions.

use std::fmt;

use mcp_auth_core::RedisConfig;
use mcp_auth_core::RedisConnection;
use mcp_auth_core::UserId;
use mcp_auth_core::redis_conn::{RedisSetupError, describe, ping, redis_problem};
use redis::{AsyncCommands, Script};

use crate::store::{InsertRules, SessionChange, SessionStore, StoreFuture, StoredSession};
use crate::{SessionError, SessionHandle, Timeouts, UserLimitPolicy};

/// Sessions in Redis. Every operation is one Lua script (one round trip, atomic).
///
/// Keys (with the configured prefix `P`):
///
/// | key | type | contents | TTL |
/// |---|---|---|---|
/// | `P s:<sha256 hex>` | hash | `u` user index name, `su` the user id sealed (with pseudonyms), `ct` created, `ls` last seen, `ep` epoch, `c` client id, `s` scopes (JSON), `d` data (JSON) | until the session's deadline + 60 s |
/// | `P u:<user index name>` | sorted set | the user's session hashes, scored by creation time | absolute timeout + 60 s |
/// | `P epoch` | string | counter bumped by "revoke everything" | none |
///
/// The user index name is the user's pseudonym with
/// [`RedisSessionStore::user_pseudonyms`] (what `mcp-auth-app` sets: then
/// nothing in Redis names a user), else the user's storage key.
///
/// The per-user index is maintained in the same scripts that create and
/// delete sessions, so it never disagrees with the sessions; dead entries
/// are pruned when the user next signs in or lists sessions. No operation
/// scans the keyspace except [`SessionStore::remove_all`], which first bumps the epoch (invalidating every session at
/// once) and then deletes the old keys with `SCAN`.
///
/// Failures of Redis (down, timeout, connection lost) surface as
/// [`SessionError::StoreUnavailable`]: no session is valid while Redis cannot
/// confirm it. The connection manager reconnects by itself when Redis is
/// back; no restart is needed.
///
/// On a Redis Cluster every key carries the prefix as a hash tag
/// ([`RedisConfig::key_prefix`]): the scripts, which derive key names, run
/// on the one primary that holds them.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: RedisConnection,
    prefix: String,
    users: Option<mcp_auth_core::UserPseudonyms>,
}

impl fmt::Debug for RedisSessionStore {
    // Not derived: the connection's Debug would print the URL, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `live` is [`Timeouts::is_live`] plus the epoch check. `ttl` is the Redis
/// TTL: the clock-driven deadline plus 60 s of slack. The manager's clock
/// decides liveness on every access; the TTL only collects garbage, and the
/// slack keeps a small clock difference between a server and Redis from
/// deleting a session early.
const LUA_PRELUDE: &str = r"
local function live(ct, ls, ep, epoch, now, idle, abs)
  if not ct or not ls or ep ~= epoch then return false end
  return now < tonumber(ls) + idle and now < tonumber(ct) + abs
end
local function ttl(ct, ls, now, idle, abs)
  local left = math.min(ls + idle, ct + abs) - now
  if left < 1 then left = 1 end
  return left + 60
end
";

/// KEYS: session, user index, epoch. ARGV: prefix, hex, user key, now, idle,
/// abs, limit (0 = none), refuse (1/0), client id, scopes, data, sealed user.
const INSERT: &str = r"
local prefix, hex, ukey = ARGV[1], ARGV[2], ARGV[3]
local now, idle, abs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local limit = tonumber(ARGV[7])
local epoch = redis.call('GET', KEYS[3]) or '0'
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local k = prefix .. 's:' .. m
  local h = redis.call('HMGET', k, 'ct', 'ls', 'ep')
  if not live(h[1], h[2], h[3], epoch, now, idle, abs) then
    redis.call('DEL', k)
    redis.call('ZREM', KEYS[2], m)
  end
end
local result = {'ok'}
if limit > 0 then
  local count = redis.call('ZCARD', KEYS[2])
  if count >= limit then
    if ARGV[8] == '1' then return {'refused'} end
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, count - limit)) do
      redis.call('DEL', prefix .. 's:' .. m)
      redis.call('ZREM', KEYS[2], m)
      result[#result + 1] = m
    end
  end
end
redis.call('HSET', KEYS[1], 'u', ukey, 'ct', ARGV[4], 'ls', ARGV[4], 'ep', epoch,
  'c', ARGV[9], 's', ARGV[10], 'd', ARGV[11], 'su', ARGV[12])
redis.call('EXPIRE', KEYS[1], ttl(now, now, now, idle, abs))
redis.call('ZADD', KEYS[2], now, hex)
redis.call('EXPIRE', KEYS[2], abs + 60)
return result
";

/// KEYS: session, epoch. ARGV: prefix, hex, now, idle, abs, set scopes (1/0),
/// scopes, set data (1/0), data. Returns {ct, ls, u, c, s, d, su} or nil.
const TOUCH: &str = r"
local now, idle, abs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', KEYS[1], 'ct', 'ls', 'ep', 'u', 'c', 's', 'd', 'su')
if not h[1] then return false end
local epoch = redis.call('GET', KEYS[2]) or '0'
if not live(h[1], h[2], h[3], epoch, now, idle, abs) then
  redis.call('DEL', KEYS[1])
  if h[4] then redis.call('ZREM', ARGV[1] .. 'u:' .. h[4], ARGV[2]) end
  return false
end
local ls = math.max(tonumber(h[2]), now)
local s, d = h[6], h[7]
if ARGV[6] == '1' then s = ARGV[7]; redis.call('HSET', KEYS[1], 's', s) end
if ARGV[8] == '1' then d = ARGV[9]; redis.call('HSET', KEYS[1], 'd', d) end
redis.call('HSET', KEYS[1], 'ls', string.format('%d', ls))
redis.call('EXPIRE', KEYS[1], ttl(tonumber(h[1]), ls, now, idle, abs))
return {h[1], string.format('%d', ls), h[4], h[5], s, d, h[8] or ''}
";

/// KEYS: old session, new session, epoch. ARGV: prefix, old hex, new hex,
/// now, idle, abs. Returns {ct, ls, u, c, s, d, su} or nil.
const ROTATE: &str = r"
local now, idle, abs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'ct', 'ls', 'ep', 'u', 'c', 's', 'd', 'su')
if not h[1] then return false end
local epoch = redis.call('GET', KEYS[3]) or '0'
local idx = ARGV[1] .. 'u:' .. (h[4] or '')
if not live(h[1], h[2], h[3], epoch, now, idle, abs) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', idx, ARGV[2])
  return false
end
local ls = math.max(tonumber(h[2]), now)
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'ls', string.format('%d', ls))
redis.call('EXPIRE', KEYS[2], ttl(tonumber(h[1]), ls, now, idle, abs))
redis.call('ZREM', idx, ARGV[2])
redis.call('ZADD', idx, h[1], ARGV[3])
return {h[1], string.format('%d', ls), h[4], h[5], h[6], h[7], h[8] or ''}
";

/// KEYS: user index, epoch. ARGV: prefix, now, idle, abs. Returns a flat
/// list of {hex, ct, ls, u, c, s, d, su} per live session, oldest first.
const LIST: &str = r"
local now, idle, abs = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local epoch = redis.call('GET', KEYS[2]) or '0'
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = ARGV[1] .. 's:' .. m
  local h = redis.call('HMGET', k, 'ct', 'ls', 'ep', 'u', 'c', 's', 'd', 'su')
  if live(h[1], h[2], h[3], epoch, now, idle, abs) then
    for _, v in ipairs({m, h[1], h[2], h[4], h[5], h[6], h[7], h[8] or ''}) do out[#out + 1] = v end
  else
    redis.call('DEL', k)
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
";

/// KEYS: session. ARGV: prefix, hex. Returns 1 if it existed.
const REMOVE: &str = r"
local u = redis.call('HGET', KEYS[1], 'u')
if not u then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'u:' .. u, ARGV[2])
return 1
";

/// KEYS: user index. ARGV: prefix. Returns how many sessions existed.
const REMOVE_USER: &str = r"
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. 's:' .. m)
end
redis.call('DEL', KEYS[1])
return n
";

fn script(body: &str) -> Script {
    Script::new(&format!("{LUA_PRELUDE}{body}"))
}

struct Scripts {
    insert: Script,
    touch: Script,
    rotate: Script,
    list: Script,
    remove: Script,
    remove_user: Script,
}

static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
    insert: script(INSERT),
    touch: script(TOUCH),
    rotate: script(ROTATE),
    list: script(LIST),
    remove: script(REMOVE),
    remove_user: script(REMOVE_USER),
});

/// Redis errors say what failed without echoing the URL or credentials.
fn unavailable(e: &redis::RedisError) -> SessionError {
    SessionError::StoreUnavailable(describe(e))
}

fn scopes_json(scopes: &[String]) -> Result<String, SessionError> {
    serde_json::to_string(scopes).map_err(|e| SessionError::data(&e))
}

/// Builds a session from the seven fields {ct, ls, u, c, s, d, su}: the
/// user is `su` opened, or (written without pseudonyms) `u` decoded.
fn from_fields(
    handle: SessionHandle,
    f: &[String],
    users: Option<&mcp_auth_core::UserPseudonyms>,
) -> Result<StoredSession, SessionError> {
    let [ct, ls, u, c, s, d, su] = f else {
        return Err(SessionError::StoreCorrupt("wrong number of fields"));
    };
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| SessionError::StoreCorrupt("timestamp is not a number"))
    };
    Ok(StoredSession {
        handle,
        user: if su.is_empty() {
            UserId::from_storage_key(u)
                .map_err(|_| SessionError::StoreCorrupt("user key is not canonical"))?
        } else {
            users
                .and_then(|p| p.open_user(su))
                .ok_or(SessionError::StoreCorrupt(
                    "a sealed user id does not open with this key (check the vault key)",
                ))?
        },
        client_id: c.clone(),
        scopes: serde_json::from_str(s)
            .map_err(|_| SessionError::StoreCorrupt("scopes are not a JSON string array"))?,
        created_at: number(ct)?,
        last_seen: number(ls)?,
        data: d.clone(),
    })
}

fn setup_error(e: RedisSetupError) -> SessionError {
    match e {
        RedisSetupError::Unavailable(what) => SessionError::StoreUnavailable(what),
        other => SessionError::Config(redis_problem(&other)),
    }
}

impl RedisSessionStore {
    /// The default key prefix, `mcp-auth:session:`.
    pub const DEFAULT_PREFIX: &'static str = "mcp-auth:session:";

    /// Connects to `config`'s Redis and checks the connection with `PING`.
    pub async fn connect(config: RedisConfig) -> Result<Self, SessionError> {
        let store = Self::connect_lazy(config)?;
        ping(&store.conn).await.map_err(setup_error)?;
        Ok(store)
    }

    /// Like [`connect`](Self::connect) but without connecting: the first
    /// operation connects, so a server can start while Redis is down (every
    /// session operation fails closed until it is up). Must be called
    /// within a Tokio runtime.
    pub fn connect_lazy(config: RedisConfig) -> Result<Self, SessionError> {
        let conn = config.connect_lazy().map_err(setup_error)?;
        Ok(Self {
            conn,
            prefix: config.key_prefix(),
            users: None,
        })
    }

    /// Names users by pseudonym (their index keys) and seals their ids
    /// inside sessions (no user id at rest), under `pseudonyms` (e.g. the
    /// vault's `Vault::user_pseudonyms().derive("sessions")`; every process
    /// of a fleet must use the same). Sessions written before stay usable.
    #[must_use]
    pub fn user_pseudonyms(mut self, pseudonyms: mcp_auth_core::UserPseudonyms) -> Self {
        self.users = Some(pseudonyms);
        self
    }

    /// The user's index keys: by pseudonym (or storage key), and while
    /// pseudonyms are on, the one written before them.
    fn user_keys(&self, user: &UserId) -> Vec<String> {
        let storage = format!("{}u:{}", self.prefix, user.storage_key());
        match &self.users {
            Some(p) => vec![format!("{}u:{}", self.prefix, p.name(user)), storage],
            None => vec![storage],
        }
    }

    fn session_key(&self, handle: &SessionHandle) -> String {
        format!("{}s:{}", self.prefix, handle.to_hex())
    }

    fn user_key(&self, user: &UserId) -> String {
        match &self.users {
            Some(p) => format!("{}u:{}", self.prefix, p.name(user)),
            None => format!("{}u:{}", self.prefix, user.storage_key()),
        }
    }

    /// The user's index name and the text of the `su` field.
    fn user_fields(&self, user: &UserId) -> Result<(String, String), SessionError> {
        match &self.users {
            Some(p) => Ok((
                p.name(user).as_str().to_owned(),
                p.seal_user(user)
                    .map_err(|_| SessionError::StoreUnavailable("the random generator failed"))?,
            )),
            None => Ok((user.storage_key().as_str().to_owned(), String::new())),
        }
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    async fn insert_impl(
        &self,
        session: StoredSession,
        rules: InsertRules,
    ) -> Result<Vec<SessionHandle>, SessionError> {
        let t = rules.timeouts;
        let limit = rules.max_per_user.map_or(0, |m| m.get());
        let refuse = if rules.policy == UserLimitPolicy::Refuse {
            "1"
        } else {
            "0"
        };
        let (index_name, sealed) = self.user_fields(&session.user)?;
        let reply: Vec<String> = SCRIPTS
            .insert
            .key(self.session_key(&session.handle))
            .key(self.user_key(&session.user))
            .key(self.epoch_key())
            .arg(&self.prefix)
            .arg(session.handle.to_hex())
            .arg(index_name)
            .arg(rules.now)
            .arg(t.idle_secs)
            .arg(t.absolute_secs)
            .arg(limit)
            .arg(refuse)
            .arg(&session.client_id)
            .arg(scopes_json(&session.scopes)?)
            .arg(&session.data)
            .arg(sealed)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        match reply.split_first() {
            Some((status, evicted)) if status == "ok" => evicted
                .iter()
                .map(|hex| {
                    SessionHandle::from_hex(hex)
                        .map_err(|_| SessionError::StoreCorrupt("index member is not a handle"))
                })
                .collect(),
            Some((status, _)) if status == "refused" => {
                Err(SessionError::UserLimitReached { max: limit })
            }
            _ => Err(SessionError::StoreCorrupt("unexpected insert reply")),
        }
    }

    async fn touch_impl(
        &self,
        handle: &SessionHandle,
        change: SessionChange,
        now: u64,
        t: Timeouts,
    ) -> Result<Option<StoredSession>, SessionError> {
        let (set_scopes, scopes) = match &change.scopes {
            Some(scopes) => ("1", scopes_json(scopes)?),
            None => ("0", String::new()),
        };
        let (set_data, data) = match change.data {
            Some(data) => ("1", data),
            None => ("0", String::new()),
        };
        let reply: Option<Vec<String>> = SCRIPTS
            .touch
            .key(self.session_key(handle))
            .key(self.epoch_key())
            .arg(&self.prefix)
            .arg(handle.to_hex())
            .arg(now)
            .arg(t.idle_secs)
            .arg(t.absolute_secs)
            .arg(set_scopes)
            .arg(scopes)
            .arg(set_data)
            .arg(data)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        reply
            .map(|f| from_fields(*handle, &f, self.users.as_ref()))
            .transpose()
    }

    async fn rotate_impl(
        &self,
        old: &SessionHandle,
        new: &SessionHandle,
        now: u64,
        t: Timeouts,
    ) -> Result<Option<StoredSession>, SessionError> {
        let reply: Option<Vec<String>> = SCRIPTS
            .rotate
            .key(self.session_key(old))
            .key(self.session_key(new))
            .key(self.epoch_key())
            .arg(&self.prefix)
            .arg(old.to_hex())
            .arg(new.to_hex())
            .arg(now)
            .arg(t.idle_secs)
            .arg(t.absolute_secs)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        reply
            .map(|f| from_fields(*new, &f, self.users.as_ref()))
            .transpose()
    }

    async fn list_impl(
        &self,
        user: &UserId,
        now: u64,
        t: Timeouts,
    ) -> Result<Vec<StoredSession>, SessionError> {
        let mut sessions = Vec::new();
        for index in self.user_keys(user) {
            let reply: Vec<String> = SCRIPTS
                .list
                .key(index)
                .key(self.epoch_key())
                .arg(&self.prefix)
                .arg(now)
                .arg(t.idle_secs)
                .arg(t.absolute_secs)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            if !reply.len().is_multiple_of(8) {
                return Err(SessionError::StoreCorrupt("unexpected list reply"));
            }
            for row in reply.chunks_exact(8) {
                let handle = SessionHandle::from_hex(&row[0])
                    .map_err(|_| SessionError::StoreCorrupt("index member is not a handle"))?;
                sessions.push(from_fields(handle, &row[1..], self.users.as_ref())?);
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    async fn remove_impl(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let removed: i64 = SCRIPTS
            .remove
            .key(self.session_key(handle))
            .arg(&self.prefix)
            .arg(handle.to_hex())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(removed == 1)
    }

    async fn remove_user_impl(&self, user: &UserId) -> Result<usize, SessionError> {
        let mut removed = 0u64;
        for index in self.user_keys(user) {
            let n: u64 = SCRIPTS
                .remove_user
                .key(index)
                .arg(&self.prefix)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            removed += n;
        }
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn remove_all_impl(&self) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        // One atomic step invalidates every session in the fleet...
        let _: i64 = conn
            .incr(self.epoch_key(), 1)
            .await
            .map_err(|e| unavailable(&e))?;
        // ...then the dead keys are deleted (best effort; TTLs would collect them).
        let epoch_key = self.epoch_key();
        let keys = conn
            .scan_prefix(&self.prefix)
            .await
            .map_err(|e| unavailable(&e))?;
        let doomed: Vec<&String> = keys.iter().filter(|k| **k != epoch_key).collect();
        for chunk in doomed.chunks(1000) {
            let _: i64 = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }
}

impl SessionStore for RedisSessionStore {
    fn insert<'a>(
        &'a self,
        session: StoredSession,
        rules: InsertRules,
    ) -> StoreFuture<'a, Vec<SessionHandle>> {
        Box::pin(self.insert_impl(session, rules))
    }

    fn load_and_touch<'a>(
        &'a self,
        handle: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(self.touch_impl(handle, SessionChange::default(), now, timeouts))
    }

    fn update<'a>(
        &'a self,
        handle: &'a SessionHandle,
        change: SessionChange,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(self.touch_impl(handle, change, now, timeouts))
    }

    fn rotate<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(self.rotate_impl(old, new, now, timeouts))
    }

    fn list_user<'a>(
        &'a self,
        user: &'a UserId,
        now: u64,
        timeouts: Timeouts,
    ) -> StoreFuture<'a, Vec<StoredSession>> {
        Box::pin(self.list_impl(user, now, timeouts))
    }

    fn remove<'a>(&'a self, handle: &'a SessionHandle) -> StoreFuture<'a, bool> {
        Box::pin(self.remove_impl(handle))
    }

    fn remove_user<'a>(&'a self, user: &'a UserId) -> StoreFuture<'a, usize> {
        Box::pin(self.remove_user_impl(user))
    }

    fn remove_all(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.remove_all_impl())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(
            mcp_auth_core::redis_conn::escape_glob("app:*?[x]\\"),
            "app:\\*\\?\\[x\\]\\\\"
        );
    }
}
