//! The admin token file's text: refused or parsed, never a panic; a parsed
//! token is 32 to 256 visible ASCII characters once trimmed.
#![no_main]

use cds_server::admin_token::{AdminToken, MAX_LEN, MIN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if AdminToken::parse(text).is_ok() {
        let token = text.trim();
        assert!((MIN_LEN..=MAX_LEN).contains(&token.len()));
        assert!(token.bytes().all(|b| b.is_ascii_graphic()));
    }
});
