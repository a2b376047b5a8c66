//! A rotated refresh token's successor, sealed so that a retry inside the
//! grace window gets the *same* successor back (RFC 9700 §4.14.2 leaves the
//! window to the server; answering a retry with a new token would cut off
//! whichever holder did not present it). Only the holder of the rotated
//! token can open it: the key is derived from that token, which the store
//! keeps only as a hash.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ServerError;
use crate::secrets::RefreshToken;

const DOMAIN: &[u8] = b"mcp-auth refresh successor v1\0";

fn cipher(old: &RefreshToken) -> Aes256Gcm {
    let key = Zeroizing::new(<[u8; 32]>::from(
        Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(old.expose().as_bytes())
            .finalize(),
    ));
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// `next` sealed under a key derived from `old`: nonce ‖ ciphertext ‖ tag.
pub(crate) fn seal(old: &RefreshToken, next: &RefreshToken) -> Result<Vec<u8>, ServerError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|_| ServerError::Random)?;
    let sealed = cipher(old)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: next.expose().as_bytes(),
                aad: DOMAIN,
            },
        )
        .map_err(|_| ServerError::Random)?;
    Ok([&nonce[..], &sealed].concat())
}

/// The successor sealed by [`seal`] for `old`; `None` if it does not open.
pub(crate) fn open(old: &RefreshToken, sealed: &[u8]) -> Option<RefreshToken> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(12);
    let plain = Zeroizing::new(
        cipher(old)
            .decrypt(
                &Nonce::try_from(nonce).ok()?,
                Payload {
                    msg: body,
                    aad: DOMAIN,
                },
            )
            .ok()?,
    );
    std::str::from_utf8(&plain)
        .ok()
        .map(RefreshToken::presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rotated_token_opens_its_successor() {
        let old = RefreshToken::generate().expect("random");
        let next = RefreshToken::generate().expect("random");
        let sealed = seal(&old, &next).expect("sealed");
        assert!(open(&old, &sealed).is_some_and(|t| t.matches(next.expose())));
        let other = RefreshToken::generate().expect("random");
        assert!(open(&other, &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(open(&old, &flipped).is_none());
        assert!(open(&old, &sealed[..20]).is_none());
    }
}
