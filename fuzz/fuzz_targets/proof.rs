//! A DLEQ proof as a server sends it: refused or parsed, and what parses
//! encodes back to the same bytes (canonical scalars only).
#![no_main]

use cds_core::Proof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = Proof::from_slice(data) {
        assert_eq!(proof.to_bytes().as_slice(), data);
    }
});
