//! Signing keys shared by a fleet through the vault: every process reloads
//! the ring on a schedule and when a token names a key it does not know,
//! rotations start from the ring in the vault, and a scheduled rotation
//! runs once per fleet (under the store's lock).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{AuthServer, Inner, VAULT_PROVIDER, vault_user};
use crate::keys::KeyRing;
use crate::store::StoreKey;
use crate::{AUDIT, ServerError};

/// Default time within which every process sees a rotation made by
/// another (when the keys are in a shared vault): 60 s.
pub const DEFAULT_KEY_RELOAD: Duration = Duration::from_secs(60);

/// The lock a scheduled rotation takes, so that one process rotates.
const ROTATION_LOCK: &str = "mcp-auth:signing-key-rotation";

impl AuthServer {
    /// Rotates the signing keys: the already-published next key starts
    /// signing, a new next key is published, and the old key stays
    /// published for one access-token lifetime. With the keys in a vault
    /// the rotation starts from the ring stored there (another process may
    /// have rotated since this one last looked) and is stored before the
    /// new key signs; the other processes see it within the reload
    /// interval, or at once when they meet a token it signed.
    pub fn rotate_keys(&self) -> Result<(), ServerError> {
        self.inner.rotate(None).map(|_| ())
    }

    /// Replaces every signing key at once (the emergency): a new ring with
    /// nothing retired kept, stored in the vault first. Every access token
    /// issued before no longer validates: here at once, in the other
    /// processes of a fleet at their next reload.
    pub fn retire_all_keys(&self) -> Result<(), ServerError> {
        let mut ring = KeyRing::generate()?;
        ring.rotated_at = self.inner.now();
        if let Some(vault) = &self.inner.vault {
            vault
                .put_bytes(&vault_user(), VAULT_PROVIDER, &ring.to_bytes())
                .map_err(|_| ServerError::Key("the vault cannot be written"))?;
        }
        let mut keys = self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner.published.replace(super::published_keys(&ring)?);
        *keys = ring;
        tracing::warn!(target: AUDIT, event = "signing_keys_replaced", kid = keys.current().kid());
        Ok(())
    }

    /// Whether the server can answer now (a readiness check): its store
    /// answers. The keys are loaded once it is built.
    pub async fn ready(&self) -> Result<(), crate::StoreError> {
        self.inner.store.ready().await
    }

    /// Reloads the signing keys from the vault now (what the scheduled
    /// reload does every [`key_reload_every`]); whether they changed.
    /// Without a vault there is nothing to reload.
    ///
    /// [`key_reload_every`]: crate::AuthServerBuilder::key_reload_every
    pub async fn reload_keys(&self) -> Result<bool, ServerError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.reload_keys())
            .await
            .map_err(|_| ServerError::Key("the key reload did not finish"))?
    }
}

impl Inner {
    /// The ring stored in the vault, if any.
    fn stored_ring(&self) -> Result<Option<KeyRing>, ServerError> {
        let Some(vault) = &self.vault else {
            return Ok(None);
        };
        match vault
            .get_bytes(&vault_user(), VAULT_PROVIDER)
            .map_err(|_| ServerError::Key("the vault cannot be read"))?
        {
            Some(bytes) => {
                KeyRing::from_bytes(secrecy::ExposeSecret::expose_secret(&bytes)).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Puts `ring` in force (keys and published set) unless it is the ring
    /// in force already; whether it changed anything.
    fn adopt(&self, ring: KeyRing) -> Result<bool, ServerError> {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.kids() == ring.kids() {
            return Ok(false);
        }
        self.published.replace(super::published_keys(&ring)?);
        *keys = ring;
        tracing::info!(target: AUDIT, event = "signing_keys_reloaded", kid = keys.current().kid());
        Ok(true)
    }

    /// Reloads the ring from the vault (blocking I/O: call it off the
    /// async workers).
    pub(super) fn reload_keys(&self) -> Result<bool, ServerError> {
        match self.stored_ring()? {
            Some(ring) => self.adopt(ring),
            None => Ok(false),
        }
    }

    /// Rotates from the stored ring (or the one in force, without a vault);
    /// with `due_every`, only if the stored ring's current key has signed
    /// that long. Whether it rotated.
    fn rotate(&self, due_every: Option<u64>) -> Result<bool, ServerError> {
        let now = self.now();
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ring = match self.stored_ring()? {
            Some(stored) => stored,
            None => KeyRing::from_bytes(&keys.to_bytes())?,
        };
        if let Some(every) = due_every
            && now < ring.rotated_at.saturating_add(every)
        {
            if keys.kids() != ring.kids() {
                self.published.replace(super::published_keys(&ring)?);
                *keys = ring;
            }
            return Ok(false);
        }
        ring.rotate(now, now + self.access_ttl)?;
        if let Some(vault) = &self.vault {
            vault
                .put_bytes(&vault_user(), VAULT_PROVIDER, &ring.to_bytes())
                .map_err(|_| ServerError::Key("the vault cannot be written"))?;
        }
        self.published.replace(super::published_keys(&ring)?);
        *keys = ring;
        tracing::info!(target: AUDIT, event = "signing_keys_rotated", kid = keys.current().kid());
        Ok(true)
    }

    /// A scheduled rotation, by at most one process of the fleet at a time:
    /// the one that takes the store's lock, and only if still due.
    async fn scheduled_rotation(self: &Arc<Self>, every: u64, holder: &str) {
        let now = self.now();
        let lock = StoreKey::of(ROTATION_LOCK);
        match self.store.try_lock(lock, holder, now, 30).await {
            Ok(true) => {}
            _ => return,
        }
        let inner = self.clone();
        let rotated = tokio::task::spawn_blocking(move || inner.rotate(Some(every))).await;
        if let Ok(Err(e)) = rotated {
            tracing::error!(error = %e, "scheduled signing-key rotation failed");
        }
        let _ = self.store.unlock(lock, holder).await;
    }
}

/// Reloads the ring every `reload`, and rotates it every `rotate_every`
/// (once per fleet); ends when the server is dropped. Needs a Tokio
/// runtime: without one nothing is scheduled (and a warning says so).
pub(super) fn watch(inner: &Arc<Inner>, reload: Duration, rotate_every: Option<Duration>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("AuthServer built outside a Tokio runtime: signing keys are not reloaded");
        return;
    };
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let holder = super::super::secrets::random_id(16).unwrap_or_else(|_| "process".to_owned());
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(reload.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            if let Some(every) = rotate_every {
                inner
                    .scheduled_rotation(every.as_secs().max(1), &holder)
                    .await;
            }
            let reloading = inner.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || reloading.reload_keys()).await {
                tracing::warn!(error = %e, "signing keys not reloaded");
            }
        }
    });
}

/// What the in-process verifier runs when a token names a key it does not
/// know: a reload from the vault (another process may have rotated).
pub(super) fn reload_on_unknown_kid(
    weak: Weak<Inner>,
) -> impl Fn() -> mcp_auth_core::BoxFuture<'static, ()> + Send + Sync + 'static {
    move || {
        let weak = weak.clone();
        Box::pin(async move {
            if let Some(inner) = weak.upgrade() {
                let _ = tokio::task::spawn_blocking(move || inner.reload_keys()).await;
            }
        })
    }
}
