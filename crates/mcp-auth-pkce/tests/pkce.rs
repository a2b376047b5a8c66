//! RFC 7636 Appendix B, verifier rules, and redaction.
#![allow(clippy::unwrap_used)]

use mcp_auth_pkce::{CodeVerifier, Nonce, PkceError, StateToken};
use proptest::prelude::*;

/// RFC 7636 Appendix B: 32 random octets, the verifier they encode to, and
/// the S256 challenge of that verifier.
#[test]
fn rfc7636_appendix_b() {
    const OCTETS: [u8; 32] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
        77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_eq!(data_encoding::BASE64URL_NOPAD.encode(&OCTETS), VERIFIER);
    let verifier = CodeVerifier::from_string(VERIFIER.into()).unwrap();
    let challenge = verifier.s256_challenge();
    assert_eq!(challenge.as_str(), CHALLENGE);
    assert_eq!(challenge.method(), "S256");
}

#[test]
fn generated_values_are_fresh_and_long_enough() {
    let a = CodeVerifier::generate().unwrap();
    let b = CodeVerifier::generate().unwrap();
    assert_eq!(a.secret().len(), 43);
    assert_ne!(a.secret(), b.secret());
    let s = StateToken::generate().unwrap();
    assert_eq!(s.as_str().len(), 43); // 256 bits
    assert!(s.matches(s.as_str()));
    assert!(!s.matches(StateToken::generate().unwrap().as_str()));
    assert!(!s.matches(""));
    assert!(!s.matches(&s.as_str()[..42]));
}

#[test]
fn nothing_secret_in_debug() {
    let v = CodeVerifier::generate().unwrap();
    let s = StateToken::generate().unwrap();
    let n = Nonce::generate().unwrap();
    for (debug, secret) in [
        (format!("{v:?}"), v.secret().to_owned()),
        (format!("{s:?}"), s.as_str().to_owned()),
        (format!("{n:?}"), n.as_str().to_owned()),
    ] {
        assert!(debug.contains("[REDACTED]"), "{debug}");
        assert!(!debug.contains(&secret));
    }
}

/// One redaction spelling: ours is the one `secrecy` prints inside a
/// `SecretString`, so a struct with `SecretString` fields derives `Debug`
/// (here `ClientConfig`) and reads like every other secret.
#[test]
fn one_redaction_spelling_with_secrecy() {
    let secret = secrecy::SecretString::from("s3cr3t-client-secret".to_owned());
    assert!(format!("{secret:?}").contains(mcp_auth_core::REDACTED));
    let config = mcp_auth_pkce::ClientConfig::from_sources(
        "P",
        |k| match k {
            "P_CLIENT_ID" => Some("client-1".into()),
            "P_CLIENT_SECRET" => Some("s3cr3t-client-secret".into()),
            "P_REDIRECT_URI" => Some("http://127.0.0.1:8080/callback".into()),
            _ => None,
        },
        None,
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(
        shown.contains("client-1") && shown.contains(mcp_auth_core::REDACTED),
        "{shown}"
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[test]
fn verifier_boundaries() {
    let ok = |n: usize| CodeVerifier::from_string("a".repeat(n));
    assert_eq!(ok(42).unwrap_err(), PkceError::VerifierLength(42));
    assert!(ok(43).is_ok());
    assert!(ok(128).is_ok());
    assert_eq!(ok(129).unwrap_err(), PkceError::VerifierLength(129));
    let mut bad = "a".repeat(43);
    bad.push('+');
    assert_eq!(
        CodeVerifier::from_string(bad).unwrap_err(),
        PkceError::VerifierCharacter
    );
}

proptest! {
    /// Every string of 43-128 unreserved characters is accepted and yields a
    /// 43-character base64url challenge.
    #[test]
    fn unreserved_verifiers_are_accepted(v in "[A-Za-z0-9._~-]{43,128}") {
        let verifier = CodeVerifier::from_string(v).unwrap();
        let challenge = verifier.s256_challenge();
        prop_assert_eq!(challenge.as_str().len(), 43);
        prop_assert!(challenge.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    /// Any other character anywhere is refused.
    #[test]
    fn other_characters_are_refused(
        prefix in "[A-Za-z0-9._~-]{21,60}",
        bad in "[^A-Za-z0-9._~-]",
        suffix in "[A-Za-z0-9._~-]{21,60}",
    ) {
        let v = format!("{prefix}{bad}{suffix}");
        prop_assert!(CodeVerifier::from_string(v).is_err());
    }

    /// Wrong lengths are refused with the length.
    #[test]
    fn wrong_lengths_are_refused(v in "[A-Za-z0-9]{0,42}|[A-Za-z0-9]{129,200}") {
        let n = v.len();
        prop_assert_eq!(CodeVerifier::from_string(v).unwrap_err(), PkceError::VerifierLength(n));
    }
}
