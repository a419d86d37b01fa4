//! A credential (bearer token) from any client: refused or verified, never
//! a panic; a verified one names an account of 1 to 64 bytes.
#![no_main]

use std::sync::LazyLock;

use cds_core::CredentialVerifier;
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<CredentialVerifier> = LazyLock::new(|| cds_fuzz::issuer().verifier());

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    // The server default: credentials valid for at most 7 days.
    if let Ok(credential) = VERIFIER.verify(token, cds_fuzz::NOW, 7 * 86_400) {
        let len = credential.account.as_bytes().len();
        assert!((1..=64).contains(&len));
    }
});
