//! Packed blinded elements (what a client sends) and packed evaluated
//! elements (what a server sends): refused or decoded, and what decodes
//! encodes back to the same bytes (one encoding per element).
#![no_main]

use cds_core::{BlindedElement, EvaluatedElement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(elements) = BlindedElement::decode_packed(data) {
        assert_eq!(BlindedElement::encode_packed(&elements), data);
    }
    if let Ok(elements) = EvaluatedElement::decode_packed(data) {
        assert_eq!(EvaluatedElement::encode_packed(&elements), data);
    }
});
