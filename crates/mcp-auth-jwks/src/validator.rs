use std::sync::Arc;

use mcp_auth_core::{Clock, SystemClock};

use crate::cache::JwksCache;
use crate::error::{FetchError, ValidationError};
use crate::fetch::{default_client, discover};
use crate::jws;
use crate::keys::KeySet;
use crate::policy::{Policy, VerifiedToken, finish};
use mcp_auth_http::HttpClient;

#[derive(Debug, Clone)]
enum Keys {
    Static(Arc<KeySet>),
    Shared(SharedKeySet),
    Remote(JwksCache),
}

/// A key set its owner replaces while validators read it: an
/// authorization server in the same process hands its resource server its
/// published keys this way, so a rotation is seen at the next validation
/// with no HTTP round trip to itself. Cheap to clone (clones share the set).
///
/// With [`on_unknown_kid`](Self::on_unknown_kid), a token whose `kid` is not
/// in the set makes the owner look for newer keys (at most once a second)
/// before it is refused: another process of a fleet may have rotated. At
/// most five such refreshes run in any second, so a flood of made-up key
/// ids costs the owner little.
#[derive(Clone)]
pub struct SharedKeySet {
    keys: Arc<std::sync::RwLock<Arc<KeySet>>>,
    on_unknown: Option<Refresh>,
}

type RefreshFn = dyn Fn() -> mcp_auth_core::BoxFuture<'static, ()> + Send + Sync;

#[derive(Clone)]
struct Refresh {
    run: Arc<RefreshFn>,
    recent: Arc<tokio::sync::Mutex<std::collections::VecDeque<std::time::Instant>>>,
}

impl std::fmt::Debug for SharedKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeySet")
            .field("keys", &self.current())
            .field("refreshes", &self.on_unknown.is_some())
            .finish()
    }
}

impl SharedKeySet {
    /// Starts with `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            keys: Arc::new(std::sync::RwLock::new(Arc::new(keys))),
            on_unknown: None,
        }
    }

    /// Runs `refresh` (which should [`replace`](Self::replace) the set if
    /// the owner finds newer keys) when a token names a key the set does
    /// not hold; at most five times in any second, one at a time.
    #[must_use]
    pub fn on_unknown_kid(
        mut self,
        refresh: impl Fn() -> mcp_auth_core::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        self.on_unknown = Some(Refresh {
            run: Arc::new(refresh),
            recent: Arc::new(tokio::sync::Mutex::new(std::collections::VecDeque::new())),
        });
        self
    }

    /// Replaces the set; every validator sharing it uses `keys` from now on.
    pub fn replace(&self, keys: KeySet) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    /// The set in force.
    pub fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks the owner for newer keys, unless it was asked five times in
    /// the last second; the set in force afterwards.
    async fn refreshed(&self) -> Arc<KeySet> {
        const PER_SECOND: usize = 5;
        if let Some(refresh) = &self.on_unknown {
            let mut recent = refresh.recent.lock().await;
            let second = std::time::Duration::from_secs(1);
            while recent.front().is_some_and(|at| at.elapsed() >= second) {
                recent.pop_front();
            }
            if recent.len() < PER_SECOND {
                (refresh.run)().await;
                recent.push_back(std::time::Instant::now());
            }
        }
        self.current()
    }
}

/// Validates bearer tokens: header rules, key selection, signature, then the
/// [`Policy`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Validator {
    policy: Arc<Policy>,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

impl Validator {
    /// Validates against a remote, cached JWKS.
    pub fn new(policy: Policy, cache: JwksCache) -> Self {
        Self {
            policy: Arc::new(policy),
            keys: Keys::Remote(cache),
            clock: Arc::new(SystemClock),
        }
    }

    /// Validates against fixed keys (configuration, or an HMAC secret).
    pub fn with_static_keys(policy: Policy, keys: KeySet) -> Self {
        Self {
            policy: Arc::new(policy),
            keys: Keys::Static(Arc::new(keys)),
            clock: Arc::new(SystemClock),
        }
    }

    /// Validates against `keys`, read afresh at each validation (see
    /// [`SharedKeySet`]).
    pub fn with_shared_keys(policy: Policy, keys: SharedKeySet) -> Self {
        Self {
            policy: Arc::new(policy),
            keys: Keys::Shared(keys),
            clock: Arc::new(SystemClock),
        }
    }

    /// Discovers the policy's issuer (OIDC discovery, then RFC 8414), checks
    /// that the discovered `issuer` is exactly the configured one, and
    /// validates against its `jwks_uri` with the default HTTP client
    /// ([`crate::fetch::default_client`]).
    pub async fn from_issuer(policy: Policy) -> Result<Self, FetchError> {
        Self::from_issuer_with(policy, default_client()?).await
    }

    /// [`Validator::from_issuer`] through `http`.
    pub async fn from_issuer_with(
        policy: Policy,
        http: Arc<dyn HttpClient>,
    ) -> Result<Self, FetchError> {
        let metadata = discover(http.as_ref(), policy.issuer()).await?;
        let cache = JwksCache::builder(metadata.jwks_uri).http(http).build()?;
        Ok(Self::new(policy, cache))
    }

    /// Uses `clock` for `exp`/`nbf`/`iat` (tests use a manual clock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The JWKS cache, when validating against a remote key set.
    pub fn cache(&self) -> Option<&JwksCache> {
        match &self.keys {
            Keys::Remote(cache) => Some(cache),
            Keys::Static(_) | Keys::Shared(_) => None,
        }
    }

    /// Validates `token` (without the `Bearer ` prefix).
    pub async fn validate(&self, token: &str) -> Result<VerifiedToken, ValidationError> {
        let result = self.validate_inner(token).await;
        if let Err(e) = &result {
            tracing::debug!(rule = e.rule(), reason = %e, "bearer token rejected");
        }
        result
    }

    async fn validate_inner(&self, token: &str) -> Result<VerifiedToken, ValidationError> {
        let parsed = jws::parse(token, self.policy.max_len(), self.policy.requires_at_jwt())?;
        let keys = match &self.keys {
            Keys::Static(keys) => keys.clone(),
            Keys::Shared(shared) => {
                let keys = shared.current();
                match keys.select(parsed.kid.as_deref(), parsed.alg) {
                    Err(ValidationError::UnknownKey)
                        if parsed.kid.is_some() && shared.on_unknown.is_some() =>
                    {
                        shared.refreshed().await
                    }
                    _ => keys,
                }
            }
            Keys::Remote(cache) => {
                if parsed.alg.is_symmetric() {
                    // A remote JWKS never holds HMAC keys: don't fetch for one.
                    return Err(ValidationError::AlgorithmMismatch);
                }
                cache.keys_for(parsed.kid.as_deref()).await?
            }
        };
        let key = keys.select(parsed.kid.as_deref(), parsed.alg)?;
        finish(&parsed, key, &self.policy, self.clock.as_ref())
    }
}
