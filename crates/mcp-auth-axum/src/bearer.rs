//! The bearer authentication layer (RFC 6750) with per-tool scopes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};

use crate::challenge::{Challenge, challenge, insufficient_scope, refusal, retry_later};
use crate::pipeline::{RequestFacts, Step, StepLayer, StepService, Summary};
use crate::rpc::{RpcError, read_summary};
use crate::{AuthContext, RpcSummary};
use crate::{ResourceConfig, TokenVerifier, VerificationLimit, VerifyError, audit};

/// The rule name of an audience mismatch, whoever detects it.
const AUDIENCE_RULE: &str = "audience";
const NOT_FOR_THIS_RESOURCE: &str = "the access token was not issued for this resource";

/// Longest `Authorization` header read (a JWT with many claims fits easily).
const MAX_AUTHORIZATION_LEN: usize = 16 * 1024;

/// The bearer step: authenticates every request with an
/// `Authorization: Bearer` token, verified by a [`TokenVerifier`], and
/// checks the scopes the request and the tools it calls need.
///
/// On success the request carries an `Arc<`[`AuthContext`](crate::AuthContext)`>` in its
/// extensions (and, run alone by [`BearerAuth`], the
/// `Arc<`[`crate::RpcSummary`]`>` of a POST). Otherwise:
///
/// | case | answer |
/// |---|---|
/// | no `Authorization` header, or another scheme | 401, `WWW-Authenticate: Bearer resource_metadata="…"` |
/// | token invalid, expired, or for another audience | 401, `error="invalid_token"` |
/// | token lacks a scope the request or the tool needs | 403, `error="insufficient_scope"`, `scope="…"`: the scopes needed, then those of this resource the token already has |
/// | `access_token` in the query, two `Authorization` headers, malformed JSON-RPC | 400 |
/// | `Mcp-Name` header that disagrees with the body | 400, JSON-RPC error -32020 |
/// | body over the cap | 413 |
/// | verifier cannot decide (keys unreachable) | 503 with `Retry-After` |
#[derive(Clone)]
pub struct BearerAuth {
    config: Arc<ResourceConfig>,
    verifier: Arc<dyn TokenVerifier>,
    limit: Option<VerificationLimit>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("resource", &self.config.resource())
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// The step for `config`, verifying tokens with `verifier`.
    pub fn new(config: Arc<ResourceConfig>, verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            config,
            verifier,
            limit: None,
        }
    }

    /// Charges each real verification (not a cache hit) to the client's
    /// address; see [`VerificationLimit`].
    #[must_use]
    pub fn verification_limit(mut self, limit: VerificationLimit) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl Step for BearerAuth {
    type Kept = ();

    async fn before(
        &self,
        request: Request<Body>,
        facts: &mut RequestFacts,
    ) -> Result<(Request<Body>, ()), Response<Body>> {
        let (request, context, summary) =
            authenticate(&self.config, &*self.verifier, self.limit.as_ref(), request).await?;
        facts.context = Some(context);
        facts.summary = summary.map(Summary::Owned);
        Ok((request, ()))
    }
}

/// The step is also its own tower layer: `.layer(BearerAuth::new(..))`.
impl<S> tower::Layer<S> for BearerAuth {
    type Service = StepService<S, BearerAuth>;

    fn layer(&self, inner: S) -> Self::Service {
        StepLayer::from_step(self.clone()).layer(inner)
    }
}

/// Runs every check; returns the request to forward (with the
/// `Arc<AuthContext>` in its extensions, for handlers), the context, and
/// for a POST its JSON-RPC summary; or the response to send.
async fn authenticate(
    config: &ResourceConfig,
    verifier: &dyn TokenVerifier,
    limit: Option<&VerificationLimit>,
    request: Request<Body>,
) -> Result<(Request<Body>, Arc<AuthContext>, Option<RpcSummary>), Response<Body>> {
    if token_in_query(request.uri().query()) {
        audit::auth_failed("token-in-query", 400);
        return Err(challenge(
            config,
            Challenge::InvalidRequest(
                "access tokens are accepted only in the Authorization header",
            ),
        ));
    }
    let token = match bearer_token(request.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => {
            audit::auth_failed("missing-token", 401);
            return Err(challenge(config, Challenge::Missing));
        }
        Err(BearerError::Repeated) => {
            audit::auth_failed("repeated-authorization", 400);
            return Err(challenge(
                config,
                Challenge::InvalidRequest("more than one Authorization header"),
            ));
        }
        Err(BearerError::Malformed) => {
            audit::auth_failed("malformed-authorization", 401);
            return Err(challenge(
                config,
                Challenge::InvalidToken("the access token is malformed"),
            ));
        }
    };

    let started = std::time::Instant::now();
    let verified = match verifier.cached(token) {
        Some(context) => {
            crate::metrics::verification("cache", started.elapsed());
            Ok(context)
        }
        None => {
            if let Some(limit) = limit {
                // A real verification: charged to the client first.
                limit.charge(&request).await?;
            }
            let started = std::time::Instant::now();
            let verified = verifier.verify(token).await;
            crate::metrics::verification("full", started.elapsed());
            verified
        }
    };
    let context = match verified {
        Ok(context) => context,
        Err(error) => return Err(verification_failed(config, &error)),
    };
    if !context.audiences.iter().any(|a| a == config.resource()) {
        audit::auth_failed(AUDIENCE_RULE, 401);
        return Err(challenge(
            config,
            Challenge::InvalidToken(NOT_FOR_THIS_RESOURCE),
        ));
    }

    let mut request = request;
    let lacks = |scope: &String| !context.has_scope(scope);
    // The happy path allocates nothing here: the full list of needed scopes
    // is only built for the 403 challenge.
    let mut refused = config.required_scopes().iter().any(lacks);
    let mut denied_tool = None;
    let mut rpc = None;
    if request.method() == Method::POST {
        let (rebuilt, summary) =
            match read_summary(request, config.max_body_bytes, config.max_batch).await {
                Ok(ok) => ok,
                Err(error) => return Err(body_refused(&error)),
            };
        request = rebuilt;
        if denied_tool.is_none() {
            denied_tool = summary
                .tools()
                .find(|tool| config.tool_only_scopes(tool).iter().any(lacks))
                .map(str::to_owned);
        }
        if refused || denied_tool.is_some() {
            let mut needed: Vec<String> = config.required_scopes().to_vec();
            for tool in summary.tools() {
                for scope in config.tool_only_scopes(tool) {
                    if !needed.contains(scope) {
                        needed.push(scope.clone());
                    }
                }
            }
            return Err(scope_refusal(
                config,
                &context,
                denied_tool.as_deref(),
                &needed,
            ));
        }
        rpc = Some(summary);
    }
    refused |= denied_tool.is_some();
    if refused {
        let needed = config.required_scopes().to_vec();
        return Err(scope_refusal(config, &context, None, &needed));
    }
    tracing::debug!(
        target: audit::TARGET,
        event = "authenticated",
        subject = context.subject(),
        client = context.client_id.as_deref().unwrap_or("-"),
    );
    request.extensions_mut().insert(context.clone());
    Ok((request, context, rpc))
}

fn scope_refusal(
    config: &ResourceConfig,
    context: &crate::AuthContext,
    tool: Option<&str>,
    needed: &[String],
) -> Response<Body> {
    let missing = context.missing_scopes(needed);
    audit::scope_denied(context.subject(), tool, &missing.join(" "));
    // What the call needs plus what the token already has (of this
    // resource's scopes): a client that replaces its scopes with the
    // challenge's (the 2025-11-25 behaviour) keeps what it had, and
    // read → write → read converges instead of ping-ponging.
    let mut named = needed.to_vec();
    for held in &context.scopes {
        if config.knows_scope(held) && !named.contains(held) {
            named.push(held.clone());
        }
    }
    insufficient_scope(config, &named)
}

fn verification_failed(config: &ResourceConfig, error: &VerifyError) -> Response<Body> {
    match error {
        VerifyError::InsufficientScope { missing } => {
            audit::auth_failed("scope", 403);
            let mut needed = config.required_scopes().to_vec();
            for scope in missing {
                if !needed.contains(scope) {
                    needed.push(scope.clone());
                }
            }
            insufficient_scope(config, &needed)
        }
        VerifyError::Unavailable => {
            audit::auth_failed("unavailable", 503);
            retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "token verification is temporarily unavailable",
            )
        }
        VerifyError::Expired => {
            audit::auth_failed("expired", 401);
            challenge(config, Challenge::InvalidToken("the access token expired"))
        }
        VerifyError::Invalid { rule } => {
            audit::auth_failed(rule, 401);
            // The verifier's own audience rule answers as the layer's does:
            // a client holding a token for another resource learns why.
            let description = if *rule == AUDIENCE_RULE {
                NOT_FOR_THIS_RESOURCE
            } else {
                "the access token is invalid"
            };
            challenge(config, Challenge::InvalidToken(description))
        }
        // A kind of failure added later: refused, as a bad token.
        other => {
            audit::auth_failed(other.rule(), 401);
            challenge(
                config,
                Challenge::InvalidToken("the access token is invalid"),
            )
        }
    }
}

fn body_refused(error: &RpcError) -> Response<Body> {
    match error {
        RpcError::TooLarge => {
            audit::auth_failed("body-too-large", 413);
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is too large",
            )
        }
        RpcError::Read => refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body could not be read",
        ),
        RpcError::Invalid(description) => {
            audit::auth_failed("malformed-jsonrpc", 400);
            refusal(StatusCode::BAD_REQUEST, "invalid_request", description)
        }
        RpcError::HeaderMismatch { id, message } => {
            audit::auth_failed("header-mismatch", 400);
            let mut response = Response::new(Body::from(crate::rpc::header_mismatch_body(
                id.as_deref(),
                message,
            )));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

enum BearerError {
    Repeated,
    Malformed,
}

/// The token of the one `Authorization: Bearer` header; `None` when there is
/// no header or it uses another scheme (RFC 6750 section 3: answered with a
/// bare challenge).
fn bearer_token(headers: &header::HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(BearerError::Malformed);
    }
    // Bytes, not `HeaderValue::to_str`: the token check below admits ASCII
    // only, so one pass over the (long) token suffices.
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if !is_token68(token) {
        return Err(BearerError::Malformed);
    }
    // ASCII, so this cannot fail; `from_utf8` has a fast path for it.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| BearerError::Malformed)
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    // Branch-free per byte and in blocks, so the compiler vectorises it:
    // this runs over every byte of every token (JWTs are long).
    !body.is_empty()
        && body
            .chunks(32)
            .all(|block| block.iter().fold(true, |ok, &b| ok & token68_byte(b)))
}

fn token68_byte(b: u8) -> bool {
    // `b | 0x20` maps exactly the ASCII letters onto `a..=z`.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether the query carries an `access_token` parameter (RFC 6750 section
/// 2.3, which MCP forbids).
fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            name.eq_ignore_ascii_case("access_token") || name.eq_ignore_ascii_case("access%5Ftoken")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> header::HeaderMap {
        let mut map = header::HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_header_forms() {
        assert!(matches!(
            bearer_token(&headers(&["Bearer abc.def-_~+/=="])),
            Ok(Some("abc.def-_~+/=="))
        ));
        assert!(matches!(
            bearer_token(&headers(&["bearer abc"])),
            Ok(Some("abc"))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])),
            Ok(None)
        ));
        assert!(matches!(bearer_token(&headers(&[])), Ok(None)));
        assert!(matches!(
            bearer_token(&headers(&["Bearer"])),
            Err(BearerError::Malformed)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a b"])),
            Err(BearerError::Malformed)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer ===="])),
            Err(BearerError::Malformed)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(BearerError::Repeated)
        ));
        // Bytes beyond ASCII (obs-text) are never part of a token.
        let mut map = header::HeaderMap::new();
        map.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_bytes(b"Bearer ab\xe9cd").unwrap(),
        );
        assert!(matches!(bearer_token(&map), Err(BearerError::Malformed)));
        assert!(matches!(
            bearer_token(&headers(&["BEARER   abc"])),
            Ok(Some("abc"))
        ));
    }

    #[test]
    fn the_token68_check_matches_rfc_6750() {
        for b in 0..=255u8 {
            // `=` is allowed as trailing padding.
            let expected = b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
            // In every position of a block, and past the first block.
            for at in [0, 1, 31, 32, 40] {
                let mut token = vec![b'a'; 41];
                token[at] = b;
                let expected = expected && (b != b'=' || at == 40);
                assert_eq!(is_token68(&token), expected, "byte {b} at {at}");
            }
        }
        assert!(is_token68(b"abc=="));
        assert!(!is_token68(b"=abc"));
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b""));
    }

    #[test]
    fn query_tokens_are_spotted() {
        assert!(token_in_query(Some("access_token=x")));
        assert!(token_in_query(Some("a=1&ACCESS_TOKEN=x")));
        assert!(token_in_query(Some("access%5Ftoken=x")));
        assert!(!token_in_query(Some("token=x&access_tokens=1")));
        assert!(!token_in_query(None));
    }
}
