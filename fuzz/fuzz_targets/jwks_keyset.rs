//! Arbitrary bytes as a JWKS document: typed errors, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mcp_auth_jwks::KeySet::from_jwks(data);
    let _ = mcp_auth_jwks::KeySet::from_hmac_jwks(data);
});
