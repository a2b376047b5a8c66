//! Arbitrary bytes as client metadata (a dynamic registration, or a client
//! ID metadata document): kept redirect URIs are all registrable, at most
//! ten; the shown name is short and has no control character.
#![no_main]

use mcp_auth_oauth_server::{MAX_CLIENT_NAME, MAX_REDIRECT_URIS, acceptable_redirect, fuzzing};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((kept, name)) = fuzzing::client_metadata(data) {
        assert!(kept.len() <= MAX_REDIRECT_URIS);
        assert!(kept.iter().all(|uri| acceptable_redirect(uri, &[])));
        assert!(name.chars().count() <= MAX_CLIENT_NAME);
        assert!(!name.chars().any(char::is_control));
    }
});
