//! Arbitrary bytes as a vault user file: the decoder never panics, and
//! anything it accepts re-encodes to exactly the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(file) = mcp_auth_vault::format::decode_user_file(data) {
        assert_eq!(file.encode(), data);
    }
});
