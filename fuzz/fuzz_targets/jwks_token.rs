//! Arbitrary bytes as a bearer token: never a panic, never accepted.
#![no_main]

use std::sync::OnceLock;

use mcp_auth_core::ManualClock;
use mcp_auth_jwks::{KeySet, Policy, verify_token};

const JWKS: &str = r#"{"keys":[
  {"kty":"EC","crv":"P-256","kid":"kid-ec-sign","alg":"ES256","use":"sig",
   "x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}]}"#;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static SETUP: OnceLock<(KeySet, Policy, ManualClock)> = OnceLock::new();
    let (keys, policy, clock) = SETUP.get_or_init(|| {
        (
            KeySet::from_jwks(JWKS.as_bytes()).expect("keys"),
            Policy::new("https://issuer.example", "https://mcp.example/mcp"),
            ManualClock::at_unix(1_800_000_000),
        )
    });
    let token = String::from_utf8_lossy(data);
    assert!(verify_token(&token, keys, policy, clock).is_err(), "a forged token was accepted");
});
