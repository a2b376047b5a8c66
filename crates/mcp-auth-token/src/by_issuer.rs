//! One verifier per authorization server, chosen by the token's `iss`.

use std::sync::Arc;

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use crate::{AuthContext, TokenVerifier, VerifyError, VerifyFuture};

/// Verifies JWTs from several authorization servers: the token's `iss`
/// (read before any check, only to choose) picks the verifier for that
/// issuer, which then checks the token in full, its own issuer included. A
/// token naming no configured issuer is `Invalid { rule: "issuer" }`.
///
/// For a resource that lists several authorization servers, or that moves
/// from one to another.
#[derive(Debug, Default)]
pub struct ByIssuer {
    verifiers: Vec<(String, Arc<dyn TokenVerifier>)>,
}

impl ByIssuer {
    /// No issuer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens whose `iss` is `issuer` go to `verifier`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifiers.push((issuer.into(), verifier));
        self
    }

    fn pick(&self, token: &str) -> Option<&Arc<dyn TokenVerifier>> {
        let payload = token.split('.').nth(1)?;
        if payload.len() > 16 * 1024 {
            return None;
        }
        let bytes = BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        let iss = claims.get("iss")?.as_str()?;
        self.verifiers
            .iter()
            .find(|(issuer, _)| issuer == iss)
            .map(|(_, verifier)| verifier)
    }
}

impl TokenVerifier for ByIssuer {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        match self.pick(token) {
            Some(verifier) => verifier.verify(token),
            None => Box::pin(std::future::ready(Err(VerifyError::Invalid {
                rule: "issuer",
            }))),
        }
    }

    fn cached(&self, token: &str) -> Option<Arc<AuthContext>> {
        self.pick(token)?.cached(token)
    }

    /// The audience all the verifiers share, if they report the same one.
    fn audience(&self) -> Option<&str> {
        let mut audiences = self.verifiers.iter().map(|(_, v)| v.audience());
        let first = audiences.next()??;
        audiences.all(|a| a == Some(first)).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use mcp_auth_core::UserId;

    use super::*;

    #[derive(Debug)]
    struct Named(&'static str);

    impl TokenVerifier for Named {
        fn verify<'a>(&'a self, _token: &'a str) -> VerifyFuture<'a> {
            let context = AuthContext::new(UserId::new(self.0).unwrap());
            Box::pin(std::future::ready(Ok(Arc::new(context))))
        }

        fn audience(&self) -> Option<&str> {
            Some("https://mcp.example.com/mcp")
        }
    }

    fn jwt(iss: &str) -> String {
        let payload = BASE64URL_NOPAD.encode(format!(r#"{{"iss":"{iss}"}}"#).as_bytes());
        format!("eyJhbGciOiJFUzI1NiJ9.{payload}.sig")
    }

    #[test]
    fn the_issuer_chooses_the_verifier_and_an_unknown_one_is_refused() {
        let by = ByIssuer::new()
            .issuer("https://a.example", Arc::new(Named("from-a")))
            .issuer("https://b.example", Arc::new(Named("from-b")));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let run = |token: String| {
            runtime.block_on(async { by.verify(&token).await.map(|c| c.subject().to_owned()) })
        };
        assert_eq!(run(jwt("https://b.example")).unwrap(), "from-b");
        assert_eq!(run(jwt("https://a.example")).unwrap(), "from-a");
        assert_eq!(
            run(jwt("https://c.example")),
            Err(VerifyError::Invalid { rule: "issuer" })
        );
        assert_eq!(
            run("not-a-jwt".into()),
            Err(VerifyError::Invalid { rule: "issuer" })
        );
        assert_eq!(by.audience(), Some("https://mcp.example.com/mcp"));
    }
}
