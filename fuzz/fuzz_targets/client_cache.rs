//! The client's cache file, as read back from the app's storage (damaged,
//! truncated or crafted): refused or read, and what is read writes back to
//! bytes that read as the same cache.
#![no_main]

use cds_client::DiscoveryCache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cache) = DiscoveryCache::from_bytes(data) else {
        return;
    };
    let bytes = cache.to_bytes();
    let again = DiscoveryCache::from_bytes(&bytes).expect("a written cache reads back");
    assert_eq!(again, cache);
});
