//! What the server keeps between requests, behind one trait: pending
//! authorizations, codes, grants, refresh tokens, consents and registered
//! clients. Codes, refresh tokens and pending ids are keyed by their
//! SHA-256 ([`StoreKey`]); the store never sees them in clear.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use mcp_auth_core::{BoxFuture, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The SHA-256 of a secret (a code, a refresh token, a pending id), as the
/// store's key: a leaked store gives no usable secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey(pub [u8; 32]);

impl StoreKey {
    /// The key of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoreKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Where a client's registration came from (shown on the consent page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientOrigin {
    /// Configured by the operator.
    Configured,
    /// Registered through RFC 7591 dynamic registration.
    Registered,
    /// A client ID metadata document, fetched from this host.
    MetadataDocument {
        /// The document URL's host.
        host: String,
    },
}

/// A client as the server knows it. `Debug` leaves the secret's hash out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientInfo {
    /// `client_id`.
    pub client_id: String,
    /// The name shown on the consent page (client-supplied: escaped).
    pub name: String,
    /// Accepted redirect URIs (already checked).
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the client secret, for confidential clients.
    pub secret_hash: Option<[u8; 32]>,
    /// Whether refresh tokens are issued to it.
    pub refresh: bool,
    /// Where it came from.
    pub origin: ClientOrigin,
    /// Registered clients: when unused this long after `last_used`, gone.
    pub last_used: u64,
}

/// An authorization request between `/authorize` and the code: bound to
/// the browser that started it. `Debug` leaves the CSRF token and the
/// browser binding out.
#[derive(Clone)]
#[non_exhaustive]
pub struct PendingSignIn {
    /// The client.
    pub client: ClientInfo,
    /// The redirect URI, as requested (validated).
    pub redirect_uri: String,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource (token audience).
    pub resource: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// SHA-256 of the browser's flow cookie.
    pub browser: [u8; 32],
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    /// Who signed in, once the login step is done.
    pub subject: Option<UserId>,
    /// Whether the person approved the consent page before the login
    /// (a login that leaves for an upstream provider asks first).
    pub consented: bool,
    /// When it stops being usable.
    pub expires_at: u64,
}

impl std::fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInfo")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_hash.is_some())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("client", &self.client.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .field("subject", &self.subject)
            .field("consented", &self.consented)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An authorization code's binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CodeRecord {
    /// The grant it starts.
    pub grant: Grant,
    /// The redirect URI it was issued to.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When it expires (at most 60 s after issue).
    pub expires_at: u64,
}

/// A user's grant to a client: what refresh tokens continue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Random id.
    pub id: String,
    /// The user.
    pub subject: UserId,
    /// The client.
    pub client_id: String,
    /// Its name when granted.
    pub client_name: String,
    /// Where the client came from (shown to the user).
    pub client_origin: ClientOrigin,
    /// The resource (token audience).
    pub resource: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When granted.
    pub created_at: u64,
    /// Last token issued from it.
    pub last_used: u64,
    /// Absolute end of the grant.
    pub expires_at: u64,
    /// The consent it was given under (revoked with it).
    pub consent: StoreKey,
}

/// What a refresh token continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The grant.
    pub grant_id: String,
    /// Scopes of this token (a refresh may narrow them).
    pub scopes: Vec<String>,
}

impl ClientInfo {
    /// A public client (PKCE, no secret) that gets refresh tokens.
    pub fn public(
        client_id: impl Into<String>,
        name: impl Into<String>,
        redirect_uris: Vec<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            name: name.into(),
            redirect_uris,
            secret_hash: None,
            refresh: true,
            origin: ClientOrigin::Registered,
            last_used: 0,
        }
    }
}

impl PendingSignIn {
    /// A pending authorization (for stores and their tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: ClientInfo,
        redirect_uri: impl Into<String>,
        state: Option<String>,
        code_challenge: impl Into<String>,
        resource: impl Into<String>,
        scopes: Vec<String>,
        browser: [u8; 32],
        csrf: String,
        expires_at: u64,
    ) -> Self {
        Self {
            client,
            redirect_uri: redirect_uri.into(),
            state,
            code_challenge: code_challenge.into(),
            resource: resource.into(),
            scopes,
            browser,
            csrf,
            subject: None,
            consented: false,
            expires_at,
        }
    }
}

impl CodeRecord {
    /// A code's binding.
    pub fn new(
        grant: Grant,
        redirect_uri: impl Into<String>,
        code_challenge: impl Into<String>,
        expires_at: u64,
    ) -> Self {
        Self {
            grant,
            redirect_uri: redirect_uri.into(),
            code_challenge: code_challenge.into(),
            expires_at,
        }
    }
}

impl Grant {
    /// A grant created at `created_at`, ending at `expires_at`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        subject: UserId,
        client_id: impl Into<String>,
        client_name: impl Into<String>,
        resource: impl Into<String>,
        scopes: Vec<String>,
        created_at: u64,
        expires_at: u64,
        consent: StoreKey,
    ) -> Self {
        Self {
            id: id.into(),
            subject,
            client_id: client_id.into(),
            client_name: client_name.into(),
            client_origin: ClientOrigin::Registered,
            resource: resource.into(),
            scopes,
            created_at,
            last_used: created_at,
            expires_at,
            consent,
        }
    }
}

impl RefreshRecord {
    /// A refresh token of `grant_id` with `scopes`.
    pub fn new(grant_id: impl Into<String>, scopes: Vec<String>) -> Self {
        Self {
            grant_id: grant_id.into(),
            scopes,
        }
    }
}

/// The outcome of redeeming a code.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Redemption {
    /// First use: the code's binding.
    Fresh(Box<CodeRecord>),
    /// Used before: the grant it started (to revoke).
    Replayed {
        /// The grant.
        grant_id: String,
    },
    /// No such code.
    Unknown,
}

/// The outcome of rotating a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// Rotated: the old token's record; the new one is stored.
    Rotated(RefreshRecord),
    /// The token was rotated within the grace window and its successor is
    /// still unused: a client retrying a refresh whose answer it lost. The
    /// successor is answered again (nothing changes in the store), from
    /// `sealed_successor`, which only the presented token opens.
    Retried {
        /// The presented token's record.
        record: RefreshRecord,
        /// What [`AuthStore::rotate_refresh`] was given when the token was
        /// rotated.
        sealed_successor: Vec<u8>,
    },
    /// The token was rotated before, outside the grace window (or within
    /// it, but its successor has been used): the grant has been revoked
    /// (RFC 9700 section 4.14.2).
    Reused {
        /// The revoked grant.
        grant_id: String,
    },
    /// No such token (or its grant is gone).
    Unknown,
}

/// A refresh token's record and its grant when live
/// ([`AuthStore::refresh_and_grant`]).
pub type RefreshAndGrant = (RefreshRecord, Option<Grant>);

/// The server's storage. Implementations must make `redeem_code` and
/// `rotate_refresh` atomic: two callers never both get `Fresh` for one code
/// or both rotate one token.
pub trait AuthStore: Send + Sync + std::fmt::Debug {
    /// Stores a pending authorization.
    fn put_pending(
        &self,
        key: StoreKey,
        pending: PendingSignIn,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A pending authorization, if live at `now`.
    fn pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>>;
    /// Removes and returns a pending authorization (single use).
    fn take_pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>>;
    /// Stores a code.
    fn put_code(&self, key: StoreKey, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Redeems a code: `Fresh` once, `Replayed` after.
    fn redeem_code(&self, key: StoreKey, now: u64)
    -> BoxFuture<'_, Result<Redemption, StoreError>>;
    /// Whether the code `key` was presented again after its redemption (a
    /// [`Redemption::Replayed`] marks it). The token endpoint asks after it
    /// has stored the grant: a replay that came before the grant existed
    /// found nothing to revoke, so the redemption revokes it itself.
    fn code_replayed(&self, key: StoreKey) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Stores a grant.
    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A live grant.
    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>>;
    /// Marks a grant used at `now`.
    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Revokes a grant, its refresh tokens and its consent. Whether it existed.
    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// A user's live grants.
    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>>;
    /// At least the number of the user's live grants, cheaply: the server
    /// asks after every new grant, and lists them (`grants_of`) only when
    /// this is over its per-user cap. The default lists them; a store with
    /// a per-user index answers from its size.
    fn grant_count_bound<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move { Ok(self.grants_of(user, 0).await?.len()) })
    }
    /// Revokes every grant (emergency). How many.
    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Stores a refresh token.
    fn put_refresh(
        &self,
        key: StoreKey,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A refresh token's record, if active.
    fn refresh(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>>;
    /// A refresh token's record (as [`refresh`](Self::refresh) gives it)
    /// and its grant when live (as [`grant`](Self::grant)), read together:
    /// the refresh grant's first step. The default reads one, then the
    /// other; the Redis store answers both in one round trip.
    fn refresh_and_grant(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<RefreshAndGrant>, StoreError>> {
        Box::pin(async move {
            let Some(record) = self.refresh(key).await? else {
                return Ok(None);
            };
            let grant = self.grant(&record.grant_id, now).await?;
            Ok(Some((record, grant)))
        })
    }
    /// Rotates `old` to `new` (storing `record` under it) atomically,
    /// keeping `sealed_successor` (the new token, sealed under the old one)
    /// with the rotated `old`. Presenting an already-rotated token within
    /// `grace` seconds of its rotation, while its successor is still
    /// unused, is [`Rotation::Retried`] (nothing changes); otherwise it
    /// revokes the grant ([`Rotation::Reused`]). Never a second successor:
    /// a thief replaying within the window must not be able to cut off the
    /// client.
    fn rotate_refresh(
        &self,
        old: StoreKey,
        new: StoreKey,
        record: RefreshRecord,
        now: u64,
        grace: u64,
        sealed_successor: Vec<u8>,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>>;
    /// Remembers consent until `until`.
    fn put_consent(&self, key: StoreKey, until: u64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Whether consent is remembered at `now`.
    fn consent(&self, key: StoreKey, now: u64) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Stores a registered client.
    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>>;
    /// A registered client.
    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>>;
    /// Takes the short lock `name` for `holder` until `now + ttl` unless
    /// another holder has it: whether it was taken. Shared by every process
    /// using the store (one upstream refresh per user across a fleet).
    fn try_lock(
        &self,
        name: StoreKey,
        holder: &str,
        now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Releases `name` if `holder` still has it.
    fn unlock(&self, name: StoreKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Whether the store can answer now (a readiness check): the default
    /// says yes; a networked store asks its server.
    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

mod memory;
pub use memory::MemoryAuthStore;
#[cfg_attr(not(any(feature = "redis", feature = "embedded")), allow(dead_code))]
pub(crate) mod wire;
