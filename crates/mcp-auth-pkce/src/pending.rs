//! Authorizations started and not yet completed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce as GcmNonce};
use mcp_auth_core::UserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CodeVerifier, Nonce, OAuthError};

/// Default number of pending authorizations the memory store holds.
pub const DEFAULT_PENDING_CAPACITY: usize = 10_000;

/// What is remembered between the redirect to the provider and the callback.
/// `Debug` leaves the verifier, the nonce and the binding out.
#[non_exhaustive]
pub struct PendingAuthorization {
    /// Who started the sign-in (a local user or session key).
    pub user: UserId,
    /// The PKCE verifier for the token exchange.
    pub verifier: CodeVerifier,
    /// The OIDC nonce the ID token must carry.
    pub nonce: Option<Nonce>,
    /// The issuer the callback and the ID token must name.
    pub expected_issuer: Option<String>,
    /// Seconds since the Unix epoch when the sign-in started.
    pub created_at: u64,
    /// What the caller tied a sign-in for a not-yet-known user to (see
    /// [`OAuthClient::start_sign_in`](crate::OAuthClient::start_sign_in)).
    pub binding: Option<String>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("user", &self.user)
            .field("expected_issuer", &self.expected_issuer)
            .field("created_at", &self.created_at)
            .field("bound", &self.binding.is_some())
            .finish_non_exhaustive()
    }
}

/// The id a pending authorization is stored under: the SHA-256 of its
/// `state`, so a store never holds the state itself.
pub type StateKey = [u8; 32];

/// Where one pending sign-in is stored, derived from its `state`: the
/// lookup [`id`](PendingKey::id) (SHA-256 of the state) and a sealing key
/// that only the state reproduces (SHA-256 under another label), which
/// [`PendingAuthorization::seal`] uses.
///
/// A store that leaves the process (Redis, a database) keeps only the id and
/// the sealed bytes: whoever reads it learns neither the PKCE verifier nor
/// the user, since the state travels only between the browser, the provider
/// and this server.
pub struct PendingKey {
    id: StateKey,
    seal: Zeroizing<[u8; 32]>,
}

impl PendingKey {
    /// The key of the sign-in whose `state` parameter is `state`.
    pub fn for_state(state: &str) -> Self {
        let mut seal = Sha256::new();
        seal.update(b"mcp-auth-pkce pending seal v1\0");
        seal.update(state.as_bytes());
        Self {
            id: Sha256::digest(state.as_bytes()).into(),
            seal: Zeroizing::new(seal.finalize().into()),
        }
    }

    /// The lookup id.
    pub fn id(&self) -> &StateKey {
        &self.id
    }

    /// The lookup id in lower-case hex (64 characters), for key names.
    pub fn id_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.id)
    }
}

impl std::fmt::Debug for PendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a hash of a secret that is still live: a prefix only.
        write!(f, "PendingKey({}…)", &self.id_hex()[..8])
    }
}

/// Format version of sealed entries.
const SEALED_V1: u8 = 1;
const SEAL_NONCE_LEN: usize = 12;

/// The plaintext of a sealed entry: borrowed when sealing (no copy of the
/// verifier), owned when opening.
#[derive(Serialize, Deserialize)]
struct SealedFields<'a> {
    u: Cow<'a, str>,
    v: Cow<'a, str>,
    n: Option<Cow<'a, str>>,
    i: Option<Cow<'a, str>>,
    c: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<Cow<'a, str>>,
}

impl PendingAuthorization {
    /// The entry as bytes for a shared store: JSON sealed with AES-256-GCM
    /// under `key`'s sealing key, its id as associated data, a random nonce;
    /// `1 || nonce || ciphertext`.
    pub fn seal(&self, key: &PendingKey) -> Result<Vec<u8>, OAuthError> {
        let fields = SealedFields {
            u: Cow::Borrowed(self.user.as_str()),
            v: Cow::Borrowed(self.verifier.secret()),
            n: self.nonce.as_ref().map(|n| Cow::Borrowed(n.as_str())),
            i: self.expected_issuer.as_deref().map(Cow::Borrowed),
            c: self.created_at,
            b: self.binding.as_deref().map(Cow::Borrowed),
        };
        let plain =
            Zeroizing::new(serde_json::to_vec(&fields).map_err(|_| OAuthError::CorruptPending)?);
        let mut nonce = [0u8; SEAL_NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|_| OAuthError::PendingStoreUnavailable("no randomness"))?;
        let sealed = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key.seal))
            .encrypt(
                &GcmNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &key.id,
                },
            )
            .map_err(|_| OAuthError::CorruptPending)?;
        let mut out = Vec::with_capacity(1 + SEAL_NONCE_LEN + sealed.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made for the same `key`. Bytes that
    /// were altered, sealed for another state, or are not a sealed entry
    /// give [`OAuthError::CorruptPending`].
    pub fn open(key: &PendingKey, sealed: &[u8]) -> Result<Self, OAuthError> {
        let (&version, rest) = sealed.split_first().ok_or(OAuthError::CorruptPending)?;
        if version != SEALED_V1 || rest.len() < SEAL_NONCE_LEN {
            return Err(OAuthError::CorruptPending);
        }
        let (nonce, body) = rest.split_at(SEAL_NONCE_LEN);
        let nonce: [u8; SEAL_NONCE_LEN] =
            nonce.try_into().map_err(|_| OAuthError::CorruptPending)?;
        let plain = Zeroizing::new(
            Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key.seal))
                .decrypt(
                    &GcmNonce::from(nonce),
                    Payload {
                        msg: body,
                        aad: &key.id,
                    },
                )
                .map_err(|_| OAuthError::CorruptPending)?,
        );
        let fields: SealedFields =
            serde_json::from_slice(&plain).map_err(|_| OAuthError::CorruptPending)?;
        let verifier = CodeVerifier::from_string(fields.v.into_owned())
            .map_err(|_| OAuthError::CorruptPending)?;
        Ok(Self {
            user: UserId::new(fields.u).map_err(|_| OAuthError::CorruptPending)?,
            verifier,
            nonce: fields.n.map(|n| Nonce::from_stored(n.into_owned())),
            expected_issuer: fields.i.map(Cow::into_owned),
            created_at: fields.c,
            binding: fields.b.map(Cow::into_owned),
        })
    }
}

/// A boxed future for [`PendingStore`] methods.
pub type StoreFuture<'a, T> = mcp_auth_core::BoxFuture<'a, T>;

/// Where pending authorizations live until their callback. Entries are
/// single use: [`PendingStore::take`] removes what it returns.
///
/// A store shared by several processes should keep
/// [`PendingAuthorization::seal`]'s bytes under [`PendingKey::id`] (as
/// `RedisPendingStore`, feature `redis`, does), never the fields themselves.
pub trait PendingStore: Send + Sync + std::fmt::Debug {
    /// Remembers `pending` under `key`; `lifetime_secs` lets the store drop
    /// stale entries (when it needs room, or by expiry).
    fn insert<'a>(
        &'a self,
        key: &'a PendingKey,
        pending: PendingAuthorization,
        now: u64,
        lifetime_secs: u64,
    ) -> StoreFuture<'a, Result<(), OAuthError>>;

    /// Removes and returns the entry for `key`, if any. An error means the
    /// store could not answer (unreachable, or the entry is corrupted); the
    /// entry is not returned later either way.
    fn take<'a>(
        &'a self,
        key: &'a PendingKey,
    ) -> StoreFuture<'a, Result<Option<PendingAuthorization>, OAuthError>>;
}

/// The in-memory default: bounded, single process.
#[derive(Debug)]
pub struct MemoryPendingStore {
    entries: Mutex<HashMap<StateKey, PendingAuthorization>>,
    capacity: usize,
}

impl Default for MemoryPendingStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_PENDING_CAPACITY)
    }
}

impl MemoryPendingStore {
    /// A store for at most `capacity` pending sign-ins (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Number of pending entries (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether no sign-in is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PendingStore for MemoryPendingStore {
    fn insert<'a>(
        &'a self,
        key: &'a PendingKey,
        pending: PendingAuthorization,
        now: u64,
        lifetime_secs: u64,
    ) -> StoreFuture<'a, Result<(), OAuthError>> {
        let result = match self.entries.lock() {
            Ok(mut entries) => {
                if entries.len() >= self.capacity {
                    entries.retain(|_, p| now < p.created_at.saturating_add(lifetime_secs));
                }
                if entries.len() >= self.capacity {
                    Err(OAuthError::TooManyPending)
                } else {
                    entries.insert(key.id, pending);
                    Ok(())
                }
            }
            Err(_) => Err(OAuthError::TooManyPending),
        };
        Box::pin(std::future::ready(result))
    }

    fn take<'a>(
        &'a self,
        key: &'a PendingKey,
    ) -> StoreFuture<'a, Result<Option<PendingAuthorization>, OAuthError>> {
        let taken = self.entries.lock().ok().and_then(|mut e| e.remove(&key.id));
        Box::pin(std::future::ready(Ok(taken)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingAuthorization {
        PendingAuthorization {
            user: UserId::new("alice@example.com").unwrap(),
            verifier: CodeVerifier::from_string("v".repeat(43)).unwrap(),
            nonce: Some(Nonce::from_stored("n".repeat(43))),
            expected_issuer: Some("https://issuer.example".into()),
            created_at: 1_800_000_000,
            binding: Some("our-request".into()),
        }
    }

    #[test]
    fn sealed_entries_open_only_with_their_state_and_unaltered() {
        let key = PendingKey::for_state("the-state");
        let sealed = pending().seal(&key).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("vvvv") && !text.contains("alice") && !text.contains("issuer"));
        assert!(!text.contains("our-request"));
        let opened = PendingAuthorization::open(&key, &sealed).unwrap();
        assert_eq!(opened.binding.as_deref(), Some("our-request"));
        let shown = format!("{opened:?} {:?}", pending());
        assert!(
            !shown.contains("our-request") && !shown.contains("vvvv") && !shown.contains("nnnn"),
            "{shown}"
        );
        assert_eq!(opened.user.as_str(), "alice@example.com");
        assert_eq!(opened.verifier.secret(), "v".repeat(43));
        assert!(opened.nonce.unwrap().matches(&"n".repeat(43)));
        assert_eq!(
            opened.expected_issuer.as_deref(),
            Some("https://issuer.example")
        );
        assert_eq!(opened.created_at, 1_800_000_000);
        // Two seals of one entry differ (fresh nonce).
        assert_ne!(pending().seal(&key).unwrap(), sealed);

        let other = PendingKey::for_state("another-state");
        let corrupt = |bytes: &[u8]| {
            assert_eq!(
                PendingAuthorization::open(&key, bytes).unwrap_err(),
                OAuthError::CorruptPending
            );
        };
        assert_eq!(
            PendingAuthorization::open(&other, &sealed).unwrap_err(),
            OAuthError::CorruptPending
        );
        for at in [0, 1, 13, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 0x40;
            corrupt(&altered);
        }
        corrupt(&[]);
        corrupt(&[SEALED_V1]);
        corrupt(&sealed[..20]);
    }

    #[test]
    fn the_key_is_the_state_hash_and_debug_shows_a_prefix_only() {
        let key = PendingKey::for_state("the-state");
        let id: [u8; 32] = Sha256::digest(b"the-state").into();
        assert_eq!(key.id(), &id);
        assert_ne!(*key.seal, id, "the sealing key is not the lookup id");
        let shown = format!("{key:?}");
        assert!(
            shown.len() < 30 && !shown.contains(&key.id_hex()),
            "{shown}"
        );
    }
}
