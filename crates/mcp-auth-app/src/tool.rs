//! What every tool of a provider-backed server does with its inputs and
//! its result: range and text checks before any call, the query string,
//! and one shape of error a model can read.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::ApiError;

/// Why a tool call failed: the text a model and a person read. Never a
/// token, never the provider's body verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolError {
    /// The input is not acceptable; nothing was sent to the provider.
    Invalid(String),
    /// The provider said no, with a reason the server states in its own words.
    Provider(String),
    /// The call could not be made (reconnect, rate limit, outage).
    Api(ApiError),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "invalid input: {why}"),
            Self::Provider(why) => f.write_str(why),
            Self::Api(e) => write!(f, "{e}"),
        }
    }
}

impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// A tool's answer: structured content, or an error result with the words.
pub fn result(outcome: Result<Value, ToolError>) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
    }
}

/// `value` (or `default`) if within `min..=max`.
pub fn within(
    value: Option<u32>,
    default: u32,
    min: u32,
    max: u32,
    what: &str,
) -> Result<u32, ToolError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ToolError::Invalid(format!(
            "{what} must be between {min} and {max}"
        )))
    }
}

/// Text from a person or a model: trimmed, non-empty, at most `max`
/// characters, no control characters (line breaks included).
pub fn text<'a>(value: &'a str, max: usize, what: &str) -> Result<&'a str, ToolError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ToolError::Invalid(format!("{what} is empty")));
    }
    if value.chars().count() > max {
        return Err(ToolError::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ToolError::Invalid(format!(
            "{what} has control characters (line breaks are not allowed)"
        )));
    }
    Ok(value)
}

/// A form-encoded query string.
pub fn query(pairs: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(within(Some(11), 10, 1, 10, "limit").is_err());
        assert_eq!(within(None, 10, 1, 10, "limit").unwrap(), 10);
        assert!(text("  ", 10, "q").is_err());
        assert!(text("a\nb", 10, "q").is_err());
        assert!(text(&"x".repeat(11), 10, "q").is_err());
        assert_eq!(text(" ok ", 10, "q").unwrap(), "ok");
        assert_eq!(query(&[("q", "a b&c".into())]), "q=a+b%26c");
    }
}
