//! Provider tokens for tools: a fresh access token per user, one refresh
//! at a time in a process and across a fleet.

use super::login::{credential, token_set};
#[allow(clippy::wildcard_imports)]
use super::*;

// ------------------------------------------------------------ for tools

/// Hands out upstream tokens: one [`UpstreamToken`] per signed-in user.
/// From [`AuthServer::upstream_tokens`](crate::AuthServer::upstream_tokens).
#[derive(Clone)]
pub struct UpstreamTokenSource {
    upstream: Arc<Upstream>,
    store: Arc<dyn AuthStore>,
    /// The server's issuer: the same allocation as the server's own.
    issuer: Arc<str>,
}

impl std::fmt::Debug for UpstreamTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokenSource")
            .field("provider", &self.upstream.display)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl UpstreamTokenSource {
    pub(crate) fn new(login: &UpstreamLogin, store: Arc<dyn AuthStore>, issuer: Arc<str>) -> Self {
        Self {
            upstream: login.inner.clone(),
            store,
            issuer,
        }
    }

    /// The handle for `subject` (a user this server signed in).
    pub fn for_user(&self, subject: &UserId) -> UpstreamToken {
        UpstreamToken {
            tokens: self.clone(),
            subject: subject.clone(),
        }
    }

    /// A layer that puts an [`UpstreamToken`] into the request's
    /// extensions next to the `Arc<AuthContext>` the resource server's
    /// authentication left there, when that token was issued by this
    /// authorization server (a token from another issuer, such as a
    /// development mint, gets no handle: its `sub` could name anyone).
    /// Add it inside the authentication layer.
    pub fn layer(&self) -> UpstreamLayer {
        UpstreamLayer {
            tokens: self.clone(),
        }
    }

    fn handle_for(&self, context: &AuthContext) -> Option<UpstreamToken> {
        let issued_here = context
            .claims
            .get("iss")
            .and_then(|v| v.as_str())
            .is_some_and(|iss| iss == &*self.issuer);
        issued_here.then(|| self.for_user(&context.user))
    }
}

/// See [`UpstreamTokenSource::layer`].
#[derive(Debug, Clone)]
pub struct UpstreamLayer {
    tokens: UpstreamTokenSource,
}

impl<S> tower::Layer<S> for UpstreamLayer {
    type Service = UpstreamService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UpstreamService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service of [`UpstreamLayer`].
#[derive(Debug, Clone)]
pub struct UpstreamService<S> {
    inner: S,
    tokens: UpstreamTokenSource,
}

impl<S, B> tower::Service<http::Request<B>> for UpstreamService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let handle = request
            .extensions()
            .get::<Arc<AuthContext>>()
            .and_then(|context| self.tokens.handle_for(context));
        if let Some(handle) = handle {
            request.extensions_mut().insert(handle);
        }
        self.inner.call(request)
    }
}

/// One user's upstream tokens, as a tool sees them. `Debug` shows the
/// subject only.
#[derive(Clone)]
pub struct UpstreamToken {
    tokens: UpstreamTokenSource,
    subject: UserId,
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamToken")
            .field("provider", &self.tokens.upstream.display)
            .field("subject", &self.subject)
            .finish()
    }
}

impl UpstreamToken {
    /// Whose tokens these are.
    pub fn subject(&self) -> &UserId {
        &self.subject
    }

    fn reconnect(&self) -> UpstreamError {
        UpstreamError::Reconnect {
            provider: self.tokens.upstream.display.clone(),
        }
    }

    fn unavailable(&self) -> UpstreamError {
        UpstreamError::Unavailable {
            provider: self.tokens.upstream.display.clone(),
        }
    }

    /// What is on file for this user; nothing is `Reconnect`.
    async fn held(&self) -> Result<Credential, UpstreamError> {
        self.tokens
            .upstream
            .load(&self.subject)
            .await
            .map_err(|()| self.unavailable())?
            .ok_or_else(|| self.reconnect())
    }

    /// An access token valid for at least the refresh margin, refreshed
    /// first when needed: one refresh per user at a time in this process,
    /// and across a fleet whose grant store is shared (a short lock in the
    /// store; a process that loses the race reads the refreshed token).
    pub async fn access_token(&self) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        let held = self.held().await?;
        if up.fresh(&held) {
            return Ok(held.access_token().clone());
        }
        self.refresh(None).await
    }

    /// The provider refused `rejected` (HTTP 401) although it had not
    /// expired by the clock: refresh once (unless another call already
    /// replaced it) and return the new token.
    pub async fn refresh_rejected(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, UpstreamError> {
        self.refresh(Some(rejected)).await
    }

    /// `held`'s access token if it is fresh and not the rejected one.
    fn settled_in(
        &self,
        held: &Credential,
        rejected: Option<&SecretString>,
    ) -> Option<SecretString> {
        let replaced = rejected.is_none_or(|r| {
            !mcp_auth_core::secrets_equal(
                r.expose_secret().as_bytes(),
                held.access_token().expose_secret().as_bytes(),
            )
        });
        (self.tokens.upstream.fresh(held) && replaced).then(|| held.access_token().clone())
    }

    /// Refreshes under the in-process and the fleet lock. The vault is
    /// read once, under both locks (the only read that can see another
    /// caller's refresh); while waiting for a lock another process holds,
    /// it is polled for that process's result.
    async fn refresh(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        let flight = up
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.subject.clone())
            .or_default()
            .clone();
        let _in_process = flight.lock().await;
        // Across the fleet: one holder of the lock refreshes; the others
        // wait for its result in the vault.
        let store = &self.tokens.store;
        let lock = StoreKey::of(&format!(
            "upstream-refresh\0{}\0{}",
            up.namespace,
            self.subject.as_str()
        ));
        let mut holder = [0u8; 16];
        getrandom::fill(&mut holder).map_err(|_| self.unavailable())?;
        let holder = data_encoding::HEXLOWER.encode(&holder);
        let deadline = tokio::time::Instant::now() + FLEET_WAIT;
        loop {
            let now = up.clock.unix_seconds();
            match store.try_lock(lock, &holder, now, LOCK_TTL).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(_) => return Err(self.unavailable()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.unavailable());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(token) = self.settled_in(&self.held().await?, rejected) {
                return Ok(token);
            }
        }
        let result = self.refresh_locked(rejected).await;
        let _ = store.unlock(lock, &holder).await;
        result
    }

    async fn refresh_locked(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, UpstreamError> {
        let up = &self.tokens.upstream;
        let held = self.held().await?;
        // Another caller (a task of this process, or another process) may
        // have refreshed before the locks were ours.
        if let Some(token) = self.settled_in(&held, rejected) {
            return Ok(token);
        }
        match up.client.refresh(&self.subject, &token_set(&held)).await {
            Ok(fresh) => {
                let credential = credential(&fresh, fresh.scopes.iter().cloned(), None);
                up.store(&self.subject, credential)
                    .await
                    .map_err(|()| self.unavailable())?;
                tracing::info!(target: AUDIT, event = "upstream_refreshed", provider = %up.display, subject = self.subject.as_str());
                crate::metrics::upstream_refresh(&up.display, "ok");
                Ok(fresh.access_token)
            }
            Err(e) if e.requires_sign_in() => {
                // The provider says the refresh token is dead: forget it and
                // end this user's grants, so the client signs in again.
                up.delete(&self.subject).await;
                let now = up.clock.unix_seconds();
                let mut revoked = 0;
                if let Ok(grants) = self.tokens.store.grants_of(&self.subject, now).await {
                    for grant in grants {
                        revoked += usize::from(
                            self.tokens
                                .store
                                .revoke_grant(&grant.id)
                                .await
                                .unwrap_or(false),
                        );
                    }
                }
                tracing::warn!(target: AUDIT, event = "upstream_reconnect_required", provider = %up.display, subject = self.subject.as_str(), grants_revoked = revoked);
                crate::metrics::upstream_refresh(&up.display, "reconnect_needed");
                Err(self.reconnect())
            }
            Err(e) => {
                tracing::warn!(target: AUDIT, event = "upstream_refresh_failed", provider = %up.display, subject = self.subject.as_str(), reason = %e);
                crate::metrics::upstream_refresh(&up.display, "unavailable");
                Err(self.unavailable())
            }
        }
    }
}
