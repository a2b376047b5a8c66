//! The on-disk formats, byte by byte (also described in `docs/vault.md`).
//!
//! All integers are big-endian. Parsing is strict and bounded: every length is
//! checked against a limit before anything is allocated, trailing bytes are an
//! error, and encoding a parsed value gives back the same bytes.
//!
//! ```text
//! user file   = "MAVF" | version u8 = 1 | count u16 (≤ 64) | record × count
//! record      = header | payload_len u32 (≤ 64 KiB + 16) | payload
//! header      = version u8 = 1 | cipher u8 (1 = AES-256-GCM, 0 = plaintext)
//!             | key_id [8] | kdf | nonce [12] | name_len u8 (1..=64) | name (UTF-8)
//! kdf         = 0 (raw key)
//!             | 1 | m_kib u32 | t u32 | p u32 | salt [16]      (Argon2id v0x13)
//!             | 2 | iterations u32 | salt [16]                 (PBKDF2-HMAC-SHA256)
//! AAD         = "mcp-auth-vault/v1 record\0" | header | user_len u16 | user id (UTF-8)
//! manifest    = "MAVK" | version u8 (1 or 2) | count u8 (1..=8) | (key_id [8] | kdf) × count
//!             | names                                           (version 2 only)
//! names       = nonce [12] | sealed [48]    (the 32-byte names key ‖ tag, AES-256-GCM
//!               under HKDF(current key, "names-wrap"), AAD = NAMES_AAD | current key_id)
//! ```
//!
//! A user file's name is the pseudonym of its user under the names key (see
//! `StorageName`); its first record, named `IDENTITY_RECORD`, holds the
//! user id sealed under a key derived from the names key, so the operator's
//! listing by user still works.

use crate::error::VaultError;
use crate::key::{KdfParams, KeyId, SALT_LEN};

const FILE_MAGIC: &[u8; 4] = b"MAVF";
const MANIFEST_MAGIC: &[u8; 4] = b"MAVK";
const FORMAT_VERSION: u8 = 1;
const AAD_DOMAIN: &[u8] = b"mcp-auth-vault/v1 record\0";
const MANIFEST_V2: u8 = 2;
/// The associated data of the sealed names key, before the current key id.
pub(crate) const NAMES_AAD: &[u8] = b"mcp-auth-vault/v2 names\0";
/// The provider name of the record that holds a file's user id. It starts
/// with a control character, which no provider name may contain, so it
/// can never be one.
pub const IDENTITY_RECORD: &str = "\u{1}user";

/// Largest stored value (a credential's serialized form), in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Most records (providers) one user can have.
pub const MAX_RECORDS: usize = 64;
/// Longest provider name, in bytes.
pub const MAX_PROVIDER_LEN: usize = 64;
/// Most keys a manifest can list (the current one and previous ones).
pub const MAX_MANIFEST_KEYS: usize = 8;
const TAG_LEN: usize = 16;
const MAX_HEADER_LEN: usize = 2 + 8 + 1 + 12 + SALT_LEN + 12 + 1 + MAX_PROVIDER_LEN;
/// Most records one user file holds: the providers and the identity record.
const MAX_STORED_RECORDS: usize = MAX_RECORDS + 1;
/// Largest user file the decoder accepts, in bytes.
pub const MAX_FILE_LEN: usize =
    7 + MAX_STORED_RECORDS * (MAX_HEADER_LEN + 4 + MAX_PAYLOAD + TAG_LEN);

/// How a record's payload is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cipher {
    /// Not at all (development vaults only).
    Plaintext,
    /// AES-256-GCM with the user's key.
    Aes256Gcm,
}

/// One stored credential, as it sits in a user file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub(crate) cipher: Cipher,
    pub(crate) key_id: KeyId,
    pub(crate) kdf: KdfParams,
    pub(crate) nonce: [u8; 12],
    pub(crate) provider: String,
    /// Ciphertext followed by the 16-byte tag, or the plaintext.
    pub(crate) payload: Vec<u8>,
}

impl Record {
    /// The provider name the record is stored under.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The key that encrypted the record.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// How the payload is protected.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    pub(crate) fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        out.push(FORMAT_VERSION);
        out.push(match self.cipher {
            Cipher::Plaintext => 0,
            Cipher::Aes256Gcm => 1,
        });
        out.extend_from_slice(self.key_id.as_bytes());
        encode_kdf(&self.kdf, &mut out);
        out.extend_from_slice(&self.nonce);
        // Provider names are validated to 1..=64 bytes before a record is built.
        out.push(u8::try_from(self.provider.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.provider.as_bytes());
        out
    }

    /// The associated data: binds the header and the owning user to the
    /// ciphertext, so a record moved to another user or renamed fails.
    pub(crate) fn aad(&self, user_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + MAX_HEADER_LEN + 2 + user_id.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.extend_from_slice(&self.header_bytes());
        aad.extend_from_slice(
            &u16::try_from(user_id.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        aad.extend_from_slice(user_id.as_bytes());
        aad
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header_bytes());
        out.extend_from_slice(
            &u32::try_from(self.payload.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.payload);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        if r.u8()? != FORMAT_VERSION {
            return Err("unsupported record version");
        }
        let cipher = match r.u8()? {
            0 => Cipher::Plaintext,
            1 => Cipher::Aes256Gcm,
            _ => return Err("unknown cipher"),
        };
        let key_id = KeyId(r.array()?);
        let kdf = decode_kdf(r)?;
        let nonce = r.array()?;
        let name_len = usize::from(r.u8()?);
        if name_len == 0 || name_len > MAX_PROVIDER_LEN {
            return Err("provider name length out of range");
        }
        let provider = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| "provider name is not UTF-8")?
            .to_owned();
        if provider != IDENTITY_RECORD && provider.chars().any(char::is_control) {
            return Err("provider name holds a control character");
        }
        let payload_len = usize::try_from(r.u32()?).map_err(|_| "payload too long")?;
        let max = match cipher {
            Cipher::Plaintext => MAX_PAYLOAD,
            Cipher::Aes256Gcm => MAX_PAYLOAD + TAG_LEN,
        };
        if payload_len > max {
            return Err("payload too long");
        }
        if cipher == Cipher::Aes256Gcm && payload_len < TAG_LEN {
            return Err("ciphertext shorter than its tag");
        }
        let payload = r.take(payload_len)?.to_vec();
        Ok(Self {
            cipher,
            key_id,
            kdf,
            nonce,
            provider,
            payload,
        })
    }
}

/// All records of one user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFile {
    pub(crate) records: Vec<Record>,
}

impl UserFile {
    /// The records, in storage order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub(crate) fn find(&self, provider: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.provider == provider)
    }

    /// Inserts or replaces the record with the same provider name.
    pub(crate) fn upsert(&mut self, record: Record) {
        match self
            .records
            .iter_mut()
            .find(|r| r.provider == record.provider)
        {
            Some(slot) => *slot = record,
            None => self.records.push(record),
        }
    }

    /// The records that hold credentials (all but the identity record).
    pub(crate) fn credentials(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(|r| r.provider != IDENTITY_RECORD)
    }

    pub(crate) fn remove(&mut self, provider: &str) -> bool {
        let before = self.records.len();
        self.records.retain(|r| r.provider != provider);
        before != self.records.len()
    }

    /// Encodes the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            7 + self
                .records
                .iter()
                .map(|r| MAX_HEADER_LEN + 4 + r.payload.len())
                .sum::<usize>(),
        );
        out.extend_from_slice(FILE_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(
            &u16::try_from(self.records.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for record in &self.records {
            record.encode_into(&mut out);
        }
        out
    }

    /// Parses a user file. Never panics; rejects anything malformed, oversized,
    /// with duplicate provider names or with trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.len() > MAX_FILE_LEN {
            return Err("file larger than the maximum");
        }
        let mut r = Reader::new(bytes);
        if r.take(4)? != FILE_MAGIC {
            return Err("not a vault file (bad magic)");
        }
        if r.u8()? != FORMAT_VERSION {
            return Err("unsupported file version");
        }
        let count = usize::from(r.u16()?);
        if count > MAX_STORED_RECORDS {
            return Err("too many records");
        }
        let mut records: Vec<Record> = Vec::with_capacity(count);
        for _ in 0..count {
            let record = Record::decode(&mut r)?;
            if records.iter().any(|x| x.provider == record.provider) {
                return Err("duplicate provider name");
            }
            records.push(record);
        }
        if !r.is_empty() {
            return Err("trailing bytes after the last record");
        }
        Ok(Self { records })
    }
}

/// Parses a user file, as the vault does when it reads one (the entry point
/// of the `vault_decode` fuzz target).
pub fn decode_user_file(bytes: &[u8]) -> Result<UserFile, VaultError> {
    UserFile::decode(bytes).map_err(|reason| VaultError::corrupt("record bytes", reason))
}

/// The non-secret description of the keys in use: the first entry is the
/// current key, the rest are previous keys still needed to read old records
/// (present only while a rotation is unfinished).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) keys: Vec<(KeyId, KdfParams)>,
    /// The names key sealed under the current key; `None` in a version 1
    /// manifest (written before pseudonymous names).
    pub(crate) names: Option<SealedNames>,
}

/// The names key, sealed (see the format above).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedNames {
    pub(crate) nonce: [u8; 12],
    pub(crate) sealed: [u8; 48],
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MANIFEST_MAGIC);
        out.push(if self.names.is_some() {
            MANIFEST_V2
        } else {
            FORMAT_VERSION
        });
        out.push(u8::try_from(self.keys.len()).unwrap_or(u8::MAX));
        for (id, kdf) in &self.keys {
            out.extend_from_slice(id.as_bytes());
            encode_kdf(kdf, &mut out);
        }
        if let Some(names) = &self.names {
            out.extend_from_slice(&names.nonce);
            out.extend_from_slice(&names.sealed);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        Self::parse(bytes).map_err(|reason| VaultError::corrupt("the key manifest", reason))
    }

    fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MANIFEST_MAGIC {
            return Err("not a key manifest (bad magic)");
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION && version != MANIFEST_V2 {
            return Err("unsupported manifest version");
        }
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_MANIFEST_KEYS {
            return Err("key count out of range");
        }
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let id = KeyId(r.array()?);
            let kdf = decode_kdf(&mut r)?;
            keys.push((id, kdf));
        }
        let names = if version == MANIFEST_V2 {
            Some(SealedNames {
                nonce: r.array()?,
                sealed: r.array()?,
            })
        } else {
            None
        };
        if !r.is_empty() {
            return Err("trailing bytes");
        }
        Ok(Self { keys, names })
    }
}

fn encode_kdf(kdf: &KdfParams, out: &mut Vec<u8>) {
    match kdf {
        KdfParams::Raw => out.push(0),
        KdfParams::Argon2id { m_kib, t, p, salt } => {
            out.push(1);
            out.extend_from_slice(&m_kib.to_be_bytes());
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
            out.extend_from_slice(salt);
        }
        KdfParams::Pbkdf2Sha256 { iterations, salt } => {
            out.push(2);
            out.extend_from_slice(&iterations.to_be_bytes());
            out.extend_from_slice(salt);
        }
    }
}

fn decode_kdf(r: &mut Reader<'_>) -> Result<KdfParams, &'static str> {
    Ok(match r.u8()? {
        0 => KdfParams::Raw,
        1 => KdfParams::Argon2id {
            m_kib: r.u32()?,
            t: r.u32()?,
            p: r.u32()?,
            salt: r.array()?,
        },
        2 => KdfParams::Pbkdf2Sha256 {
            iterations: r.u32()?,
            salt: r.array()?,
        },
        _ => return Err("unknown KDF"),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("truncated");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> UserFile {
        UserFile {
            records: vec![
                Record {
                    cipher: Cipher::Aes256Gcm,
                    key_id: KeyId([1; 8]),
                    kdf: KdfParams::Argon2id {
                        m_kib: 19_456,
                        t: 2,
                        p: 1,
                        salt: [9; 16],
                    },
                    nonce: [3; 12],
                    provider: "spotify".into(),
                    payload: vec![0xAB; 40],
                },
                Record {
                    cipher: Cipher::Plaintext,
                    key_id: KeyId([0; 8]),
                    kdf: KdfParams::Raw,
                    nonce: [0; 12],
                    provider: "google".into(),
                    payload: b"{}".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn encode_decode_round_trip_is_exact() {
        let file = sample();
        let bytes = file.encode();
        let back = UserFile::decode(&bytes).expect("decodes");
        assert_eq!(back, file);
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn malformed_files_are_rejected_with_a_reason() {
        let good = sample().encode();
        assert_eq!(UserFile::decode(&[]), Err("truncated"));
        assert_eq!(
            UserFile::decode(b"XXXX\x01\x00\x00"),
            Err("not a vault file (bad magic)")
        );
        for cut in 0..good.len() {
            assert!(UserFile::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            UserFile::decode(&trailing),
            Err("trailing bytes after the last record")
        );
        let mut dup = sample();
        dup.records[1].provider = "spotify".into();
        assert_eq!(
            UserFile::decode(&dup.encode()),
            Err("duplicate provider name")
        );
        let mut huge_count = good.clone();
        huge_count[5] = 0xFF;
        assert_eq!(UserFile::decode(&huge_count), Err("too many records"));
    }

    #[test]
    fn aad_binds_user_and_header() {
        let file = sample();
        let r = &file.records[0];
        assert_ne!(r.aad("ALICE"), r.aad("BOB"));
        let mut renamed = r.clone();
        renamed.provider = "google".into();
        assert_ne!(r.aad("ALICE"), renamed.aad("ALICE"));
    }

    #[test]
    fn manifest_round_trip_and_bounds() {
        let m = Manifest {
            keys: vec![
                (KeyId([1; 8]), KdfParams::Raw),
                (
                    KeyId([2; 8]),
                    KdfParams::Pbkdf2Sha256 {
                        iterations: 600_000,
                        salt: [5; 16],
                    },
                ),
            ],
            names: None,
        };
        assert_eq!(m.encode()[4], 1, "no names key: version 1");
        assert_eq!(Manifest::decode(&m.encode()).expect("decodes"), m);
        let mut empty = m.encode();
        empty[5] = 0;
        assert!(Manifest::decode(&empty).is_err());
        let v2 = Manifest {
            names: Some(SealedNames {
                nonce: [3; 12],
                sealed: [4; 48],
            }),
            ..m
        };
        let bytes = v2.encode();
        assert_eq!(bytes[4], 2);
        assert_eq!(Manifest::decode(&bytes).expect("decodes"), v2);
        assert!(
            Manifest::decode(&bytes[..bytes.len() - 1]).is_err(),
            "truncated names"
        );
        let mut downgraded = bytes.clone();
        downgraded[4] = 1;
        assert!(
            Manifest::decode(&downgraded).is_err(),
            "names in a v1 manifest are trailing bytes"
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = UserFile::decode(&bytes);
            let _ = Manifest::decode(&bytes);
        }

        #[test]
        fn decoder_survives_mutations_of_a_valid_file(pos in 0usize..200, byte in any::<u8>()) {
            let mut bytes = sample().encode();
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Ok(file) = UserFile::decode(&bytes) {
                prop_assert_eq!(file.encode(), bytes);
            }
        }
    }
}
