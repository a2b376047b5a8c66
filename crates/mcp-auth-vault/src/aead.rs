//! The one place the vault calls AES-256-GCM, so that the published test
//! vectors exercise exactly the code path the vault uses.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

/// Encrypts `msg` and returns ciphertext ‖ 16-byte tag. `None` only if the
/// message exceeds AES-GCM's length limit.
pub(crate) fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .encrypt(&Nonce::from(*nonce), Payload { msg, aad })
        .ok()
}

/// Decrypts ciphertext ‖ tag. `None` if authentication fails.
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .decrypt(&Nonce::from(*nonce), Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    //! Project Wycheproof AES-GCM vectors (C2SP/wycheproof, Apache-2.0; see
    //! `tests/data/README.md`): every test in the 256-bit key / 96-bit IV /
    //! 128-bit tag groups must give the published verdict.
    use super::*;
    use data_encoding::HEXLOWER_PERMISSIVE as HEX;

    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "testGroups")]
        groups: Vec<Group>,
    }

    #[derive(serde::Deserialize)]
    struct Group {
        #[serde(rename = "keySize")]
        key_size: u32,
        #[serde(rename = "ivSize")]
        iv_size: u32,
        #[serde(rename = "tagSize")]
        tag_size: u32,
        tests: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        #[serde(rename = "tcId")]
        id: u32,
        key: String,
        iv: String,
        aad: String,
        msg: String,
        ct: String,
        tag: String,
        result: String,
    }

    fn hex(s: &str) -> Vec<u8> {
        HEX.decode(s.as_bytes()).expect("vector hex")
    }

    #[test]
    fn wycheproof_aes_256_gcm_96_bit_iv() {
        let file: File =
            serde_json::from_str(include_str!("../tests/data/aes_gcm_test.json")).expect("json");
        let mut checked = 0;
        let mut invalid = 0;
        for group in file
            .groups
            .iter()
            .filter(|g| g.key_size == 256 && g.iv_size == 96 && g.tag_size == 128)
        {
            for case in &group.tests {
                let key: [u8; 32] = hex(&case.key).try_into().expect("32-byte key");
                let nonce: [u8; 12] = hex(&case.iv).try_into().expect("12-byte iv");
                let aad = hex(&case.aad);
                let msg = hex(&case.msg);
                let mut sealed = hex(&case.ct);
                sealed.extend(hex(&case.tag));
                let opened = open(&key, &nonce, &aad, &sealed);
                match case.result.as_str() {
                    "valid" => {
                        assert_eq!(
                            seal(&key, &nonce, &aad, &msg).as_deref(),
                            Some(sealed.as_slice()),
                            "tcId {} encrypt",
                            case.id
                        );
                        assert_eq!(
                            opened.as_deref().map(Vec::as_slice),
                            Some(msg.as_slice()),
                            "tcId {} decrypt",
                            case.id
                        );
                    }
                    "invalid" => {
                        invalid += 1;
                        assert!(opened.is_none(), "tcId {} must be rejected", case.id);
                    }
                    other => panic!("tcId {}: unexpected result {other}", case.id),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 66, "all vectors of the 256/96/128 group ran");
        assert!(invalid > 0, "the group includes forgeries");
    }
}
