//! The authorization response (the redirect back to us), parsed strictly.

use crate::OAuthError;

/// Longest callback query accepted (codes and states are short; this leaves
/// room for long provider error descriptions).
pub const MAX_CALLBACK_QUERY: usize = 8 * 1024;

/// The parameters of an authorization response (RFC 6749 section 4.1.2 and
/// 4.1.2.1, RFC 9207 `iss`). `Debug` redacts the code.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallbackParams {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| mcp_auth_core::REDACTED))
            .field(
                "state",
                &self.state.as_ref().map(|_| mcp_auth_core::REDACTED),
            )
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl CallbackParams {
    /// Parses a query string (without the leading `?`). Refused: longer than
    /// [`MAX_CALLBACK_QUERY`], a known parameter given twice (RFC 6749
    /// section 3.1), or a value that is not valid percent-encoded UTF-8.
    /// Unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, OAuthError> {
        if query.len() > MAX_CALLBACK_QUERY {
            return Err(OAuthError::MalformedCallback("the query is too long"));
        }
        let mut params = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?;
            let slot = match name.as_str() {
                "code" => &mut params.code,
                "state" => &mut params.state,
                "iss" => &mut params.iss,
                "error" => &mut params.error,
                "error_description" => &mut params.error_description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::MalformedCallback("a parameter appears twice"));
            }
            *slot = Some(decode(value)?);
        }
        Ok(params)
    }
}

/// `application/x-www-form-urlencoded` value decoding: `+` is a space, `%XX`
/// an octet; the result must be UTF-8 without control characters.
fn decode(value: &str) -> Result<String, OAuthError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(OAuthError::MalformedCallback("bad percent-encoding"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8(out)
        .map_err(|_| OAuthError::MalformedCallback("a value is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(OAuthError::MalformedCallback(
            "a value has control characters",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_success_and_an_error_response() {
        let p = CallbackParams::parse("code=Spl%2BxOw&state=xyz&iss=https%3A%2F%2Fa.example&x=1")
            .unwrap();
        assert_eq!(p.code.as_deref(), Some("Spl+xOw"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        assert_eq!(p.iss.as_deref(), Some("https://a.example"));
        let p = CallbackParams::parse("error=access_denied&error_description=User+said+no&state=s")
            .unwrap();
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("User said no"));
    }

    #[test]
    fn refuses_repeats_bad_encoding_and_huge_queries() {
        for q in [
            "state=a&state=b",
            "code=%zz",
            "code=%e2%28",
            "code=a%0Ab",
            "code=%",
        ] {
            assert!(
                matches!(
                    CallbackParams::parse(q),
                    Err(OAuthError::MalformedCallback(_))
                ),
                "{q}"
            );
        }
        let huge = format!("code={}", "a".repeat(MAX_CALLBACK_QUERY));
        assert!(CallbackParams::parse(&huge).is_err());
    }

    #[test]
    fn debug_redacts_the_code_and_state() {
        let p = CallbackParams::parse("code=secret-code&state=secret-state").unwrap();
        let d = format!("{p:?}");
        assert!(
            !d.contains("secret-code") && !d.contains("secret-state"),
            "{d}"
        );
    }
}
