//! A malicious server's `SyncRecords` answer, applied to the client's copy
//! of every record as `Client::discover` does in sync mode, then the
//! registered numbers looked up in the copy: errors, never a panic. A
//! refused answer leaves the copy exactly as it was; an accepted one
//! leaves it with a digest that is that of its records. The first byte
//! chooses the copy (`cds_fuzz::sync_copy`: empty, current, mid-download).
#![no_main]

use cds_client::fuzzing;
use cds_proto::v1::SyncResponse;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(response) = SyncResponse::decode(rest) else {
        return;
    };
    let mut copy = cds_fuzz::sync_copy(mode);
    let before = copy.clone();
    match fuzzing::apply(&mut copy, &response) {
        Err(_) => assert_eq!(copy, before, "a refused answer changed the copy"),
        Ok(current) => {
            assert!(fuzzing::digest_is_consistent(&copy));
            assert_eq!(current, !copy.is_downloading());
            // What the client would ask next is well-formed whatever the
            // server sent.
            let next = fuzzing::next_request(&copy);
            assert_eq!(next.epoch, cds_fuzz::EPOCH);
        }
    }
    for output in cds_fuzz::outputs() {
        let _ = copy.lookup(output);
    }
});
