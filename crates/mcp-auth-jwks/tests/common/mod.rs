//! Test keys, token minting and an in-process issuer (axum) for the jwks tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaPublicKeyComponents,
};
use data_encoding::BASE64URL_NOPAD as B64;
use serde_json::{Value, json};

pub const ISSUER_PATH_AUDIENCE: &str = "https://mcp.example.com/mcp";
pub const NOW: u64 = 1_800_000_000;

pub enum Signer {
    Rsa(&'static RsaKeyPair),
    RsaPss(&'static RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    signer: Signer,
}

fn rsa_pair(slot: usize) -> &'static RsaKeyPair {
    static KEYS: [OnceLock<RsaKeyPair>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    KEYS[slot].get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen"))
}

impl TestKey {
    /// RS256 with one of three process-wide RSA keys (generated once).
    pub fn rs256(kid: &str, slot: usize) -> Self {
        Self {
            kid: kid.into(),
            alg: "RS256",
            signer: Signer::Rsa(rsa_pair(slot)),
        }
    }
    pub fn ps256(kid: &str, slot: usize) -> Self {
        Self {
            kid: kid.into(),
            alg: "PS256",
            signer: Signer::RsaPss(rsa_pair(slot)),
        }
    }
    pub fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
        Self {
            kid: kid.into(),
            alg: "ES256",
            signer: Signer::Ec(pair),
        }
    }
    pub fn ed25519(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            alg: "EdDSA",
            signer: Signer::Ed(Ed25519KeyPair::generate().expect("ed keygen")),
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(pair) | Signer::RsaPss(pair) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": self.kid, "alg": self.alg, "use": "sig",
                       "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA",
                                        "x": B64.encode(pair.public_key().as_ref())})
            }
        }
    }

    /// The public key as SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).
    pub fn spki_pem(&self) -> String {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        let der: PublicKeyX509Der<'static> = match &self.signer {
            Signer::Rsa(pair) | Signer::RsaPss(pair) => pair.public_key().as_der(),
            Signer::Ec(pair) => pair.public_key().as_der(),
            Signer::Ed(pair) => pair.public_key().as_der(),
        }
        .expect("public key DER");
        let b64 = data_encoding::BASE64.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub fn sign_bytes(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) | Signer::RsaPss(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                let alg = if matches!(self.signer, Signer::Rsa(_)) {
                    &RSA_PKCS1_SHA256
                } else {
                    &RSA_PSS_SHA256
                };
                pair.sign(alg, &rng, msg, &mut sig).expect("sign");
                sig
            }
            Signer::Ec(pair) => pair.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(msg).as_ref().to_vec(),
        }
    }

    /// A token with this key's alg and kid plus `extra` header members.
    pub fn token_with_header(&self, extra: Value, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg, "kid": self.kid});
        if let (Some(h), Value::Object(extra)) = (header.as_object_mut(), extra) {
            h.extend(extra);
        }
        sign_raw(&header, claims, |m| self.sign_bytes(m))
    }

    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(json!({}), claims)
    }
}

pub fn sign_raw(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string().as_bytes()),
        B64.encode(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(&sig))
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Claims that pass the default policy at [`NOW`].
pub fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": ISSUER_PATH_AUDIENCE, "sub": "user-123", "exp": NOW + 600,
           "iat": NOW - 10, "nbf": NOW - 10, "scope": "mcp:tools mcp:read", "client_id": "client-1"})
}

/// What the in-process issuer answers on its JWKS endpoint.
#[derive(Clone, Debug)]
pub enum Mode {
    Serve,
    Status(u16),
    Garbage,
    Slow(Duration),
    Huge,
    Redirect,
}

#[derive(Clone)]
pub struct IssuerState {
    pub jwks: Arc<Mutex<String>>,
    pub mode: Arc<Mutex<Mode>>,
    pub cache_control: Arc<Mutex<Option<String>>>,
    pub jwks_fetches: Arc<AtomicUsize>,
    pub issuer: Arc<Mutex<String>>,
    pub oidc_discovery: Arc<Mutex<bool>>,
}

impl IssuerState {
    pub fn set_jwks(&self, body: String) {
        *self.jwks.lock().expect("lock") = body;
    }
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }
    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// An in-process issuer on 127.0.0.1: discovery, RFC 8414 metadata and JWKS,
/// with switchable failure modes and a fetch counter.
pub struct TestIssuer {
    pub base: String,
    pub state: IssuerState,
}

impl TestIssuer {
    pub async fn start(jwks_body: String) -> Self {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, header};
        use axum::response::{IntoResponse, Response};
        use axum::routing::get;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = IssuerState {
            jwks: Arc::new(Mutex::new(jwks_body)),
            mode: Arc::new(Mutex::new(Mode::Serve)),
            cache_control: Arc::new(Mutex::new(None)),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            issuer: Arc::new(Mutex::new(base.clone())),
            oidc_discovery: Arc::new(Mutex::new(true)),
        };
        async fn metadata(State(s): State<IssuerState>, oidc: bool) -> Response {
            if oidc && !*s.oidc_discovery.lock().expect("lock") {
                return StatusCode::NOT_FOUND.into_response();
            }
            let issuer = s.issuer.lock().expect("lock").clone();
            let base = issuer.trim_end_matches('/').to_owned();
            axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks")}))
                .into_response()
        }
        async fn jwks(State(s): State<IssuerState>) -> Response {
            s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let mode = s.mode.lock().expect("lock").clone();
            let mut headers = HeaderMap::new();
            if let Some(cc) = s.cache_control.lock().expect("lock").clone() {
                headers.insert(header::CACHE_CONTROL, cc.parse().expect("header"));
            }
            match mode {
                Mode::Serve => (headers, s.jwks.lock().expect("lock").clone()).into_response(),
                Mode::Status(code) => StatusCode::from_u16(code).expect("status").into_response(),
                Mode::Garbage => (headers, "<html>not json</html>").into_response(),
                Mode::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    (headers, s.jwks.lock().expect("lock").clone()).into_response()
                }
                Mode::Huge => (headers, " ".repeat(300 * 1024)).into_response(),
                Mode::Redirect => (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://127.0.0.1:1/evil")],
                )
                    .into_response(),
            }
        }
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|s| metadata(s, true)),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(|s| metadata(s, false)),
            )
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { base, state }
    }
}
