//! Arbitrary bytes as an OAuth callback query: never a panic; whatever is
//! accepted was within the size cap and decodes to control-free UTF-8.
#![no_main]

use mcp_auth_pkce::{CallbackParams, MAX_CALLBACK_QUERY};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    if let Ok(params) = CallbackParams::parse(&query) {
        assert!(query.len() <= MAX_CALLBACK_QUERY);
        for value in [&params.code, &params.state, &params.iss, &params.error, &params.error_description]
            .into_iter()
            .flatten()
        {
            assert!(!value.chars().any(char::is_control));
        }
    }
});
