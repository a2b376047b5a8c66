//! What a verified JWT must claim to be accepted, and the typed result.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_auth_core::Clock;
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::jws;
use crate::keys::{Algorithm, KeySet};

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default maximum token length, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// An extra rule on a claim, e.g. Google's `email_verified == true` or an
/// `hd` (hosted domain) allow-list.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClaimRule {
    /// The claim must be present and equal to this JSON value.
    Equals {
        /// Claim name.
        claim: String,
        /// Required value.
        value: Value,
    },
    /// The claim must be a string from this list.
    OneOf {
        /// Claim name.
        claim: String,
        /// Allowed values.
        allowed: Vec<String>,
    },
}

impl ClaimRule {
    /// `claim` must equal `value`.
    pub fn equals(claim: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::Equals {
            claim: claim.into(),
            value: value.into(),
        }
    }

    /// `claim` must be one of `allowed`.
    pub fn one_of<I, S>(claim: impl Into<String>, allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::OneOf {
            claim: claim.into(),
            allowed: allowed.into_iter().map(Into::into).collect(),
        }
    }

    fn claim(&self) -> &str {
        match self {
            Self::Equals { claim, .. } | Self::OneOf { claim, .. } => claim,
        }
    }

    fn holds(&self, claims: &Map<String, Value>) -> bool {
        match self {
            Self::Equals { claim, value } => claims.get(claim) == Some(value),
            Self::OneOf { claim, allowed } => claims
                .get(claim)
                .and_then(Value::as_str)
                .is_some_and(|v| allowed.iter().any(|a| a == v)),
        }
    }
}

/// The acceptance policy. Secure by default: `iss` must equal the issuer
/// exactly, `aud` must contain the audience (the MCP server's own resource
/// URL, RFC 8707), `exp` and `sub` are required, `nbf` and `iat` are checked,
/// with 60 s leeway and an 8 KiB size cap.
#[derive(Debug, Clone)]
pub struct Policy {
    issuer: String,
    audience: String,
    leeway: Duration,
    require_at_jwt: bool,
    required_scopes: Vec<String>,
    rules: Vec<ClaimRule>,
    max_token_len: usize,
}

impl Policy {
    /// A policy accepting tokens from `issuer` for `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            require_at_jwt: false,
            required_scopes: Vec::new(),
            rules: Vec::new(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// Clock-skew allowance (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the RFC 9068 access-token type (`typ: at+jwt`).
    pub fn require_access_token_type(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// Scopes every token must carry (from `scope` or `scp`).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Adds a claim rule.
    pub fn rule(mut self, rule: ClaimRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Maximum token length in bytes (default 8 KiB).
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_token_len = max;
        self
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub(crate) fn max_len(&self) -> usize {
        self.max_token_len
    }

    pub(crate) fn requires_at_jwt(&self) -> bool {
        self.require_at_jwt
    }

    pub(crate) fn check_claims(
        &self,
        claims: Map<String, Value>,
        alg: Algorithm,
        kid: Option<String>,
        now: SystemTime,
    ) -> Result<VerifiedToken, ValidationError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let leeway = self.leeway.as_secs_f64();

        let exp = numeric_date(&claims, "exp")?.ok_or(ValidationError::MissingClaim("exp"))?;
        if now >= exp + leeway {
            return Err(ValidationError::Expired);
        }
        if numeric_date(&claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
            return Err(ValidationError::NotYetValid);
        }
        if numeric_date(&claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(ValidationError::IssuedInFuture);
        }
        match claims.get("iss") {
            None => return Err(ValidationError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(ValidationError::IssuerMismatch),
            Some(_) => return Err(ValidationError::InvalidClaimType("iss")),
        }
        let audiences =
            string_or_array(&claims, "aud")?.ok_or(ValidationError::MissingClaim("aud"))?;
        if !audiences.contains(&self.audience) {
            return Err(ValidationError::AudienceMismatch);
        }
        let subject = match claims.get("sub") {
            None => return Err(ValidationError::MissingClaim("sub")),
            Some(Value::String(sub)) => sub.clone(),
            Some(_) => return Err(ValidationError::InvalidClaimType("sub")),
        };
        let scopes = scopes(&claims)?;
        let missing: Vec<String> = self
            .required_scopes
            .iter()
            .filter(|s| !scopes.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(ValidationError::InsufficientScope { missing });
        }
        if let Some(rule) = self.rules.iter().find(|r| !r.holds(&claims)) {
            return Err(ValidationError::ClaimRule {
                claim: rule.claim().to_owned(),
            });
        }
        let client_id = ["client_id", "azp"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(VerifiedToken {
            subject,
            issuer: self.issuer.clone(),
            audiences,
            scopes,
            client_id,
            expires_at: exp as u64,
            algorithm: alg,
            key_id: kid,
            claims,
        })
    }
}

fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Some)
            .ok_or(ValidationError::InvalidClaimType(name)),
        Some(_) => Err(ValidationError::InvalidClaimType(name)),
    }
}

fn string_or_array(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<Vec<String>>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(ValidationError::InvalidClaimType(name))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ValidationError::InvalidClaimType(name)),
    }
}

fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, ValidationError> {
    let mut out = Vec::new();
    match claims.get("scope") {
        None => {}
        Some(Value::String(s)) => {
            out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
        }
        Some(_) => return Err(ValidationError::InvalidClaimType("scope")),
    }
    match claims.get("scp") {
        None => {}
        Some(Value::String(s)) => {
            out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
        }
        Some(Value::Array(items)) => {
            for item in items {
                out.push(
                    item.as_str()
                        .ok_or(ValidationError::InvalidClaimType("scp"))?
                        .to_owned(),
                );
            }
        }
        Some(_) => return Err(ValidationError::InvalidClaimType("scp")),
    }
    out.dedup();
    Ok(out)
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    subject: String,
    issuer: String,
    audiences: Vec<String>,
    scopes: Vec<String>,
    client_id: Option<String>,
    expires_at: u64,
    algorithm: Algorithm,
    key_id: Option<String>,
    claims: Map<String, Value>,
}

impl VerifiedToken {
    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// `iss` (equal to the configured issuer).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `aud`, as a list.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    /// Granted scopes (`scope` and `scp` merged).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    /// `client_id` (RFC 9068) or `azp`, if present.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
    /// `exp`, in whole seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
    /// The algorithm that signed the token.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The `kid` of the key that verified it.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
    /// All claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// Verifies a JWT against a key set and a policy, synchronously: the core
/// that [`crate::Validator`] runs after it has the keys.
pub fn verify_token(
    token: &str,
    keys: &KeySet,
    policy: &Policy,
    clock: &dyn Clock,
) -> Result<VerifiedToken, ValidationError> {
    let parsed = jws::parse(token, policy.max_len(), policy.requires_at_jwt())?;
    let key = keys.select(parsed.kid.as_deref(), parsed.alg)?;
    finish(&parsed, key, policy, clock)
}

pub(crate) fn finish(
    parsed: &jws::ParsedJws<'_>,
    key: &crate::keys::VerifyingKey,
    policy: &Policy,
    clock: &dyn Clock,
) -> Result<VerifiedToken, ValidationError> {
    let payload = parsed.verify(key)?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| ValidationError::Malformed("payload is not a JSON object"))?;
    policy.check_claims(claims, parsed.alg, parsed.kid.clone(), clock.now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(policy: &Policy, claims: Value, now: u64) -> Result<VerifiedToken, ValidationError> {
        let Value::Object(map) = claims else {
            unreachable!("claims are an object")
        };
        policy.check_claims(
            map,
            Algorithm::ES256,
            None,
            UNIX_EPOCH + Duration::from_secs(now),
        )
    }

    proptest! {
        /// Valid exactly while `now < exp + leeway`.
        #[test]
        fn exp_boundary(exp in 1_000u64..4_000_000_000, leeway in 0u64..600, offset in -1_000i64..1_000) {
            let now = (exp + leeway).saturating_add_signed(offset);
            let policy = Policy::new("i", "a").leeway(Duration::from_secs(leeway));
            let result = check(&policy, json!({"iss": "i", "aud": "a", "sub": "s", "exp": exp}), now);
            prop_assert_eq!(result.is_ok(), now < exp + leeway);
            if now >= exp + leeway {
                prop_assert_eq!(result.err(), Some(ValidationError::Expired));
            }
        }

        /// Valid exactly while `now + leeway >= nbf`.
        #[test]
        fn nbf_boundary(nbf in 1_000u64..4_000_000_000, leeway in 0u64..600, offset in -1_000i64..1_000) {
            let now = nbf.saturating_sub(leeway).saturating_add_signed(offset);
            let policy = Policy::new("i", "a").leeway(Duration::from_secs(leeway));
            let claims = json!({"iss": "i", "aud": "a", "sub": "s", "exp": u64::MAX / 2, "nbf": nbf});
            let result = check(&policy, claims, now);
            prop_assert_eq!(result.is_ok(), now + leeway >= nbf);
            if now + leeway < nbf {
                prop_assert_eq!(result.err(), Some(ValidationError::NotYetValid));
            }
        }

        /// Rejected exactly when `iat > now + leeway`.
        #[test]
        fn iat_boundary(iat in 1_000u64..4_000_000_000, leeway in 0u64..600, offset in -1_000i64..1_000) {
            let now = iat.saturating_sub(leeway).saturating_add_signed(offset);
            let policy = Policy::new("i", "a").leeway(Duration::from_secs(leeway));
            let claims = json!({"iss": "i", "aud": "a", "sub": "s", "exp": u64::MAX / 2, "iat": iat});
            let result = check(&policy, claims, now);
            prop_assert_eq!(result.is_ok(), iat <= now + leeway);
        }
    }

    #[test]
    fn zero_leeway_is_exact() {
        let policy = Policy::new("i", "a").leeway(Duration::ZERO);
        let claims = json!({"iss": "i", "aud": "a", "sub": "s", "exp": 1000});
        assert!(check(&policy, claims.clone(), 999).is_ok());
        assert_eq!(
            check(&policy, claims, 1000).err(),
            Some(ValidationError::Expired)
        );
    }
}
