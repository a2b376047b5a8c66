//! Arbitrary bytes as an authorization request's query or a token, login
//! or consent form, and as a (registered, requested) redirect URI pair:
//! typed refusals, never a panic. Properties: parsed parameters survive a
//! round trip through form encoding; a requested URI that matches carries
//! no fragment and no userinfo, and is equal to a registrable URI or a
//! loopback variant of one.
#![no_main]

use mcp_auth_oauth_server::{acceptable_redirect, fuzzing, redirect_matches};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(params) = fuzzing::params(data) {
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &params {
            encoded.append_pair(key, value);
        }
        let again = fuzzing::params(encoded.finish().as_bytes()).expect("re-encoded parameters parse");
        assert_eq!(again, params);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let (registered, requested) = text.split_once('\t').unwrap_or((text, text));
        if redirect_matches(registered, requested) {
            assert!(!requested.contains('#') && !requested.contains('@'));
            assert!(registered == requested || requested.starts_with("http://"));
        }
        let _ = acceptable_redirect(text, &[]);
    }
});
