//! Signing keys for access tokens: ES256 with aws-lc-rs (the workspace's
//! one crypto backend), published as a JWKS.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use data_encoding::BASE64URL_NOPAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ServerError;

/// An ES256 signing key. Its `kid` is its RFC 7638 thumbprint. `Debug`
/// shows the `kid` only.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random P-256 key.
    pub fn generate() -> Result<Self, ServerError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| ServerError::Key("key generation failed"))?;
        Self::from_pkcs8(document.as_ref())
    }

    /// A key from its PKCS#8 DER encoding (as [`SigningKey::to_pkcs8`]
    /// gives it, e.g. stored encrypted in mcp-auth-vault).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, ServerError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| ServerError::Key("not a P-256 PKCS#8 private key"))?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(ServerError::Key("unexpected public key encoding"));
        }
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        // RFC 7638: the required members, lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(&Sha256::digest(canonical.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y,
                         "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
            kid,
            jwk,
        })
    }

    /// The PKCS#8 DER encoding, to keep the key across restarts (store it
    /// encrypted). Wiped when dropped.
    pub fn to_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A compact JWS over `claims`, with `typ` in the header: one buffer,
    /// the claims serialized straight from their type.
    pub(crate) fn sign(
        &self,
        typ: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, ServerError> {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: "ES256",
            typ,
            kid: &self.kid,
        })
        .map_err(|_| ServerError::Key("signing failed"))?;
        let claims = serde_json::to_vec(claims).map_err(|_| ServerError::Key("signing failed"))?;
        let mut jws = String::with_capacity(
            B64.encode_len(header.len()) + B64.encode_len(claims.len()) + 2 + 86,
        );
        B64.encode_append(&header, &mut jws);
        jws.push('.');
        B64.encode_append(&claims, &mut jws);
        let signature = self
            .pair
            .sign(&SystemRandom::new(), jws.as_bytes())
            .map_err(|_| ServerError::Key("signing failed"))?;
        jws.push('.');
        B64.encode_append(signature.as_ref(), &mut jws);
        Ok(jws)
    }
}

/// The signing keys: the current one signs; the next one is already
/// published (so resource servers have it before it signs); retired ones
/// stay published until the tokens they signed have expired.
#[derive(Debug)]
pub struct KeyRing {
    pub(crate) current: SigningKey,
    pub(crate) next: Option<SigningKey>,
    pub(crate) previous: Vec<(SigningKey, u64)>,
    /// When the current key started signing (Unix seconds; 0: unknown).
    pub(crate) rotated_at: u64,
}

impl KeyRing {
    /// A ring signing with `current`, still publishing `previous` (kept
    /// until removed by a rotation one access-token lifetime later).
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Self {
        Self {
            current,
            next: None,
            previous: previous.into_iter().map(|k| (k, u64::MAX)).collect(),
            rotated_at: 0,
        }
    }

    /// A fresh ring: a current key and a published next key.
    pub fn generate() -> Result<Self, ServerError> {
        Ok(Self {
            current: SigningKey::generate()?,
            next: Some(SigningKey::generate()?),
            previous: Vec::new(),
            rotated_at: 0,
        })
    }

    /// The key ids, current first, then next, then the retired ones: two
    /// rings with the same ids are the same ring.
    pub(crate) fn kids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.next)
            .chain(self.previous.iter().map(|(k, _)| k))
            .map(SigningKey::kid)
            .collect()
    }

    /// The key that signs.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The JWKS document: every key's public half.
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = std::iter::once(&self.current)
            .chain(&self.next)
            .chain(self.previous.iter().map(|(k, _)| k))
            .map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Rotates at `now`: the published next key starts signing, a new next
    /// key is published, the old current key is kept until `retire_at`
    /// (now + the access-token lifetime), and keys past their retirement
    /// are dropped.
    pub fn rotate(&mut self, now: u64, retire_at: u64) -> Result<(), ServerError> {
        let promoted = match self.next.take() {
            Some(next) => next,
            None => SigningKey::generate()?,
        };
        let old = std::mem::replace(&mut self.current, promoted);
        self.previous.retain(|(_, until)| *until > now);
        self.previous.push((old, retire_at));
        self.next = Some(SigningKey::generate()?);
        self.rotated_at = now;
        Ok(())
    }

    /// The ring as bytes to keep (store them encrypted): every private key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let key = |k: &SigningKey| data_encoding::BASE64.encode(&k.to_pkcs8());
        let doc = json!({
            "current": key(&self.current),
            "next": self.next.as_ref().map(key),
            "previous": self.previous.iter().map(|(k, until)| json!([key(k), until])).collect::<Vec<_>>(),
            "rotated_at": self.rotated_at,
        });
        Zeroizing::new(doc.to_string().into_bytes())
    }

    /// A ring from [`KeyRing::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ServerError> {
        let bad = || ServerError::Key("the stored key ring is not readable");
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| bad())?;
        let key = |v: &Value| -> Result<SigningKey, ServerError> {
            let der = Zeroizing::new(
                data_encoding::BASE64
                    .decode(v.as_str().ok_or_else(bad)?.as_bytes())
                    .map_err(|_| bad())?,
            );
            SigningKey::from_pkcs8(&der)
        };
        let mut previous = Vec::new();
        for entry in doc["previous"].as_array().ok_or_else(bad)? {
            previous.push((key(&entry[0])?, entry[1].as_u64().ok_or_else(bad)?));
        }
        Ok(Self {
            current: key(&doc["current"])?,
            next: match &doc["next"] {
                Value::Null => None,
                v => Some(key(v)?),
            },
            previous,
            rotated_at: doc["rotated_at"].as_u64().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_publishes_before_signing_and_retires_after_the_tokens_expire() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.current().kid().to_owned();
        let next = ring.next.as_ref().unwrap().kid().to_owned();
        let published = |ring: &KeyRing| -> Vec<String> {
            ring.jwks()["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(published(&ring), [first.clone(), next.clone()]);
        ring.rotate(1_000, 4_600).unwrap();
        assert_eq!(ring.current().kid(), next, "the published key signs now");
        assert!(
            published(&ring).contains(&first),
            "the old key stays published"
        );
        assert_eq!(published(&ring).len(), 3);
        ring.rotate(5_000, 8_600).unwrap();
        assert!(
            !published(&ring).contains(&first),
            "retired after its tokens expired"
        );
        // The ring survives a round trip through storage.
        let again = KeyRing::from_bytes(&ring.to_bytes()).unwrap();
        assert_eq!(published(&again), published(&ring));
        assert!(KeyRing::from_bytes(b"{}").is_err());
        assert!(!format!("{ring:?}").contains("pkcs8"));
    }
}
