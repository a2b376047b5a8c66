//! Pending sign-ins in Redis, for a fleet: the callback may reach another
//! process than the one that started the sign-in.

use mcp_auth_core::RedisConfig;
use mcp_auth_core::RedisConnection;
use mcp_auth_core::redis_conn::{RedisSetupError, describe, ping};

use crate::OAuthError;
use crate::pending::{PendingAuthorization, PendingKey, PendingStore, StoreFuture};

/// Pending sign-ins in Redis (6.2 or later: `GETDEL`).
///
/// One key per sign-in, `<prefix>p:<SHA-256 of the state, hex>`, holding
/// [`PendingAuthorization::seal`]'s bytes (AES-256-GCM under a key only the
/// state reproduces), with a TTL of the pending lifetime. So Redis never
/// holds the state, the PKCE verifier, the nonce or the user in the clear.
/// `insert` is `SET … EX … NX`; `take` is `GETDEL`: atomic, so a state is
/// used once even when two processes receive the same callback.
///
/// Redis being down or slow surfaces as
/// [`OAuthError::PendingStoreUnavailable`]: the sign-in cannot start, or its
/// callback fails and the user starts again. The connection manager
/// reconnects by itself. There is no entry cap beyond the TTL: limit how
/// often a user may start a sign-in (e.g. with `mcp-auth-ratelimit`).
#[derive(Clone)]
pub struct RedisPendingStore {
    conn: RedisConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisPendingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPendingStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisPendingStore {
    /// The default key prefix, `mcp-auth:pkce:`.
    pub const DEFAULT_PREFIX: &'static str = "mcp-auth:pkce:";

    /// Connects to `config`'s Redis and checks the connection with `PING`.
    pub async fn connect(config: RedisConfig) -> Result<Self, OAuthError> {
        let store = Self::connect_lazy(config)?;
        ping(&store.conn).await.map_err(setup_error)?;
        Ok(store)
    }

    /// Like [`connect`](Self::connect) without connecting: the first sign-in
    /// connects, so a server can start while Redis is down. Must be called
    /// within a Tokio runtime.
    pub fn connect_lazy(config: RedisConfig) -> Result<Self, OAuthError> {
        let conn = config.connect_lazy().map_err(setup_error)?;
        Ok(Self {
            conn,
            prefix: config.key_prefix(),
        })
    }

    fn key(&self, key: &PendingKey) -> String {
        format!("{}p:{}", self.prefix, key.id_hex())
    }
}

fn setup_error(error: RedisSetupError) -> OAuthError {
    match error {
        RedisSetupError::Unavailable(what) => OAuthError::PendingStoreUnavailable(what),
        // The URL is not repeated: it may hold a password.
        other => OAuthError::Config(mcp_auth_core::redis_conn::redis_problem(&other).into()),
    }
}

impl PendingStore for RedisPendingStore {
    fn insert<'a>(
        &'a self,
        key: &'a PendingKey,
        pending: PendingAuthorization,
        _now: u64,
        lifetime_secs: u64,
    ) -> StoreFuture<'a, Result<(), OAuthError>> {
        Box::pin(async move {
            let sealed = pending.seal(key)?;
            let stored: Option<String> = redis::cmd("SET")
                .arg(self.key(key))
                .arg(sealed)
                .arg("EX")
                .arg(lifetime_secs.max(1))
                .arg("NX")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| OAuthError::PendingStoreUnavailable(describe(&e)))?;
            match stored {
                Some(_) => Ok(()),
                // A 256-bit state cannot repeat; if it did, the first
                // sign-in keeps its entry.
                None => Err(OAuthError::PendingStoreUnavailable(
                    "a sign-in with this state is already pending",
                )),
            }
        })
    }

    fn take<'a>(
        &'a self,
        key: &'a PendingKey,
    ) -> StoreFuture<'a, Result<Option<PendingAuthorization>, OAuthError>> {
        Box::pin(async move {
            let sealed: Option<Vec<u8>> = redis::cmd("GETDEL")
                .arg(self.key(key))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| OAuthError::PendingStoreUnavailable(describe(&e)))?;
            match sealed {
                None => Ok(None),
                Some(bytes) => match PendingAuthorization::open(key, &bytes) {
                    Ok(pending) => Ok(Some(pending)),
                    Err(error) => {
                        tracing::warn!(
                            target: "mcp_auth::audit",
                            event = "oauth_pending_corrupt",
                            key = %&key.id_hex()[..8],
                            "a pending sign-in in Redis could not be opened and was dropped"
                        );
                        Err(error)
                    }
                },
            }
        })
    }
}
