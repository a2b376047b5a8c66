//! Public keys from PEM (SubjectPublicKeyInfo, RFC 5280; or PKCS#1 RSA) and
//! key files, for servers whose keys are configured rather than discovered.
//!
//! Each key is turned into the JWK it is equivalent to and imported through
//! the same path as a JWKS, so the same rules hold (RSA size, exponent and
//! ROCA checks, one algorithm per key).

use std::io::Read;
use std::path::Path;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use serde_json::{Map, Value, json};

use crate::error::KeySetError;
use crate::keys::{DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_KEYS, KeySet};

const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2B, 0x65, 0x70];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const NULL: u8 = 0x05;

fn malformed(what: &'static str) -> KeySetError {
    KeySetError::Malformed(what)
}

/// One DER TLV: tag, contents, and the bytes after it. Definite lengths
/// only, minimal long-form lengths, at most 4 length bytes.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), KeySetError> {
    let bad = || malformed("the DER encoding is invalid");
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(bad());
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The contents of a TLV with `tag`, and what follows.
fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeySetError> {
    let (found, contents, rest) = tlv(input)?;
    if found != tag {
        return Err(malformed("unexpected DER structure"));
    }
    Ok((contents, rest))
}

/// The contents of exactly one TLV with `tag`, nothing after it.
fn only(input: &[u8], tag: u8) -> Result<&[u8], KeySetError> {
    let (contents, rest) = expect(input, tag)?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the DER structure"));
    }
    Ok(contents)
}

/// A positive INTEGER's magnitude (leading zero stripped).
fn unsigned(contents: &[u8]) -> Result<&[u8], KeySetError> {
    match contents {
        [] => Err(malformed("empty DER integer")),
        [first, ..] if first & 0x80 != 0 => Err(malformed("negative DER integer")),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        other => Ok(other),
    }
}

/// The JWK of a PKCS#1 `RSAPublicKey` (SEQUENCE { n, e }).
fn rsa_jwk(der: &[u8]) -> Result<Map<String, Value>, KeySetError> {
    let body = only(der, SEQUENCE)?;
    let (n, rest) = expect(body, INTEGER)?;
    let e = only(rest, INTEGER)?;
    let jwk = json!({
        "kty": "RSA",
        "n": BASE64URL_NOPAD.encode(unsigned(n)?),
        "e": BASE64URL_NOPAD.encode(unsigned(e)?),
    });
    Ok(into_map(jwk))
}

/// The JWK of a SubjectPublicKeyInfo.
fn spki_jwk(der: &[u8]) -> Result<Map<String, Value>, KeySetError> {
    let body = only(der, SEQUENCE)?;
    let (algorithm, rest) = expect(body, SEQUENCE)?;
    let bits = only(rest, BIT_STRING)?;
    let key = match bits {
        [0, key @ ..] => key,
        _ => return Err(malformed("the public key bit string has unused bits")),
    };
    let (oid, params) = expect(algorithm, OID)?;
    if oid == RSA_ENCRYPTION {
        if !(params.is_empty() || only(params, NULL).is_ok_and(<[u8]>::is_empty)) {
            return Err(malformed("RSA key parameters must be NULL"));
        }
        rsa_jwk(key)
    } else if oid == EC_PUBLIC_KEY {
        let curve = only(params, OID)?;
        let (name, len) = if curve == P256 {
            ("P-256", 32)
        } else if curve == P384 {
            ("P-384", 48)
        } else {
            return Err(KeySetError::InvalidKey("unsupported curve"));
        };
        match key {
            [4, point @ ..] if point.len() == 2 * len => Ok(into_map(json!({
                "kty": "EC",
                "crv": name,
                "x": BASE64URL_NOPAD.encode(&point[..len]),
                "y": BASE64URL_NOPAD.encode(&point[len..]),
            }))),
            _ => Err(KeySetError::InvalidKey(
                "the EC point is not uncompressed or has the wrong length",
            )),
        }
    } else if oid == ED25519 {
        if !params.is_empty() {
            return Err(malformed("Ed25519 keys take no parameters"));
        }
        if key.len() != 32 {
            return Err(KeySetError::InvalidKey("Ed25519 key has the wrong length"));
        }
        Ok(into_map(json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": BASE64URL_NOPAD.encode(key),
        })))
    } else {
        Err(KeySetError::InvalidKey("unsupported key type"))
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The labelled blocks of a PEM text, decoded.
fn blocks(pem: &str) -> Result<Vec<(&str, Vec<u8>)>, KeySetError> {
    let mut found = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let label = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| malformed("text outside a PEM block"))?;
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            let line = lines
                .next()
                .ok_or_else(|| malformed("a PEM block is not closed"))?;
            if line == end {
                break;
            }
            if line.starts_with("-----") || line.contains(':') {
                return Err(malformed(
                    "unexpected line in a PEM block (encrypted or with headers)",
                ));
            }
            body.push_str(line);
        }
        let der = BASE64
            .decode(body.as_bytes())
            .map_err(|_| malformed("a PEM block is not base64"))?;
        found.push((label, der));
    }
    Ok(found)
}

impl KeySet {
    /// Public keys from PEM text: one or more `PUBLIC KEY` blocks
    /// (SubjectPublicKeyInfo: RSA, P-256, P-384 or Ed25519, as `openssl pkey
    /// -pubout` writes them) or `RSA PUBLIC KEY` blocks (PKCS#1).
    ///
    /// Each key is bound to one algorithm: RSA to RS256 (for PS256, publish
    /// a JWK with `"alg": "PS256"` and use [`KeySet::from_jwks`]), P-256 to
    /// ES256, P-384 to ES384, Ed25519 to EdDSA. `kid` names the key when
    /// there is exactly one: give the `kid` your issuer writes in token
    /// headers, since a token naming a `kid` is only checked against the key
    /// with that `kid`. The rules of [`KeySet::from_jwks`] hold, and a key
    /// they refuse is an error here ([`KeySetError::InvalidKey`]), since a
    /// configured key is never optional. Private keys and certificates are
    /// refused (`openssl x509 -pubkey -noout` extracts a certificate's
    /// key).
    pub fn from_pem(pem: &str, kid: Option<&str>) -> Result<Self, KeySetError> {
        if pem.len() > DEFAULT_MAX_JWKS_BYTES {
            return Err(KeySetError::TooLarge {
                len: pem.len(),
                max: DEFAULT_MAX_JWKS_BYTES,
            });
        }
        let blocks = blocks(pem)?;
        if blocks.is_empty() {
            return Err(KeySetError::Empty);
        }
        if blocks.len() > DEFAULT_MAX_KEYS {
            return Err(KeySetError::TooManyKeys {
                max: DEFAULT_MAX_KEYS,
            });
        }
        if kid.is_some() && blocks.len() > 1 {
            return Err(KeySetError::InvalidKey(
                "a kid names one key; give each key of several its own JWK instead",
            ));
        }
        let mut keys = Vec::new();
        for (label, der) in &blocks {
            let mut jwk = match *label {
                "PUBLIC KEY" => spki_jwk(der)?,
                "RSA PUBLIC KEY" => rsa_jwk(der)?,
                l if l.contains("PRIVATE KEY") => return Err(KeySetError::PrivateKeyMaterial),
                "CERTIFICATE" => {
                    return Err(KeySetError::InvalidKey(
                        "a certificate, not a public key (openssl x509 -pubkey -noout)",
                    ));
                }
                _ => return Err(malformed("not a PUBLIC KEY block")),
            };
            jwk.insert("use".into(), "sig".into());
            if let Some(kid) = kid {
                jwk.insert("kid".into(), kid.into());
            }
            keys.push(jwk);
        }
        let set = Self::import(&keys)?;
        match set.first_refusal() {
            Some(reason) => Err(KeySetError::InvalidKey(reason)),
            None if set.keys().is_empty() => Err(KeySetError::Empty),
            None => Ok(set),
        }
    }

    /// [`KeySet::from_pem`] over a file's contents (at most 256 KiB).
    pub fn from_pem_file(path: impl AsRef<Path>, kid: Option<&str>) -> Result<Self, KeySetError> {
        let bytes = read_capped(path.as_ref())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("the file is not text"))?;
        Self::from_pem(text, kid)
    }

    /// [`KeySet::from_jwks`] over a file's contents (at most 256 KiB): a
    /// JWKS document kept with the server's configuration, for issuers
    /// without discovery or servers that must not fetch.
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, KeySetError> {
        Self::from_jwks(&read_capped(path.as_ref())?)
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, KeySetError> {
    let file_error = |e: std::io::Error| KeySetError::File {
        path: path.to_owned(),
        kind: e.kind(),
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut bytes = Vec::new();
    file.take(DEFAULT_MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    if bytes.len() > DEFAULT_MAX_JWKS_BYTES {
        return Err(KeySetError::TooLarge {
            len: bytes.len(),
            max: DEFAULT_MAX_JWKS_BYTES,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_are_strict() {
        assert!(tlv(&[0x30]).is_err());
        assert!(tlv(&[0x30, 0x80]).is_err(), "indefinite length");
        assert!(
            tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err(),
            "non-minimal"
        );
        assert!(
            tlv(&[0x30, 0x85, 1, 0, 0, 0, 0]).is_err(),
            "too many length bytes"
        );
        assert!(tlv(&[0x30, 0x03, 0, 0]).is_err(), "short");
        assert_eq!(
            tlv(&[0x02, 0x01, 0x05, 0xFF]).unwrap(),
            (0x02, &[5u8][..], &[0xFFu8][..])
        );
    }

    #[test]
    fn integers_must_be_positive() {
        assert!(unsigned(&[0x80]).is_err());
        assert!(unsigned(&[]).is_err());
        assert_eq!(unsigned(&[0, 0x80]).unwrap(), &[0x80]);
    }

    #[test]
    fn private_keys_certificates_and_junk_are_refused() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            KeySet::from_pem(pem, None).unwrap_err(),
            KeySetError::PrivateKeyMaterial
        );
        let pem = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            KeySet::from_pem(pem, None).unwrap_err(),
            KeySetError::PrivateKeyMaterial
        );
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            KeySet::from_pem(pem, None),
            Err(KeySetError::InvalidKey(_))
        ));
        assert!(matches!(
            KeySet::from_pem("", None),
            Err(KeySetError::Empty)
        ));
        assert!(KeySet::from_pem("hello", None).is_err());
        let open = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
        assert!(matches!(
            KeySet::from_pem(open, None),
            Err(KeySetError::Malformed(_))
        ));
    }
}
