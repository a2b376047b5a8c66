/// Why a token was rejected.
///
/// Messages name the rule that failed and never include the token, a
/// signature or key material. Signature failures are deliberately not
/// explained further (no oracle).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The token is longer than the configured maximum.
    #[error("token is {len} bytes; the maximum is {max}")]
    TooLarge {
        /// Length of the token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS with three non-empty base64url parts and JSON
    /// header and payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token is a JWE (five parts); only signed tokens are accepted.
    #[error("encrypted tokens (JWE) are not accepted")]
    Encrypted,
    /// The token uses the JSON serialization; only compact JWS is accepted.
    #[error("JSON-serialized JWS is not accepted")]
    JsonSerialization,
    /// `alg` is `none` (in any casing).
    #[error("unsigned tokens (alg \"none\") are never accepted")]
    AlgNone,
    /// `alg` names an algorithm this validator does not support.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header has a `crit` member (no critical extension is understood).
    #[error("the token has critical header parameters this validator does not understand")]
    UnknownCriticalHeader,
    /// `typ` is not `at+jwt` while RFC 9068 typing is required.
    #[error("token type is not at+jwt")]
    WrongType,
    /// No key with the token's `kid` (after the permitted refetch).
    #[error("no key matches the token's key id")]
    UnknownKey,
    /// The key the token names exists but was refused at import (weak,
    /// wrong use, unsupported).
    #[error("the key the token names was refused: {0}")]
    KeyRefused(&'static str),
    /// The header's `alg` differs from the algorithm the key is bound to.
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The token has no `kid` and several keys could verify it.
    #[error("the token has no key id and the key set holds several candidate keys")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// No usable key set (the JWKS endpoint has not answered yet, or the last
    /// good key set is older than the maximum staleness).
    /// `None`: no fetch has finished yet; `Some`: why the last one failed.
    #[error("signing keys are unavailable: {}", match .0 {
        Some(last) => format!("the last fetch of the JWKS failed: {last}"),
        None => "no key set has been fetched yet".to_owned(),
    })]
    KeysUnavailable(Option<FetchError>),
    /// A required claim is missing.
    #[error("required claim {0:?} is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type.
    #[error("claim {0:?} has the wrong type")]
    InvalidClaimType(&'static str),
    /// `iss` is not the configured issuer.
    #[error("issuer does not match")]
    IssuerMismatch,
    /// `aud` does not contain the configured audience.
    #[error("audience does not match (the token was issued for another resource)")]
    AudienceMismatch,
    /// `exp` has passed (leeway included).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (leeway included).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (leeway included).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// Required scopes are missing.
    #[error("insufficient scope: missing {missing:?}")]
    InsufficientScope {
        /// The required scopes the token does not have.
        missing: Vec<String>,
    },
    /// A configured claim rule failed.
    #[error("claim rule on {claim:?} failed")]
    ClaimRule {
        /// The claim the rule checks.
        claim: String,
    },
}

impl ValidationError {
    /// A short, stable name of the rule that rejected the token, for logs and
    /// metrics (`expired`, `audience`, `signature`, ...).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "size",
            Self::Malformed(_) => "malformed",
            Self::Encrypted => "jwe",
            Self::JsonSerialization => "json-serialization",
            Self::AlgNone => "alg-none",
            Self::UnsupportedAlgorithm => "algorithm",
            Self::UnknownCriticalHeader => "crit",
            Self::WrongType => "typ",
            Self::UnknownKey => "unknown-kid",
            Self::KeyRefused(_) => "key-refused",
            Self::AlgorithmMismatch => "alg-mismatch",
            Self::AmbiguousKey => "ambiguous-key",
            Self::InvalidSignature => "signature",
            Self::KeysUnavailable(_) => "keys-unavailable",
            Self::MissingClaim(_) => "missing-claim",
            Self::InvalidClaimType(_) => "claim-type",
            Self::IssuerMismatch => "issuer",
            Self::AudienceMismatch => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::IssuedInFuture => "iat-future",
            Self::InsufficientScope { .. } => "scope",
            Self::ClaimRule { .. } => "claim-rule",
        }
    }
}

/// Why a key set (JWKS document or configured keys) was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// Not JSON, or not an object with a `keys` array of objects.
    #[error("malformed key set: {0}")]
    Malformed(&'static str),
    /// Larger than the configured maximum.
    #[error("key set is {len} bytes; the maximum is {max}")]
    TooLarge {
        /// Size of the document.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More keys than the configured maximum.
    #[error("key set has more than {max} keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// Two keys share a `kid`.
    #[error("key set has two keys with the same kid")]
    DuplicateKid,
    /// A key carries private key material (`d`, `p`, `q`, ...), or a PEM
    /// block is a private key.
    #[error("key set contains private key material; refusing it")]
    PrivateKeyMaterial,
    /// A key file could not be read.
    #[error("cannot read {}: {kind}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// Symmetric (`oct`) keys mixed with asymmetric ones, or offered where
    /// only asymmetric keys are allowed.
    #[error("symmetric and asymmetric keys cannot be mixed in one key set")]
    MixedKeySet,
    /// A configured key is unusable.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// No usable key in the set.
    #[error("the key set holds no usable signing key")]
    Empty,
}

/// Why fetching a discovery document or JWKS failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Client(mcp_auth_http::HttpError),
    /// Could not connect, or the request failed in transit.
    #[error("request to {url} failed: {error}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        error: mcp_auth_http::HttpError,
    },
    /// No response within the timeout.
    #[error("request to {url} timed out")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// A status other than 200 (redirects are not followed).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The response exceeded the size cap.
    #[error("response from {url} exceeds {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        max: usize,
    },
    /// The response is not a usable document.
    #[error("invalid document from {url}: {reason}")]
    InvalidDocument {
        /// The URL.
        url: String,
        /// What is wrong, in fixed words.
        reason: &'static str,
    },
    /// The JWKS document was fetched but its key set is refused.
    #[error("unusable key set from {url}: {error}")]
    UnusableKeySet {
        /// The URL.
        url: String,
        /// Why the set is refused.
        error: KeySetError,
    },
    /// The discovered issuer differs from the configured one.
    #[error("discovery at {url} returned issuer {found:?}, expected exactly {expected:?}")]
    IssuerMismatch {
        /// The discovery URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// A URL is not acceptable (not https, except on loopback).
    #[error("refusing URL {url}: {reason}")]
    InsecureUrl {
        /// The URL.
        url: String,
        /// Which rule it breaks.
        reason: mcp_auth_http::UrlRefusal,
    },
}
