//! Validating a bearer token with cached keys: mcp-auth-jwks' `Validator`
//! (JWKS cache, header rules, algorithm binding, claims policy) against a
//! direct `jsonwebtoken::decode` with the same key and the same iss/aud/exp
//! checks, RS256 and ES256, in one run with the overhead printed.
//! Figures are recorded in docs/jwks.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaPublicKeyComponents,
};
use criterion::Criterion;
use data_encoding::BASE64URL_NOPAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_auth_benches::{bench_mode, time_per_op};
use mcp_auth_http::{HttpClient, HttpError, HttpRequest, HttpResponse};
use mcp_auth_jwks::{JwksCache, Policy, Validator};
use serde_json::{Value, json};

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://mcp.example.com/mcp";

/// Serves a fixed JWKS from memory: the bench measures validation, not HTTP.
#[derive(Debug)]
struct StaticJwks(String);

impl HttpClient for StaticJwks {
    fn send(
        &self,
        _request: HttpRequest,
    ) -> mcp_auth_core::BoxFuture<'_, Result<HttpResponse, HttpError>> {
        let body = self.0.clone().into_bytes();
        Box::pin(async move { Ok(http::Response::new(body)) })
    }
}

struct Case {
    name: &'static str,
    token: String,
    jwk: Value,
    baseline_key: DecodingKey,
    alg: Algorithm,
}

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    json!({"iss": ISS, "aud": AUD, "sub": "user-123", "exp": now + 3600, "iat": now, "scope": "mcp:tools"})
}

fn token(alg: &str, kid: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(
            json!({"alg": alg, "kid": kid, "typ": "JWT"})
                .to_string()
                .as_bytes()
        ),
        B64.encode(claims().to_string().as_bytes())
    );
    format!("{input}.{}", B64.encode(&sign(input.as_bytes())))
}

fn cases() -> Vec<Case> {
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa");
    let c = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
    let (n, e) = (B64.encode(&c.n), B64.encode(&c.e));
    let rsa_token = token("RS256", "rsa", |m| {
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig)
            .expect("sign");
        sig
    });
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
    let point = ec.public_key().as_ref().to_vec();
    let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
    let ec_token = token("ES256", "ec", |m| {
        ec.sign(&rng, m).expect("sign").as_ref().to_vec()
    });
    vec![
        Case {
            name: "RS256",
            token: rsa_token,
            jwk: json!({"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": n, "e": e}),
            baseline_key: DecodingKey::from_rsa_components(&n, &e).expect("key"),
            alg: Algorithm::RS256,
        },
        Case {
            name: "ES256",
            token: ec_token,
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig", "x": x, "y": y}),
            baseline_key: DecodingKey::from_ec_components(&x, &y).expect("key"),
            alg: Algorithm::ES256,
        },
    ]
}

fn baseline_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases = cases();
    let jwks = json!({"keys": cases.iter().map(|c| c.jwk.clone()).collect::<Vec<_>>()}).to_string();
    let cache = JwksCache::builder("https://issuer.example.com/jwks")
        .http(Arc::new(StaticJwks(jwks)))
        .build()
        .expect("cache");
    rt.block_on(cache.refresh()).expect("prime the cache");
    let validator = Validator::new(Policy::new(ISS, AUD), cache);

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("jwks/validate");
    for case in &cases {
        let validation = baseline_validation(case.alg);
        assert!(
            jsonwebtoken::decode::<Value>(&case.token, &case.baseline_key, &validation).is_ok()
        );
        assert!(rt.block_on(validator.validate(&case.token)).is_ok());
        group.bench_function(format!("{} mcp-auth-jwks (cached JWKS)", case.name), |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(validator.validate(black_box(&case.token)))
                        .expect("valid"),
                )
            })
        });
        group.bench_function(format!("{} jsonwebtoken::decode", case.name), |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Value>(
                        black_box(&case.token),
                        &case.baseline_key,
                        &validation,
                    )
                    .expect("valid"),
                )
            })
        });
    }
    group.finish();
    c.final_summary();

    let iterations = if bench_mode() { 20_000 } else { 10 };
    for case in &cases {
        let validation = baseline_validation(case.alg);
        // Interleave the two sides so drift affects both equally.
        let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..5 {
            ours += time_per_op(iterations / 5, || {
                black_box(rt.block_on(validator.validate(&case.token)).expect("valid"));
            });
            theirs += time_per_op(iterations / 5, || {
                black_box(
                    jsonwebtoken::decode::<Value>(&case.token, &case.baseline_key, &validation)
                        .expect("valid"),
                );
            });
        }
        println!(
            "ratio: {} mcp-auth-jwks {:?}/token vs jsonwebtoken::decode {:?}/token = {:.3} ({:+.1}% overhead)",
            case.name,
            ours / 5,
            theirs / 5,
            ours.as_secs_f64() / theirs.as_secs_f64(),
            (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0) * 100.0
        );
    }
}
