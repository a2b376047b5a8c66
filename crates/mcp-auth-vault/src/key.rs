//! Keys: where the vault's master key comes from, and the keys derived from it.
//!
//! ```text
//! raw 256-bit key ───────────────────────────────┐
//! passphrase ──Argon2id / PBKDF2-HMAC-SHA256──────┴─> master key (32 bytes, once per unlock)
//!     master key ──HKDF-SHA256(info = "…key-id")───────────> key id (8 bytes, public)
//!     master key ──HKDF-SHA256(info = "…user" ‖ user id)───> per-user AES-256-GCM key
//! ```

use std::fmt;
use std::path::Path;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{KdfProblem, KeyProblem, VaultError};
pub use crate::key_id::KeyId;
use crate::os::fill_random;

/// Length of salts the vault generates for passphrase KDFs.
pub const SALT_LEN: usize = 16;

use crate::kdf_limits::{
    ARGON2ID_MAX_M_KIB, ARGON2ID_MAX_P, ARGON2ID_MAX_T, PBKDF2_MAX_ITERATIONS,
};
pub use crate::kdf_limits::{ARGON2ID_MIN_M_KIB, ARGON2ID_MIN_T, PBKDF2_MIN_ITERATIONS};
/// A key file holds 32 raw bytes or their base64: anything longer than this
/// is not a key file, and is not read into memory.
const MAX_KEY_FILE_BYTES: u64 = 4096;

const INFO_KEY_ID: &[u8] = b"mcp-auth-vault v1 key-id";
const INFO_USER_KEY: &[u8] = b"mcp-auth-vault v1 user-key ";
const INFO_NAMES: &[u8] = b"mcp-auth-vault v2 names";
const INFO_NAMES_WRAP: &[u8] = b"mcp-auth-vault v2 names-wrap";

/// How a master key was derived. Stored (authenticated) in every record header
/// and in the key manifest, so a passphrase vault can be unlocked again.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum KdfParams {
    /// The master key is a raw 256-bit key; no KDF.
    Raw,
    /// Argon2id (RFC 9106), version 0x13.
    Argon2id {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
        /// Random salt.
        salt: [u8; SALT_LEN],
    },
    /// PBKDF2-HMAC-SHA256, for compatibility with deployments that need it.
    Pbkdf2Sha256 {
        /// Iterations.
        iterations: u32,
        /// Random salt.
        salt: [u8; SALT_LEN],
    },
}

/// Which KDF a new passphrase key uses. The default is Argon2id with
/// m = 19 MiB, t = 2, p = 1.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum PassphraseKdf {
    /// Argon2id with the given costs (each at least the documented minimum).
    Argon2id {
        /// Memory in KiB (at least [`ARGON2ID_MIN_M_KIB`]).
        m_kib: u32,
        /// Passes (at least [`ARGON2ID_MIN_T`]).
        t: u32,
        /// Lanes (at least 1).
        p: u32,
    },
    /// PBKDF2-HMAC-SHA256 (at least [`PBKDF2_MIN_ITERATIONS`]).
    Pbkdf2Sha256 {
        /// Iterations.
        iterations: u32,
    },
}

impl Default for PassphraseKdf {
    fn default() -> Self {
        Self::Argon2id {
            m_kib: ARGON2ID_MIN_M_KIB,
            t: ARGON2ID_MIN_T,
            p: 1,
        }
    }
}

impl PassphraseKdf {
    /// Fresh parameters with a new random salt. Fails if the costs are below
    /// the minimums.
    pub fn with_fresh_salt(self) -> Result<KdfParams, VaultError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let params = match self {
            Self::Argon2id { m_kib, t, p } => KdfParams::Argon2id { m_kib, t, p, salt },
            Self::Pbkdf2Sha256 { iterations } => KdfParams::Pbkdf2Sha256 { iterations, salt },
        };
        params.check()?;
        Ok(params)
    }
}

impl KdfParams {
    /// Rejects parameters below the minimums (a planted manifest or record
    /// header must not be able to weaken the KDF) or absurdly expensive ones
    /// (which would let a planted file exhaust memory or time).
    pub(crate) fn check(&self) -> Result<(), VaultError> {
        match *self {
            Self::Raw => Ok(()),
            Self::Argon2id { m_kib, t, p, .. } => {
                if m_kib < ARGON2ID_MIN_M_KIB || t < ARGON2ID_MIN_T || p < 1 {
                    return Err(VaultError::WeakKdf(KdfProblem::Argon2idTooWeak {
                        m_kib,
                        t,
                        p,
                    }));
                }
                if m_kib > ARGON2ID_MAX_M_KIB || t > ARGON2ID_MAX_T || p > ARGON2ID_MAX_P {
                    return Err(VaultError::WeakKdf(KdfProblem::Argon2idTooCostly {
                        m_kib,
                        t,
                        p,
                    }));
                }
                Ok(())
            }
            Self::Pbkdf2Sha256 { iterations, .. } => {
                if iterations < PBKDF2_MIN_ITERATIONS {
                    return Err(VaultError::WeakKdf(KdfProblem::Pbkdf2TooWeak {
                        iterations,
                    }));
                }
                if iterations > PBKDF2_MAX_ITERATIONS {
                    return Err(VaultError::WeakKdf(KdfProblem::Pbkdf2TooCostly {
                        iterations,
                    }));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn is_raw(&self) -> bool {
        matches!(self, Self::Raw)
    }
}

enum Material {
    Raw(Zeroizing<[u8; 32]>),
    Passphrase(SecretString),
}

/// Secret input from which the vault's master key is made: a raw 256-bit key
/// or a passphrase. `Debug` prints `[REDACTED]`; the bytes are zeroized on drop.
pub struct KeyMaterial(Material);

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Material::Raw(_) => write!(f, "KeyMaterial::Raw({})", mcp_auth_core::REDACTED),
            Material::Passphrase(_) => {
                write!(f, "KeyMaterial::Passphrase({})", mcp_auth_core::REDACTED)
            }
        }
    }
}

impl KeyMaterial {
    /// A raw 256-bit key.
    pub fn raw(key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        Self(Material::Raw(key))
    }

    /// A fresh random 256-bit key.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(key.as_mut())?;
        Ok(Self(Material::Raw(key)))
    }

    /// A raw key encoded as base64 (standard or URL-safe alphabet, padding
    /// optional), as produced by `openssl rand -base64 32`.
    pub fn from_base64(encoded: &str) -> Result<Self, VaultError> {
        let trimmed = encoded.trim();
        let decoded = Zeroizing::new(
            BASE64
                .decode(trimmed.as_bytes())
                .or_else(|_| BASE64URL_NOPAD.decode(trimmed.trim_end_matches('=').as_bytes()))
                .map_err(|_| VaultError::InvalidKey(KeyProblem::NotBase64))?,
        );
        let key: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            VaultError::InvalidKey(KeyProblem::WrongLength {
                bytes: decoded.len(),
            })
        })?;
        Ok(Self::raw(key))
    }

    /// A raw base64 key read from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, VaultError> {
        let value = Zeroizing::new(std::env::var(var).map_err(|_| {
            VaultError::InvalidKey(KeyProblem::EnvNotSet {
                var: var.to_owned(),
            })
        })?);
        Self::from_base64(&value).map_err(|e| match e {
            VaultError::InvalidKey(problem) => VaultError::InvalidKey(KeyProblem::InEnvVar {
                var: var.to_owned(),
                problem: Box::new(problem),
            }),
            other => other,
        })
    }

    /// A raw key read from a file holding either 32 raw bytes or base64 text
    /// (at most 4 KiB).
    /// The file must not be readable by group or others.
    pub fn from_key_file(path: &Path) -> Result<Self, VaultError> {
        use std::io::Read;
        // The permissions are checked on the opened file, not by path: a
        // path checked and then opened could be swapped in between.
        let mut file =
            std::fs::File::open(path).map_err(|e| VaultError::io("open key file", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| VaultError::io("inspect key file", path, e))?;
        crate::os::check_private_metadata(&meta, path, 0o600)?;
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(VaultError::InvalidKey(KeyProblem::KeyFileTooLarge {
                path: path.to_owned(),
                max: MAX_KEY_FILE_BYTES,
            }));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.by_ref()
            .take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VaultError::io("read key file", path, e))?;
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Self::raw(raw));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            VaultError::InvalidKey(KeyProblem::NotAKeyFile {
                path: path.to_owned(),
            })
        })?;
        Self::from_base64(text)
    }

    /// A passphrase, stretched with Argon2id (default) or PBKDF2.
    pub fn passphrase(passphrase: SecretString) -> Self {
        Self(Material::Passphrase(passphrase))
    }

    /// The base64 encoding of a raw key, to store it somewhere safe after
    /// [`KeyMaterial::generate`]. `None` for a passphrase.
    pub fn export_base64(&self) -> Option<SecretString> {
        match &self.0 {
            Material::Raw(key) => Some(SecretString::from(BASE64.encode(key.as_ref()))),
            Material::Passphrase(_) => None,
        }
    }

    pub(crate) fn is_passphrase(&self) -> bool {
        matches!(self.0, Material::Passphrase(_))
    }

    /// Derives the master key. For a passphrase this runs the KDF once:
    /// slow by design (tens of milliseconds to seconds).
    pub(crate) fn derive(&self, params: &KdfParams) -> Result<MasterKey, VaultError> {
        params.check()?;
        let mut key = Zeroizing::new([0u8; 32]);
        match (&self.0, params) {
            (Material::Raw(raw), KdfParams::Raw) => key.copy_from_slice(raw.as_ref()),
            (Material::Passphrase(pass), KdfParams::Argon2id { m_kib, t, p, salt }) => {
                let argon_params = argon2::Params::new(*m_kib, *t, *p, Some(32))
                    .map_err(|_| VaultError::WeakKdf(KdfProblem::Argon2idRejected))?;
                argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    argon_params,
                )
                .hash_password_into(pass.expose_secret().as_bytes(), salt, key.as_mut())
                .map_err(|_| VaultError::WeakKdf(KdfProblem::Argon2idRejected))?;
            }
            (Material::Passphrase(pass), KdfParams::Pbkdf2Sha256 { iterations, salt }) => {
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    pass.expose_secret().as_bytes(),
                    salt,
                    *iterations,
                    key.as_mut(),
                );
            }
            (Material::Raw(_), _) => {
                return Err(VaultError::InvalidKey(KeyProblem::RawKeyForPassphrase));
            }
            (Material::Passphrase(_), KdfParams::Raw) => {
                return Err(VaultError::InvalidKey(KeyProblem::PassphraseForRawKey));
            }
        }
        Ok(MasterKey::new(key, params.clone()))
    }
}

/// An unlocked master key with its id and derivation parameters.
#[derive(Debug)]
pub(crate) struct MasterKey {
    pub(crate) id: KeyId,
    pub(crate) kdf: KdfParams,
    key: mcp_auth_core::Redacted<Zeroizing<[u8; 32]>>,
}

impl MasterKey {
    fn new(key: Zeroizing<[u8; 32]>, kdf: KdfParams) -> Self {
        let mut id = [0u8; 8];
        hkdf_expand(key.as_ref(), &[INFO_KEY_ID], &mut id);
        Self {
            id: KeyId(id),
            kdf,
            key: mcp_auth_core::Redacted(key),
        }
    }

    /// The AES-256-GCM key for one user. HKDF-SHA256 costs two HMACs, so it
    /// is recomputed per operation instead of cached.
    pub(crate) fn user_key(&self, storage_key: &str) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_expand(
            self.key.as_ref(),
            &[INFO_USER_KEY, storage_key.as_bytes()],
            out.as_mut(),
        );
        out
    }
}

impl MasterKey {
    /// The names key a vault gets when this key creates it (or upgrades a
    /// manifest written before names): derived, so that processes opening
    /// the same old vault at once agree on it. Kept (sealed) across later
    /// key rotations, so rotation renames nothing.
    pub(crate) fn initial_names_key(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_expand(self.key.as_ref(), &[INFO_NAMES], out.as_mut());
        out
    }

    /// The key that seals the names key in the manifest.
    pub(crate) fn names_wrap_key(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_expand(self.key.as_ref(), &[INFO_NAMES_WRAP], out.as_mut());
        out
    }
}

fn hkdf_expand(ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    // Output lengths here are 8 or 32 bytes, far below HKDF's 255 * 32 limit.
    if hk.expand_multi_info(info, out).is_err() {
        unreachable!("HKDF output length is within bounds");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_absurd_kdf_parameters_are_refused() {
        let weak = PassphraseKdf::Argon2id {
            m_kib: 1024,
            t: 2,
            p: 1,
        };
        assert!(matches!(
            weak.with_fresh_salt(),
            Err(VaultError::WeakKdf(_))
        ));
        let weak = PassphraseKdf::Pbkdf2Sha256 {
            iterations: 100_000,
        };
        assert!(matches!(
            weak.with_fresh_salt(),
            Err(VaultError::WeakKdf(_))
        ));
        let absurd = KdfParams::Argon2id {
            m_kib: u32::MAX,
            t: 2,
            p: 1,
            salt: [0; 16],
        };
        assert!(matches!(absurd.check(), Err(VaultError::WeakKdf(_))));
    }

    #[test]
    fn base64_keys_of_the_wrong_length_are_refused_without_echoing_them() {
        let err = KeyMaterial::from_base64("c2VjcmV0LXZhbHVl").expect_err("12 bytes");
        let msg = err.to_string();
        assert!(msg.contains("12 bytes"), "{msg}");
        assert!(!msg.contains("c2VjcmV0LXZhbHVl"), "{msg}");
        assert!(matches!(
            KeyMaterial::from_base64("not base64!!"),
            Err(VaultError::InvalidKey(_))
        ));
    }

    #[test]
    fn standard_and_url_safe_base64_give_the_same_key() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(251));
        let std_b64 = BASE64.encode(&bytes);
        let url_b64 = BASE64URL_NOPAD.encode(&bytes);
        assert_ne!(std_b64.trim_end_matches('='), url_b64);
        let a = KeyMaterial::from_base64(&std_b64)
            .and_then(|m| m.derive(&KdfParams::Raw))
            .expect("std");
        let b = KeyMaterial::from_base64(&url_b64)
            .and_then(|m| m.derive(&KdfParams::Raw))
            .expect("url");
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn material_and_params_must_agree() {
        let raw = KeyMaterial::raw([7; 32]);
        let pass = KeyMaterial::passphrase(SecretString::from("pw"));
        let argon = PassphraseKdf::default().with_fresh_salt().expect("params");
        assert!(matches!(raw.derive(&argon), Err(VaultError::InvalidKey(_))));
        assert!(matches!(
            pass.derive(&KdfParams::Raw),
            Err(VaultError::InvalidKey(_))
        ));
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let raw = KeyMaterial::raw([0x41; 32]);
        let pass = KeyMaterial::passphrase(SecretString::from("hunter2-passphrase"));
        let master = raw.derive(&KdfParams::Raw).expect("derive");
        let all = format!("{raw:?} {pass:?} {master:?}");
        assert!(all.contains("[REDACTED]"));
        assert!(!all.contains("hunter2"));
        assert!(!all.contains("AAAA"), "{all}");
        assert!(!all.contains("65, 65"), "{all}");
    }

    #[test]
    fn user_keys_differ_per_user_and_per_master_key() {
        let a = KeyMaterial::raw([1; 32])
            .derive(&KdfParams::Raw)
            .expect("a");
        let b = KeyMaterial::raw([2; 32])
            .derive(&KdfParams::Raw)
            .expect("b");
        assert_ne!(*a.user_key("ALICE"), *a.user_key("BOB"));
        assert_ne!(*a.user_key("ALICE"), *b.user_key("ALICE"));
        assert_ne!(a.id, b.id);
    }

    /// RFC 9106 section 5.3 (Argon2id test vector): P = 32 × 0x01,
    /// S = 16 × 0x02, K = 8 × 0x03, X = 12 × 0x04, t = 3, m = 32 KiB, p = 4,
    /// version 0x13, tag length 32.
    #[test]
    fn rfc9106_argon2id_vector() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(argon2::AssociatedData::new(&[0x04; 12]).expect("ad"))
            .build()
            .expect("params");
        let ctx = argon2::Argon2::new_with_secret(
            &[0x03; 8],
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .expect("ctx");
        let mut tag = [0u8; 32];
        ctx.hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag)
            .expect("hash");
        assert_eq!(
            data_encoding::HEXLOWER.encode(&tag),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    /// The vault's own derivation: same passphrase and parameters give the
    /// same key id; a different salt gives a different key.
    #[test]
    fn passphrase_derivation_is_deterministic_per_salt() {
        let pass = KeyMaterial::passphrase(SecretString::from("pw"));
        let a = PassphraseKdf::default().with_fresh_salt().expect("a");
        let b = PassphraseKdf::default().with_fresh_salt().expect("b");
        assert_ne!(a, b, "fresh salts differ");
        let ka1 = pass.derive(&a).expect("derive");
        let ka2 = pass.derive(&a).expect("derive");
        let kb = pass.derive(&b).expect("derive");
        assert_eq!(ka1.id, ka2.id);
        assert_ne!(ka1.id, kb.id);
    }
}
