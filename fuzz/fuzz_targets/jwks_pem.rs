//! Arbitrary text as PEM public keys (the DER reader inside): typed errors,
//! never a panic; a set that loads holds at least one key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kid in [None, Some("k")] {
        if let Ok(keys) = mcp_auth_jwks::KeySet::from_pem(text, kid) {
            assert!(!keys.keys().is_empty());
        }
    }
});
