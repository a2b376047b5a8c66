//! Arbitrary bytes as client metadata (a dynamic registration, or a client
//! ID metadata document): kept redirect URIs are all registrable (web, or a
//! private-use scheme the default policy accepts: never a script, data or
//! file scheme), at most ten; the shown name is short and has no control
//! character.
#![no_main]

use mcp_auth_oauth_server::{
    MAX_CLIENT_NAME, MAX_REDIRECT_URIS, PrivateUsePolicy, acceptable_private_use,
    acceptable_redirect, fuzzing,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((kept, name)) = fuzzing::client_metadata(data) {
        assert!(kept.len() <= MAX_REDIRECT_URIS);
        assert!(kept.iter().all(|uri| {
            acceptable_redirect(uri, &[])
                || acceptable_private_use(uri, PrivateUsePolicy::default())
        }));
        for uri in &kept {
            let scheme = uri.split(':').next().unwrap_or_default().to_ascii_lowercase();
            assert!(!["javascript", "data", "file", "vbscript"].contains(&scheme.as_str()));
        }
        assert!(name.chars().count() <= MAX_CLIENT_NAME);
        assert!(!name.chars().any(char::is_control));
    }
});
