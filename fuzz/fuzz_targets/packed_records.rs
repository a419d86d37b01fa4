//! A bucket's packed records, as a server (or a client cache file) sends
//! them: refused or split, and the records split are exactly the input,
//! each one a valid record on its own.
#![no_main]

use cds_core::{Record, RecordRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = RecordRef::decode_packed(data) else {
        return;
    };
    let mut joined = Vec::with_capacity(data.len());
    for r in &records {
        let _ = r.tag();
        let own = Record::from_bytes(r.as_bytes()).expect("a split record parses alone");
        assert_eq!(own.as_bytes(), r.as_bytes());
        joined.extend_from_slice(r.as_bytes());
    }
    assert_eq!(joined, data);
});
