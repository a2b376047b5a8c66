//! A development OAuth issuer: an ephemeral ES256 key, discovery and JWKS
//! endpoints, and an unauthenticated token mint. For demos and tests on
//! loopback only: anyone who can reach it can mint tokens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const B64: data_encoding::Encoding = data_encoding::BASE64URL_NOPAD;

/// The one grant the development issuer's token endpoint serves: a token
/// for whoever asks (no user, no client authentication). Its metadata
/// advertises this and nothing else: there is no authorization endpoint.
pub const DEV_MINT_GRANT: &str = "urn:mcp-auth:params:grant-type:dev-mint";

/// An issuer with a fresh signing key (never written anywhere).
pub struct DevIssuer {
    issuer: String,
    default_audience: String,
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A token request to the mint endpoint (`POST /token`, form-encoded).
#[derive(Debug, serde::Deserialize)]
struct MintForm {
    /// Optional; when given, must be [`DEV_MINT_GRANT`].
    #[serde(default)]
    grant_type: Option<String>,
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    /// RFC 8707 resource indicator: the audience.
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl DevIssuer {
    /// An issuer named `issuer` whose tokens default to `default_audience`.
    pub fn new(issuer: impl Into<String>, default_audience: impl Into<String>) -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("generating a P-256 key cannot fail with a working RNG");
        let point = key.public_key().as_ref();
        let kid = format!("dev-{}", &B64.encode(&point[1..9]));
        Self {
            issuer: issuer.into(),
            default_audience: default_audience.into(),
            key,
            kid,
        }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document.
    pub fn jwks_json(&self) -> String {
        let point = self.key.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
            "use": "sig", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]})
        .to_string()
    }

    /// Signs `claims` as an RFC 9068 `at+jwt` with this issuer's key.
    pub fn mint(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "ES256", "kid": self.kid, "typ": "at+jwt"}),
            claims,
        )
    }

    /// Signs `claims` under an arbitrary JOSE `header`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string().as_bytes()),
            B64.encode(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing cannot fail with a working RNG");
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }

    /// The standard claims of an access token for `sub` with `scopes`, for
    /// `audience` (the default audience when `None`), valid for `ttl`.
    pub fn claims(
        &self,
        sub: &str,
        scopes: &[&str],
        audience: Option<&str>,
        ttl: Duration,
    ) -> Value {
        let now = unix_now();
        json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": audience.unwrap_or(&self.default_audience),
            "scope": scopes.join(" "),
            "client_id": "dev-client",
            "iat": now,
            "exp": now + ttl.as_secs(),
            "jti": B64.encode(&unix_nanos().to_le_bytes()),
        })
    }

    /// A signed access token for `sub` with `scopes`, valid for ten minutes.
    pub fn access_token(&self, sub: &str, scopes: &[&str]) -> String {
        self.mint(&self.claims(sub, scopes, None, Duration::from_secs(600)))
    }

    /// The issuer's HTTP endpoints: `/.well-known/oauth-authorization-server`
    /// (RFC 8414 metadata describing only what is served), `/jwks.json`, and
    /// `POST /token` (form `sub`, optional `grant_type` =
    /// [`DEV_MINT_GRANT`], `scope`, `resource`, `client_id`, `expires_in`):
    /// mints a token for anyone who asks. It is not an OpenID provider and
    /// has no authorization endpoint, so it serves no OpenID configuration.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/oauth-authorization-server", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/token", post(token))
            .with_state(self)
    }

    /// Binds `127.0.0.1` on a free port and serves [`DevIssuer::router`]
    /// there until the runtime shuts down; the issuer URL is
    /// `http://127.0.0.1:<port>`.
    pub async fn serve_loopback(
        default_audience: impl Into<String>,
    ) -> std::io::Result<(Arc<Self>, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let issuer = Arc::new(Self::new(format!("http://{addr}"), default_audience));
        let router = issuer.clone().router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok((issuer, addr))
    }
}

async fn discovery(State(issuer): State<Arc<DevIssuer>>) -> Json<Value> {
    let base = &issuer.issuer;
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/jwks.json"),
        "token_endpoint": format!("{base}/token"),
        // No authorization endpoint, so no response type (RFC 8414 section 2).
        "response_types_supported": [],
        "grant_types_supported": [DEV_MINT_GRANT],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

async fn jwks(State(issuer): State<Arc<DevIssuer>>) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("cache-control", "max-age=300"),
        ],
        issuer.jwks_json(),
    )
        .into_response()
}

/// An RFC 6749 section 5.2 error answer.
fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("cache-control", "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(issuer): State<Arc<DevIssuer>>,
    form: Result<Form<MintForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return token_error(
            "invalid_request",
            "expected a form with at least `sub` (application/x-www-form-urlencoded)",
        );
    };
    if form
        .grant_type
        .as_deref()
        .is_some_and(|g| g != DEV_MINT_GRANT)
    {
        return token_error(
            "unsupported_grant_type",
            "this development issuer only mints tokens (grant_type urn:mcp-auth:params:grant-type:dev-mint)",
        );
    }
    if form.sub.is_empty() || form.sub.len() > 256 {
        return token_error("invalid_request", "`sub` must be 1 to 256 bytes");
    }
    let ttl = Duration::from_secs(form.expires_in.unwrap_or(600).clamp(1, 86_400));
    let scope = form.scope.unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let mut claims = issuer.claims(&form.sub, &scopes, form.resource.as_deref(), ttl);
    if let Some(client) = form.client_id {
        claims["client_id"] = Value::String(client);
    }
    Json(json!({
        "access_token": issuer.mint(&claims),
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": scope,
    }))
    .into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
