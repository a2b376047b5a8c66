//! The Spotify Web API calls the tools make, and what their failures say.

use http::Method;
use mcp_auth_app::{ApiError, ProviderApi, UpstreamToken};
use serde_json::Value;

/// Why a tool call failed: the text a model and a person read. Never a
/// token, never Spotify's body verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The input is not acceptable; nothing was sent to Spotify.
    Invalid(String),
    /// Spotify said no, with a reason we can state.
    Spotify(String),
    /// The call could not be made (reconnect, rate limit, outage).
    Api(ApiError),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "invalid input: {why}"),
            Self::Spotify(why) => f.write_str(why),
            Self::Api(e) => write!(f, "{e}"),
        }
    }
}

impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

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
                ToolError::Spotify("Spotify answered something that is not JSON".into())
            });
        }
        // Read Spotify's reason code, never forward its text.
        let reason = serde_json::from_slice::<Value>(response.body())
            .ok()
            .and_then(|v| v["error"]["reason"].as_str().map(str::to_owned));
        Err(ToolError::Spotify(match (status, reason.as_deref()) {
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
