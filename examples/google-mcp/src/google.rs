//! The Google API calls the tools make, and what their failures say.

use http::Method;
use mcp_auth_app::{ApiError, ProviderApi, ToolError, UpstreamToken};
use serde_json::Value;

/// What an answer was.
#[derive(Debug)]
pub enum Answer {
    /// JSON.
    Json(Value),
    /// Bytes (a file's content).
    Bytes(Vec<u8>),
}

/// Google's APIs for one caller.
#[derive(Debug, Clone)]
pub struct Google {
    api: ProviderApi,
}

impl Google {
    /// The APIs at `api` (the real ones, or the double).
    pub fn new(api: ProviderApi) -> Self {
        Self { api }
    }

    /// Sends a request; a success's body, or the error.
    pub async fn call(
        &self,
        upstream: &UpstreamToken,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ToolError> {
        let response = self
            .api
            .send(upstream, method, path_and_query, body)
            .await?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            let json = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/json"));
            return Ok(if json {
                Answer::Json(serde_json::from_slice(response.body()).map_err(|_| {
                    ToolError::Provider("Google answered something that is not JSON".into())
                })?)
            } else {
                Answer::Bytes(response.body().clone())
            });
        }
        // Google's reason code, never its text.
        let reason = serde_json::from_slice::<Value>(response.body())
            .ok()
            .and_then(|v| {
                v["error"]["errors"][0]["reason"]
                    .as_str()
                    .map(str::to_owned)
            });
        Err(match (status, reason.as_deref()) {
            (403, Some("rateLimitExceeded" | "userRateLimitExceeded")) => {
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                ToolError::Api(ApiError::RateLimited {
                    provider: "Google".into(),
                    retry_after,
                })
            }
            (403, Some("insufficientPermissions")) => ToolError::Provider(
                "this needs a Google permission you have not granted: sign in again and approve it"
                    .into(),
            ),
            (403, _) => ToolError::Provider("Google refused this action for your account".into()),
            (404, _) => ToolError::Provider("not found in your Google account".into()),
            (400, _) => ToolError::Provider("Google refused the request as invalid".into()),
            (other, _) => ToolError::Provider(format!("Google answered HTTP {other}")),
        })
    }

    /// [`call`](Self::call) that must answer JSON.
    pub async fn json(
        &self,
        upstream: &UpstreamToken,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, ToolError> {
        match self.call(upstream, method, path_and_query, body).await? {
            Answer::Json(v) => Ok(v),
            Answer::Bytes(_) => Err(ToolError::Provider(
                "Google answered something that is not JSON".into(),
            )),
        }
    }
}
