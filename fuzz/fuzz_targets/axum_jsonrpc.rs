//! Arbitrary bytes as an MCP request body (and, after a 0xFF separator, an
//! `Mcp-Name` header): never a panic; an accepted `tools/call` always has a
//! non-empty tool name, and a batch never exceeds the cap.
#![no_main]

use mcp_auth_axum::{MCP_NAME_HEADER, RpcSummary};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (body, header) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let mut headers = http::HeaderMap::new();
    if let Some(value) = header.and_then(|h| http::HeaderValue::from_bytes(h).ok()) {
        headers.insert(MCP_NAME_HEADER, value);
    }
    if let Ok(summary) = RpcSummary::parse(body, 8, &headers) {
        assert!(summary.calls.len() <= 8);
        for call in &summary.calls {
            if call.method.as_deref() == Some("tools/call") {
                assert!(call.tool.as_deref().is_some_and(|t| !t.is_empty()));
            }
        }
    }
});
