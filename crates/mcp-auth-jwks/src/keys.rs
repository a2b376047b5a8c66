//! Key import: every key is bound to exactly one algorithm at import, and
//! everything doubtful is refused here rather than at verification time.

use std::collections::HashSet;
use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{KeySetError, ValidationError};

/// Default cap on a JWKS document's size.
pub const DEFAULT_MAX_JWKS_BYTES: usize = 256 * 1024;
/// Default cap on the number of keys in a set.
pub const DEFAULT_MAX_KEYS: usize = 64;
const MAX_KID_LEN: usize = 256;
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// A signature algorithm this crate verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC SHA-256 (only with a configured shared secret).
    HS256,
    /// HMAC SHA-384 (only with a configured shared secret).
    HS384,
    /// HMAC SHA-512 (only with a configured shared secret).
    HS512,
}

impl Algorithm {
    /// Parses a JOSE `alg` name (exact case, as RFC 7518 spells them).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" | "Ed25519" => Self::EdDSA,
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// Whether this is an HMAC algorithm.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
            Self::HS256 => A::HS256,
            Self::HS384 => A::HS384,
            Self::HS512 => A::HS512,
        }
    }

    fn hmac_min_key_len(self) -> usize {
        match self {
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 32,
        }
    }
}

/// One verification key, bound to one algorithm. The `DecodingKey` is built
/// once, at import.
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field(
                "key",
                &if self.alg.is_symmetric() {
                    mcp_auth_core::REDACTED
                } else {
                    "[public key]"
                },
            )
            .finish()
    }
}

impl VerifyingKey {
    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// A key that was present in a set but refused, remembered so that a token
/// naming it gets a precise error (and triggers no refetch).
#[derive(Debug, Clone)]
struct RefusedKey {
    kid: Option<String>,
    reason: &'static str,
}

/// An immutable set of verification keys: either asymmetric keys (from a
/// JWKS document or configuration) or HMAC secrets, never both.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    refused: Vec<RefusedKey>,
    symmetric: bool,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`) of public keys.
    ///
    /// The whole set is rejected if it is malformed, too large, has duplicate
    /// `kid`s, carries private key material, or contains symmetric keys.
    /// Individual keys that are not for signature verification (`use` other
    /// than `sig`, `key_ops` without `verify`), use an unsupported type or
    /// curve, are weaker than 2048-bit RSA, have an exponent other than an
    /// odd number ≥ 3, match the ROCA fingerprint, or whose `alg` contradicts
    /// their type are refused one by one.
    pub fn from_jwks(json: &[u8]) -> Result<Self, KeySetError> {
        let set = Self::import(&parse_key_array(json)?)?;
        if set.keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(set)
    }

    /// Imports public JWKs one by one (refused keys remembered, the set
    /// possibly empty).
    pub(crate) fn import(keys: &[Map<String, Value>]) -> Result<Self, KeySetError> {
        let mut set = Self {
            keys: Vec::new(),
            refused: Vec::new(),
            symmetric: false,
        };
        let mut kids = HashSet::new();
        for jwk in keys {
            check_common(jwk, &mut kids)?;
            if str_member(jwk, "kty") == Some("oct") {
                return Err(KeySetError::MixedKeySet);
            }
            let kid = str_member(jwk, "kid").map(str::to_owned);
            match import_public(jwk) {
                Ok((alg, key)) => set.keys.push(VerifyingKey { kid, alg, key }),
                Err(reason) => {
                    tracing::debug!(kid = ?kid, reason, "JWKS key refused");
                    set.refused.push(RefusedKey { kid, reason });
                }
            }
        }
        Ok(set)
    }

    /// Why the first refused key was refused, if any was.
    pub(crate) fn first_refusal(&self) -> Option<&'static str> {
        self.refused.first().map(|r| r.reason)
    }

    /// Parses a single public JWK.
    pub fn from_jwk(json: &[u8]) -> Result<Self, KeySetError> {
        let value: Value =
            serde_json::from_slice(json).map_err(|_| KeySetError::Malformed("not JSON"))?;
        let doc = serde_json::json!({ "keys": [value] });
        Self::from_jwks(doc.to_string().as_bytes())
    }

    /// A symmetric key set with one HMAC secret. The secret must be at least
    /// as long as the hash output (32, 48 or 64 bytes).
    pub fn hmac(secret: &[u8], alg: Algorithm, kid: Option<&str>) -> Result<Self, KeySetError> {
        if !alg.is_symmetric() {
            return Err(KeySetError::InvalidKey("not an HMAC algorithm"));
        }
        if secret.len() < alg.hmac_min_key_len() {
            return Err(KeySetError::InvalidKey(
                "HMAC secret shorter than the hash output",
            ));
        }
        Ok(Self {
            keys: vec![VerifyingKey {
                kid: kid.map(str::to_owned),
                alg,
                key: DecodingKey::from_secret(secret),
            }],
            refused: Vec::new(),
            symmetric: true,
        })
    }

    /// Parses a JWKS of symmetric (`oct`) keys with an HMAC `alg` each. Any
    /// asymmetric key in it rejects the set.
    pub fn from_hmac_jwks(json: &[u8]) -> Result<Self, KeySetError> {
        let keys = parse_key_array(json)?;
        let mut set = Self {
            keys: Vec::new(),
            refused: Vec::new(),
            symmetric: true,
        };
        let mut kids = HashSet::new();
        for jwk in &keys {
            check_common(jwk, &mut kids)?;
            if str_member(jwk, "kty") != Some("oct") {
                return Err(KeySetError::MixedKeySet);
            }
            let kid = str_member(jwk, "kid").map(str::to_owned);
            if let Some(reason) = usage_refusal(jwk) {
                set.refused.push(RefusedKey { kid, reason });
                continue;
            }
            let Some(alg) = str_member(jwk, "alg")
                .and_then(Algorithm::from_name)
                .filter(|a| a.is_symmetric())
            else {
                set.refused.push(RefusedKey {
                    kid,
                    reason: "oct key without an HMAC alg",
                });
                continue;
            };
            let secret = Zeroizing::new(
                str_member(jwk, "k")
                    .and_then(b64)
                    .ok_or(KeySetError::Malformed("oct key without a valid k"))?,
            );
            if secret.len() < alg.hmac_min_key_len() {
                set.refused.push(RefusedKey {
                    kid,
                    reason: "HMAC secret shorter than the hash output",
                });
                continue;
            }
            set.keys.push(VerifyingKey {
                kid,
                alg,
                key: DecodingKey::from_secret(&secret),
            });
        }
        if set.keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(set)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Whether this is an HMAC key set.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Whether the set has a usable key with this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Selects the key for a token's `kid` and `alg`, enforcing that the
    /// header's algorithm is the one the key is bound to.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&VerifyingKey, ValidationError> {
        if alg.is_symmetric() != self.symmetric {
            // HS256 signed with an RSA public key, or RS256 against HMAC secrets.
            return Err(ValidationError::AlgorithmMismatch);
        }
        let key = match kid {
            Some(kid) => match self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(key) => key,
                None => {
                    return Err(
                        match self.refused.iter().find(|r| r.kid.as_deref() == Some(kid)) {
                            Some(refused) => ValidationError::KeyRefused(refused.reason),
                            None => ValidationError::UnknownKey,
                        },
                    );
                }
            },
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    (None, _) => return Err(ValidationError::UnknownKey),
                    (Some(_), Some(_)) => return Err(ValidationError::AmbiguousKey),
                }
            }
        };
        if key.alg != alg {
            return Err(ValidationError::AlgorithmMismatch);
        }
        Ok(key)
    }
}

fn parse_key_array(json: &[u8]) -> Result<Vec<Map<String, Value>>, KeySetError> {
    if json.len() > DEFAULT_MAX_JWKS_BYTES {
        return Err(KeySetError::TooLarge {
            len: json.len(),
            max: DEFAULT_MAX_JWKS_BYTES,
        });
    }
    let value: Value =
        serde_json::from_slice(json).map_err(|_| KeySetError::Malformed("not JSON"))?;
    let Value::Array(keys) = value
        .get("keys")
        .cloned()
        .ok_or(KeySetError::Malformed("no \"keys\" array"))?
    else {
        return Err(KeySetError::Malformed("\"keys\" is not an array"));
    };
    if keys.len() > DEFAULT_MAX_KEYS {
        return Err(KeySetError::TooManyKeys {
            max: DEFAULT_MAX_KEYS,
        });
    }
    keys.into_iter()
        .map(|k| match k {
            Value::Object(map) => Ok(map),
            _ => Err(KeySetError::Malformed("a key is not a JSON object")),
        })
        .collect()
}

const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

fn check_common(jwk: &Map<String, Value>, kids: &mut HashSet<String>) -> Result<(), KeySetError> {
    let kty = jwk.get("kty").and_then(Value::as_str);
    if kty.is_none() {
        return Err(KeySetError::Malformed("a key has no kty"));
    }
    if kty != Some("oct") && PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeySetError::PrivateKeyMaterial);
    }
    match jwk.get("kid") {
        None => {}
        Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN && !kids.insert(kid.clone()) => {
            return Err(KeySetError::DuplicateKid);
        }
        Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => {}
        Some(_) => return Err(KeySetError::Malformed("kid is not a short string")),
    }
    Ok(())
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

/// Strict base64url without padding (non-canonical trailing bits rejected).
pub(crate) fn b64(s: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD.decode(s.as_bytes()).ok()
}

fn usage_refusal(jwk: &Map<String, Value>) -> Option<&'static str> {
    if jwk
        .get("use")
        .is_some_and(|usage| usage.as_str() != Some("sig"))
    {
        return Some("key is not for signatures (use)");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verify {
            return Some("key_ops does not allow verify");
        }
    }
    None
}

fn import_public(jwk: &Map<String, Value>) -> Result<(Algorithm, DecodingKey), &'static str> {
    if let Some(reason) = usage_refusal(jwk) {
        return Err(reason);
    }
    let alg_member = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            Some(Algorithm::from_name(name).ok_or("unsupported or non-signature alg")?)
        }
        Some(_) => return Err("alg is not a string"),
    };
    match str_member(jwk, "kty") {
        Some("RSA") => {
            let alg = alg_member.unwrap_or(Algorithm::RS256);
            if !matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) {
                return Err("alg does not fit an RSA key");
            }
            let n = str_member(jwk, "n")
                .and_then(b64)
                .ok_or("RSA key without a valid n")?;
            let e = str_member(jwk, "e")
                .and_then(b64)
                .ok_or("RSA key without a valid e")?;
            check_rsa(&n, &e)?;
            Ok((alg, DecodingKey::from_rsa_raw_components(&n, &e)))
        }
        Some("EC") => {
            let (alg, len) = match str_member(jwk, "crv") {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                _ => return Err("unsupported curve"),
            };
            if alg_member.is_some_and(|a| a != alg) {
                return Err("alg does not fit the curve");
            }
            let x = str_member(jwk, "x").ok_or("EC key without x")?;
            let y = str_member(jwk, "y").ok_or("EC key without y")?;
            if b64(x).map(|v| v.len()) != Some(len) || b64(y).map(|v| v.len()) != Some(len) {
                return Err("EC coordinates have the wrong length");
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| "invalid EC key")?;
            Ok((alg, key))
        }
        Some("OKP") => {
            if str_member(jwk, "crv") != Some("Ed25519") {
                return Err("unsupported curve");
            }
            if alg_member.is_some_and(|a| a != Algorithm::EdDSA) {
                return Err("alg does not fit an Ed25519 key");
            }
            let x = str_member(jwk, "x").ok_or("OKP key without x")?;
            if b64(x).map(|v| v.len()) != Some(32) {
                return Err("Ed25519 key has the wrong length");
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| "invalid Ed25519 key")?;
            Ok((Algorithm::EdDSA, key))
        }
        _ => Err("unsupported key type"),
    }
}

fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), &'static str> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    // An empty (or all-zero) modulus has no bits; it must not underflow.
    let bits = (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
    if bits < MIN_RSA_BITS {
        return Err("RSA key shorter than 2048 bits");
    }
    if bits > MAX_RSA_BITS {
        return Err("RSA key longer than 8192 bits");
    }
    if e.len() > 4 {
        return Err("RSA exponent too large");
    }
    let exponent = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err("RSA exponent must be odd and at least 3");
    }
    if roca_fingerprint(n) {
        return Err("RSA key has the ROCA fingerprint (CVE-2017-15361)");
    }
    Ok(())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The ROCA test (Nemec et al., CCS 2017): moduli made by the vulnerable
/// Infineon library satisfy `n mod p ∈ ⟨65537⟩ (mod p)` for every small prime
/// below; a random modulus does so with negligible probability.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u32, |acc, &b| (acc * 256 + u32::from(b)) % p);
        let generator = 65_537 % p;
        let mut x = 1;
        loop {
            if x == residue {
                return true;
            }
            x = x * generator % p;
            if x == 1 {
                return false;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roca_test_is_not_triggered_by_ordinary_numbers() {
        // 2^2048 - 1 and a few arbitrary moduli-shaped byte strings.
        assert!(!roca_fingerprint(&[0xFF; 256]));
        assert!(!roca_fingerprint(&[0xC3; 256]));
        let counting: Vec<u8> = (0..=255u8).collect();
        assert!(!roca_fingerprint(&counting));
    }

    #[test]
    fn rsa_exponent_and_size_rules() {
        let n = [0xC5u8; 256];
        assert_eq!(check_rsa(&n, &[1, 0, 1]), Ok(()));
        assert!(check_rsa(&n, &[1]).is_err(), "e = 1");
        assert!(check_rsa(&n, &[4]).is_err(), "even e");
        assert!(check_rsa(&[0xC5; 128], &[1, 0, 1]).is_err(), "1024-bit");
        let mut padded = vec![0u8; 3];
        padded.extend_from_slice(&n);
        assert_eq!(
            check_rsa(&padded, &[0, 1, 0, 1]),
            Ok(()),
            "leading zeros ignored"
        );
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(Algorithm::from_name("RS256"), Some(Algorithm::RS256));
        assert_eq!(Algorithm::from_name("rs256"), None);
        assert_eq!(Algorithm::from_name("none"), None);
        for alg in [
            Algorithm::RS256,
            Algorithm::PS512,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::HS512,
        ] {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Found by the `jwks_keyset` fuzz target: an RSA key with an empty `n`.
    #[test]
    fn empty_rsa_modulus_is_a_typed_error() {
        let doc = br#"{"keys": [{"kty": "RSA", "use": "sig", "alm": "RS128", "n": "", "e": "AQAB", "kid": "RS256_1024"}]}"#;
        assert!(KeySet::from_jwks(doc).is_err());
        assert!(KeySet::from_hmac_jwks(doc).is_err());
    }
}
