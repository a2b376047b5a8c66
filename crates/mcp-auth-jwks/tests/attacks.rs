//! The attack suite: one test per known way to get a forged or misused token
//! accepted, plus the jsonwebtoken 11 validation traps this crate avoids.

mod common;

use std::sync::Arc;

use common::{ISSUER_PATH_AUDIENCE as AUD, NOW, TestKey, claims, jwks, sign_raw};
use data_encoding::BASE64URL_NOPAD as B64;
use mcp_auth_core::ManualClock;
use mcp_auth_jwks::{
    Algorithm, ClaimRule, KeySet, Policy, ValidationError as E, Validator, verify_token,
};
use serde_json::{Value, json};

const ISS: &str = "https://issuer.example.com";

struct Setup {
    rsa: TestKey,
    ec: TestKey,
    keys: KeySet,
    clock: ManualClock,
}

fn setup() -> Setup {
    let rsa = TestKey::rs256("rsa-1", 0);
    let ec = TestKey::es256("ec-1");
    let keys = KeySet::from_jwks(jwks(&[&rsa, &ec]).as_bytes()).expect("keys");
    Setup {
        rsa,
        ec,
        keys,
        clock: ManualClock::at_unix(NOW),
    }
}

fn policy() -> Policy {
    Policy::new(ISS, AUD)
}

fn check(s: &Setup, token: &str) -> Result<mcp_auth_jwks::VerifiedToken, E> {
    verify_token(token, &s.keys, &policy(), &s.clock)
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().expect("object").remove(key);
    claims
}

#[test]
fn valid_tokens_of_every_supported_algorithm_are_accepted() {
    let clock = ManualClock::at_unix(NOW);
    let keys = [
        TestKey::rs256("r", 1),
        TestKey::ps256("p", 2),
        TestKey::es256("e"),
        TestKey::ed25519("d"),
    ];
    let set = KeySet::from_jwks(jwks(&keys.iter().collect::<Vec<_>>()).as_bytes()).expect("keys");
    for key in &keys {
        let token = key.token(&claims(ISS));
        let ok = verify_token(&token, &set, &policy(), &clock)
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg));
        assert_eq!(ok.subject(), "user-123");
        assert_eq!(ok.issuer(), ISS);
        assert_eq!(ok.audiences(), [AUD]);
        assert_eq!(ok.scopes(), ["mcp:tools", "mcp:read"]);
        assert_eq!(ok.client_id(), Some("client-1"));
        assert_eq!(ok.key_id(), Some(key.kid.as_str()));
        assert_eq!(ok.algorithm().name(), key.alg);
    }
}

#[test]
fn alg_none_in_any_casing() {
    let s = setup();
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = B64.encode(json!({"alg": none, "kid": "rsa-1"}).to_string().as_bytes());
        let payload = B64.encode(claims(ISS).to_string().as_bytes());
        for sig in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(check(&s, &token).err(), Some(E::AlgNone), "{none} {sig:?}");
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let s = setup();
    // The classic confusion: the attacker HMACs with the public key bytes.
    for secret in [
        s.rsa.jwk().to_string().into_bytes(),
        s.rsa.jwk()["n"].as_str().expect("n").as_bytes().to_vec(),
    ] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let token = sign_raw(
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &claims(ISS),
            |m| aws_lc_rs::hmac::sign(&key, m).as_ref().to_vec(),
        );
        assert_eq!(check(&s, &token).err(), Some(E::AlgorithmMismatch));
    }
}

#[test]
fn header_alg_must_match_the_keys_bound_algorithm() {
    let s = setup();
    // A valid RSA signature labelled RS384 / PS256, and an EC key named by an RS256 token.
    for alg in ["RS384", "PS256"] {
        let token = sign_raw(&json!({"alg": alg, "kid": "rsa-1"}), &claims(ISS), |m| {
            s.rsa.sign_bytes(m)
        });
        assert_eq!(check(&s, &token).err(), Some(E::AlgorithmMismatch), "{alg}");
    }
    let token = sign_raw(&json!({"alg": "RS256", "kid": "ec-1"}), &claims(ISS), |m| {
        s.rsa.sign_bytes(m)
    });
    assert_eq!(check(&s, &token).err(), Some(E::AlgorithmMismatch));
}

#[test]
fn hostile_kids() {
    let s = setup();
    let traversal = s
        .rsa
        .token_with_header(json!({"kid": "../../../../etc/passwd"}), &claims(ISS));
    assert_eq!(check(&s, &traversal).err(), Some(E::UnknownKey));
    let empty = s.rsa.token_with_header(json!({"kid": ""}), &claims(ISS));
    assert_eq!(check(&s, &empty).err(), Some(E::UnknownKey));
    let huge = s
        .rsa
        .token_with_header(json!({"kid": "k".repeat(10 * 1024)}), &claims(ISS));
    assert!(
        matches!(check(&s, &huge), Err(E::TooLarge { .. })),
        "over the default 8 KiB cap"
    );
    let roomy = policy().max_token_len(64 * 1024);
    assert_eq!(
        verify_token(&huge, &s.keys, &roomy, &s.clock).err(),
        Some(E::Malformed("kid is not a short string")),
        "a 10 KiB kid is refused even under a larger size cap"
    );
    let numeric = s.rsa.token_with_header(json!({"kid": 7}), &claims(ISS));
    assert_eq!(
        check(&s, &numeric).err(),
        Some(E::Malformed("kid is not a short string"))
    );
}

#[test]
fn embedded_and_remote_key_headers_are_never_used() {
    let s = setup();
    let attacker = TestKey::es256("attacker");
    for header in [
        json!({"jwk": attacker.jwk()}),
        json!({"jku": "https://evil.example/jwks.json"}),
        json!({"x5u": "https://evil.example/cert.pem"}),
        json!({"x5c": ["MIIBattacker"]}),
    ] {
        // Signed by the attacker, claiming the legitimate kid, or the attacker's own kid.
        let mut h = header.clone();
        h["kid"] = json!("ec-1");
        let forged = sign_raw(
            &{
                let mut full = json!({"alg": "ES256"});
                full.as_object_mut()
                    .expect("o")
                    .extend(h.as_object().expect("o").clone());
                full
            },
            &claims(ISS),
            |m| attacker.sign_bytes(m),
        );
        assert_eq!(
            check(&s, &forged).err(),
            Some(E::InvalidSignature),
            "{header}"
        );
        let own = attacker.token_with_header(header.clone(), &claims(ISS));
        assert_eq!(check(&s, &own).err(), Some(E::UnknownKey), "{header}");
    }
    // The same headers on a legitimately signed token do not get in the way.
    let legit = s.ec.token_with_header(
        json!({"jku": "https://evil.example/jwks.json"}),
        &claims(ISS),
    );
    assert!(check(&s, &legit).is_ok());
}

#[test]
fn lifetime_rules() {
    let s = setup();
    let expired = s.rsa.token(&with(claims(ISS), "exp", json!(NOW - 61)));
    assert_eq!(check(&s, &expired).err(), Some(E::Expired));
    let in_leeway = s.rsa.token(&with(claims(ISS), "exp", json!(NOW - 59)));
    assert!(check(&s, &in_leeway).is_ok(), "60 s default leeway");
    let future_nbf = s.rsa.token(&with(claims(ISS), "nbf", json!(NOW + 120)));
    assert_eq!(check(&s, &future_nbf).err(), Some(E::NotYetValid));
    let future_iat = s.rsa.token(&with(claims(ISS), "iat", json!(NOW + 120)));
    assert_eq!(check(&s, &future_iat).err(), Some(E::IssuedInFuture));
    let no_exp = s.rsa.token(&without(claims(ISS), "exp"));
    assert_eq!(check(&s, &no_exp).err(), Some(E::MissingClaim("exp")));
    let string_exp = s
        .rsa
        .token(&with(claims(ISS), "exp", json!((NOW + 600).to_string())));
    assert_eq!(
        check(&s, &string_exp).err(),
        Some(E::InvalidClaimType("exp"))
    );
    let string_nbf = s.rsa.token(&with(claims(ISS), "nbf", json!("0")));
    assert_eq!(
        check(&s, &string_nbf).err(),
        Some(E::InvalidClaimType("nbf"))
    );
    let fractional = s
        .rsa
        .token(&with(claims(ISS), "exp", json!(NOW as f64 + 0.5)));
    assert!(
        check(&s, &fractional).is_ok(),
        "NumericDate may be fractional"
    );
}

#[test]
fn issuer_must_match_exactly() {
    let s = setup();
    for wrong in [
        "https://issuer.example.com/",
        "https://ISSUER.example.com",
        "https://evil.example.com",
        "",
    ] {
        let token = s.rsa.token(&with(claims(ISS), "iss", json!(wrong)));
        assert_eq!(
            check(&s, &token).err(),
            Some(E::IssuerMismatch),
            "{wrong:?}"
        );
    }
    let missing = s.rsa.token(&without(claims(ISS), "iss"));
    assert_eq!(check(&s, &missing).err(), Some(E::MissingClaim("iss")));
    let typed = s.rsa.token(&with(claims(ISS), "iss", json!([ISS])));
    assert_eq!(check(&s, &typed).err(), Some(E::InvalidClaimType("iss")));
}

#[test]
fn audience_must_contain_this_resource() {
    let s = setup();
    let other = s.rsa.token(&with(
        claims(ISS),
        "aud",
        json!("https://other.example.com/mcp"),
    ));
    assert_eq!(check(&s, &other).err(), Some(E::AudienceMismatch));
    let array = s.rsa.token(&with(
        claims(ISS),
        "aud",
        json!(["https://other.example.com", AUD]),
    ));
    assert!(check(&s, &array).is_ok(), "aud arrays are searched");
    let missing = s.rsa.token(&without(claims(ISS), "aud"));
    assert_eq!(check(&s, &missing).err(), Some(E::MissingClaim("aud")));
    for typed in [json!(42), json!({"aud": AUD}), json!([AUD, 1])] {
        let token = s.rsa.token(&with(claims(ISS), "aud", typed.clone()));
        assert_eq!(
            check(&s, &token).err(),
            Some(E::InvalidClaimType("aud")),
            "{typed}"
        );
    }
}

#[test]
fn critical_headers_jwe_and_json_serialization() {
    let s = setup();
    let crit = s
        .rsa
        .token_with_header(json!({"crit": ["exp"], "exp": 1}), &claims(ISS));
    assert_eq!(check(&s, &crit).err(), Some(E::UnknownCriticalHeader));
    let b64 = s.rsa.token_with_header(json!({"b64": false}), &claims(ISS));
    assert!(matches!(check(&s, &b64), Err(E::Malformed(_))));
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";
    assert_eq!(check(&s, jwe).err(), Some(E::Encrypted));
    let compact = s.rsa.token(&claims(ISS));
    let parts: Vec<&str> = compact.split('.').collect();
    let json_jws = json!({"payload": parts[1], "signatures": [{"protected": parts[0], "signature": parts[2]}]}).to_string();
    assert_eq!(check(&s, &json_jws).err(), Some(E::JsonSerialization));
    let flattened =
        json!({"payload": parts[1], "protected": parts[0], "signature": parts[2]}).to_string();
    assert_eq!(check(&s, &flattened).err(), Some(E::JsonSerialization));
}

#[test]
fn oversize_truncated_and_repadded_tokens() {
    let s = setup();
    let big = s
        .rsa
        .token(&with(claims(ISS), "pad", json!("x".repeat(9000))));
    assert!(matches!(
        check(&s, &big),
        Err(E::TooLarge { max: 8192, .. })
    ));
    let token = s.rsa.token(&claims(ISS));
    let truncated = &token[..token.len() - 4];
    assert_eq!(check(&s, truncated).err(), Some(E::InvalidSignature));
    for pad in ["=", "==", " "] {
        assert_eq!(
            check(&s, &format!("{token}{pad}")).err(),
            Some(E::InvalidSignature),
            "{pad:?}"
        );
    }
    let (input, sig) = token.rsplit_once('.').expect("sig");
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{input}.{}", String::from_utf8(flipped).expect("ascii"));
    assert_eq!(check(&s, &flipped).err(), Some(E::InvalidSignature));
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "a.b.c.d.e.f",
        "\u{0}\u{0}",
    ] {
        assert!(check(&s, junk).is_err(), "{junk:?}");
    }
}

#[test]
fn scopes_typ_and_claim_rules() {
    let s = setup();
    let need = policy().require_scopes(["mcp:tools", "mcp:admin"]);
    let token = s.rsa.token(&claims(ISS));
    assert_eq!(
        verify_token(&token, &s.keys, &need, &s.clock).err(),
        Some(E::InsufficientScope {
            missing: vec!["mcp:admin".into()]
        })
    );
    let scp = s.rsa.token(&with(
        without(claims(ISS), "scope"),
        "scp",
        json!(["mcp:tools", "mcp:admin"]),
    ));
    assert!(
        verify_token(&scp, &s.keys, &need, &s.clock).is_ok(),
        "scp arrays count"
    );

    let typed = policy().require_access_token_type();
    assert_eq!(
        verify_token(&token, &s.keys, &typed, &s.clock).err(),
        Some(E::WrongType)
    );
    let jwt_typ = s.rsa.token_with_header(json!({"typ": "JWT"}), &claims(ISS));
    assert_eq!(
        verify_token(&jwt_typ, &s.keys, &typed, &s.clock).err(),
        Some(E::WrongType)
    );
    let at_jwt = s
        .rsa
        .token_with_header(json!({"typ": "at+jwt"}), &claims(ISS));
    assert!(verify_token(&at_jwt, &s.keys, &typed, &s.clock).is_ok());

    let google = policy()
        .rule(ClaimRule::equals("email_verified", true))
        .rule(ClaimRule::one_of("hd", ["example.com"]));
    let good = s.rsa.token(&with(
        with(claims(ISS), "email_verified", json!(true)),
        "hd",
        json!("example.com"),
    ));
    assert!(verify_token(&good, &s.keys, &google, &s.clock).is_ok());
    for (claim, value) in [
        ("email_verified", json!(false)),
        ("email_verified", json!("true")),
        ("hd", json!("evil.com")),
    ] {
        let bad = s.rsa.token(&with(
            with(
                with(claims(ISS), "email_verified", json!(true)),
                "hd",
                json!("example.com"),
            ),
            claim,
            value,
        ));
        assert_eq!(
            verify_token(&bad, &s.keys, &google, &s.clock).err(),
            Some(E::ClaimRule {
                claim: claim.into()
            })
        );
    }
    let no_sub = s.rsa.token(&without(claims(ISS), "sub"));
    assert_eq!(check(&s, &no_sub).err(), Some(E::MissingClaim("sub")));
}

#[test]
fn hmac_only_with_a_configured_secret_and_never_mixed() {
    let clock = ManualClock::at_unix(NOW);
    let secret = [7u8; 32];
    let set = KeySet::hmac(&secret, Algorithm::HS256, Some("shared")).expect("hmac");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let token = sign_raw(
        &json!({"alg": "HS256", "kid": "shared"}),
        &claims(ISS),
        |m| aws_lc_rs::hmac::sign(&key, m).as_ref().to_vec(),
    );
    assert!(verify_token(&token, &set, &policy(), &clock).is_ok());
    let rsa = TestKey::rs256("shared", 0);
    assert_eq!(
        verify_token(&rsa.token(&claims(ISS)), &set, &policy(), &clock).err(),
        Some(E::AlgorithmMismatch)
    );
    assert!(
        KeySet::hmac(&[7u8; 31], Algorithm::HS256, None).is_err(),
        "short secret"
    );
    assert!(KeySet::hmac(&secret, Algorithm::RS256, None).is_err());
    let mixed =
        json!({"keys": [rsa.jwk(), {"kty": "oct", "k": B64.encode(&secret), "alg": "HS256"}]})
            .to_string();
    assert!(
        KeySet::from_jwks(mixed.as_bytes()).is_err(),
        "no HMAC from a JWKS"
    );
}

#[test]
fn jwk_use_key_ops_and_alg_are_honoured() {
    let clock = ManualClock::at_unix(NOW);
    let rsa = TestKey::rs256("k", 0);
    let token = rsa.token(&claims(ISS));
    let mut enc = rsa.jwk();
    enc["use"] = json!("enc");
    let set = KeySet::from_jwks(
        json!({"keys": [enc, TestKey::es256("other").jwk()]})
            .to_string()
            .as_bytes(),
    )
    .expect("set");
    assert_eq!(
        verify_token(&token, &set, &policy(), &clock).err(),
        Some(E::KeyRefused("key is not for signatures (use)"))
    );
    let mut ops = rsa.jwk();
    ops["key_ops"] = json!(["encrypt"]);
    ops.as_object_mut().expect("o").remove("use");
    let set = KeySet::from_jwks(
        json!({"keys": [ops, TestKey::es256("other").jwk()]})
            .to_string()
            .as_bytes(),
    )
    .expect("set");
    assert_eq!(
        verify_token(&token, &set, &policy(), &clock).err(),
        Some(E::KeyRefused("key_ops does not allow verify"))
    );
    let mut rs384 = rsa.jwk();
    rs384["alg"] = json!("RS384");
    let set = KeySet::from_jwks(json!({"keys": [rs384]}).to_string().as_bytes()).expect("set");
    assert_eq!(
        verify_token(&token, &set, &policy(), &clock).err(),
        Some(E::AlgorithmMismatch)
    );
    let mut private = rsa.jwk();
    private["d"] = json!("AQAB");
    assert!(KeySet::from_jwks(json!({"keys": [private]}).to_string().as_bytes()).is_err());
    let dup = json!({"keys": [rsa.jwk(), TestKey::rs256("k", 1).jwk()]}).to_string();
    assert!(KeySet::from_jwks(dup.as_bytes()).is_err(), "duplicate kid");
}

#[test]
fn errors_and_debug_output_carry_no_token_material() {
    let s = setup();
    let token = s
        .rsa
        .token(&with(claims(ISS), "aud", json!("https://other.example")));
    let sig = token.rsplit('.').next().expect("sig").to_owned();
    let err = check(&s, &token).expect_err("wrong audience");
    let hmac =
        KeySet::hmac(b"super-secret-hmac-key-0123456789", Algorithm::HS256, None).expect("hmac");
    let shown = format!("{err} {err:?} {:?} {:?} {}", s.keys, hmac, err.rule());
    assert!(!shown.contains(&sig[..16]), "{shown}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(!shown.contains("user-123"), "{shown}");
    assert_eq!(err.rule(), "audience");
}

#[tokio::test]
async fn the_async_validator_applies_the_same_rules() {
    let s = setup();
    let validator = Validator::with_static_keys(
        policy(),
        KeySet::from_jwks(jwks(&[&s.rsa]).as_bytes()).expect("keys"),
    )
    .clock(Arc::new(s.clock.clone()));
    assert!(validator.validate(&s.rsa.token(&claims(ISS))).await.is_ok());
    s.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(
        validator.validate(&s.rsa.token(&claims(ISS))).await.err(),
        Some(E::Expired)
    );
}
