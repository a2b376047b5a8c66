//! jsonwebtoken 11 panics on the first verify when both of its crypto
//! backends are enabled, and this workspace promises one crypto backend
//! (aws-lc-rs). Feature unification can switch the second one on silently
//! (any crate in the graph enabling `rust_crypto`), so the lock file is
//! checked: jsonwebtoken must depend on aws-lc-rs and on none of the
//! rust_crypto backend's crates.

#[test]
fn jsonwebtoken_resolves_exactly_the_aws_lc_backend() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("workspace Cargo.lock");
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"jsonwebtoken\""))
        .expect("jsonwebtoken in the lock file");
    let deps = &entry[entry.find("dependencies = [").expect("dependency list")..];
    let deps = &deps[..deps.find(']').expect("end of list")];
    assert!(deps.contains("\"aws-lc-rs\""), "{deps}");
    for rust_crypto in [
        "\"rsa\"",
        "\"p256\"",
        "\"p384\"",
        "\"ed25519-dalek\"",
        "\"hmac\"",
    ] {
        assert!(
            !deps.contains(rust_crypto),
            "jsonwebtoken pulls {rust_crypto}: both backends enabled"
        );
    }
}

#[test]
fn the_first_verification_in_a_process_succeeds() {
    let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"kid-ec-sign","alg":"ES256",
        "x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}]}"#;
    let keys = mcp_auth_jwks::KeySet::from_jwks(jwks).expect("keys");
    // Wycheproof json_web_signature_test.json tcId 18: ES256 over "foo".
    let jws = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtpZC1lYy1zaWduIn0.Zm9v.5cA0OHyMP7ezamUd5c9kV-FrGxdx4hbGXOdplQkutrqWrte5P-pAvsE3Ve6xSyU3YDQwUHjVVOtvcrEbbnZ8yA";
    assert_eq!(
        mcp_auth_jwks::verify_compact(jws, &keys, 8192).expect("verifies"),
        b"foo"
    );
}
