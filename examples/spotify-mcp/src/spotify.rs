//! The Spotify Web API calls the tools make, and what their failures say.

use http::Method;
use mcp_auth_app::{ProviderApi, ToolError, UpstreamToken};
use serde_json::Value;

/// Spotify's Web API for one caller.
#[derive(Debug, Clone)]
pub struct Spotify {
    api: ProviderApi,
}

impl Spotify {
    /// The API at `api` (the real one, or the double).
    pub fn new(api: ProviderApi) -> Self {
        Self { api }
    }

    /// Sends a request; a success's JSON (or `null` for 204), or the error.
    pub async fn call(
        &self,
        upstream: &UpstreamToken,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, ToolError> {
        let response = self
            .api
            .send(upstream, method, path_and_query, body)
            .await?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            if response.body().is_empty() || status == 204 {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(response.body()).map_err(|_| {
                ToolError::Provider("Spotify answered something that is not JSON".into())
            });
        }
        // Read Spotify's reason code, never forward its text.
        let reason = serde_json::from_slice::<Value>(response.body())
            .ok()
            .and_then(|v| v["error"]["reason"].as_str().map(str::to_owned));
        Err(ToolError::Provider(match (status, reason.as_deref()) {
            (403, Some("PREMIUM_REQUIRED")) => {
                "playback control needs Spotify Premium on this account".into()
            }
            (403, _) => "Spotify refused this action for your account (missing permission, or not your playlist)".into(),
            (404, _) => "not found on Spotify (or no active device for playback)".into(),
            (400, _) => "Spotify refused the request as invalid".into(),
            (other, _) => format!("Spotify answered HTTP {other}"),
        }))
    }
}
