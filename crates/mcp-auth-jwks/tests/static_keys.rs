//! Keys without discovery: PEM (SPKI and PKCS#1) and key files, checked by
//! validating real tokens signed with the matching private keys.

mod common;

use common::{ISSUER_PATH_AUDIENCE as AUD, NOW, TestKey, claims, jwks};
use mcp_auth_core::ManualClock;
use mcp_auth_jwks::{KeySet, KeySetError, Policy, ValidationError, Validator};

const ISSUER: &str = "https://issuer.example.com";

fn validator(keys: KeySet) -> Validator {
    Validator::with_static_keys(Policy::new(ISSUER, AUD), keys).clock(ManualClock::at_unix(NOW))
}

#[tokio::test]
async fn spki_pem_keys_of_every_type_validate_their_tokens() {
    for key in [
        TestKey::es256("k1"),
        TestKey::rs256("k1", 0),
        TestKey::ed25519("k1"),
    ] {
        let pem = key.spki_pem();
        let keys = KeySet::from_pem(&pem, Some("k1")).expect(key.alg);
        assert_eq!(keys.keys().len(), 1);
        assert_eq!(keys.keys()[0].algorithm().name(), key.alg);
        let token = key.token(&claims(ISSUER));
        let verified = validator(keys).validate(&token).await.expect(key.alg);
        assert_eq!(verified.subject(), claims(ISSUER)["sub"]);

        // Without a kid the key serves tokens that name none; a token that
        // names a kid is not checked against a key without it.
        let keys = KeySet::from_pem(&pem, None).expect(key.alg);
        let token_without_kid =
            common::sign_raw(&serde_json::json!({"alg": key.alg}), &claims(ISSUER), |m| {
                key.sign_bytes(m)
            });
        assert!(
            validator(KeySet::from_pem(&pem, None).unwrap())
                .validate(&token_without_kid)
                .await
                .is_ok()
        );
        assert_eq!(
            validator(keys).validate(&token).await.unwrap_err(),
            ValidationError::UnknownKey
        );
    }
}

#[tokio::test]
async fn a_pem_key_does_not_validate_another_keys_tokens() {
    let mine = TestKey::es256("k1");
    let theirs = TestKey::es256("k1");
    let keys = KeySet::from_pem(&mine.spki_pem(), Some("k1")).unwrap();
    assert_eq!(
        validator(keys)
            .validate(&theirs.token(&claims(ISSUER)))
            .await
            .unwrap_err(),
        ValidationError::InvalidSignature
    );
}

#[test]
fn several_blocks_load_as_several_keys_and_whitespace_is_tolerated() {
    let a = TestKey::es256("a");
    let b = TestKey::ed25519("b");
    let pem = format!("\n  {}\r\n{}\n", a.spki_pem(), b.spki_pem()).replace('\n', "\r\n");
    let keys = KeySet::from_pem(&pem, None).unwrap();
    assert_eq!(keys.keys().len(), 2);
    assert!(matches!(
        KeySet::from_pem(&pem, Some("one-kid")),
        Err(KeySetError::InvalidKey(_))
    ));
}

#[test]
fn the_jwks_rules_hold_for_pem_keys() {
    // A 1024-bit RSA key (PKCS#1 `RSA PUBLIC KEY`, as `openssl rsa
    // -RSAPublicKey_out` writes it) is refused with the JWKS rule's reason.
    let weak = include_str!("data/rsa1024_pkcs1.pem");
    assert_eq!(
        KeySet::from_pem(weak, None).unwrap_err(),
        KeySetError::InvalidKey("RSA key shorter than 2048 bits")
    );
    // A P-521 key: unsupported curve.
    let p521 = include_str!("data/p521_spki.pem");
    assert_eq!(
        KeySet::from_pem(p521, None).unwrap_err(),
        KeySetError::InvalidKey("unsupported curve")
    );
}

#[tokio::test]
async fn key_files_load_and_a_missing_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::es256("file-key");
    let pem_path = dir.path().join("issuer.pem");
    std::fs::write(&pem_path, key.spki_pem()).unwrap();
    let jwks_path = dir.path().join("issuer.jwks.json");
    std::fs::write(&jwks_path, jwks(&[&key])).unwrap();
    let token = key.token(&claims(ISSUER));
    for keys in [
        KeySet::from_pem_file(&pem_path, Some("file-key")).unwrap(),
        KeySet::from_jwks_file(&jwks_path).unwrap(),
    ] {
        assert!(validator(keys).validate(&token).await.is_ok());
    }
    let missing = dir.path().join("missing.pem");
    let err = KeySet::from_pem_file(&missing, None).unwrap_err();
    assert!(
        matches!(
            &err,
            KeySetError::File {
                kind: std::io::ErrorKind::NotFound,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let huge = dir.path().join("huge.json");
    std::fs::write(&huge, vec![b' '; 300 * 1024]).unwrap();
    assert!(matches!(
        KeySet::from_jwks_file(&huge),
        Err(KeySetError::TooLarge { .. })
    ));
}
