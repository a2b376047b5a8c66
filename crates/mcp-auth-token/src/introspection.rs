//! RFC 7662 token introspection: a [`TokenVerifier`] for opaque access
//! tokens, which the authorization server alone can read.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use mcp_auth_core::{Clock, SystemClock, UserId};
use mcp_auth_http::{HttpClient, HttpError, OutboundClient, ResponseLimit};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{AuthContext, ConfigError, TokenVerifier, VerifyError, VerifyFuture};

/// Default time one introspection call may take.
pub const DEFAULT_INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest introspection response read.
pub const MAX_INTROSPECTION_RESPONSE: usize = 64 * 1024;

/// Asks the authorization server about each token (RFC 7662) and accepts
/// it only when the answer is, in full:
///
/// | field | rule | otherwise |
/// |---|---|---|
/// | `active` | `true` | `Invalid { rule: "inactive" }` |
/// | `aud` | contains the resource (a string or an array) | `Invalid { rule: "audience" }` |
/// | `iss` | equals the configured issuer, when one is configured | `Invalid { rule: "issuer" }` |
/// | `exp` | in the future (absent: the answer holds for this request only) | `Expired` |
/// | `nbf` | not more than 60 s ahead | `Invalid { rule: "not-yet-valid" }` |
/// | `token_type` | absent, `access_token` or `Bearer` | `Invalid { rule: "token-type" }` |
/// | `sub` | a valid [`UserId`] | `Invalid { rule: "subject" }` |
///
/// The call is a `POST` of `token` and `token_type_hint=access_token` with
/// HTTP Basic client authentication (RFC 6749 section 2.3.1 encoding), no
/// redirects, a timeout and a 64 KiB response cap. An unreachable server,
/// any status but 200 (a 401 means our client credentials are wrong) or an
/// answer that is not an introspection response is
/// [`VerifyError::Unavailable`]: 503, fail closed.
///
/// Each call is a round trip to the authorization server: put a
/// [`crate::CachedVerifier`] in front, as `mcp-auth-axum`'s
/// `McpAuth::with_introspection` does. A cached answer outlives a revocation at the server by at most the
/// cache's TTL (60 s by default).
pub struct IntrospectionVerifier {
    client: Arc<dyn HttpClient>,
    endpoint: String,
    resource: String,
    issuer: Option<String>,
    client_id: String,
    authorization: HeaderValue,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("endpoint", &self.endpoint)
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Builds an [`IntrospectionVerifier`].
#[must_use = "a builder does nothing until it is built"]
pub struct IntrospectionBuilder {
    endpoint: String,
    resource: String,
    client_id: String,
    client_secret: zeroize::Zeroizing<String>,
    issuer: Option<String>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    http: Option<Arc<dyn HttpClient>>,
}

impl std::fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl IntrospectionVerifier {
    /// A verifier asking `endpoint` (https, or http on loopback) about
    /// tokens that must be for `resource` (the configured resource URL),
    /// authenticating as `client_id` with `client_secret`.
    pub fn builder(
        endpoint: &str,
        resource: &str,
        client_id: &str,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder {
            endpoint: endpoint.to_owned(),
            resource: resource.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: zeroize::Zeroizing::new(client_secret.into()),
            issuer: None,
            timeout: DEFAULT_INTROSPECTION_TIMEOUT,
            clock: Arc::new(SystemClock),
            http: None,
        }
    }
}

impl IntrospectionVerifier {
    /// The resource every accepted token's `aud` must contain.
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl IntrospectionBuilder {
    /// Requires the answer's `iss` to be `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// How long one call may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sends the introspection requests through `http` instead of the
    /// default [`OutboundClient`] (this builder's timeout; the answer is
    /// capped at [`MAX_INTROSPECTION_RESPONSE`] either way).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// The verifier, or why the settings are unsafe.
    pub fn build(self) -> Result<IntrospectionVerifier, ConfigError> {
        let endpoint = mcp_auth_http::check_configured_url(&self.endpoint).map_err(|refusal| {
            ConfigError::Url {
                setting: "introspection_endpoint",
                refusal,
            }
        })?;
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(ConfigError::Credentials {
                setting: "introspection client",
                reason: "RFC 7662 needs client credentials: a client id and secret",
            });
        }
        let credentials = zeroize::Zeroizing::new(format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(&self.client_secret)
        ));
        let encoded = zeroize::Zeroizing::new(format!(
            "Basic {}",
            data_encoding::BASE64.encode(credentials.as_bytes())
        ));
        let mut authorization =
            HeaderValue::from_str(&encoded).map_err(|_| ConfigError::Credentials {
                setting: "introspection client",
                reason: "the client credentials cannot form a header",
            })?;
        authorization.set_sensitive(true);
        let client: Arc<dyn HttpClient> = match self.http {
            Some(http) => http,
            None => Arc::new(
                OutboundClient::builder()
                    .timeout(self.timeout)
                    .max_response(MAX_INTROSPECTION_RESPONSE)
                    .build()?,
            ),
        };
        Ok(IntrospectionVerifier {
            client,
            endpoint: endpoint.to_string(),
            resource: self.resource,
            issuer: self.issuer,
            client_id: self.client_id,
            authorization,
            clock: self.clock,
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The fields of an answer this verifier reads (RFC 7662 section 2.2).
#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl IntrospectionVerifier {
    async fn introspect(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        // The form holds the token: the HTTP seam wipes the body once sent,
        // and the encoded copy here is wiped on drop.
        let encoded = zeroize::Zeroizing::new(form_encode(token));
        let form = format!("token={}&token_type_hint=access_token", encoded.as_str()).into_bytes();
        let unavailable = |reason: &'static str| {
            tracing::warn!(
                target: crate::AUDIT_TARGET,
                event = "introspection_unavailable",
                endpoint = %self.endpoint,
                reason,
            );
            VerifyError::Unavailable
        };
        let mut request = http::Request::post(&self.endpoint)
            .header("authorization", self.authorization.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .map_err(|_| unavailable("the endpoint is not a valid URL"))?;
        request
            .extensions_mut()
            .insert(ResponseLimit(MAX_INTROSPECTION_RESPONSE));
        let response = self.client.send(request).await.map_err(|e| {
            unavailable(match e {
                HttpError::Timeout { .. } => "timed out",
                HttpError::TooLarge { .. } => "answer too large",
                _ => "unreachable",
            })
        })?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(unavailable("the server refused our client credentials")),
            _ => return Err(unavailable("unexpected status")),
        }
        let bytes = response.into_body();
        serde_json::from_slice(&bytes).map_err(|_| unavailable("not a JSON object"))
    }

    fn judge(&self, claims: Map<String, Value>) -> Result<AuthContext, VerifyError> {
        // Read in place (no copy of the answer); the map is kept as claims.
        let value = Value::Object(claims);
        let answer = Answer::deserialize(&value).map_err(|_| VerifyError::Unavailable)?;
        let Value::Object(claims) = value else {
            return Err(VerifyError::Unavailable);
        };
        let invalid = |rule| VerifyError::Invalid { rule };
        if !answer.active {
            return Err(invalid("inactive"));
        }
        let audiences = match answer.aud {
            Some(Audience::One(one)) => vec![one],
            Some(Audience::Many(many)) => many,
            None => Vec::new(),
        };
        if !audiences.contains(&self.resource) {
            return Err(invalid("audience"));
        }
        if let Some(issuer) = &self.issuer
            && answer.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(invalid("issuer"));
        }
        let now = self.clock.unix_seconds();
        let expires_at = match answer.exp {
            Some(exp) if exp <= now => return Err(VerifyError::Expired),
            Some(exp) => exp,
            // No `exp`: valid for this request only (a cache keeps nothing).
            None => now,
        };
        if answer.nbf.is_some_and(|nbf| nbf > now.saturating_add(60)) {
            return Err(invalid("not-yet-valid"));
        }
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("access_token")
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(invalid("token-type"));
        }
        let user = answer
            .sub
            .and_then(|sub| UserId::new(sub).ok())
            .ok_or(invalid("subject"))?;
        let scopes = answer
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let mut context = AuthContext::new(user)
            .with_scopes(scopes)
            .with_audiences(audiences)
            .with_expires_at(expires_at)
            .with_claims(claims);
        context.client_id = answer.client_id;
        Ok(context)
    }
}

impl TokenVerifier for IntrospectionVerifier {
    fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    fn audience(&self) -> Option<&str> {
        Some(&self.resource)
    }

    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            let claims = self.introspect(token).await?;
            self.judge(claims).map(Arc::new)
        })
    }
}
