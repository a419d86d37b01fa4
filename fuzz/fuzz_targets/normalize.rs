//! Address-book entries as people write them, normalized to E.164 for a
//! region chosen by the first byte, and the canonical E.164 parser on the
//! same text: an answer, never a panic; every number produced is canonical.
#![no_main]

use cds_client::normalize::{Region, normalize};
use cds_core::E164;
use libfuzzer_sys::fuzz_target;

const REGIONS: [&str; 8] = ["US", "DE", "GB", "FR", "IN", "BR", "JP", "AU"];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(number) = E164::parse(text) {
        assert_eq!(number.as_str(), text);
        assert_eq!(E164::from_u64(number.to_u64()).ok(), Some(number));
    }
    let region =
        Region::parse(REGIONS[usize::from(which) % REGIONS.len()]).expect("a known region");
    if let Ok(number) = normalize(text, region) {
        assert_eq!(E164::parse(number.as_str()).ok(), Some(number));
    }
});
