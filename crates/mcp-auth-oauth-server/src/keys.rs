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

    /// A compact JWS over `claims`, with `typ` in the header.
    pub(crate) fn sign(&self, typ: &str, claims: &Value) -> Result<String, ServerError> {
        let header = json!({"alg": "ES256", "typ": typ, "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string().as_bytes()),
            B64.encode(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| ServerError::Key("signing failed"))?;
        Ok(format!("{input}.{}", B64.encode(signature.as_ref())))
    }
}

/// The signing key and the keys it replaced, all published until their
/// tokens have expired.
#[derive(Debug)]
pub struct KeyRing {
    pub(crate) current: SigningKey,
    pub(crate) previous: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring signing with `current`, still publishing `previous`.
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Self {
        Self { current, previous }
    }

    /// The JWKS document: every key's public half.
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }
}
