//! Compact JWS parsing and signature verification. Everything about the
//! header is decided here, before any key is looked up.

use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::keys::{Algorithm, KeySet, VerifyingKey, b64};

const MAX_KID_LEN: usize = 256;

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub(crate) struct ParsedJws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
}

/// Header checks that do not need a key. `max_len` bounds the work done on
/// untrusted input; `require_at_jwt` enforces RFC 9068 `typ`.
pub(crate) fn parse(
    token: &str,
    max_len: usize,
    require_at_jwt: bool,
) -> Result<ParsedJws<'_>, ValidationError> {
    if token.len() > max_len {
        return Err(ValidationError::TooLarge {
            len: token.len(),
            max: max_len,
        });
    }
    if token.trim_start().starts_with('{') {
        return Err(ValidationError::JsonSerialization);
    }
    let dots = token.bytes().filter(|&b| b == b'.').count();
    match dots {
        2 => {}
        4 => return Err(ValidationError::Encrypted),
        _ => return Err(ValidationError::Malformed("a JWS has exactly three parts")),
    }
    let mut parts = token.splitn(3, '.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(ValidationError::Malformed("a JWS has exactly three parts"));
    };
    if header_b64.is_empty() {
        return Err(ValidationError::Malformed("empty header"));
    }
    let header_bytes =
        b64(header_b64).ok_or(ValidationError::Malformed("header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| ValidationError::Malformed("header is not a JSON object"))?;

    let alg = match header.get("alg") {
        Some(Value::String(name)) if name.eq_ignore_ascii_case("none") => {
            return Err(ValidationError::AlgNone);
        }
        Some(Value::String(name)) => {
            Algorithm::from_name(name).ok_or(ValidationError::UnsupportedAlgorithm)?
        }
        _ => return Err(ValidationError::Malformed("header has no alg string")),
    };
    if header.contains_key("enc") {
        return Err(ValidationError::Encrypted);
    }
    if header.contains_key("crit") {
        return Err(ValidationError::UnknownCriticalHeader);
    }
    if header.get("b64").is_some_and(|v| v != &Value::Bool(true)) {
        return Err(ValidationError::Malformed(
            "unencoded payloads (b64) are not accepted",
        ));
    }
    // jku, x5u, x5c and jwk are never fetched nor used: keys come only from
    // the configured key set, so an attacker's embedded key is simply ignored.
    if require_at_jwt {
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(ValidationError::WrongType);
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => Some(kid.clone()),
        Some(_) => return Err(ValidationError::Malformed("kid is not a short string")),
    };
    // Checked after the header so that `alg: none` is reported as such. An
    // empty payload is a valid JWS (and fails later as JWT claims).
    if signature_b64.is_empty() {
        return Err(ValidationError::Malformed("empty signature"));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(ParsedJws {
        alg,
        kid,
        signing_input,
        payload_b64,
        signature_b64,
    })
}

impl ParsedJws<'_> {
    /// Verifies the signature with `key` (whose algorithm must match) and
    /// returns the decoded payload.
    pub(crate) fn verify(&self, key: &VerifyingKey) -> Result<Vec<u8>, ValidationError> {
        if key.algorithm() != self.alg {
            return Err(ValidationError::AlgorithmMismatch);
        }
        // Strict base64url first: jsonwebtoken's decoder is not the judge of
        // what counts as the signature.
        if b64(self.signature_b64).is_none() {
            return Err(ValidationError::InvalidSignature);
        }
        let ok = jsonwebtoken::crypto::verify(
            self.signature_b64,
            self.signing_input.as_bytes(),
            key.decoding_key(),
            self.alg.to_jwt(),
        )
        .unwrap_or(false);
        if !ok {
            return Err(ValidationError::InvalidSignature);
        }
        b64(self.payload_b64).ok_or(ValidationError::Malformed("payload is not base64url"))
    }
}

/// Verifies a compact JWS against `keys` (no claim checks: use
/// [`crate::verify_token`] for JWTs) and returns its payload.
pub fn verify_compact(
    token: &str,
    keys: &KeySet,
    max_len: usize,
) -> Result<Vec<u8>, ValidationError> {
    let parsed = parse(token, max_len, false)?;
    let key = keys.select(parsed.kid.as_deref(), parsed.alg)?;
    parsed.verify(key)
}
