//! A bounded cache of verified tokens, so a client that sends the same bearer
//! token on every request pays for one signature check, not one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_core::{Clock, SystemClock};
use sha2::{Digest, Sha256};

use crate::{AuthContext, TokenVerifier, VerifyFuture};

/// Default number of cached tokens.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;
/// Default longest time a verified token is trusted without a new check.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

struct Entry {
    context: Arc<AuthContext>,
    until: u64,
}

/// Wraps a [`TokenVerifier`] with a cache of its successes.
///
/// The key is the SHA-256 of the whole token, signature included, so a hit
/// means these exact bytes passed the inner verifier before; the token
/// itself is not kept. An entry lives until the token's `exp` or for `ttl`,
/// whichever is sooner (expiry is checked on every hit against the clock).
/// Failures are never cached. When full, expired entries are dropped, and
/// if that frees nothing the cache starts over empty: memory stays bounded
/// whatever tokens an attacker sends, and only valid tokens get in.
///
/// What it changes: a token whose signing key is withdrawn from the JWKS
/// stays accepted for at most `ttl` after its last full check. Keep `ttl`
/// short (default 60 s); JWTs cannot be revoked before `exp` anyway.
pub struct CachedVerifier<V> {
    inner: V,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl<V: std::fmt::Debug> std::fmt::Debug for CachedVerifier<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedVerifier")
            .field("inner", &self.inner)
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("cached", &self.len())
            .finish()
    }
}

impl<V> CachedVerifier<V> {
    /// A cache in front of `inner` with the default capacity and TTL.
    pub fn new(inner: V) -> Self {
        Self {
            inner,
            entries: Mutex::new(HashMap::new()),
            capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            ttl: DEFAULT_TOKEN_CACHE_TTL,
            clock: Arc::new(SystemClock),
        }
    }

    /// At most `capacity` tokens (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Trust a verified token for at most `ttl` without a new check.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, key: &[u8; 32], now: u64) -> Option<Arc<AuthContext>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|e| now < e.until)
            .map(|e| e.context.clone())
    }

    fn store(&self, key: [u8; 32], context: &Arc<AuthContext>, now: u64) {
        let until = context
            .expires_at
            .min(now.saturating_add(self.ttl.as_secs()));
        if until <= now {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                context: context.clone(),
                until,
            },
        );
    }
}

impl<V: TokenVerifier> TokenVerifier for CachedVerifier<V> {
    fn issuer(&self) -> Option<&str> {
        self.inner.issuer()
    }

    fn audience(&self) -> Option<&str> {
        self.inner.audience()
    }

    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.lookup(&key, self.clock.unix_seconds())
    }

    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.unix_seconds();
        if let Some(context) = self.lookup(&key, now) {
            return Box::pin(std::future::ready(Ok(context)));
        }
        Box::pin(async move {
            let context = self.inner.verify(token).await;
            if let Ok(context) = &context {
                self.store(key, context, self.clock.unix_seconds());
            }
            context
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mcp_auth_core::{ManualClock, UserId};

    use super::*;
    use crate::VerifyError;

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl TokenVerifier for Counting {
        fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let result = match token.strip_prefix("good-") {
                Some(exp) => Ok(Arc::new(
                    AuthContext::new(UserId::new("alice").unwrap())
                        .with_expires_at(exp.parse().unwrap()),
                )),
                None => Err(VerifyError::Invalid { rule: "signature" }),
            };
            Box::pin(std::future::ready(result))
        }
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn hits_skip_the_inner_verifier_until_ttl_or_exp() {
        let clock = ManualClock::at_unix(1_000);
        let cache = CachedVerifier::new(Counting::default())
            .ttl(Duration::from_secs(60))
            .clock(clock.clone());
        block(async {
            for _ in 0..5 {
                assert!(cache.verify("good-2000").await.is_ok());
            }
            assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 1);
            clock.advance(Duration::from_secs(60));
            assert!(cache.verify("good-2000").await.is_ok());
            assert_eq!(
                cache.inner.calls.load(Ordering::SeqCst),
                2,
                "ttl elapsed: checked again"
            );
            // exp sooner than ttl bounds the entry.
            assert!(cache.verify("good-1070").await.is_ok());
            clock.advance(Duration::from_secs(10));
            assert!(cache.verify("good-1070").await.is_ok());
            assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 4);
        });
    }

    #[test]
    fn failures_are_never_cached_and_size_is_bounded() {
        let cache = CachedVerifier::new(Counting::default())
            .capacity(3)
            .clock(ManualClock::at_unix(1_000));
        block(async {
            for _ in 0..3 {
                assert!(cache.verify("forged").await.is_err());
            }
            assert_eq!(cache.inner.calls.load(Ordering::SeqCst), 3);
            assert!(cache.is_empty());
            for i in 0..10 {
                assert!(cache.verify(&format!("good-{}", 5_000 + i)).await.is_ok());
                assert!(cache.len() <= 3);
            }
        });
    }
}
