//! Reading the JSON-RPC method and tool name from a request body: once, with
//! a size cap, borrowing from the buffered body rather than copying it.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The header of the 2026 MCP revision (SEP-2243) that repeats the tool name.
pub const MCP_NAME_HEADER: &str = "mcp-name";

/// What the layers need to know about a JSON-RPC request body.
///
/// Inserted into the request's extensions (as `Arc<RpcSummary>`) by
/// [`crate::BearerAuth`] so the rate-limit layer does not parse the
/// body again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcSummary {
    /// One entry per message (one, or several for a batch).
    pub calls: Vec<RpcCall>,
}

/// One JSON-RPC message of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcCall {
    /// `method`, or `None` for a response message. The methods of the MCP
    /// specification are borrowed from a static list (no allocation).
    pub method: Option<Cow<'static, str>>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
}

/// A request body that is not JSON-RPC as MCP uses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON-RPC request: {0}")]
pub struct MalformedRpc(pub &'static str);

impl RpcSummary {
    /// Summarises a request body as the bearer layer does: a message or a
    /// batch of at most `max_batch`, each `tools/call` with a non-empty
    /// `params.name`, and a `Mcp-Name` header in `headers` (if any) that
    /// agrees with the body.
    pub fn parse(body: &[u8], max_batch: usize, headers: &HeaderMap) -> Result<Self, MalformedRpc> {
        summarise(body, max_batch, headers).map_err(|error| match error {
            RpcError::Invalid(description) => MalformedRpc(description),
            RpcError::HeaderMismatch { message, .. } => MalformedRpc(message),
            RpcError::TooLarge | RpcError::Read => MalformedRpc("the body could not be read"),
        })
    }

    /// The tools called by this request, in order.
    pub fn tools(&self) -> impl Iterator<Item = &str> {
        self.calls.iter().filter_map(|c| c.tool.as_deref())
    }
}

/// Why a body could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RpcError {
    /// Larger than the cap: 413.
    TooLarge,
    /// The body stream failed.
    Read,
    /// Not JSON-RPC as MCP uses it: 400 with this description.
    Invalid(&'static str),
    /// A `Mcp-Name` header that is malformed or disagrees with the body:
    /// 400 with a JSON-RPC error, code -32020 (header mismatch), carrying
    /// the id of the request concerned (JSON text, `null` when none).
    HeaderMismatch {
        /// The request id, as it was written in the body.
        id: Option<String>,
        /// Why, in fixed words.
        message: &'static str,
    },
}

/// JSON-RPC error code of the 2026-07-28 transport for a standard header
/// (`Mcp-Method`, `Mcp-Name`) that does not match the body.
pub(crate) const HEADER_MISMATCH: i32 = -32020;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Text<'a>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

/// `params`, read in the envelope's own pass (its other members, such as a
/// tool's `arguments`, are skipped once): whether it is an object, and its
/// `name` member.
enum Params<'a> {
    Object {
        name: Name<'a>,
    },
    /// An array, a string, a number or a boolean.
    Other,
}

/// The `name` member of a `params` object.
enum Name<'a> {
    Absent,
    Text(Cow<'a, str>),
    /// Not a string, or given twice.
    Unusable,
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParamsVisitor(std::marker::PhantomData))
    }
}

struct ParamsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ParamsVisitor<'a> {
    type Value = Params<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = Name::Absent;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == "name" {
                // Raw first, so a non-string name is "unusable", not a
                // parse error of the whole body.
                let raw: &'de RawValue = map.next_value()?;
                name = match (name, serde_json::from_str::<Text<'de>>(raw.get())) {
                    (Name::Absent, Ok(Text(text))) => Name::Text(text),
                    _ => Name::Unusable,
                };
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Params::Object { name })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Params::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Params::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Params::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Params::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Params::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Params::Other)
    }
}

/// A JSON string, borrowed from the body unless it has escapes. (serde
/// borrows a `Cow<str>` only when it is not wrapped, e.g. in an `Option`.)
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The request and notification methods of the MCP specification.
const KNOWN_METHODS: [&str; 20] = [
    "tools/call",
    "tools/list",
    "initialize",
    "notifications/initialized",
    "ping",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "roots/list",
    "sampling/createMessage",
    "elicitation/create",
];

fn method_name(method: &str) -> Cow<'static, str> {
    match KNOWN_METHODS.iter().find(|known| **known == method) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.to_owned()),
    }
}

/// Buffers the body (at most `max` bytes) and returns the request rebuilt
/// around the same buffer, with its summary.
pub(crate) async fn read_summary(
    request: Request<Body>,
    max: usize,
    max_batch: usize,
) -> Result<(Request<Body>, RpcSummary), RpcError> {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(RpcError::TooLarge);
        }
        Err(_) => return Err(RpcError::Read),
    };
    let summary = summarise(&bytes, max_batch, &parts.headers)?;
    // `Bytes` is reference counted: the inner service reads the same buffer.
    Ok((Request::from_parts(parts, Body::from(bytes)), summary))
}

/// Parses a JSON-RPC message or batch.
pub(crate) fn summarise(
    body: &[u8],
    max_batch: usize,
    headers: &HeaderMap,
) -> Result<RpcSummary, RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let batch: Vec<Envelope<'_>>;
    let one: Envelope<'_>;
    let envelopes: &[Envelope<'_>] = match first {
        None => return Ok(RpcSummary::default()),
        Some(b'[') => {
            batch = serde_json::from_slice(body)
                .map_err(|_| RpcError::Invalid("the request body is not valid JSON-RPC"))?;
            if batch.is_empty() || batch.len() > max_batch {
                return Err(RpcError::Invalid(
                    "the JSON-RPC batch is empty or too large",
                ));
            }
            &batch
        }
        Some(_) => {
            // One message, the common case: no vector of envelopes.
            one = serde_json::from_slice(body)
                .map_err(|_| RpcError::Invalid("the request body is not valid JSON-RPC"))?;
            std::slice::from_ref(&one)
        }
    };
    let calls = envelopes
        .iter()
        .map(call_of)
        .collect::<Result<Vec<_>, _>>()?;
    // The header repeats the body for intermediaries, which route on it; a
    // request whose header and body disagree is refused rather than trusted
    // either way. Every tool called must be the one named (a batch calling
    // several different tools cannot be described by one header).
    let id_of = |envelope: &Envelope<'_>| envelope.id.map(|raw| raw.get().to_owned());
    let named = header_name(headers).map_err(|message| RpcError::HeaderMismatch {
        id: envelopes.first().and_then(id_of),
        message,
    })?;
    if let Some(named) = named {
        for (envelope, call) in envelopes.iter().zip(&calls) {
            if call.tool.as_deref().is_some_and(|tool| tool != named) {
                return Err(RpcError::HeaderMismatch {
                    id: id_of(envelope),
                    message: "the Mcp-Name header does not match the tool called in the body",
                });
            }
        }
    }
    Ok(RpcSummary { calls })
}

fn call_of(envelope: &Envelope<'_>) -> Result<RpcCall, RpcError> {
    let method = envelope.method.as_ref().map(|m| &*m.0);
    let tool = if method == Some("tools/call") {
        match &envelope.params {
            None => return Err(RpcError::Invalid("tools/call without params")),
            Some(Params::Other) => {
                return Err(RpcError::Invalid("tools/call params are not an object"));
            }
            Some(Params::Object {
                name: Name::Text(name),
            }) if !name.is_empty() => Some(name.clone().into_owned()),
            Some(Params::Object { .. }) => {
                return Err(RpcError::Invalid("tools/call without a tool name"));
            }
        }
    } else {
        None
    };
    Ok(RpcCall {
        method: method.map(method_name),
        tool,
    })
}

/// The `Mcp-Name` header, decoded from its `=?base64?...?=` form if need be;
/// `Err` says why it is unusable.
fn header_name(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let mut values = headers.get_all(MCP_NAME_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Mcp-Name header");
    }
    let text = value
        .to_str()
        .map_err(|_| "the Mcp-Name header is not ASCII")?;
    if let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        let bytes = data_encoding::BASE64
            .decode(inner.as_bytes())
            .map_err(|_| "the Mcp-Name header is not valid base64")?;
        let decoded = String::from_utf8(bytes).map_err(|_| "the Mcp-Name header is not UTF-8")?;
        return Ok(Some(decoded));
    }
    Ok(Some(text.to_owned()))
}

/// The 400 answer to a header mismatch: a JSON-RPC error response with code
/// [`HEADER_MISMATCH`], as rmcp answers a wrong `Mcp-Method`.
pub(crate) fn header_mismatch_body(id: Option<&str>, message: &str) -> String {
    // `id` is a JSON value taken verbatim from a body serde_json parsed.
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{HEADER_MISMATCH},"message":{}}}}}"#,
        id.unwrap_or("null"),
        serde_json::Value::from(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<RpcSummary, RpcError> {
        summarise(body.as_bytes(), 4, &HeaderMap::new())
    }

    #[test]
    fn tool_call_name_is_read() {
        let s = parse(r#"{"jsonrpc":"2.0","id":1,"params":{"arguments":{"x":[1,2]},"name":"echo"},"method":"tools/call"}"#)
            .unwrap();
        assert_eq!(s.tools().collect::<Vec<_>>(), ["echo"]);
    }

    #[test]
    fn other_methods_have_no_tool() {
        // Any params shape is fine outside tools/call.
        for params in [
            r#"[1]"#,
            r#""x""#,
            "7",
            "true",
            r#"{"name":7,"name":8}"#,
            "null",
        ] {
            let body = format!(r#"{{"method":"resources/read","params":{params}}}"#);
            assert_eq!(parse(&body).unwrap().tools().count(), 0, "{params}");
        }
        let s = parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}"#).unwrap();
        assert_eq!(s.calls[0].method.as_deref(), Some("tools/list"));
        assert!(matches!(s.calls[0].method, Some(Cow::Borrowed(_))));
        let s = parse(r#"{"method":"x/\u0079","id":1}"#).unwrap();
        assert_eq!(s.calls[0].method.as_deref(), Some("x/y"));
        assert_eq!(s.tools().count(), 0);
    }

    #[test]
    fn escaped_names_are_unescaped() {
        let s = parse(r#"{"method":"tools/call","params":{"name":"e\u0063ho"}}"#).unwrap();
        assert_eq!(s.tools().collect::<Vec<_>>(), ["echo"]);
    }

    #[test]
    fn batches_are_bounded() {
        let one = r#"{"method":"tools/call","params":{"name":"a"}}"#;
        let ok = format!("[{one},{one}]");
        assert_eq!(parse(&ok).unwrap().tools().count(), 2);
        let big = format!("[{}]", [one; 5].join(","));
        assert!(matches!(parse(&big), Err(RpcError::Invalid(_))));
        assert!(matches!(parse("[]"), Err(RpcError::Invalid(_))));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            "{",
            "nul",
            r#"{"method":"tools/call"}"#,
            r#"{"method":"tools/call","params":{"name":""}}"#,
            r#"{"method":"tools/call","params":{"name":7}}"#,
            r#"{"method":"tools/call","params":"x"}"#,
            r#"{"method":7}"#,
            r#"{"method":"tools/call","params":["echo"]}"#,
            r#"{"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"method":"tools/call","params":{"name":{"x":1}}}"#,
            r#"{"method":"tools/call","params":null}"#,
            r#"{"method":"tools/call","params":{"name":"a","arguments":{"x":}}}"#,
        ] {
            assert!(matches!(parse(body), Err(RpcError::Invalid(_))), "{body}");
        }
    }

    #[test]
    fn mcp_name_header_must_match_the_body() {
        let body = br#"{"method":"tools/call","params":{"name":"echo"}}"#;
        let mut headers = HeaderMap::new();
        headers.insert(MCP_NAME_HEADER, "echo".parse().unwrap());
        assert!(summarise(body, 4, &headers).is_ok());
        headers.insert(MCP_NAME_HEADER, "=?base64?ZWNobw==?=".parse().unwrap());
        assert!(summarise(body, 4, &headers).is_ok());
        headers.insert(MCP_NAME_HEADER, "admin".parse().unwrap());
        assert!(matches!(
            summarise(body, 4, &headers),
            Err(RpcError::HeaderMismatch { id: None, .. })
        ));
    }

    #[test]
    fn a_mismatch_carries_the_request_id() {
        let mut headers = HeaderMap::new();
        headers.insert(MCP_NAME_HEADER, "admin".parse().unwrap());
        let body =
            br#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"echo"}}"#;
        let Err(RpcError::HeaderMismatch { id, message }) = summarise(body, 4, &headers) else {
            panic!("a mismatch");
        };
        assert_eq!(id.as_deref(), Some(r#""req-7""#));
        let answer: serde_json::Value =
            serde_json::from_str(&header_mismatch_body(id.as_deref(), message)).unwrap();
        assert_eq!(answer["id"], "req-7");
        assert_eq!(answer["error"]["code"], HEADER_MISMATCH);
        assert_eq!(answer["jsonrpc"], "2.0");
    }

    #[test]
    fn every_tool_of_a_batch_must_match_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(MCP_NAME_HEADER, "echo".parse().unwrap());
        let same = br#"[{"id":1,"method":"tools/call","params":{"name":"echo"}},
                        {"id":2,"method":"tools/call","params":{"name":"echo"}}]"#;
        assert!(summarise(same, 4, &headers).is_ok());
        let mixed = br#"[{"id":1,"method":"tools/call","params":{"name":"echo"}},
                         {"id":2,"method":"tools/call","params":{"name":"delete_all"}}]"#;
        let Err(RpcError::HeaderMismatch { id, .. }) = summarise(mixed, 4, &headers) else {
            panic!("a mismatch in the second call");
        };
        assert_eq!(id.as_deref(), Some("2"));
        headers.append(MCP_NAME_HEADER, "echo".parse().unwrap());
        assert!(matches!(
            summarise(same, 4, &headers),
            Err(RpcError::HeaderMismatch { id: Some(_), .. })
        ));
    }
}
